// A Tempo session client whose servers stop answering its side requests (the HEAD for a challenge, the
// voucher, top-up or close credential): each request has its time limit (`sideTimeoutMs`), so a server
// that accepts the connection and never answers holds up the closes of the others no longer than that,
// and a credential sent and not answered in time is an unknown outcome: a close keeps the channel and
// its record (the chain is read next time), a top-up stays pending and is never signed anew. On the anvil
// devnet, with real session servers on loopback HTTP behind a TCP proxy that can hang.

import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from 'node:net'
import { Credential } from '@mppkit/core'
import { ConfigurationError, create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import type { Address, Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { type ChannelStore, type SavedChannel, sessionClient } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const price = 1_000n
/** The side requests' time limit in these tests. */
const sideTimeoutMs = 400

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
function memoryStore() {
  const records = new Map<string, SavedChannel>()
  const store: ChannelStore = {
    load: async () => Object.fromEntries(records),
    save: async (key, channel) => {
      records.set(key, channel)
    },
    delete: async (key) => {
      records.delete(key)
    },
  }
  return { store, records }
}

describe.skipIf(!!reason)('tempo/session side requests within sideTimeoutMs', () => {
  let devnet: TempoDevnet
  const cleanups: (() => Promise<void>)[] = []
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 6 })
  })
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const handlerFor = (realm: string) => {
    const server = createServer({
      realm,
      secrets: [`tempo-side-timeout-${realm}-0123456789`],
      methods: [
        sessionServer({
          rpcUrl: devnet.info.rpcUrl,
          chainId: devnet.info.chainId,
          currency: devnet.info.tokens.pathUsd,
          account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
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

  /**
   * A session server on loopback HTTP behind a TCP proxy (the URL the client pays): `forward` passes
   * connections on; `hang` accepts every new connection and never answers it, and passes nothing more
   * on the connections already open (kept alive by the client's fetch), as a hung server does;
   * `swallow(action)` has the server handle the credentials of `action` but never answer them (an
   * answer lost on the way back). `seen(action)` counts the credentials of `action` that reached it.
   */
  async function hungServer(realm: string) {
    const protect = handlerFor(realm)
    const seen = new Map<string, number>()
    let swallowed: string | undefined
    const http: HttpServer = createHttpServer(
      toNodeListener(async (request) => {
        const action = actionOf(request) ?? 'none'
        seen.set(action, (seen.get(action) ?? 0) + 1)
        const response = await protect(request)
        return action === swallowed ? new Promise<Response>(() => {}) : response
      }),
    )
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    const httpPort = (http.address() as AddressInfo).port
    let mode: 'forward' | 'hang' = 'forward'
    const sockets = new Set<Socket>()
    const live = new Set<Socket>()
    const dead = new Set<Socket>()
    const proxy = createTcpServer((client) => {
      sockets.add(client)
      client.on('error', () => client.destroy()).on('close', () => sockets.delete(client))
      if (mode === 'hang') {
        // Accepted, never answered (nor read).
        dead.add(client)
        return
      }
      const upstream = connect(httpPort, '127.0.0.1')
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
    const origin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
    cleanups.push(async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => proxy.close(() => resolve()))
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    })
    return {
      url: `${origin}/r`,
      seen: (action: string) => seen.get(action) ?? 0,
      hang() {
        mode = 'hang'
        for (const socket of live) dead.add(socket)
        live.clear()
      },
      async forward() {
        mode = 'forward'
        swallowed = undefined
        // The hung connections reset (as a restarted server's), and time for the fetch to see it.
        for (const socket of dead) socket.destroy()
        dead.clear()
        await new Promise((resolve) => setTimeout(resolve, 100))
      },
      swallow(action: string) {
        swallowed = action
      },
    }
  }

  /** A session client of account `payer` with the global fetch, on `store`, and the core client paying with it. */
  const paying = (payer: number, store: ChannelStore, more: { deposit?: bigint; topUp?: bigint } = {}) => {
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[payer]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 10n * price,
      ...more,
      channelStore: store,
      sideTimeoutMs,
    })
    return { sessions, client: createClient({ methods: [sessions] }) }
  }

  it("closeAll: a server that never answers holds up the other server's close no longer than sideTimeoutMs; its channel is kept", async () => {
    const a = await hungServer('a.test')
    const b = await hungServer('b.test')
    const { store, records } = memoryStore()
    const { sessions, client } = paying(1, store)
    // A first: its close comes first in closeAll.
    expect((await client.fetch(a.url)).status).toBe(200)
    expect((await client.fetch(b.url)).status).toBe(200)
    const [first, second] = [...sessions.channels.values()].map((c) => c.channelId)
    a.hang()
    const started = Date.now()
    const results = await within(5_000, 'closeAll', sessions.closeAll())
    // Two requests at most (HEAD, close) for A, each within the limit, then B's close.
    expect(Date.now() - started).toBeLessThan(2 * sideTimeoutMs + 2_000)
    expect(results.map((r) => [r.channelId, r.ok])).toEqual([
      [first, false],
      [second, true],
    ])
    const error = results[0]!.error
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error).toMatchObject({ code: 'session-side-timeout', mayHaveSettled: false })
    expect((error as Error).message).toContain(
      `did not answer HEAD within ${sideTimeoutMs} ms (sideTimeoutMs)`,
    )
    // B closed and settled; A untouched, kept with its record.
    expect(await readChannel(devnet.info, second!)).toMatchObject({ finalized: true, settled: price })
    expect(await readChannel(devnet.info, first!)).toMatchObject({ finalized: false, deposit: 10n * price })
    expect([...sessions.channels.values()].map((c) => c.channelId)).toEqual([first])
    expect([...records.values()].map((r) => r.channelId)).toEqual([first])
    // Answering again: its close goes through.
    await a.forward()
    const again = await within(5_000, 'closeAll', sessions.closeAll())
    expect(again.map((r) => [r.channelId, r.ok])).toEqual([[first, true]])
    expect(await readChannel(devnet.info, first!)).toMatchObject({ finalized: true, settled: price })
    expect(records.size).toBe(0)
  })

  it('a close sent and not answered in time is an unknown outcome: the channel and its record kept, the chain read next time', async () => {
    const a = await hungServer('closed.test')
    const { store, records } = memoryStore()
    const { sessions, client } = paying(2, store)
    expect((await client.fetch(a.url)).status).toBe(200)
    const [channelId] = [...sessions.channels.values()].map((c) => c.channelId)
    a.swallow('close')
    const error = await within(5_000, 'close', sessions.close(a.url)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error).toMatchObject({ code: 'session-side-timeout', mayHaveSettled: true })
    expect((error as Error).message).toContain(
      `did not answer the close of channel ${channelId} within ${sideTimeoutMs} ms (sideTimeoutMs): its outcome is unknown`,
    )
    expect(a.seen('close')).toBe(1)
    // The server did close it; this client cannot know: the channel and its record are kept.
    expect(await readChannel(devnet.info, channelId!)).toMatchObject({ finalized: true, settled: price })
    expect([...sessions.channels.values()].map((c) => c.channelId)).toEqual([channelId])
    expect([...records.values()].map((r) => r.channelId)).toEqual([channelId])
    // A restarted client on the same store reads the chain: finalized, dropped.
    const restarted = paying(2, store)
    expect(await restarted.sessions.restore()).toEqual([])
    expect(records.size).toBe(0)
  })

  it('a top-up sent and not answered in time stays pending: found on chain next time, never signed anew', async () => {
    const a = await hungServer('topup.test')
    const { store, records } = memoryStore()
    const payer = privateKeyToAccount(devnet.info.accounts[3]!.privateKey).address as Address
    const nonceOf = () => tempoClients(devnet.info).publicClient.getTransactionCount({ address: payer })
    const { sessions, client } = paying(3, store, { deposit: 2n * price, topUp: 2n * price })
    for (let i = 0; i < 2; i++) expect((await client.fetch(a.url)).status).toBe(200)
    const nonce = await nonceOf()
    a.swallow('topUp')
    const error = await within(5_000, 'topUp', sessions.topUp(a.url, 2n * price)).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'session-side-timeout', mayHaveSettled: true })
    expect((error as Error).message).toContain('its outcome is unknown; it stays pending')
    const [state] = [...sessions.channels.values()]
    expect(state!.topUpPending).toBeDefined()
    expect([...records.values()][0]!.topUpPending).toBeDefined()
    // The server broadcast it (mined): the next payment finds it on chain instead of signing another.
    await a.forward()
    expect((await client.fetch(a.url)).status).toBe(200)
    expect(state!.topUpPending).toBeUndefined()
    expect(state!.deposit).toBe(4n * price)
    expect(a.seen('topUp')).toBe(1)
    expect(await nonceOf()).toBe(nonce + 1)
    expect((await readChannel(devnet.info, state!.channelId as Hex)).deposit).toBe(4n * price)
  })

  it("a fetch that ignores its signal cannot hold the client up; a caller's signal aborts a side request too", async () => {
    const handler = handlerFor('ignores.test')
    let hang = false
    const fetcher = ((input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, { ...init, signal: null })
      // Side requests (a HEAD, a close) while hanging: never settled, whatever the signal says.
      if (hang && (request.method === 'HEAD' || actionOf(request) === 'close'))
        return new Promise<Response>(() => {})
      return handler(request)
    }) as typeof fetch
    const make = (ms: number) => {
      const sessions = sessionClient({
        account: privateKeyToAccount(devnet.info.accounts[4]!.privateKey),
        rpcUrl: devnet.info.rpcUrl,
        chainId: devnet.info.chainId,
        deposit: 10n * price,
        fetch: fetcher,
        sideTimeoutMs: ms,
      })
      return { sessions, client: createClient({ methods: [sessions], fetch: fetcher }) }
    }
    const url = 'https://ignores.test/r'
    const { sessions, client } = make(sideTimeoutMs)
    expect((await client.fetch(url)).status).toBe(200)
    hang = true
    const started = Date.now()
    const error = await within(5_000, 'close', sessions.close(url)).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'session-side-timeout', mayHaveSettled: false })
    expect(Date.now() - started).toBeLessThan(sideTimeoutMs + 2_000)
    expect(sessions.channels.size).toBe(1)

    // A long time limit: the caller's signal ends it.
    hang = false
    const patient = make(60_000)
    expect((await patient.client.fetch(url)).status).toBe(200)
    hang = true
    const controller = new AbortController()
    setTimeout(() => controller.abort(new Error('caller gave up')), 100).unref()
    const aborted = await within(5_000, 'close', patient.sessions.close(url, undefined, controller)).catch(
      (e: unknown) => e,
    )
    expect(aborted).toBeInstanceOf(PaymentFailedError)
    expect(aborted).not.toMatchObject({ code: 'session-side-timeout' })
    expect((aborted as Error & { cause?: Error }).cause?.message).toBe('caller gave up')
    expect(patient.sessions.channels.size).toBe(1)
  })

  it('sideTimeoutMs is checked at creation: a positive, finite number of milliseconds up to 2^31 - 1', () => {
    const base = {
      account: privateKeyToAccount(devnet.info.accounts[5]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
    }
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, '1000', 1000n, null]) {
      expect(() => sessionClient({ ...base, sideTimeoutMs: bad as number }), String(bad)).toThrow(
        ConfigurationError,
      )
      expect(() => sessionClient({ ...base, sideTimeoutMs: bad as number }), String(bad)).toThrow(
        /tempo session: sideTimeoutMs must be a positive, finite number of milliseconds \(at most 2147483647\)/,
      )
    }
    expect(() => sessionClient(base)).not.toThrow()
    for (const good of [0.5, 1, 10_000, 2 ** 31 - 1])
      expect(() => sessionClient({ ...base, sideTimeoutMs: good })).not.toThrow()
  })
})
