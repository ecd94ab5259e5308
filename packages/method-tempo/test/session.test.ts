import { Challenge, Credential, Receipt } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, erc20Abi, type Hex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { sessionClient } from '../src/client/index.js'
import { type SessionMeter, type SessionOptions, sessionServer } from '../src/server/index.js'
import * as Voucher from '../src/Voucher.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-test-secret-0123456789abcd'
const price = 1_000n

describe.skipIf(!!reason)('tempo/session on anvil (v1 escrow)', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 8 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const balance = (owner: Address) =>
    tempoClients(devnet.info).publicClient.readContract({
      address: devnet.info.tokens.pathUsd,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [owner],
    })
  const onChain = (channelId: Hex) => readChannel(devnet.info, channelId)
  /** The receipts of `count` requests the client pays one after another (each must be served). */
  const paidReceipts = async (client: { fetch: typeof fetch }, count: number) => {
    const receipts: Receipt.Receipt[] = []
    for (let i = 0; i < count; i++) {
      const response = await client.fetch('https://session.test/r')
      expect(response.status, await response.clone().text()).toBe(200)
      receipts.push(Receipt.parse(response.headers.get('payment-receipt')!))
    }
    return receipts
  }

  function setup(
    options: { unitsPerRequest?: number; sse?: boolean; server?: Partial<SessionOptions> } = {},
  ) {
    const payee = privateKeyToAccount(devnet.info.accounts[0]!.privateKey)
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: payee,
      escrow: devnet.info.escrow,
      timeout: 5_000,
      voucherTimeout: 5_000,
      ...(options.unitsPerRequest !== undefined ? { unitsPerRequest: options.unitsPerRequest } : {}),
      ...options.server,
    })
    const server = createServer({ realm: 'session.test', secrets: [secret], methods: [method] })
    let served = 0
    const handler = server.protect(
      {
        offers: [
          { method: 'tempo', intent: 'session', request: { amount: String(price), unitType: 'chunk' } },
        ],
      },
      (_request, payment) => {
        served++
        if (options.sse) {
          const meter = payment.context as SessionMeter
          return meter.sse(['one', 'two', 'three', 'four', 'five'])
        }
        return new Response(`served ${served}`)
      },
    )
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof fetch
    return { method, handler, fetcher, served: () => served, payee }
  }

  const payerClients = (
    index: number,
    fetcher: typeof fetch,
    deposit = 10n * price,
    voucherAhead?: number,
  ) => {
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[index]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit,
      fetch: fetcher,
      ...(voucherAhead === undefined ? {} : { voucherAhead }),
    })
    return {
      sessions,
      client: createClient({ methods: [sessions], fetch: fetcher, policy: { maxDeposit: 100n * price } }),
    }
  }

  it('open, vouchers, close: deducts before serving and refunds the unspent deposit', async () => {
    const { fetcher, payee, served } = setup()
    const payerAddress = devnet.info.accounts[1]!.address
    const { sessions, client } = payerClients(1, fetcher)
    const payeeBefore = await balance(payee.address)
    const payerBefore = await balance(payerAddress)
    const receipts = await paidReceipts(client, 3)
    expect(served()).toBe(3)
    const channelId = receipts[0]!.reference as Hex
    expect(receipts.map((r) => r.spent)).toEqual(['1000', '2000', '3000'])
    expect(receipts[2]).toMatchObject({ intent: 'session', channelId, acceptedCumulative: '3000' })
    expect((await onChain(channelId)).deposit).toBe(10n * price)

    const payerBeforeClose = await balance(payerAddress)
    const closed = await sessions.close('https://session.test/r')
    expect(closed.status).toBe(200)
    const closeReceipt = Receipt.parse(closed.headers.get('payment-receipt')!)
    expect(closeReceipt.txHash).toMatch(/^0x[0-9a-f]{64}$/)
    const after = await onChain(channelId)
    expect(after).toMatchObject({ finalized: true, settled: 3000n })
    // The payee sent the close (and pays its fee in PathUSD): it gained the 3000 spent minus that fee.
    const { publicClient } = tempoClients(devnet.info)
    const closeTx = await publicClient.getTransactionReceipt({ hash: closeReceipt.txHash as Hex })
    expect(closeTx.from.toLowerCase()).toBe(payee.address.toLowerCase())
    expect(await balance(payee.address)).toBeGreaterThan(payeeBefore)
    // The unspent 7000 came back to the payer, who paid no fee for the close.
    expect((await balance(payerAddress)) - payerBeforeClose).toBe(7000n)
    expect(payerBefore - (await balance(payerAddress))).toBeGreaterThanOrEqual(3000n)
  })

  it('tops up through the server when the deposit runs out', async () => {
    const { fetcher } = setup()
    const { client, sessions } = payerClients(2, fetcher, 2n * price)
    for (let i = 0; i < 5; i++) {
      const response = await client.fetch('https://session.test/r')
      expect(response.status, await response.clone().text()).toBe(200)
    }
    const [state] = [...sessions.channels.values()]
    const chain = await onChain(state!.channelId)
    expect(chain.deposit).toBeGreaterThanOrEqual(5n * price)
    expect(state!.spent).toBe(5n * price)
  })

  it('fee payer: the server co-signs open and topUp (domain 0x78), so the payer pays no fees', async () => {
    const sponsor = privateKeyToAccount(devnet.info.accounts[7]!.privateKey)
    const { fetcher, handler } = setup({ server: { feePayer: sponsor } })
    const challenge = Challenge.parseAll(
      (await handler(new Request('https://session.test/r'))).headers.get('www-authenticate')!,
    )[0]!
    expect((challenge.request as { methodDetails: { feePayer?: boolean } }).methodDetails.feePayer).toBe(true)
    const payerAddress = devnet.info.accounts[6]!.address
    const payerBefore = await balance(payerAddress)
    const sponsorBefore = await balance(sponsor.address)
    const { client, sessions } = payerClients(6, fetcher, 2n * price)
    for (let i = 0; i < 4; i++) {
      const response = await client.fetch('https://session.test/r')
      expect(response.status, await response.clone().text()).toBe(200)
    }
    const [state] = [...sessions.channels.values()]
    const chain = await onChain(state!.channelId)
    expect(chain.deposit).toBeGreaterThan(2n * price) // opened, then topped up
    // The payer's balance moved by exactly its deposits: the fee payer paid every fee.
    expect(payerBefore - (await balance(payerAddress))).toBe(chain.deposit)
    expect(await balance(sponsor.address)).toBeLessThan(sponsorBefore)
  })

  it('fee payer: a sponsored open outside the sponsor policy is refused before anything is sent', async () => {
    const sponsor = privateKeyToAccount(devnet.info.accounts[7]!.privateKey)
    const { fetcher, served } = setup({
      server: { feePayer: sponsor, sponsorPolicy: { maxGas: 1_000_000n } },
    })
    const payerAddress = devnet.info.accounts[5]!.address
    const payerBefore = await balance(payerAddress)
    const sponsorBefore = await balance(sponsor.address)
    const { client, sessions } = payerClients(5, fetcher, 2n * price)
    const response = await client.fetch('https://session.test/r')
    expect(response.status).toBe(402)
    expect(((await response.json()) as { reason?: string }).reason).toBe('sponsor-policy')
    const [state] = [...sessions.channels.values()]
    expect((await onChain(state!.channelId)).deposit).toBe(0n)
    expect(await balance(payerAddress)).toBe(payerBefore)
    expect(await balance(sponsor.address)).toBe(sponsorBefore)
    expect(served()).toBe(0)
  })

  it('voucherAhead: one voucher pays several requests, never more than k - 1 prices ahead, and close captures only what was served', async () => {
    const { fetcher, served } = setup()
    const sent: { cumulativeAmount: string; signature: string }[] = []
    const watching = ((input: RequestInfo, init?: RequestInit) => {
      const authorization =
        new Headers(init?.headers).get('authorization') ??
        (input instanceof Request ? input.headers.get('authorization') : null)
      if (authorization) {
        const { payload } = Credential.parse(authorization) as unknown as {
          payload: { action: string; cumulativeAmount: string; signature: string }
        }
        if (payload.action === 'voucher') sent.push(payload)
      }
      return fetcher(input, init)
    }) as typeof fetch
    const { sessions, client } = payerClients(1, watching, 20n * price, 5)
    const receipts = await paidReceipts(client, 12)
    expect(served()).toBe(12)
    // Request 1 opens with a voucher for itself; 2–6, 7–11 and 12– each start a voucher for 5 requests.
    expect(receipts.map((r) => r.spent)).toEqual(Array.from({ length: 12 }, (_, i) => String((i + 1) * 1000)))
    expect(receipts.map((r) => r.acceptedCumulative)).toEqual([
      '1000',
      ...Array(5).fill('6000'),
      ...Array(5).fill('11000'),
      '16000',
    ])
    expect(new Set(sent.map((v) => v.signature)).size).toBe(3)
    for (const r of receipts)
      expect(BigInt(r.acceptedCumulative as string) - BigInt(r.spent as string)).toBeLessThanOrEqual(
        4n * price,
      )
    const channelId = receipts[0]!.reference as Hex
    const closed = await sessions.close('https://session.test/r')
    expect(closed.status).toBe(200)
    // The server captures what it served (12 requests), not the 16 authorized.
    expect(await onChain(channelId)).toMatchObject({ finalized: true, settled: 12n * price })
    expect(() =>
      sessionClient({
        account: privateKeyToAccount(devnet.info.accounts[1]!.privateKey),
        rpcUrl: devnet.info.rpcUrl,
        voucherAhead: 0,
      }),
    ).toThrow(/voucherAhead/)
  })

  it('concurrent requests on one voucher never over-spend (bounded increment in the Store)', async () => {
    const { handler, fetcher, served } = setup()
    const { client, sessions } = payerClients(3, fetcher)
    expect((await client.fetch('https://session.test/r')).status).toBe(200)
    const [state] = [...sessions.channels.values()]
    // One voucher authorizing 3 more units, replayed on 12 concurrent requests with fresh challenges.
    const cumulativeAmount = 4n * price
    const signature = await Voucher.sign(privateKeyToAccount(devnet.info.accounts[3]!.privateKey), {
      chainId: devnet.info.chainId,
      escrow: devnet.info.escrow,
      channelId: state!.channelId,
      cumulativeAmount,
    })
    const challenges = await Promise.all(
      Array.from(
        { length: 12 },
        async () =>
          Challenge.parseAll(
            (await handler(new Request('https://session.test/r'))).headers.get('www-authenticate')!,
          )[0]!,
      ),
    )
    const before = served()
    const responses = await Promise.all(
      challenges.map((challenge) =>
        handler(
          new Request('https://session.test/r', {
            headers: {
              authorization: Credential.format({
                challenge,
                payload: {
                  action: 'voucher',
                  channelId: state!.channelId,
                  cumulativeAmount: String(cumulativeAmount),
                  signature,
                },
              }),
            },
          }),
        ),
      ),
    )
    const ok = responses.filter((r) => r.status === 200)
    expect(ok).toHaveLength(3)
    expect(served() - before).toBe(3)
    const refused = responses.filter((r) => r.status !== 200)
    for (const response of refused) {
      expect(response.status).toBe(402)
      const body = (await response.json()) as { type: string; requiredTopUp?: string }
      expect(body.type).toBe('https://paymentauth.org/problems/session/insufficient-balance')
      expect(body.requiredTopUp).toBe(String(price))
    }
  })

  it('rejects a foreign signer, an amount above the deposit, and a lower voucher', async () => {
    const { handler, fetcher } = setup()
    const { client, sessions } = payerClients(4, fetcher)
    expect((await client.fetch('https://session.test/r')).status).toBe(200)
    expect((await client.fetch('https://session.test/r')).status).toBe(200)
    const [state] = [...sessions.channels.values()]
    const submit = async (signer: Hex, amount: bigint) => {
      const challenge = Challenge.parseAll(
        (await handler(new Request('https://session.test/r'))).headers.get('www-authenticate')!,
      )[0]!
      const signature = await Voucher.sign(privateKeyToAccount(signer), {
        chainId: devnet.info.chainId,
        escrow: devnet.info.escrow,
        channelId: state!.channelId,
        cumulativeAmount: amount,
      })
      const response = await handler(
        new Request('https://session.test/r', {
          headers: {
            authorization: Credential.format({
              challenge,
              payload: {
                action: 'voucher',
                channelId: state!.channelId,
                cumulativeAmount: String(amount),
                signature,
              },
            }),
          },
        }),
      )
      return { status: response.status, body: (await response.json()) as { type: string; reason?: string } }
    }
    const own = devnet.info.accounts[4]!.privateKey
    expect(await submit(generatePrivateKey(), 3n * price)).toMatchObject({
      status: 402,
      body: { type: 'https://paymentauth.org/problems/session/signer-mismatch' },
    })
    expect(await submit(own, 11n * price)).toMatchObject({
      status: 402,
      body: { type: 'https://paymentauth.org/problems/session/amount-exceeds-deposit' },
    })
    expect(await submit(own, price)).toMatchObject({ status: 402, body: { reason: 'amount-not-increasing' } })
  })

  it('meters an SSE stream per chunk, pauses with payment-need-voucher and resumes on a voucher', async () => {
    const { fetcher } = setup({ unitsPerRequest: 0, sse: true })
    const { client, sessions } = payerClients(5, fetcher)
    const response = await client.fetch('https://session.test/stream')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/event-stream')
    expect(response.headers.get('payment-receipt')).not.toBeNull()
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ''
    const data: string[] = []
    let needs = 0
    let final: Record<string, string> | undefined
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += value
      let index = buffer.indexOf('\n\n')
      while (index !== -1) {
        const event = buffer.slice(0, index)
        buffer = buffer.slice(index + 2)
        index = buffer.indexOf('\n\n')
        const name = /^event: (.*)$/m.exec(event)?.[1]
        const payload = /^data: (.*)$/m.exec(event)?.[1] ?? ''
        if (name === 'payment-need-voucher') {
          needs++
          const need = JSON.parse(payload) as {
            requiredCumulative: string
            deposit: string
            channelId: string
          }
          expect(BigInt(need.requiredCumulative)).toBeLessThanOrEqual(BigInt(need.deposit))
          const sent = await sessions.voucher('https://session.test/stream', BigInt(need.requiredCumulative))
          expect(sent.status).toBe(200)
        } else if (name === 'payment-receipt') final = JSON.parse(payload)
        else data.push(payload)
      }
    }
    expect(data).toEqual(['one', 'two', 'three', 'four', 'five'])
    // The open voucher covered the first chunk; each later chunk needed a voucher.
    expect(needs).toBe(4)
    expect(final).toMatchObject({
      spent: String(5n * price),
      acceptedCumulative: String(5n * price),
      units: 5,
    })
  })

  it('charges a metered stream only for the chunks read: a reader that stops after two pays for two', async () => {
    const { fetcher } = setup({ unitsPerRequest: 0, sse: true })
    const { client, sessions } = payerClients(3, fetcher)
    const response = await client.fetch('https://session.test/stream')
    expect(response.status).toBe(200)
    // Read as it comes, one event per read (no stream in between that would read ahead).
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    const data: string[] = []
    while (data.length < 2) {
      const { value, done } = await reader.read()
      if (done) break
      const event = decoder.decode(value)
      const payload = /^data: (.*)$/m.exec(event)?.[1] ?? ''
      if (/^event: payment-need-voucher$/m.test(event)) {
        // Authorizes every chunk of the stream at once: what is charged is then up to the server.
        const need = JSON.parse(payload) as { requiredCumulative: string }
        const ahead = BigInt(need.requiredCumulative) + 5n * price
        expect((await sessions.voucher('https://session.test/stream', ahead)).status).toBe(200)
      } else data.push(payload)
    }
    expect(data).toEqual(['one', 'two'])
    // Time for a stream that ran ahead of its reader to charge the rest (none must).
    await new Promise((resolve) => setTimeout(resolve, 300))
    await reader.cancel()
    // What the channel has spent (a request costs nothing here: its receipt shows the spent amount).
    const next = await client.fetch('https://session.test/stream')
    expect(next.status).toBe(200)
    await next.body!.cancel()
    expect(Receipt.parse(next.headers.get('payment-receipt')!).spent).toBe(String(2n * price))
  })

  it('settles consumed vouchers of several channels in one batched transaction', async () => {
    const { fetcher, method } = setup()
    const a = payerClients(6, fetcher)
    const b = payerClients(7, fetcher)
    for (const { client } of [a, b])
      for (let i = 0; i < 2; i++) expect((await client.fetch('https://session.test/r')).status).toBe(200)
    const hash = await method.settleChannels()
    expect(hash).toMatch(/^0x[0-9a-f]{64}$/)
    const receipt = await tempoClients(devnet.info).publicClient.getTransactionReceipt({ hash: hash! })
    expect(receipt.status).toBe('success')
    for (const { sessions } of [a, b]) {
      const [state] = [...sessions.channels.values()]
      expect((await onChain(state!.channelId)).settled).toBe(2n * price)
    }
    // Nothing new to settle.
    expect(await method.settleChannels()).toBeUndefined()
    method.stop()
  })
})
