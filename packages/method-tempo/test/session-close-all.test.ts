// `closeAll()` on the Tempo session client closes the channels of different servers concurrently (four
// servers at a time, the channels of one server in turn), so a server that accepts connections and never
// answers holds up only its own channels; and a restarted client skips the saved records it cannot read
// or pay on (named in `skipped()`, left in the store as they are) instead of stopping every channel. On
// the anvil devnet, with real session servers on loopback HTTP (a TCP proxy in front of the one that hangs).

import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from 'node:net'
import { Credential } from '@mppkit/core'
import { create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import type { Address, Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import * as Channel from '../src/Channel.js'
import { type ChannelStore, type SavedChannel, sessionClient } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const price = 1_000n
/** The side requests' time limit in these tests: long beside a close on anvil (well under 100 ms). */
const sideTimeoutMs = 1_500

type Handler = (request: Request) => Promise<Response>

const actionOf = (request: Request) => {
  const authorization = request.headers.get('authorization')
  return authorization ? (Credential.parse(authorization).payload as { action?: string }).action : undefined
}

/** `promise`, or a rejection naming `what` once `ms` have passed (a hang fails the test, not vitest's timeout). */
const within = <T>(ms: number, what: string, promise: Promise<T>) =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms).unref()
    }),
  ])

/** A channel store in memory (what a restarted client on the same store reads back). */
function memoryStore(initial: Record<string, unknown> = {}) {
  const records = new Map<string, unknown>(Object.entries(initial))
  const store: ChannelStore = {
    load: async () => Object.fromEntries(records) as Record<string, SavedChannel>,
    save: async (key, channel) => {
      records.set(key, channel)
    },
    delete: async (key) => {
      records.delete(key)
    },
  }
  return { store, records }
}

describe.skipIf(!!reason)('tempo/session closeAll across servers, and saved records it cannot read', () => {
  let devnet: TempoDevnet
  const cleanups: (() => Promise<void>)[] = []
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 16 })
  })
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const account = (index: number) => privateKeyToAccount(devnet.info.accounts[index]!.privateKey)

  /**
   * A session route for `realm` whose payee is devnet account `payee` (servers of one test have payees
   * of their own: each sends its closes on its own nonce lane).
   */
  const route = (realm: string, payee: number): Handler => {
    const server = createServer({
      realm,
      secrets: [`tempo-close-all-${realm}-0123456789abcdef`],
      methods: [
        sessionServer({
          rpcUrl: devnet.info.rpcUrl,
          chainId: devnet.info.chainId,
          currency: devnet.info.tokens.pathUsd,
          account: account(payee),
          escrow: devnet.info.escrow,
          timeout: 5_000,
        }),
      ],
      logger: false,
    })
    return server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
  }

  /** `handler` on loopback HTTP: its origin. */
  const listen = async (handler: Handler) => {
    const http: HttpServer = createHttpServer(toNodeListener(handler))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    })
    return `http://127.0.0.1:${(http.address() as AddressInfo).port}`
  }

  /**
   * `handler` on loopback HTTP behind a TCP proxy (the origin the client pays): `hang()` makes it accept
   * every new connection and never answer it (nor read it), and pass nothing more on the connections
   * already open (kept alive by the client's fetch), as a hung server does.
   */
  const hangable = async (handler: Handler) => {
    const upstreamOrigin = new URL(await listen(handler))
    let hanging = false
    const sockets = new Set<Socket>()
    const live = new Set<Socket>()
    const proxy = createTcpServer((client) => {
      sockets.add(client)
      client.on('error', () => client.destroy()).on('close', () => sockets.delete(client))
      if (hanging) return
      const upstream = connect(Number(upstreamOrigin.port), '127.0.0.1')
      sockets.add(upstream)
      live.add(client)
      client.on('close', () => {
        live.delete(client)
        upstream.destroy()
      })
      const closed = () => {
        sockets.delete(upstream)
        if (live.has(client)) client.destroy()
      }
      upstream.on('error', closed).on('close', closed)
      client.on('data', (chunk) => live.has(client) && upstream.write(chunk))
      upstream.on('data', (chunk) => live.has(client) && client.write(chunk))
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => proxy.close(() => resolve()))
    })
    return {
      origin: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
      hang() {
        hanging = true
        live.clear()
      },
    }
  }

  it("closes a healthy server's channel without waiting for a hung server's timeouts; the hung server's channels go in turn and stay held", async () => {
    // The hung server holds two channels (two realms at one origin), paid first: closeAll's order puts
    // them before the healthy server's.
    const hungRoutes: Record<string, Handler> = {
      '/a': route('hung-a.test', 1),
      '/b': route('hung-b.test', 2),
    }
    const hung = await hangable((request) => hungRoutes[new URL(request.url).pathname]!(request))
    const healthyRoute = route('healthy.test', 3)
    let closeAnsweredAt: number | undefined
    const healthy = await listen(async (request) => {
      const response = await healthyRoute(request)
      if (actionOf(request) === 'close' && response.ok) closeAnsweredAt = Date.now()
      return response
    })
    const sessions = sessionClient({
      account: account(4),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      sideTimeoutMs,
    })
    const client = createClient({ methods: [sessions] })
    for (const url of [`${hung.origin}/a`, `${hung.origin}/b`, `${healthy}/r`])
      expect((await client.fetch(url)).status).toBe(200)
    const [hungA, hungB, fine] = [...sessions.channels.values()].map((channel) => channel.channelId as Hex)

    hung.hang()
    const started = Date.now()
    const results = await within(5 * sideTimeoutMs, 'closeAll', sessions.closeAll())
    const took = Date.now() - started
    expect(results.map(({ channelId, ok }) => [channelId, ok])).toEqual([
      [hungA, false],
      [hungB, false],
      [fine, true],
    ])
    // The healthy server answered its close before the hung server's first time limit ran out (one
    // after the other, it waited for both of the hung server's).
    expect(closeAnsweredAt).toBeDefined()
    expect(closeAnsweredAt! - started).toBeLessThan(sideTimeoutMs)
    // The hung server's two channels in turn, each its HEAD's time limit: closeAll took two limits.
    expect(took).toBeGreaterThanOrEqual(2 * sideTimeoutMs - 50)
    expect(took).toBeLessThan(3 * sideTimeoutMs)
    for (const result of results.slice(0, 2)) {
      expect(result.error).toBeInstanceOf(PaymentFailedError)
      expect(result.error).toMatchObject({ code: 'session-side-timeout', mayHaveSettled: false })
    }
    // On chain: the healthy server's channel closed and settled; the hung server's untouched, still held.
    expect(await readChannel(devnet.info, fine!)).toMatchObject({ finalized: true, settled: price })
    for (const id of [hungA!, hungB!])
      expect(await readChannel(devnet.info, id)).toMatchObject({ finalized: false, deposit: 10n * price })
    expect([...sessions.channels.values()].map((channel) => channel.channelId)).toEqual([hungA, hungB])
  })

  it('closes at most four servers at a time, the channels of one server one after another, and one store operation at a time', async () => {
    // Six servers (origins), one of them holding two channels (two realms): seven channels.
    const routes: Record<string, Handler> = {
      's1.test': route('s1.test', 5),
      's2.test': route('s2.test', 6),
      's3.test': route('s3.test', 7),
      's4.test': route('s4.test', 8),
      's5.test': route('s5.test', 9),
    }
    const multi: Record<string, Handler> = {
      '/a': route('multi-a.test', 10),
      '/b': route('multi-b.test', 11),
    }
    let closing = false
    let inFlight = 0
    let most = 0
    const perServer = new Map<string, number>()
    let mostPerServer = 0
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const { host, pathname } = new URL(request.url)
      const handler = host === 'multi.test' ? multi[pathname]! : routes[host]!
      if (!closing) return handler(request)
      // While closing: every side request (HEAD, close) counted while in flight, held 100 ms.
      inFlight++
      perServer.set(host, (perServer.get(host) ?? 0) + 1)
      most = Math.max(most, inFlight)
      mostPerServer = Math.max(mostPerServer, perServer.get(host)!)
      try {
        await new Promise((resolve) => setTimeout(resolve, 100))
        return await handler(request)
      } finally {
        inFlight--
        perServer.set(host, perServer.get(host)! - 1)
      }
    }) as typeof fetch
    // A store that takes its time and notes calls that overlap (one rewriting a whole file would lose
    // one of two overlapping deletes).
    const { store: memory, records } = memoryStore()
    let storeBusy = 0
    let storeOverlap = 0
    const slow =
      <T>(fn: () => Promise<T>) =>
      async () => {
        storeBusy++
        storeOverlap = Math.max(storeOverlap, storeBusy)
        try {
          await new Promise((resolve) => setTimeout(resolve, 20))
          return await fn()
        } finally {
          storeBusy--
        }
      }
    const store: ChannelStore = {
      load: () => slow(() => memory.load())(),
      save: (key, channel) => slow(() => memory.save(key, channel))(),
      delete: (key) => slow(() => memory.delete(key))(),
    }
    const sessions = sessionClient({
      account: account(12),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      fetch: fetcher,
      sideTimeoutMs,
      channelStore: store,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    // The two channels of one server first: closed concurrently, they would overlap at once.
    const urls = [
      'https://multi.test/a',
      'https://multi.test/b',
      ...Object.keys(routes).map((host) => `https://${host}/r`),
    ]
    for (const url of urls) expect((await client.fetch(url)).status).toBe(200)
    const ids = [...sessions.channels.values()].map((channel) => channel.channelId as Hex)
    expect(ids).toHaveLength(7)
    expect(records.size).toBe(7)

    closing = true
    const results = await within(20_000, 'closeAll', sessions.closeAll())
    // One result per channel, in the order of `channels`, every close answered.
    expect(results.map(({ channelId, url, ok }) => [channelId, url, ok])).toEqual(
      ids.map((id, index) => [id, urls[index], true]),
    )
    expect(most).toBe(4)
    expect(mostPerServer).toBe(1)
    // Every closed channel deleted from the store, one operation at a time.
    expect(records.size).toBe(0)
    expect(storeOverlap).toBe(1)
    for (const id of ids)
      expect(await readChannel(devnet.info, id)).toMatchObject({ finalized: true, settled: price })
    expect(sessions.channels.size).toBe(0)
  })

  it('restore() skips and names the records it cannot read or pay on, leaves them in the store, and closeAll() closes the rest', async () => {
    const payer = account(13)
    const handler = route('kept.test', 14)
    const origin = await listen(handler)
    const { store, records } = memoryStore()
    const first = sessionClient({
      account: payer,
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      channelStore: store,
    })
    expect((await createClient({ methods: [first] }).fetch(`${origin}/r`)).status).toBe(200)
    const [validKey, value] = [...records.entries()][0]!
    const valid = value as SavedChannel
    const chainId = devnet.info.chainId
    const prefix = `${payer.address.toLowerCase()}|${payer.address.toLowerCase()}|`

    // Beside it: records of this payer that cannot be paid on, each carrying the channel's signed open
    // transaction (never to be printed). A channel of another chain, and one in an address that is no
    // escrow, are valid records whose ids their fields make.
    const elsewhere = (changes: { chainId?: number; escrow?: Address }) => {
      const record = { ...valid, ...changes }
      return {
        ...record,
        channelId: Channel.computeId({
          payer: record.payer,
          payee: record.recipient,
          token: record.currency,
          salt: record.salt,
          authorizedSigner: '0x0000000000000000000000000000000000000000',
          escrow: record.escrow,
          chainId: record.chainId,
        }),
      }
    }
    const noEscrow = `0x${'77'.repeat(20)}` as Address
    const bad: Record<string, unknown> = {
      [`${prefix}${chainId}|bad-json`]: `{"v":1,"payer":"${valid.payer}","open":{"transaction":"${valid.open.transaction}`,
      [`${prefix}${chainId}|wrong-shape`]: {
        ...valid,
        deposit: 'all of it',
        open: { ...valid.open, nonce: -1 },
      },
      [`${prefix}${chainId}|future`]: { ...valid, v: 2 },
      [`${prefix}${chainId}|edited`]: { ...valid, channelId: `0x${'ef'.repeat(32)}` },
      [`${prefix}4217|other-chain`]: elsewhere({ chainId: 4217 }),
      [`${prefix}${chainId}|no-escrow`]: elsewhere({ escrow: noEscrow }),
    }
    for (const [key, record] of Object.entries(bad)) records.set(key, record)

    const restarted = sessionClient({
      account: payer,
      rpcUrl: devnet.info.rpcUrl,
      chainId,
      channelStore: store,
    })
    const restored = await restarted.restore()
    expect(restored.map((channel) => channel.channelId)).toEqual([valid.channelId])
    const skipped = restarted.skipped()
    expect(skipped.map(({ key, reason, problem }) => ({ key, reason, problem }))).toEqual([
      { key: `${prefix}${chainId}|bad-json`, reason: 'invalid', problem: 'is not a valid record (record)' },
      {
        key: `${prefix}${chainId}|wrong-shape`,
        reason: 'invalid',
        problem: 'is not a valid record (deposit, open.nonce)',
      },
      {
        key: `${prefix}${chainId}|future`,
        reason: 'invalid',
        problem: 'is a record of version 2, which this client does not read (it reads version 1)',
      },
      {
        key: `${prefix}${chainId}|edited`,
        reason: 'invalid',
        problem: `names channel 0x${'ef'.repeat(32)}, but its payer, payee, token, salt, signer, escrow and chain make ${valid.channelId}`,
      },
      {
        key: `${prefix}4217|other-chain`,
        reason: 'chain',
        problem: `is a channel of chain 4217, not of chain ${chainId} this client's RPC serves (close it through an RPC of its chain)`,
      },
      {
        key: `${prefix}${chainId}|no-escrow`,
        reason: 'escrow',
        problem: `is in escrow ${noEscrow}, which does not answer getChannel as an escrow does`,
      },
    ])
    // Named by key and fields, never by what they hold.
    for (const { problem } of skipped) {
      expect(problem).not.toContain(valid.open.transaction.slice(2, 66))
      expect(problem).not.toContain(valid.salt.slice(2))
    }
    expect(skipped.find((entry) => entry.reason === 'chain')).toMatchObject({
      channelId: (bad[`${prefix}4217|other-chain`] as SavedChannel).channelId,
      escrow: valid.escrow,
      chainId: 4217,
      origin,
    })

    // The valid channel closes on chain; every skipped record stays in the store as it was.
    const results = await restarted.closeAll()
    expect(results.map(({ channelId, ok }) => [channelId, ok])).toEqual([[valid.channelId, true]])
    expect(await readChannel(devnet.info, valid.channelId)).toMatchObject({ finalized: true, settled: price })
    expect(records.has(validKey)).toBe(false)
    expect(Object.fromEntries(records)).toEqual(bad)

    // With `escrows`, a record in another escrow is skipped by that rule, before any chain read.
    const listed = sessionClient({
      account: payer,
      rpcUrl: devnet.info.rpcUrl,
      chainId,
      escrows: [devnet.info.escrow],
      channelStore: store,
    })
    expect(await listed.restore()).toEqual([])
    expect(listed.skipped().find((entry) => entry.reason === 'escrow')?.problem).toBe(
      `is in escrow ${noEscrow}, not one of the escrows this client deposits into`,
    )
  })

  it('an RPC that cannot be reached still stops restore() (to be tried again): its records are not skipped', async () => {
    const payer = account(15)
    const valid = {
      v: 1,
      payer: payer.address,
      escrow: devnet.info.escrow,
      currency: devnet.info.tokens.pathUsd,
      recipient: account(0).address,
      salt: `0x${'42'.repeat(32)}`,
      chainId: devnet.info.chainId,
      deposit: '10000',
      cumulative: '1000',
      spent: '1000',
      url: 'https://unreachable.test/r',
      open: { transaction: '0x76f8', nonce: 0 },
    } as const
    const record = {
      ...valid,
      channelId: Channel.computeId({
        payer: valid.payer,
        payee: valid.recipient,
        token: valid.currency,
        salt: valid.salt,
        authorizedSigner: '0x0000000000000000000000000000000000000000',
        escrow: valid.escrow,
        chainId: valid.chainId,
      }),
    }
    const key = `${payer.address.toLowerCase()}|${payer.address.toLowerCase()}|${valid.chainId}|unreachable.test`
    const { store, records } = memoryStore({ [key]: record })
    // A port nothing listens on.
    const probe = createHttpServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as AddressInfo).port
    await new Promise((resolve) => probe.close(resolve))
    const sessions = sessionClient({
      account: payer,
      rpcUrl: `http://127.0.0.1:${port}`,
      chainId: valid.chainId,
      channelStore: store,
      timeout: 2_000,
    })
    const error = await sessions.restore().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as Error).message).toBe('tempo session: could not read the channel on-chain')
    expect(sessions.skipped()).toEqual([])
    expect(records.get(key)).toBe(record)
    await expect(sessions.closeAll()).rejects.toThrow('could not read the channel on-chain')
  })
})
