import { createServer as createHttpServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Challenge, Credential, PolicyError } from '@mppkit/core'
import { create as createClient, PaymentFailedError, type Policy } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, erc20Abi, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { sessionClient } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-client-safety-secret-012345'
const price = 1_000n

/** A JSON-RPC proxy in front of the node that counts the `eth_getCode` calls it forwards. */
async function codeCounter(target: string) {
  let getCode = 0
  const server: Server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString()
    getCode += body.match(/"eth_getCode"/g)?.length ?? 0
    const response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    res.writeHead(response.status, { 'content-type': 'application/json' })
    res.end(await response.text())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    getCode: () => getCode,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

const payloadOf = (request: Request) => {
  const authorization = request.headers.get('authorization')
  return authorization
    ? (Credential.parse(authorization).payload as { action: string; cumulativeAmount?: string })
    : undefined
}

// The paying side of tempo/session against servers that name the escrow, sell ahead of a budget, or
// answer side requests with stale or foreign challenges (each case on anvil, with the real escrow).
describe.skipIf(!!reason)('tempo/session client safety', () => {
  let devnet: TempoDevnet
  let rpc: Awaited<ReturnType<typeof codeCounter>>
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 10 })
    rpc = await codeCounter(devnet.info.rpcUrl)
  })
  afterAll(async () => {
    await rpc?.close()
    await devnet?.stop()
  })

  const payer = (index: number) => privateKeyToAccount(devnet.info.accounts[index]!.privateKey)
  /** A session route on `realm` (our server, the devnet's escrow) at `price` per request. */
  const route = (realm: string) => {
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: payer(0),
      escrow: devnet.info.escrow,
      timeout: 5_000,
    })
    const server = createServer({ realm, secrets: [secret], methods: [method] })
    return server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
  }

  it('refuses an escrow without contract code before signing anything, on every realm a server rotates to', async () => {
    const { info } = devnet
    const currency = info.tokens.pathUsd
    const attacker = info.accounts[2]!.address
    const account = payer(1)
    let realm = 0
    let credentials = 0
    // A server naming its own wallet as the escrow (approve(wallet, deposit) would let it pull the
    // deposit with transferFrom), under a new realm on every 402 (so a new channel each time).
    const hostile = (async (input: RequestInfo | URL, init?: RequestInit) => {
      if (new Request(input, init).headers.get('authorization')) {
        credentials++
        return new Response('ok')
      }
      return new Response('{}', {
        status: 402,
        headers: {
          'www-authenticate': Challenge.format({
            id: `c${realm}`,
            realm: `realm-${realm++}`,
            method: 'tempo',
            intent: 'session',
            request: {
              amount: '1',
              suggestedDeposit: '1000000',
              currency,
              recipient: attacker,
              methodDetails: { escrowContract: attacker, chainId: info.chainId },
            },
          }),
        },
      })
    }) as typeof fetch
    const sessions = sessionClient({ account, rpcUrl: info.rpcUrl, chainId: info.chainId, fetch: hostile })
    const client = createClient({
      methods: [sessions],
      fetch: hostile,
      policy: { maxDeposit: { [currency]: 1_000_000n }, budget: { [currency]: 1_000_000n } },
    })
    for (let i = 0; i < 3; i++) {
      const error = await client.fetch('https://evil.test/r').catch((e: unknown) => e)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect((error as Error).message).toMatch(/no contract code/)
    }
    expect(credentials).toBe(0)
    expect(sessions.channels.size).toBe(0)
    expect(client.ledger.spent(currency)).toBe(0n)
    const allowance = await tempoClients(info).publicClient.readContract({
      address: currency,
      abi: erc20Abi,
      functionName: 'allowance',
      args: [account.address, attacker],
    })
    expect(allowance).toBe(0n)
  })

  it("checks a real escrow's code once, however many channels open on it", async () => {
    const routes: Record<string, (request: Request) => Promise<Response>> = {
      'one.test': route('one.test'),
      'two.test': route('two.test'),
    }
    const fetcher = ((input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      return routes[new URL(request.url).hostname]!(request)
    }) as typeof fetch
    const sessions = sessionClient({
      account: payer(3),
      rpcUrl: rpc.url,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      fetch: fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    const before = rpc.getCode()
    for (const url of [
      'https://one.test/r',
      'https://two.test/r',
      'https://one.test/r',
      'https://two.test/r',
    ])
      expect((await client.fetch(url)).status).toBe(200)
    expect(sessions.channels.size).toBe(2)
    expect(rpc.getCode() - before).toBe(1)
  })

  it('refuses a deposit below the price of one request before signing or opening anything', async () => {
    const handler = route('small-deposit.test')
    let credentials = 0
    const fetcher = ((input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      if (request.headers.get('authorization')) credentials++
      return handler(request)
    }) as typeof fetch
    const sessions = sessionClient({
      account: payer(5),
      rpcUrl: rpc.url,
      chainId: devnet.info.chainId,
      deposit: price - 1n,
      fetch: fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    const nonce = await tempoClients(devnet.info).publicClient.getTransactionCount({
      address: payer(5).address,
    })
    for (let i = 0; i < 2; i++) {
      const error = await client.fetch('https://small-deposit.test/r').catch((e: unknown) => e)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect((error as Error).message).toMatch(/deposit of 999 is below the price 1000/)
    }
    expect(credentials).toBe(0)
    expect(sessions.channels.size).toBe(0)
    expect(
      await tempoClients(devnet.info).publicClient.getTransactionCount({ address: payer(5).address }),
    ).toBe(nonce)

    // The same deposit is enough at the price: paid.
    const enough = sessionClient({
      account: payer(5),
      rpcUrl: rpc.url,
      chainId: devnet.info.chainId,
      deposit: price,
      fetch: fetcher,
    })
    const paying = createClient({ methods: [enough], fetch: fetcher, policy: { maxDeposit: price } })
    expect((await paying.fetch('https://small-deposit.test/r')).status).toBe(200)
  })

  it('with escrows, refuses a challenge naming another escrow (PolicyError) and pays its own without reading code', async () => {
    const handler = route('escrows.test')
    let credentials = 0
    const fetcher = ((input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      if (request.headers.get('authorization')) credentials++
      return handler(request)
    }) as typeof fetch
    const elsewhere = sessionClient({
      account: payer(4),
      rpcUrl: rpc.url,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      escrows: [devnet.info.tokens.betaUsd],
      fetch: fetcher,
    })
    const refusing = createClient({ methods: [elsewhere], fetch: fetcher })
    const error = await refusing.fetch('https://escrows.test/r').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PolicyError)
    expect((error as PolicyError).reason).toBe('escrow')
    expect(credentials).toBe(0)
    expect(elsewhere.channels.size).toBe(0)

    const before = rpc.getCode()
    const own = sessionClient({
      account: payer(4),
      rpcUrl: rpc.url,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      escrows: [devnet.info.escrow.toLowerCase() as Address],
      fetch: fetcher,
    })
    const client = createClient({ methods: [own], fetch: fetcher })
    expect((await client.fetch('https://escrows.test/r')).status).toBe(200)
    expect(rpc.getCode()).toBe(before)
  })

  /**
   * A client paying `url` with `voucherAhead`, recording for each credential sent its cumulative amount
   * and what the ledger had booked at that moment.
   */
  const aheadClient = (
    index: number,
    realm: string,
    voucherAhead: number,
    policy: (currency: string) => Policy,
  ) => {
    const handler = route(realm)
    const sent: { cumulative: bigint; booked: bigint }[] = []
    const currency = devnet.info.tokens.pathUsd
    let client: ReturnType<typeof createClient> | undefined
    const fetcher = ((input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const cumulative = payloadOf(request)?.cumulativeAmount
      if (cumulative !== undefined)
        sent.push({ cumulative: BigInt(cumulative), booked: client!.ledger.spent(currency) })
      return handler(request)
    }) as typeof fetch
    const sessions = sessionClient({
      account: payer(index),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 100n * price,
      voucherAhead,
      fetch: fetcher,
    })
    client = createClient({ methods: [sessions], fetch: fetcher, policy: policy(currency) })
    return { client, sessions, sent, url: `https://${realm}/r`, currency }
  }

  it('with voucherAhead, never signs a voucher beyond what the ledger booked, and serves the whole budget', async () => {
    const { client, sessions, sent, url, currency } = aheadClient(5, 'ahead.test', 10, (currency) => ({
      maxAmount: { [currency]: price },
      maxDeposit: { [currency]: 100n * price },
      budget: { [currency]: 5n * price },
    }))
    for (let i = 0; i < 5; i++) expect((await client.fetch(url)).status).toBe(200)
    await expect(client.fetch(url)).rejects.toMatchObject({ reason: 'budget' })
    expect(sent.length).toBe(5)
    for (const { cumulative, booked } of sent) expect(cumulative).toBeLessThanOrEqual(booked)
    expect(sent.at(-1)!.cumulative).toBe(5n * price)
    const [state] = [...sessions.channels.values()]
    expect((await sessions.close(url)).status).toBe(200)
    expect(await readChannel(devnet.info, state!.channelId)).toMatchObject({
      finalized: true,
      settled: 5n * price,
    })
    expect(client.ledger.spent(currency)).toBe(5n * price)
  })

  it('with voucherAhead, books the prices authorized ahead and gives back what the close did not capture', async () => {
    const { client, sessions, sent, url, currency } = aheadClient(6, 'ahead-close.test', 5, (currency) => ({
      budget: { [currency]: 100n * price },
    }))
    for (let i = 0; i < 3; i++) expect((await client.fetch(url)).status).toBe(200)
    // Request 2 signed for itself and the next 4: all five prices are booked.
    expect(sent.map((s) => s.cumulative)).toEqual([price, 6n * price, 6n * price])
    for (const { cumulative, booked } of sent) expect(cumulative).toBeLessThanOrEqual(booked)
    expect(client.ledger.spent(currency)).toBe(6n * price)
    const [state] = [...sessions.channels.values()]
    expect((await sessions.close(url)).status).toBe(200)
    expect((await readChannel(devnet.info, state!.channelId)).settled).toBe(3n * price)
    // The close captured 3 requests: the 3 prices booked ahead for the rest are given back.
    expect(client.ledger.spent(currency)).toBe(3n * price)
  })

  /**
   * Our session route behind `rewrite`, which may change the challenges of HEAD 402s (the side
   * requests' challenges); records the actions of the credentials that reach the server.
   */
  const sideRoute = (realm: string) => {
    const handler = route(realm)
    let rewrite: ((challenges: Challenge.Challenge[]) => Challenge.Challenge[]) | undefined
    const actions: string[] = []
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const action = payloadOf(request)?.action
      if (action) actions.push(action)
      const response = await handler(request)
      if (!rewrite || request.method !== 'HEAD' || response.status !== 402) return response
      const challenges = rewrite(Challenge.parseAll(response.headers.get('www-authenticate')!))
      const headers = new Headers(response.headers)
      headers.set('www-authenticate', challenges.map((c) => Challenge.format(c)).join(', '))
      return new Response(null, { status: 402, headers })
    }) as typeof fetch
    return {
      fetcher,
      actions,
      rewriteWith(next: typeof rewrite) {
        rewrite = next
      },
    }
  }

  it('refuses an expired challenge for a side request (voucher, top-up) without sending anything', async () => {
    const side = sideRoute('expired.test')
    const sessions = sessionClient({
      account: payer(7),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      fetch: side.fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: side.fetcher })
    const url = 'https://expired.test/r'
    expect((await client.fetch(url)).status).toBe(200)
    side.rewriteWith((challenges) =>
      challenges.map((c) => ({ ...c, expires: new Date(Date.now() - 60_000).toISOString() })),
    )
    side.actions.length = 0
    await expect(sessions.voucher(url, 2n * price)).rejects.toThrow(/expired/)
    await expect(sessions.topUp(url, price)).rejects.toThrow(/expired/)
    expect(side.actions).toEqual([])
  })

  it("tops up only on a challenge naming the channel's currency, escrow and chain", async () => {
    const side = sideRoute('topup.test')
    const sessions = sessionClient({
      account: payer(8),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      fetch: side.fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: side.fetcher })
    const url = 'https://topup.test/r'
    expect((await client.fetch(url)).status).toBe(200)
    const [state] = [...sessions.channels.values()]
    const foreign = (c: Challenge.Challenge): Challenge.Challenge => ({
      ...c,
      request: { ...c.request, currency: devnet.info.tokens.alphaUsd },
    })
    // Only another token offered: refused before anything is signed.
    side.rewriteWith((challenges) => challenges.map(foreign))
    side.actions.length = 0
    await expect(sessions.topUp(url, price)).rejects.toThrow(/currency, escrow/)
    expect(side.actions).toEqual([])
    // Another token offered first, the channel's second: the channel's is answered.
    side.rewriteWith((challenges) => [...challenges.map(foreign), ...challenges])
    expect((await sessions.topUp(url, price)).status).toBe(200)
    expect(side.actions).toEqual(['topUp'])
    expect((await readChannel(devnet.info, state!.channelId as Hex)).deposit).toBe(11n * price)
  })
})
