// A Lightning session client whose servers stop answering: a server that accepts the connection and
// never answers holds up neither the restore of the other servers' sessions nor the payments to them
// (each side request has its time limit, `sideTimeoutMs`), and a side request that timed out is an
// unknown outcome: nothing paid twice, no deposit lost, finished once the server answers again. On the
// LND simulator, with real session servers on loopback HTTP, a TCP proxy in front of each (switched to a
// server that accepts and never answers), and the session file written by `fileSessionStore`.

import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Credential, MemoryStore, Receipt } from '@mppkit/core'
import { ConfigurationError, create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import { getChannelBalance, getInvoices } from 'lightning'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { sessionClient } from '../src/client/index.js'
import { fileSessionStore } from '../src/client/node.js'
import { sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

let network: Lightning
let dir: string
beforeAll(async () => {
  network = await startLightning()
  dir = mkdtempSync(join(tmpdir(), 'mppkit-ln-hung-'))
})
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
afterAll(async () => {
  await network?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const actionOf = (request: Request) => {
  const authorization = request.headers.get('authorization')
  return authorization ? (Credential.parse(authorization).payload as { action?: string }).action : undefined
}

/**
 * A session server (deposit 10 sat, 1 sat a request) on loopback HTTP behind a TCP proxy (the URL the
 * clients pay and save): `forward` passes new connections on; `hang` accepts every new connection and
 * never answers it (nor reads it), and passes nothing more on the connections already open (kept alive
 * by the client's fetch), as a hung server does; `swallow(predicate)` has the server handle each request
 * but never answer those the predicate picks (an answer lost on the way back), or, `'body'`, answer
 * their status and headers and never their body. `seen` counts the
 * requests that reached the server, by action (`none` for unauthenticated ones).
 */
async function hungServer(realm: string) {
  const method = sessionServer({ depositSats: 10, lnd: lndFor(network.info.nodes.payee) })
  const core = createServer({
    realm,
    secrets: [`lightning-session-hung-${realm}-0123456789`],
    methods: [method],
    store: new MemoryStore(),
  })
  const protect = core.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
    () => Response.json({ ok: true }),
  )
  const seen = new Map<string, number>()
  let swallowed: ((action: string | undefined, response: Response) => boolean) | undefined
  let swallowing: 'all' | 'body' = 'all'
  const http: HttpServer = createHttpServer(
    toNodeListener(async (request) => {
      const action = actionOf(request)
      seen.set(action ?? 'none', (seen.get(action ?? 'none') ?? 0) + 1)
      const response = await protect(request)
      if (!swallowed?.(action, response)) return response
      // Handled, and its answer never sent (or its head and the start of its body, which never ends).
      if (swallowing === 'all') return new Promise<Response>(() => {})
      const { status, headers } = response
      const start = (await response.text()).slice(0, 5)
      return new Response(
        new ReadableStream({ start: (controller) => controller.enqueue(new TextEncoder().encode(start)) }),
        { status, headers },
      )
    }),
  )
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const httpPort = (http.address() as AddressInfo).port

  let mode: 'forward' | 'hang' = 'forward'
  const sockets = new Set<Socket>()
  // The connections passed on, each until the next hang; then dead (as a hung server's) until the
  // server answers again, which resets them (as a restarted server does).
  const live = new Set<Socket>()
  const dead = new Set<Socket>()
  // Requests sent while hanging (chunks received and never passed on).
  let held = 0
  const proxy = createTcpServer((client) => {
    sockets.add(client)
    client.on('error', () => client.destroy()).on('close', () => sockets.delete(client))
    if (mode === 'hang') {
      // Accepted, never answered: the client waits for an answer that never comes.
      dead.add(client)
      client.on('data', () => held++)
      return
    }
    const upstream = connect(httpPort, '127.0.0.1')
    sockets.add(upstream)
    live.add(client)
    client.on('close', () => {
      live.delete(client)
      upstream.destroy()
    })
    // The server closing a connection (its keep-alive timeout) closes it for the client while it is
    // live; a dead one stays open, unanswered, as a hung server's does.
    const closed = () => {
      sockets.delete(upstream)
      if (live.has(client)) client.destroy()
    }
    upstream.on('error', closed).on('close', closed)
    client.on('data', (chunk) => (live.has(client) ? upstream.write(chunk) : held++))
    upstream.on('data', (chunk) => live.has(client) && client.write(chunk))
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
  /** Resets the dead connections, and gives the client's fetch time to see them closed. */
  const reset = async () => {
    if (dead.size === 0) return
    for (const socket of dead) socket.destroy()
    dead.clear()
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => proxy.close(() => resolve()))
    http.closeAllConnections()
    await new Promise<void>((resolve) => http.close(() => resolve()))
  })
  return {
    origin,
    url: `${origin}/generate`,
    seen: (action: string) => seen.get(action) ?? 0,
    /** Requests (chunks of them) sent while hanging, never answered. */
    held: () => held,
    async forward() {
      mode = 'forward'
      swallowed = undefined
      await reset()
    },
    hang() {
      mode = 'hang'
      for (const socket of live) dead.add(socket)
      live.clear()
    },
    async swallow(
      predicate: (action: string | undefined, response: Response) => boolean,
      what: 'all' | 'body' = 'all',
    ) {
      mode = 'forward'
      swallowed = predicate
      swallowing = what
      await reset()
    },
  }
}

/** A client (one process's) on the session file `path`, paying with the global fetch. */
function process_(path: string, sideTimeoutMs?: number) {
  const store = fileSessionStore(path)
  const sessions = sessionClient({
    lnd: lndFor(network.info.nodes.payer),
    network: 'regtest',
    sessionStore: store,
    ...(sideTimeoutMs === undefined ? {} : { sideTimeoutMs }),
  })
  const client = createClient({
    methods: [sessions],
    policy: { maxDeposit: { sat: 100n }, budget: { sat: 1_000n } },
  })
  return { store, sessions, client }
}

const payerBalance = async () =>
  (await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance
/** The invoices the payee's node has been paid (deposits and top-ups). */
const paidInvoices = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payee), limit: 1000 })).invoices.filter(
    (invoice) => invoice.is_confirmed,
  ).length
type Saved = { sessionId: string; opened: boolean; deposit: string; pendingTopUp?: unknown }
const readSaved = (path: string): Record<string, Saved> =>
  (JSON.parse(readFileSync(path, 'utf8')) as { sessions: Record<string, Saved> }).sessions
const referenceOf = (response: Response) => Receipt.parse(response.headers.get('payment-receipt')!).reference
/** `promise`, or a rejection naming `what` once `ms` have passed (a hang fails the test, not vitest's timeout). */
const within = <T>(ms: number, what: string, promise: Promise<T>) =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms).unref(),
    ),
  ])
/** Whether `promise` settled within `ms`. */
const settlesWithin = (ms: number, promise: Promise<unknown>) =>
  within(ms, 'it', promise).then(
    () => true,
    (error: unknown) => !(error instanceof Error && error.message === `it did not complete within ${ms} ms`),
  )

describe('lightning/session: a server that accepts and never answers (sideTimeoutMs)', () => {
  it("a restored session's hung server holds up neither the first payment to another server nor its restore; it is kept", async () => {
    const serverA = await hungServer('a.test')
    const serverB = await hungServer('b.test')
    const path = join(dir, 'restored.json')
    const first = process_(path)
    const sessionA = referenceOf(await first.client.fetch(serverA.url))
    const sessionB = referenceOf(await first.client.fetch(serverB.url))
    await expect
      .poll(() => readSaved(path)[serverA.origin]?.opened && readSaved(path)[serverB.origin]?.opened)
      .toBe(true)
    first.store.close()
    const invoicesBefore = await paidInvoices()
    const balanceBefore = await payerBalance()

    // Restarted while A accepts connections and never answers. The first payment, to B, reads the store
    // (restoring both) and pays from B's session: it does not wait on A's probe (3 s to time out), which
    // is still under way when it is done.
    serverA.hang()
    const second = process_(path, 3_000)
    const started = Date.now()
    const paidB = await within(2_800, 'the payment to B', second.client.fetch(serverB.url))
    expect(paidB.status).toBe(200)
    expect(referenceOf(paidB)).toBe(sessionB)
    // A's probe was sent and is still waiting for its answer.
    expect(serverA.held()).toBeGreaterThan(0)
    const restoring = second.sessions.restore()
    expect(await settlesWithin(200, restoring)).toBe(false)
    // Its time limit over, A's probe counts as unreachable: the session is kept, restore resolves.
    const restored = await within(6_000, 'restore()', restoring)
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900)
    // In the store's order (A's first), though A's check ended last.
    expect(Object.keys(readSaved(path))).toEqual([serverA.origin, serverB.origin])
    expect(restored.map((state) => state.sessionId)).toEqual([sessionA, sessionB])
    expect(second.sessions.sessions.get(serverA.origin)?.sessionId).toBe(sessionA)
    expect(second.sessions.pending.size).toBe(0)
    expect(Object.keys(readSaved(path)).sort()).toEqual([serverA.origin, serverB.origin].sort())

    // A answers again: it pays on its session. Nothing paid anywhere since the restart.
    await serverA.forward()
    expect(referenceOf(await second.client.fetch(serverA.url))).toBe(sessionA)
    expect(referenceOf(await second.client.fetch(serverB.url))).toBe(sessionB)
    expect(await paidInvoices()).toBe(invoicesBefore)
    expect(balanceBefore - (await payerBalance())).toBe(0)
    expect((await second.sessions.close(serverA.url)).status).toBe(200)
    expect((await second.sessions.close(serverB.url)).status).toBe(200)
    second.store.close()
  })

  it('a paid open re-sent to a hung server stays pending (it may have got through), other servers pay on, and it opens once the server answers', async () => {
    const serverA = await hungServer('a.test')
    const serverB = await hungServer('b.test')
    const path = join(dir, 'pending.json')
    const invoicesBefore = await paidInvoices()
    const balanceBefore = await payerBalance()

    // The first run: B's session confirmed; A's open reaches its server (the session opens there) but
    // its answer never comes back.
    const first = process_(path)
    const sessionB = referenceOf(await first.client.fetch(serverB.url))
    await expect.poll(() => readSaved(path)[serverB.origin]?.opened).toBe(true)
    await serverA.swallow((action) => action === 'open')
    await expect(first.client.fetch(serverA.url, { signal: AbortSignal.timeout(1_000) })).rejects.toThrow()
    expect(serverA.seen('open')).toBe(1)
    const savedA = readSaved(path)[serverA.origin]!
    expect(savedA.opened).toBe(false)
    first.store.close()
    expect(await paidInvoices()).toBe(invoicesBefore + 2)

    // Restarted while A hangs: B pays at once; A's open, sent again, gets no answer in time: pending.
    serverA.hang()
    const second = process_(path, 3_000)
    const paidB = await within(2_800, 'the payment to B', second.client.fetch(serverB.url))
    expect(referenceOf(paidB)).toBe(sessionB)
    expect(second.sessions.pending.get(serverA.origin)?.sessionId).toBe(savedA.sessionId)
    const restored = await within(6_000, 'restore()', second.sessions.restore())
    expect(restored.map((state) => state.sessionId)).toEqual([sessionB])
    expect(second.sessions.pending.get(serverA.origin)).toMatchObject({
      sessionId: savedA.sessionId,
      deposit: 10n,
      reason: 'the server did not answer within 3000 ms',
    })
    expect(second.sessions.sessions.has(serverA.origin)).toBe(false)
    // Never taken as refused: the record is as saved, nothing moved to lost, no deposit paid.
    expect(readSaved(path)[serverA.origin]).toEqual(savedA)
    expect(await second.sessions.lost()).toEqual([])
    expect(await paidInvoices()).toBe(invoicesBefore + 2)

    // A answers again: the next restore sends the open once more; the server has the session, which
    // pays on. One deposit per server in all.
    await serverA.forward()
    const again = await second.sessions.restore()
    expect(again.map((state) => state.sessionId).sort()).toEqual([savedA.sessionId, sessionB].sort())
    expect(second.sessions.pending.size).toBe(0)
    expect(referenceOf(await second.client.fetch(serverA.url))).toBe(savedA.sessionId)
    expect(await paidInvoices()).toBe(invoicesBefore + 2)
    expect(balanceBefore - (await payerBalance())).toBe(20)
    expect((await second.sessions.close(serverA.url)).status).toBe(200)
    expect((await second.sessions.close(serverB.url)).status).toBe(200)
    expect(readSaved(path)).toEqual({})
    second.store.close()
  })

  it('a close the server does not answer in time is an unknown outcome: the session kept, and a later close finishes it once', async () => {
    const serverA = await hungServer('a.test')
    const path = join(dir, 'close.json')
    const { store, sessions, client } = process_(path, 300)
    const balanceBefore = await payerBalance()
    const sessionA = referenceOf(await client.fetch(serverA.url))
    expect(referenceOf(await client.fetch(serverA.url))).toBe(sessionA)

    // Nothing reaches the server: the close fails once its time is up, the session kept.
    serverA.hang()
    const unanswered = await within(3_000, 'the close', sessions.close(serverA.url)).catch(
      (error: unknown) => error,
    )
    expect(unanswered).toBeInstanceOf(PaymentFailedError)
    expect((unanswered as PaymentFailedError).code).toBe('session-side-timeout')
    expect((unanswered as Error).message).toContain(`the close of session ${sessionA}`)
    expect((unanswered as Error).message).toContain('its outcome is unknown')
    expect(serverA.seen('close')).toBe(0)
    expect(sessions.sessions.get(serverA.origin)?.sessionId).toBe(sessionA)
    expect(readSaved(path)[serverA.origin]?.sessionId).toBe(sessionA)

    // The close gets through (the server closes the session and refunds) but its answer stops after its
    // head (200): its body, which tells whether it closed, never comes.
    await serverA.swallow((action, response) => action === 'close' && response.ok, 'body')
    const lost = await within(3_000, 'the close', sessions.close(serverA.url)).catch(
      (error: unknown) => error,
    )
    expect((lost as PaymentFailedError).code).toBe('session-side-timeout')
    expect(sessions.sessions.has(serverA.origin)).toBe(true)
    // The refund (10 sat deposit, 2 spent) is back with the payer already.
    await expect.poll(async () => balanceBefore - (await payerBalance())).toBe(2)

    // Answering again: the next close learns the session is closed (the server's answer, returned) and
    // forgets it; nothing refunded twice.
    await serverA.forward()
    const finished = await sessions.close(serverA.url)
    expect(finished.status).toBe(402)
    expect(((await finished.json()) as { type: string }).type).toMatch(/\/session-closed$/)
    expect(sessions.sessions.size).toBe(0)
    expect(readSaved(path)).toEqual({})
    await expect(sessions.close(serverA.url)).rejects.toThrow('no open session')
    expect(balanceBefore - (await payerBalance())).toBe(2)
    store.close()
  })

  it('a paid top-up the server does not answer in time stays pending and is sent again, never paid again', async () => {
    const serverA = await hungServer('a.test')
    const path = join(dir, 'topup.json')
    const { store, sessions, client } = process_(path, 300)
    const sessionA = referenceOf(await client.fetch(serverA.url))
    const invoicesBefore = await paidInvoices()
    const balanceBefore = await payerBalance()

    // The top-up is paid and reaches the server (credited there); its answer is lost.
    await serverA.swallow((action, response) => action === 'topUp' && response.ok)
    const unanswered = await within(3_000, 'the top-up', sessions.topUp(serverA.url)).catch(
      (error: unknown) => error,
    )
    expect(unanswered).toBeInstanceOf(PaymentFailedError)
    expect((unanswered as PaymentFailedError).code).toBe('session-side-timeout')
    expect((unanswered as Error).message).toContain('its outcome is unknown')
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(readSaved(path)[serverA.origin]?.pendingTopUp).toBeDefined()
    expect(sessions.sessions.get(serverA.origin)?.deposit).toBe(10n)

    // Answering again: the top-up is sent again (not paid again) and credited once.
    await serverA.forward()
    const topped = await sessions.topUp(serverA.url)
    expect(topped.status).toBe(200)
    expect(sessions.sessions.get(serverA.origin)?.deposit).toBe(20n)
    expect(readSaved(path)[serverA.origin]?.pendingTopUp).toBeUndefined()
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(balanceBefore - (await payerBalance())).toBe(10)
    expect(referenceOf(await client.fetch(serverA.url))).toBe(sessionA)
    expect((await sessions.close(serverA.url)).status).toBe(200)
    store.close()
  })

  it("a fetch that ignores its signal is held to the time limit (and to the caller's signal) too: the restore's probe ends unreachable, the session kept", async () => {
    const preimage = randomBytes(32).toString('hex')
    const sessionId = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex')
    const record = {
      v: 1 as const,
      network: 'regtest' as const,
      sessionId,
      preimage,
      realm: 'deaf.test',
      deposit: '10',
      spent: '1',
      price: '1',
      url: 'https://deaf.test/generate',
      opened: true,
    }
    let asked = 0
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      sideTimeoutMs: 300,
      // Never answers, whatever its signal says.
      fetch: (() => {
        asked++
        return new Promise<Response>(() => {})
      }) as typeof fetch,
      sessionStore: {
        load: async () => ({ 'https://deaf.test': record }),
        save: async () => {},
        delete: async () => {},
      },
    })
    const started = Date.now()
    const restored = await within(3_000, 'restore()', sessions.restore())
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    expect(asked).toBe(1)
    expect(restored.map((state) => state.sessionId)).toEqual([sessionId])
    // A close on it: refused once its time is up, its outcome unknown, the session kept.
    const error = await within(3_000, 'the close', sessions.close('https://deaf.test/generate')).catch(
      (caught: unknown) => caught,
    )
    expect((error as PaymentFailedError).code).toBe('session-side-timeout')
    expect((error as Error).message).not.toContain(preimage)
    expect(sessions.sessions.get('https://deaf.test')?.sessionId).toBe(sessionId)
    // The caller's signal ends it sooner, with the caller's reason.
    const stop = new AbortController()
    setTimeout(() => stop.abort(new Error('stopped by the caller')), 50)
    const aborted = Date.now()
    await expect(sessions.close('https://deaf.test/generate', { signal: stop.signal })).rejects.toThrow(
      'stopped by the caller',
    )
    expect(Date.now() - aborted).toBeLessThan(250)
    expect(sessions.sessions.has('https://deaf.test')).toBe(true)
  })

  it("closeAll closes different servers at once: a hung server holds up neither another's close nor its refund; its session is kept, and a later closeAll closes it", async () => {
    const serverA = await hungServer('a.test')
    const serverB = await hungServer('b.test')
    const path = join(dir, 'close-all.json')
    const { store, sessions, client } = process_(path, 2_000)
    const sessionA = referenceOf(await client.fetch(serverA.url))
    const sessionB = referenceOf(await client.fetch(serverB.url))
    // A's first: one close after the other would wait for A's to time out before B's is sent.
    expect([...sessions.sessions.keys()]).toEqual([serverA.origin, serverB.origin])
    const balanceBefore = await payerBalance()

    serverA.hang()
    const started = Date.now()
    const closing = sessions.closeAll()
    // B is closed, and its refund (deposit 10, 1 spent) back with the payer, long before A's close (2 s)
    // times out.
    await within(
      1_500,
      "B's close",
      (async () => {
        while (sessions.sessions.has(serverB.origin)) await new Promise((resolve) => setTimeout(resolve, 10))
      })(),
    )
    await expect.poll(async () => (await payerBalance()) - balanceBefore, { timeout: 1_000 }).toBe(9)
    expect(Date.now() - started).toBeLessThan(1_900)
    expect(await settlesWithin(0, closing)).toBe(false)
    expect(Object.keys(readSaved(path))).toEqual([serverA.origin])

    // A's close ends at its time limit: its outcome unknown, the session (and its record) kept.
    const results = await within(5_000, 'closeAll', closing)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900)
    expect(results.map(({ sessionId, closed }) => ({ sessionId, closed }))).toEqual([
      { sessionId: sessionA, closed: false },
      { sessionId: sessionB, closed: true },
    ])
    expect(results[0]!.url).toBe(serverA.url)
    expect(results[0]!.response).toBeUndefined()
    expect(results[0]!.error).toBeInstanceOf(PaymentFailedError)
    expect((results[0]!.error as PaymentFailedError).code).toBe('session-side-timeout')
    expect((results[0]!.error as Error).message).toContain(`the close of session ${sessionA}`)
    expect(results[1]!.error).toBeUndefined()
    expect(await results[1]!.response!.json()).toMatchObject({ status: 'closed', refundSats: 9 })
    expect(serverA.seen('close')).toBe(0)
    expect(sessions.sessions.get(serverA.origin)?.sessionId).toBe(sessionA)
    expect(Object.keys(readSaved(path))).toEqual([serverA.origin])

    // A answers again: the next closeAll closes it (refunded), and nothing is left.
    await serverA.forward()
    const again = await sessions.closeAll()
    expect(again).toEqual([expect.objectContaining({ sessionId: sessionA, closed: true })])
    expect(again[0]!.error).toBeUndefined()
    expect(readSaved(path)).toEqual({})
    await expect.poll(async () => (await payerBalance()) - balanceBefore).toBe(18)
    expect(await sessions.closeAll()).toEqual([])
    store.close()
  })

  it('closeAll closes at most 4 servers at once, each result in the order of sessions', async () => {
    const ids: string[] = []
    const records: Record<string, unknown> = {}
    for (let i = 1; i <= 6; i++) {
      const preimage = randomBytes(32).toString('hex')
      const sessionId = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex')
      ids.push(sessionId)
      records[`https://s${i}.test`] = {
        v: 1,
        network: 'regtest',
        sessionId,
        preimage,
        realm: `s${i}.test`,
        deposit: '10',
        spent: '1',
        price: '1',
        url: `https://s${i}.test/generate`,
        opened: true,
      }
    }
    // Servers that accept and never answer: each request ends at its time limit (its signal aborted).
    let inFlight = 0
    let most = 0
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      sideTimeoutMs: 300,
      fetch: ((_input: RequestInfo | URL, init?: RequestInit) => {
        most = Math.max(most, ++inFlight)
        return new Promise<Response>((_, reject) =>
          init!.signal!.addEventListener(
            'abort',
            () => {
              inFlight--
              reject(init!.signal!.reason)
            },
            { once: true },
          ),
        )
      }) as typeof fetch,
      sessionStore: {
        load: async () => records as never,
        save: async () => {},
        delete: async () => {},
      },
    })
    // Each restored session's check times out (all at once): the sessions are kept.
    expect((await within(3_000, 'restore()', sessions.restore())).map((state) => state.sessionId)).toEqual(
      ids,
    )
    expect(inFlight).toBe(0)
    most = 0
    const started = Date.now()
    const results = await within(5_000, 'closeAll', sessions.closeAll())
    const elapsed = Date.now() - started
    // Four at once, then the last two: two rounds of the time limit, not six (nor one).
    expect(most).toBe(4)
    expect(elapsed).toBeGreaterThanOrEqual(590)
    expect(elapsed).toBeLessThan(1_500)
    expect(results.map((result) => result.sessionId)).toEqual(
      [...sessions.sessions.values()].map((s) => s.sessionId),
    )
    expect(results.map((result) => result.sessionId).sort()).toEqual([...ids].sort())
    for (const result of results) {
      expect(result.closed).toBe(false)
      expect((result.error as PaymentFailedError).code).toBe('session-side-timeout')
      const { preimage } = records[new URL(result.url).origin] as { preimage: string }
      expect((result.error as Error).message).not.toContain(preimage)
    }
    expect(sessions.sessions.size).toBe(6)
  })

  it('sideTimeoutMs must be a positive, finite number of milliseconds', () => {
    const lnd = lndFor(network.info.nodes.payer)
    for (const sideTimeoutMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, '1000'])
      expect(() =>
        sessionClient({ lnd, network: 'regtest', sideTimeoutMs: sideTimeoutMs as number }),
      ).toThrow(ConfigurationError)
    expect(() =>
      sessionClient({ lnd, network: 'regtest', sideTimeoutMs: 0 }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: lightning session: sideTimeoutMs must be a positive, finite number of milliseconds (at most 2147483647)]`,
    )
    expect(sessionClient({ lnd, network: 'regtest', sideTimeoutMs: 1 }).sessions.size).toBe(0)
    expect(sessionClient({ lnd, network: 'regtest', sideTimeoutMs: 0.5 }).sessions.size).toBe(0)
  })
})
