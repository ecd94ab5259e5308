import { Challenge, Credential, PolicyError } from '@mppkit/core'
import { create as createClient, mayHaveSettled, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, erc20Abi, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoRpc,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { sessionClient } from '../src/client/index.js'
import { type SessionServer, sessionServer } from '../src/server/index.js'
import { sessionProblem } from '../src/server/session/problems.js'
import * as Voucher from '../src/Voucher.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-recovery-secret-0123456789'
const price = 1_000n

const payloadOf = (request: Request) => {
  const header = request.headers.get('authorization')
  if (!header) return undefined
  const json = Buffer.from(header.slice('Payment '.length), 'base64url').toString()
  return JSON.parse(json).payload as {
    action: string
    channelId: Hex
    cumulativeAmount?: string
    transaction?: Hex
  }
}

// The session client recovers from a voucher sent outside a request and from a side request whose
// answer is lost, without signing below what it authorized or paying past its policy.
describe.skipIf(!!reason)('tempo/session client recovery', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 11 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  /**
   * A session client for `account` paying through `fetcher`, and the core client paying with it (with
   * `maxDeposit`, its policy's limit in pathUSD).
   */
  const paying = (
    account: ReturnType<typeof privateKeyToAccount>,
    fetcher: typeof fetch,
    options: { deposit: bigint; topUp?: bigint; voucherAhead?: number; maxDeposit?: bigint },
  ) => {
    const { maxDeposit, ...rest } = options
    const sessions = sessionClient({
      account,
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      ...rest,
      fetch: fetcher,
    })
    const policy =
      maxDeposit === undefined ? {} : { policy: { maxDeposit: { [devnet.info.tokens.pathUsd]: maxDeposit } } }
    const client = createClient({ methods: [sessions], fetch: fetcher, ...policy })
    return { sessions, client }
  }

  const methodFor = () =>
    sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
      escrow: devnet.info.escrow,
      timeout: 5_000,
    })
  /** A fresh server process (its own memory store) selling a session route on `realm`. */
  const handlerFor = (realm: string, method: SessionServer = methodFor()) => {
    const server = createServer({ realm, secrets: [secret], methods: [method] })
    return server.protect(
      {
        offers: [
          { method: 'tempo', intent: 'session', request: { amount: String(price), unitType: 'request' } },
        ],
      },
      () => new Response('ok'),
    )
  }

  it('with voucherAhead, keeps paying at the highest cumulative after voucher()', async () => {
    const handler = handlerFor('ahead.test')
    const sent: bigint[] = []
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const payload = payloadOf(request)
      if (payload?.cumulativeAmount) sent.push(BigInt(payload.cumulativeAmount))
      return handler(request)
    }) as typeof fetch
    const { sessions, client } = paying(privateKeyToAccount(devnet.info.accounts[1]!.privateKey), fetcher, {
      deposit: 100_000n,
      voucherAhead: 3,
    })
    const url = 'https://ahead.test/r'
    expect((await client.fetch(url)).status).toBe(200)
    expect((await sessions.voucher(url, 10_000n)).status).toBe(200)
    for (let i = 0; i < 3; i++) expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.channels.values()][0]!
    expect(state.cumulative).toBe(10_000n)
    expect(state.spent).toBe(4_000n)
    // Never a voucher below one already signed.
    for (let i = 1; i < sent.length; i++) expect(sent[i]! >= sent[i - 1]!).toBe(true)
    expect((await sessions.close(url)).status).toBe(200)
  })

  it('a top-up whose answer is lost is not sent again past maxDeposit', async () => {
    const handler = handlerFor('topup.test')
    let lose = 1
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const action = payloadOf(request)?.action
      const response = await handler(request)
      if (action === 'topUp' && lose-- > 0) throw new TypeError('fetch failed')
      return response
    }) as typeof fetch
    const { sessions, client } = paying(privateKeyToAccount(devnet.info.accounts[2]!.privateKey), fetcher, {
      deposit: 2_000n,
      topUp: 2_000n,
      maxDeposit: 4_000n,
    })
    const url = 'https://topup.test/r'
    expect((await client.fetch(url)).status).toBe(200)
    expect((await client.fetch(url)).status).toBe(200)
    const lost = await client.fetch(url).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(lost).toBeInstanceOf(PaymentFailedError)
    expect(mayHaveSettled(lost)).toBe(true)
    // The next requests find the top-up on-chain and pay within the deposit.
    expect((await client.fetch(url)).status).toBe(200)
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.channels.values()][0]!
    expect(state.deposit).toBe(4_000n)
    // A further top-up would pass maxDeposit.
    await expect(client.fetch(url)).rejects.toBeInstanceOf(PolicyError)
    expect((await readChannel(devnet.info, state.channelId)).deposit).toBe(4_000n)
  })
  const payerOf = (index: number) => privateKeyToAccount(devnet.info.accounts[index]!.privateKey)
  const nonceOf = (address: Address, blockTag: 'latest' | 'pending' = 'latest') =>
    tempoClients(devnet.info).publicClient.getTransactionCount({ address, blockTag })
  const automine = (on: boolean) => tempoRpc(devnet.info.rpcUrl, 'evm_setAutomine', [on])
  /** Resolves once the node holds a transaction of `address` in its pool, unmined. */
  const heldInPool = async (address: Address) => {
    for (let i = 0; i < 200; i++) {
      if ((await nonceOf(address, 'pending')) > (await nonceOf(address))) return
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    throw new Error('the transaction never reached the node')
  }
  /**
   * A fetch that lets the server broadcast the first transaction credential of `action` while the node
   * mines nothing (automine off: the transaction waits in the node's pool) and loses its answer; the
   * next credential of that action mines again (the first transaction with it) before the server sees
   * it. `seen` collects the transactions of that action the client sent.
   */
  const holdFirst = (
    handler: (request: Request) => Promise<Response>,
    action: 'open' | 'topUp',
    payer: Address,
  ) => {
    const seen: Hex[] = []
    let held: Promise<Response> | undefined
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const payload = payloadOf(request)
      if (payload?.action === action) {
        seen.push(payload.transaction!)
        if (!held) {
          await automine(false)
          held = handler(request)
          await heldInPool(payer)
          throw new TypeError('fetch failed')
        }
        await automine(true)
        await tempoRpc(devnet.info.rpcUrl, 'evm_mine', [])
        await held
      }
      return handler(request)
    }) as typeof fetch
    return { fetcher, seen }
  }

  it('sends an open that never reached the server again: the same channel, never a second one', async () => {
    const handler = handlerFor('lost.test')
    const opens: Hex[] = []
    let drop = true
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const payload = payloadOf(request)
      if (payload?.action === 'open') opens.push(payload.transaction!)
      if (drop && payload) {
        drop = false
        throw new TypeError('fetch failed')
      }
      return handler(request)
    }) as typeof fetch
    const payer = payerOf(3)
    const { sessions, client } = paying(payer, fetcher, { deposit: 100_000n })
    const url = 'https://lost.test/r'
    const nonce = await nonceOf(payer.address)
    await expect(client.fetch(url)).rejects.toThrow()
    const lost = [...sessions.channels.values()][0]!.channelId
    for (let i = 0; i < 3; i++) expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.channels.values()][0]!
    expect(sessions.channels.size).toBe(1)
    expect(state.channelId).toBe(lost)
    // The very same signed open, once on chain.
    expect(opens).toHaveLength(2)
    expect(opens[1]).toBe(opens[0])
    expect(await nonceOf(payer.address)).toBe(nonce + 1)
    expect(state.spent).toBe(3_000n)
    expect((await readChannel(devnet.info, state.channelId)).deposit).toBe(100_000n)
  })

  it('an open held unmined in the node pool is sent again as is, never a second channel beside it', async () => {
    const payer = payerOf(4)
    const { fetcher, seen } = holdFirst(handlerFor('pool.test'), 'open', payer.address)
    const { sessions, client } = paying(payer, fetcher, { deposit: 100_000n })
    const url = 'https://pool.test/r'
    const nonce = await nonceOf(payer.address)
    try {
      const lost = await client.fetch(url).catch((error: unknown) => error)
      // The answer to the paid request was lost: the core client says the payment may have settled.
      expect(lost).toBeInstanceOf(PaymentFailedError)
      expect(lost).toMatchObject({ code: 'outcome-unknown', mayHaveSettled: true })
      expect((lost as Error).cause).toBeInstanceOf(TypeError)
      const channelId = [...sessions.channels.values()][0]!.channelId
      // Not mined when the client looks again: its nonce is unused, so it may still be; the same open.
      expect((await client.fetch(url)).status).toBe(200)
      expect((await client.fetch(url)).status).toBe(200)
      expect(seen).toHaveLength(2)
      expect(seen[1]).toBe(seen[0])
      expect(await nonceOf(payer.address)).toBe(nonce + 1)
      expect([...sessions.channels.values()].map((c) => c.channelId)).toEqual([channelId])
      expect((await readChannel(devnet.info, channelId)).deposit).toBe(100_000n)
    } finally {
      await automine(true)
    }
  })

  it('a top-up held unmined in the node pool is sent again as is, never signed anew', async () => {
    const payer = payerOf(5)
    const { fetcher, seen } = holdFirst(handlerFor('pooltopup.test'), 'topUp', payer.address)
    // Room for two top-ups: the policy does not hide a second one.
    const { sessions, client } = paying(payer, fetcher, {
      deposit: 2_000n,
      topUp: 2_000n,
      maxDeposit: 6_000n,
    })
    const url = 'https://pooltopup.test/r'
    try {
      for (let i = 0; i < 2; i++) expect((await client.fetch(url)).status).toBe(200)
      const nonce = await nonceOf(payer.address)
      const lost = await client.fetch(url).catch((error: unknown) => error)
      expect(lost).toBeInstanceOf(PaymentFailedError)
      expect(mayHaveSettled(lost)).toBe(true)
      // The deposit runs out again; the top-up is still unmined when the chain is read: sent again as is.
      expect((await client.fetch(url)).status).toBe(200)
      expect((await client.fetch(url)).status).toBe(200)
      const state = [...sessions.channels.values()][0]!
      expect(seen).toHaveLength(2)
      expect(seen[1]).toBe(seen[0])
      expect(await nonceOf(payer.address)).toBe(nonce + 1)
      expect((await readChannel(devnet.info, state.channelId)).deposit).toBe(4_000n)
      expect(state.deposit).toBe(4_000n)
      expect(state.topUpPending).toBeUndefined()
      // Landed: the deposit and the top-up stay held until the channel is closed.
      expect(client.ledger.locked(devnet.info.tokens.pathUsd)).toBe(4_000n)
    } finally {
      await automine(true)
    }
  })

  it('a top-up answered 503 (its broadcast timed out, held in the node pool) is sent again as is, never signed anew', async () => {
    // The server gives the node 1 s: a broadcast the node keeps unmined times out, a 503.
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
      escrow: devnet.info.escrow,
      timeout: 1_000,
    })
    const server = createServer({
      realm: 'slowtopup.test',
      secrets: [secret],
      methods: [method],
      logger: false,
    })
    const handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
    const topUps: { transaction: Hex; status: number }[] = []
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const payload = payloadOf(request)
      if (payload?.action === 'topUp') {
        // The first top-up waits unmined; the next one finds the node mining again (the first with it).
        if (topUps.length === 0) await automine(false)
        else {
          await automine(true)
          await tempoRpc(devnet.info.rpcUrl, 'evm_mine', [])
        }
      }
      const response = await handler(request)
      if (payload?.action === 'topUp')
        topUps.push({ transaction: payload.transaction!, status: response.status })
      return response
    }) as typeof fetch
    const payer = payerOf(9)
    // Room for two top-ups: the policy does not hide a second one.
    const { sessions, client } = paying(payer, fetcher, {
      deposit: 2_000n,
      topUp: 2_000n,
      maxDeposit: 6_000n,
    })
    const url = 'https://slowtopup.test/r'
    try {
      for (let i = 0; i < 2; i++) expect((await client.fetch(url)).status).toBe(200)
      const nonce = await nonceOf(payer.address)
      await expect(client.fetch(url)).rejects.toBeInstanceOf(PaymentFailedError)
      expect(topUps.map((t) => t.status)).toEqual([503])
      expect(await nonceOf(payer.address, 'pending')).toBe(nonce + 1)
      // Still unmined when the chain is read: the same transaction again, not a second top-up.
      for (let i = 0; i < 2; i++) expect((await client.fetch(url)).status).toBe(200)
      const state = [...sessions.channels.values()][0]!
      expect(topUps).toHaveLength(2)
      expect(topUps[1]!.transaction).toBe(topUps[0]!.transaction)
      expect(await nonceOf(payer.address)).toBe(nonce + 1)
      expect((await readChannel(devnet.info, state.channelId)).deposit).toBe(4_000n)
      expect(state.deposit).toBe(4_000n)
      expect(state.topUpPending).toBeUndefined()
      // Landed: the deposit and the top-up stay held until the channel is closed.
      expect(client.ledger.locked(devnet.info.tokens.pathUsd)).toBe(4_000n)
    } finally {
      await automine(true)
    }
  })

  it('a top-up answered 503 whose transaction is then replaced gives its maxLocked hold back: the next top-up fits', async () => {
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
      escrow: devnet.info.escrow,
      timeout: 1_000,
    })
    const server = createServer({
      realm: 'replaced.test',
      secrets: [secret],
      methods: [method],
      logger: false,
    })
    const handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
    const topUps: number[] = []
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const first = payloadOf(request)?.action === 'topUp' && topUps.length === 0
      // The first top-up waits unmined in the node's pool: the server's broadcast times out (503).
      if (first) await automine(false)
      const response = await handler(request)
      if (payloadOf(request)?.action === 'topUp') topUps.push(response.status)
      return response
    }) as typeof fetch
    const payer = payerOf(10)
    const pathUsd = devnet.info.tokens.pathUsd
    const sessions = sessionClient({
      account: payer,
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 2_000n,
      topUp: 2_000n,
      fetch: fetcher,
    })
    // Room for the deposit and one top-up held at a time.
    const client = createClient({
      methods: [sessions],
      fetch: fetcher,
      policy: { currencies: [pathUsd], maxLocked: 4_000n },
    })
    const url = 'https://replaced.test/r'
    try {
      for (let i = 0; i < 2; i++) expect((await client.fetch(url)).status).toBe(200)
      const nonce = await nonceOf(payer.address)
      await expect(client.fetch(url)).rejects.toBeInstanceOf(PaymentFailedError)
      expect(topUps).toEqual([503])
      expect(client.ledger.locked(pathUsd)).toBe(4_000n)
      // The payer replaces it (same nonce, another transaction): that top-up can never land.
      await tempoRpc(devnet.info.rpcUrl, 'anvil_dropAllTransactions', [])
      await automine(true)
      const { walletClient, publicClient } = tempoClients({
        ...devnet.info,
        privateKey: devnet.info.accounts[10]!.privateKey,
      })
      const replacing = await walletClient.writeContract({
        address: pathUsd,
        abi: erc20Abi,
        functionName: 'approve',
        args: [devnet.info.escrow, 0n],
        nonce,
        gas: 300_000n,
      } as never)
      expect((await publicClient.waitForTransactionReceipt({ hash: replacing })).status).toBe('success')
      expect(await nonceOf(payer.address)).toBe(nonce + 1)
      // The next payment reads the chain: the nonce is used and the deposit did not grow, so the hold is
      // given back and a new top-up (within maxLocked again) pays the request.
      expect((await client.fetch(url)).status).toBe(200)
      expect(topUps).toEqual([503, 200])
      const state = [...sessions.channels.values()][0]!
      expect((await readChannel(devnet.info, state.channelId)).deposit).toBe(4_000n)
      expect(client.ledger.locked(pathUsd)).toBe(4_000n)
    } finally {
      await automine(true)
    }
  })

  /** Closes `channelId` through the server with the payer's close voucher for `amount` (as another of its clients would). */
  const closeBehind = async (
    handler: (request: Request) => Promise<Response>,
    url: string,
    payer: number,
    channelId: Hex,
    amount: bigint,
  ) => {
    const challenge = Challenge.parseAll(
      (await handler(new Request(url, { method: 'HEAD' }))).headers.get('www-authenticate')!,
    )[0]!
    const signature = await Voucher.sign(payerOf(payer), {
      chainId: devnet.info.chainId,
      escrow: devnet.info.escrow,
      channelId,
      cumulativeAmount: amount,
    })
    const payload = { action: 'close', channelId, cumulativeAmount: String(amount), signature }
    const response = await handler(
      new Request(url, { headers: { authorization: Credential.format({ challenge, payload }) } }),
    )
    expect(response.status, await response.clone().text()).toBe(200)
  }

  it('a channel closed on chain behind the client (410) is dropped, and a new one opened within maxDeposit', async () => {
    const handler = handlerFor('closed.test')
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof fetch
    const { sessions, client } = paying(payerOf(6), fetcher, { deposit: 50_000n, maxDeposit: 50_000n })
    const url = 'https://closed.test/r'
    for (let i = 0; i < 2; i++) expect((await client.fetch(url)).status).toBe(200)
    const first = [...sessions.channels.values()][0]!.channelId
    await closeBehind(handler, url, 6, first, 2_000n)
    // The client cannot know yet: its voucher gets "410 Gone: Channel finalized or not found". Within the
    // same fetch the chain is read, the channel dropped, a new one opened and the resource paid.
    for (let i = 0; i < 2; i++) expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.channels.values()][0]!
    expect(sessions.channels.size).toBe(1)
    expect(state.channelId).not.toBe(first)
    expect(state.spent).toBe(2_000n)
    expect((await readChannel(devnet.info, first)).finalized).toBe(true)
    expect((await readChannel(devnet.info, state.channelId)).deposit).toBe(50_000n)
  })

  it('a close whose answer was lost: the next payment finds the channel finalized and opens a new one', async () => {
    const handler = handlerFor('closelost.test')
    let lose = false
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const action = payloadOf(request)?.action
      const response = await handler(request)
      if (lose && action === 'close') throw new TypeError('fetch failed')
      return response
    }) as typeof fetch
    const { sessions, client } = paying(payerOf(7), fetcher, { deposit: 50_000n })
    const url = 'https://closelost.test/r'
    for (let i = 0; i < 2; i++) expect((await client.fetch(url)).status).toBe(200)
    const first = [...sessions.channels.values()][0]!.channelId
    lose = true
    const error = await sessions.close(url).catch((e: unknown) => e)
    expect(mayHaveSettled(error)).toBe(true)
    expect((await readChannel(devnet.info, first)).finalized).toBe(true)
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.channels.values()][0]!
    expect(sessions.channels.size).toBe(1)
    expect(state.channelId).not.toBe(first)
  })

  /**
   * A session server that, like mppx's, knows a channel only from its `open` ("Initialize server-side
   * channel state"): a voucher, top-up or close on any other is 410 `channel-not-found`. Ours reads an
   * unknown channel from the escrow instead; this one stands for a server that lost its state (a
   * restart of its in-memory store, a TTL) and does not.
   */
  const openOnlyHandler = (realm: string) => {
    const method = methodFor()
    const known = new Set<string>()
    const openOnly: SessionServer = {
      ...method,
      async verify(context) {
        const { action, channelId } = context.payload
        if (action !== 'open' && !known.has(channelId.toLowerCase()))
          throw sessionProblem(
            'channel-not-found',
            'Channel Not Found',
            410,
            'No channel with this id exists.',
          )
        return method.verify(context)
      },
      async settle(context) {
        const settlement = await method.settle(context)
        if (context.payload.action === 'open') known.add(context.payload.channelId.toLowerCase())
        return settlement
      },
    }
    return handlerFor(realm, openOnly)
  }

  it('presents a channel a restarted server lost again with its own open: same channel, nothing new on chain', async () => {
    let handler = handlerFor('forgot.test')
    const sent: { action: string; transaction?: Hex }[] = []
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const payload = payloadOf(request)
      if (payload) sent.push(payload)
      return handler(request)
    }) as typeof fetch
    const payer = payerOf(8)
    const { sessions, client } = paying(payer, fetcher, { deposit: 100_000n })
    const url = 'https://forgot.test/r'
    for (let i = 0; i < 2; i++) expect((await client.fetch(url)).status).toBe(200)
    const { channelId } = [...sessions.channels.values()][0]!
    const open = sent[0]!
    expect(open.action).toBe('open')
    const nonce = await nonceOf(payer.address)

    // Our server, restarted on an empty store, reads the channel from the escrow: vouchers just go on.
    handler = handlerFor('forgot.test')
    sent.length = 0
    expect((await client.fetch(url)).status).toBe(200)
    expect(sent.map((p) => p.action)).toEqual(['voucher'])

    // A server that knows channels only from their open, restarted: 410 to the voucher; within the same
    // fetch the client finds the channel open on chain and presents it again with its own signed open
    // (found on chain, not broadcast), then vouchers go on.
    handler = openOnlyHandler('forgot.test')
    sent.length = 0
    for (let i = 0; i < 2; i++) expect((await client.fetch(url)).status).toBe(200)
    expect(sent.map((p) => p.action)).toEqual(['voucher', 'open', 'voucher'])
    expect(sent[1]!.transaction).toBe(open.transaction)
    expect([...sessions.channels.values()].map((c) => c.channelId)).toEqual([channelId])
    expect(await nonceOf(payer.address)).toBe(nonce)
    expect((await readChannel(devnet.info, channelId)).deposit).toBe(100_000n)
    // The close settles what that server served.
    expect((await sessions.close(url)).status).toBe(200)
    expect(await readChannel(devnet.info, channelId)).toMatchObject({ finalized: true, settled: 2_000n })
  })
})
