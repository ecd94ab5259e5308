import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Credential, PolicyError } from '@mppkit/core'
import { create as createClient, PaymentFailedError, type Policy } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import type { Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { type ChannelStore, type SavedChannel, sessionClient } from '../src/client/index.js'
import { fileChannelStore } from '../src/client/node.js'
import { type SessionMeter, sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-policy-secret-0123456789ab'
const price = 1_000n

// Side payments a session makes outside a paid request (top-ups and vouchers inside a metered stream)
// are booked in the paying client's ledger, so the spend policy bounds them too.
describe.skipIf(!!reason)('tempo/session side payments under the client spend policy', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 9 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  async function streamWith(payer: number, deposit: bigint, policy: (currency: string) => Policy) {
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
      escrow: devnet.info.escrow,
      timeout: 5_000,
      voucherTimeout: 2_000,
      unitsPerRequest: 0,
    })
    const server = createServer({ realm: 'policy.test', secrets: [secret], methods: [method] })
    const handler = server.protect(
      {
        offers: [
          { method: 'tempo', intent: 'session', request: { amount: String(price), unitType: 'chunk' } },
        ],
      },
      (_request, payment) => (payment.context as SessionMeter).sse(['one', 'two', 'three', 'four', 'five']),
    )
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[payer]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit,
      fetch: fetcher,
    })
    const client = createClient({
      methods: [sessions],
      fetch: fetcher,
      policy: policy(devnet.info.tokens.pathUsd),
    })
    const response = await client.fetch('https://policy.test/stream')
    expect(response.status).toBe(200)
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    const data: string[] = []
    let buffer = ''
    let refusal: unknown
    while (refusal === undefined) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += value
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const event = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const name = /^event: (.*)$/m.exec(event)?.[1]
        const payload = /^data: (.*)$/m.exec(event)?.[1] ?? ''
        if (name === 'payment-need-voucher') {
          const need = JSON.parse(payload) as { requiredCumulative: string }
          refusal = await sessions
            .voucher('https://policy.test/stream', BigInt(need.requiredCumulative))
            .then(
              () => undefined,
              (error: unknown) => error,
            )
          if (refusal !== undefined) break
        } else if (name !== 'payment-receipt') data.push(payload)
      }
    }
    await reader.cancel().catch(() => {})
    const [state] = [...sessions.channels.values()]
    return { client, data, refusal, state: state! }
  }

  it("books a stream's vouchers in the budget and refuses the one that would pass it", async () => {
    const { client, data, refusal } = await streamWith(1, 10n * price, (currency) => ({
      budget: { [currency.toUpperCase().replace('0X', '0x')]: 3n * price },
    }))
    expect(data).toEqual(['one', 'two', 'three'])
    expect(refusal).toBeInstanceOf(PolicyError)
    expect((refusal as PolicyError).reason).toBe('budget')
    expect(client.ledger.spent(devnet.info.tokens.pathUsd, `tempo:${devnet.info.chainId}`)).toBe(3n * price)
  })

  it('checks a top-up inside a stream against maxDeposit before signing it', async () => {
    const { data, refusal, state } = await streamWith(2, 2n * price, (currency) => ({
      currencies: [currency],
      maxDeposit: 3n * price,
    }))
    expect(data).toEqual(['one', 'two'])
    expect((refusal as PolicyError).reason).toBe('max-deposit')
    // Nothing was sent: the channel keeps its opening deposit.
    expect(state.deposit).toBe(2n * price)
    expect((await readChannel(devnet.info, state.channelId as Hex)).deposit).toBe(2n * price)
  })

  /** A session route on `realm` whose challenges suggest `suggestedDeposit`; the client's fetch reaches it by host. */
  function sessionRoute(realm: string, suggestedDeposit?: bigint) {
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
      escrow: devnet.info.escrow,
      timeout: 5_000,
      ...(suggestedDeposit !== undefined ? { suggestedDeposit } : {}),
    })
    const server = createServer({ realm, secrets: [secret], methods: [method] })
    return server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
  }

  it('checks maxDeposit for a new channel even when a channel with another server uses the same escrow', async () => {
    const routes: Record<string, (request: Request) => Promise<Response>> = {
      'a.test': sessionRoute('a.test', 5n * price),
      'b.test': sessionRoute('b.test', 1_000n * price),
    }
    const fetcher = ((input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      return routes[new URL(request.url).hostname]!(request)
    }) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[4]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      fetch: fetcher,
    })
    const client = createClient({
      methods: [sessions],
      fetch: fetcher,
      policy: { currencies: [devnet.info.tokens.pathUsd], maxDeposit: 10n * price },
    })
    expect((await client.fetch('https://a.test/r')).status).toBe(200)
    // Server b, on the same escrow, suggests a deposit of 1,000 prices: refused before anything is signed.
    const error = await client.fetch('https://b.test/r').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PolicyError)
    expect((error as PolicyError).reason).toBe('max-deposit')
    expect(sessions.channels.size).toBe(1)
  })

  it('holds deposits and top-ups against maxLocked across servers: a new channel past it waits for a close', async () => {
    const routes: Record<string, (request: Request) => Promise<Response>> = {
      'a.test': sessionRoute('a.test', 5n * price),
      'b.test': sessionRoute('b.test', 5n * price),
      'c.test': sessionRoute('c.test', 5n * price),
    }
    const fetcher = ((input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      return routes[new URL(request.url).hostname]!(request)
    }) as typeof fetch
    const payer = privateKeyToAccount(devnet.info.accounts[6]!.privateKey)
    const sessions = sessionClient({
      account: payer,
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      topUp: 5n * price,
      fetch: fetcher,
    })
    const pathUsd = devnet.info.tokens.pathUsd
    const client = createClient({
      methods: [sessions],
      fetch: fetcher,
      policy: { currencies: [pathUsd], maxLocked: 12n * price },
    })
    const nonceOf = () =>
      tempoClients(devnet.info).publicClient.getTransactionCount({
        address: payer.address,
        blockTag: 'pending',
      })
    expect((await client.fetch('https://a.test/r')).status).toBe(200)
    expect((await client.fetch('https://b.test/r')).status).toBe(200)
    expect(client.ledger.locked(pathUsd)).toBe(10n * price)
    // A third deposit would hold 15 prices in escrows: refused before anything is signed.
    const nonce = await nonceOf()
    const error = await client.fetch('https://c.test/r').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PolicyError)
    expect((error as PolicyError).reason).toBe('max-locked')
    expect(await nonceOf()).toBe(nonce)
    expect(sessions.channels.size).toBe(2)
    // A close gives its deposit back: room for the third.
    expect((await sessions.close('https://a.test/r')).status).toBe(200)
    expect(client.ledger.locked(pathUsd)).toBe(5n * price)
    expect((await client.fetch('https://c.test/r')).status).toBe(200)
    expect(client.ledger.locked(pathUsd)).toBe(10n * price)
    // b's deposit pays five requests; the sixth needs a top-up of 5, which would hold 15: refused too.
    for (let i = 0; i < 4; i++) expect((await client.fetch('https://b.test/r')).status).toBe(200)
    const topUp = await client.fetch('https://b.test/r').catch((e: unknown) => e)
    expect(topUp).toBeInstanceOf(PolicyError)
    expect((topUp as PolicyError).reason).toBe('max-locked')
    expect(await nonceOf()).toBe(nonce + 1)
    expect(client.ledger.locked(pathUsd)).toBe(10n * price)
    // Locked is not spent: the budget counts only the six requests paid.
    expect(client.ledger.spent(pathUsd)).toBe(7n * price)
    // A forced close requested: the escrow holds b's deposit until it is withdrawn, so it stays held.
    const closing = await sessions.reclaim('https://b.test/r')
    expect(closing.status).toBe('closing')
    expect(client.ledger.locked(pathUsd)).toBe(10n * price)
    expect(sessions.channels.size).toBe(1)
  })

  it('ignores a receipt claiming more spent than the vouchers signed: the close stays within them', async () => {
    const route = sessionRoute('receipts.test')
    const sent: string[] = []
    const fetcher = ((input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const authorization = request.headers.get('authorization')
      if (authorization) sent.push(authorization)
      return route(request)
    }) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[5]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      fetch: fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    expect((await client.fetch('https://receipts.test/r')).status).toBe(200)
    const [state] = [...sessions.channels.values()]
    expect(state!.spent).toBe(price)
    // A lying server's receipt: 1,000 prices spent, on a channel whose vouchers authorize one.
    const lie = { method: 'tempo', status: 'success', timestamp: new Date().toISOString() }
    sessions.onReceipt?.(
      {
        ...lie,
        reference: state!.channelId,
        channelId: state!.channelId,
        spent: String(1_000n * price),
      } as never,
      undefined as never,
    )
    sessions.onReceipt?.(
      {
        ...lie,
        reference: state!.channelId,
        channelId: state!.channelId,
        spent: '1e9',
      } as never,
      undefined as never,
    )
    expect(state!.spent).toBe(price)
    sent.length = 0
    expect((await sessions.close('https://receipts.test/r')).status).toBe(200)
    const closes = sent.map(
      (header) => Credential.parse(header).payload as { action: string; cumulativeAmount: string },
    )
    expect(closes.map((c) => [c.action, c.cumulativeAmount])).toEqual([['close', String(price)]])
    expect((await readChannel(devnet.info, state!.channelId as Hex)).settled).toBe(price)
  })

  it("checks a top-up inside a paid request against maxDeposit, and undoes that request's booking", async () => {
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
      escrow: devnet.info.escrow,
      timeout: 5_000,
    })
    const server = createServer({ realm: 'policy.test', secrets: [secret], methods: [method] })
    const handler = server.protect(
      {
        offers: [
          { method: 'tempo', intent: 'session', request: { amount: String(price), unitType: 'request' } },
        ],
      },
      () => new Response('ok'),
    )
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[3]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 2n * price,
      fetch: fetcher,
    })
    const client = createClient({
      methods: [sessions],
      fetch: fetcher,
      policy: { currencies: [devnet.info.tokens.pathUsd], maxDeposit: 3n * price },
    })
    for (let i = 0; i < 2; i++) expect((await client.fetch('https://policy.test/r')).status).toBe(200)
    const error = await client.fetch('https://policy.test/r').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PolicyError)
    expect((error as PolicyError).reason).toBe('max-deposit')
    expect(client.ledger.spent(devnet.info.tokens.pathUsd)).toBe(2n * price)
    const [state] = [...sessions.channels.values()]
    expect((await readChannel(devnet.info, state!.channelId as Hex)).deposit).toBe(2n * price)
  })

  /** A session route's handler reached through a fetch that records the payloads of the credentials sent. */
  function recorded(realm: string) {
    const route = sessionRoute(realm)
    const sent: { action: string; cumulativeAmount?: string }[] = []
    const fetcher = ((input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const authorization = request.headers.get('authorization')
      if (authorization) sent.push(Credential.parse(authorization).payload as (typeof sent)[number])
      return route(request)
    }) as typeof fetch
    return { fetcher, sent }
  }

  // A voucher the policy refused once left its amount saved as the highest signed: a restarted client
  // signed above it (61,000 for one request of 1,000, booking 1,000), which the payee could settle past
  // the budget. The store keeps the highest voucher signed and sent: the refused one was neither.
  it('a voucher the budget refuses is never saved: a restarted client pays on above what was sent, the payee settles within the budget', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mppkit-tempo-refused-voucher-'))
    const file = join(dir, 'channels.json')
    const { fetcher, sent } = recorded('refused.test')
    const pathUsd = devnet.info.tokens.pathUsd
    const url = 'https://refused.test/r'
    const start = () => {
      const store = fileChannelStore(file)
      const sessions = sessionClient({
        account: privateKeyToAccount(devnet.info.accounts[7]!.privateKey),
        rpcUrl: devnet.info.rpcUrl,
        chainId: devnet.info.chainId,
        deposit: 100n * price,
        fetch: fetcher,
        channelStore: store,
      })
      const client = createClient({
        methods: [sessions],
        fetch: fetcher,
        policy: { currencies: [pathUsd], budget: { [pathUsd]: 5n * price } },
      })
      return { store, sessions, client }
    }
    const saved = () =>
      Object.values(
        (JSON.parse(readFileSync(file, 'utf8')) as { channels: Record<string, SavedChannel> }).channels,
      )
    try {
      const first = start()
      expect((await first.client.fetch(url)).status).toBe(200)
      const [state] = [...first.sessions.channels.values()]
      const refusal = await first.sessions.voucher(url, 60n * price).catch((error: unknown) => error)
      expect(refusal).toBeInstanceOf(PolicyError)
      expect((refusal as PolicyError).reason).toBe('budget')
      // Nothing sent, nothing saved or booked beyond the request paid.
      expect(sent.map((p) => [p.action, p.cumulativeAmount])).toEqual([['open', String(price)]])
      expect(saved()).toMatchObject([{ channelId: state!.channelId, cumulative: String(price) }])
      expect(state!.cumulative).toBe(price)
      expect(first.client.ledger.spent(pathUsd)).toBe(price)
      first.store.close()

      // Restarted on the same file: the next request signs one price above what was sent.
      const second = start()
      try {
        expect((await second.sessions.restore()).map((c) => c.channelId)).toEqual([state!.channelId])
        expect((await second.client.fetch(url)).status).toBe(200)
        expect(sent.at(-1)).toMatchObject({ cumulativeAmount: String(2n * price) })
        expect(second.client.ledger.spent(pathUsd)).toBe(price)
        expect((await second.sessions.close(url)).status).toBe(200)
        const onChain = await readChannel(devnet.info, state!.channelId as Hex)
        expect(onChain).toMatchObject({ finalized: true, settled: 2n * price })
      } finally {
        second.store.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a voucher whose save fails is neither sent nor left booked', async () => {
    const { fetcher, sent } = recorded('savefail.test')
    const pathUsd = devnet.info.tokens.pathUsd
    const url = 'https://savefail.test/r'
    const records = new Map<string, SavedChannel>()
    let failSaves = false
    const store: ChannelStore = {
      load: async () => Object.fromEntries(records),
      save: async (key, channel) => {
        if (failSaves) throw new Error('disk full')
        records.set(key, channel)
      },
      delete: async (key) => {
        records.delete(key)
      },
    }
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[8]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 100n * price,
      fetch: fetcher,
      channelStore: store,
    })
    const client = createClient({
      methods: [sessions],
      fetch: fetcher,
      policy: { currencies: [pathUsd], budget: { [pathUsd]: 5n * price } },
    })
    expect((await client.fetch(url)).status).toBe(200)
    failSaves = true
    const failed = await sessions.voucher(url, 3n * price).catch((error: unknown) => error)
    expect(failed).toBeInstanceOf(PaymentFailedError)
    expect((failed as Error).message).toMatch(/could not save the channel/)
    expect(sent).toHaveLength(1)
    expect(client.ledger.spent(pathUsd)).toBe(price)
    // Saved again: the same voucher goes out, booked once.
    failSaves = false
    expect((await sessions.voucher(url, 3n * price)).status).toBe(200)
    expect(sent.at(-1)).toMatchObject({ action: 'voucher', cumulativeAmount: String(3n * price) })
    expect(client.ledger.spent(pathUsd)).toBe(3n * price)
    expect([...records.values()]).toMatchObject([{ cumulative: String(3n * price) }])
  })
})
