// A restarted Lightning session client whose store holds a paid open one server cannot take now: the
// restore goes on, the other servers' sessions pay on, that server's payments are held back (no second
// deposit) until its open gets through. And the records of lost sessions (proof of a deposit paid),
// listed by `lost()` and deleted by `forgetLost()`. On the LND simulator, through the core's paying
// client and real session servers, with the session file written by `fileSessionStore`.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Credential, MemoryStore, Receipt } from '@mppkit/core'
import { create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { getChannelBalance, getInvoices } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { type SessionClient, sessionClient } from '../src/client/index.js'
import { fileSessionStore } from '../src/client/node.js'
import { sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

const a = 'https://a.lightning.test'
const b = 'https://b.lightning.test'
const urlA = `${a}/generate`
const urlB = `${b}/generate`

let network: Lightning
let dir: string
beforeAll(async () => {
  network = await startLightning()
  dir = mkdtempSync(join(tmpdir(), 'mppkit-ln-pending-'))
})
afterAll(async () => {
  await network?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** A session server (deposit 10 sat, 1 sat a request) whose state lives across the client's restarts. */
function server(realm: string, secret = `lightning-session-pending-${realm}-0123456789`, now?: () => number) {
  const method = sessionServer({ depositSats: 10, lnd: lndFor(network.info.nodes.payee) })
  const core = createServer({
    realm,
    secrets: [secret],
    methods: [method],
    store: new MemoryStore(),
    ...(now ? { now } : {}),
  })
  return core.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
    () => Response.json({ ok: true }),
  )
}

const actionOf = (request: Request) => {
  const authorization = request.headers.get('authorization')
  return authorization ? (Credential.parse(authorization).payload as { action?: string }).action : undefined
}

/**
 * The network between the clients and the two servers (by origin): an origin `down` is unreachable (its
 * fetches throw, as a refused connection does); one whose opens are `failing` gets every open credential
 * answered by `failing` (a throw or a status) before it reaches the server; `hold` keeps the next open
 * until released. `opens` counts the open credentials sent, by origin (reaching the server or not).
 */
function net(handlers: Record<string, (request: Request) => Promise<Response>>) {
  const down = new Set<string>()
  const failing = new Map<string, 'throw' | number>()
  const opens = new Map<string, number>()
  let held: Promise<void> | undefined
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const { origin } = new URL(request.url)
    if (actionOf(request) === 'open') {
      opens.set(origin, (opens.get(origin) ?? 0) + 1)
      if (held) await held
    }
    if (down.has(origin)) throw new TypeError('fetch failed')
    const failure = actionOf(request) === 'open' ? failing.get(origin) : undefined
    if (failure === 'throw') throw new TypeError('fetch failed')
    if (failure !== undefined) return Response.json({ title: 'unavailable' }, { status: failure })
    return handlers[origin]!(request)
  }) as typeof globalThis.fetch
  return {
    fetch,
    down,
    failing,
    opens: (origin: string) => opens.get(origin) ?? 0,
    /** Holds the opens sent from now on until `release()`. */
    hold() {
      let release!: () => void
      held = new Promise<void>((resolve) => {
        release = resolve
      })
      return () => {
        held = undefined
        release()
      }
    },
  }
}

/** A client (one process's) on the session file `path`. */
function process_(fetch: typeof globalThis.fetch, path: string, now?: () => number) {
  const store = fileSessionStore(path)
  const sessions = sessionClient({
    lnd: lndFor(network.info.nodes.payer),
    network: 'regtest',
    fetch,
    sessionStore: store,
    ...(now ? { now } : {}),
  })
  const client = createClient({
    methods: [sessions],
    fetch,
    policy: { maxDeposit: { sat: 100n }, budget: { sat: 1_000n } },
  })
  return { store, sessions, client }
}

const payerBalance = async () =>
  (await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance
/** The invoices the payee's node has been paid (deposits and top-ups of both servers). */
const paidInvoices = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payee), limit: 1000 })).invoices.filter(
    (invoice) => invoice.is_confirmed,
  ).length
type Saved = { sessionId: string; preimage: string; opened: boolean; network: string; url: string }
const readSaved = (path: string): Record<string, Saved> =>
  (JSON.parse(readFileSync(path, 'utf8')) as { sessions: Record<string, Saved> }).sessions
const referenceOf = (response: Response) => Receipt.parse(response.headers.get('payment-receipt')!).reference
/** Calls `fn` after the next `count` calls of `sessions.createPayload` have begun. */
function onPayloads(sessions: SessionClient, count: number, fn: () => void) {
  const original = sessions.createPayload
  let seen = 0
  sessions.createPayload = (context) => {
    const created = original(context)
    if (++seen === count) {
      sessions.createPayload = original
      fn()
    }
    return created
  }
}

describe('lightning/session: a paid open one server cannot take now (sessionStore)', () => {
  it('restore goes on, the other server pays on, the unreachable one is held back with no new deposit, and its open is sent once it is back', async () => {
    const network_ = net({ [a]: server('a.test'), [b]: server('b.test') })
    const path = join(dir, 'two-servers.json')
    const balanceBefore = await payerBalance()
    const invoicesBefore = await paidInvoices()

    // The first run: a session with B, confirmed; A's deposit paid but its open never gets there.
    const first = process_(network_.fetch, path)
    const openedB = await first.client.fetch(urlB)
    expect(openedB.status).toBe(200)
    const sessionB = referenceOf(openedB)
    await expect.poll(() => readSaved(path)[b]?.opened).toBe(true)
    network_.failing.set(a, 'throw')
    await expect(first.client.fetch(urlA)).rejects.toThrow()
    const savedA = readSaved(path)[a]!
    expect(savedA.opened).toBe(false)
    expect(await paidInvoices()).toBe(invoicesBefore + 2)
    first.store.close()
    network_.failing.delete(a)

    // Restarted while A is unreachable: the restore resolves with B's session, A's open is pending.
    network_.down.add(a)
    const second = process_(network_.fetch, path)
    const restored = await second.sessions.restore()
    expect(restored.map((state) => state.sessionId)).toEqual([sessionB])
    expect([...second.sessions.pending.keys()]).toEqual([a])
    expect(second.sessions.pending.get(a)).toEqual({
      sessionId: savedA.sessionId,
      realm: 'a.test',
      url: urlA,
      deposit: 10n,
      reason: 'the server could not be reached (TypeError)',
    })
    expect(second.sessions.sessions.has(a)).toBe(false)
    expect(network_.opens(a)).toBe(2)
    // B's restored session pays, no new deposit.
    const paidB = await second.client.fetch(urlB)
    expect(paidB.status).toBe(200)
    expect(referenceOf(paidB)).toBe(sessionB)
    expect(await paidInvoices()).toBe(invoicesBefore + 2)
    // A payment to A gets no challenge (unreachable); the next restore tries the open again.
    await expect(second.client.fetch(urlA)).rejects.toThrow(TypeError)
    expect(await second.sessions.restore()).toEqual(restored)
    expect(network_.opens(a)).toBe(3)
    expect(second.sessions.pending.has(a)).toBe(true)

    // A answers again, but 503 to opens: two payments at once are held back, typed, with one attempt at
    // the open between them (the second was made while the first's attempt was under way), no deposit.
    network_.down.delete(a)
    network_.failing.set(a, 503)
    const release = network_.hold()
    onPayloads(second.sessions, 2, release)
    const refused = await Promise.all([
      second.client.fetch(urlA).catch((error: unknown) => error),
      second.client.fetch(urlA).catch((error: unknown) => error),
    ])
    for (const error of refused) {
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect((error as PaymentFailedError).code).toBe('session-open-pending')
      expect((error as Error).message).toBe(
        `lightning session: the deposit of session ${savedA.sessionId} (${a}) is paid and its open is pending (the server answered 503); nothing was paid now, and the open is sent again on the next restore() or payment to this server`,
      )
      expect((error as Error).message).not.toContain(savedA.preimage)
    }
    expect(network_.opens(a)).toBe(4)
    expect(second.sessions.pending.get(a)?.reason).toBe('the server answered 503')
    // Nothing of A's record changed or deleted; no deposit paid.
    expect(readSaved(path)[a]).toEqual(savedA)
    expect(await paidInvoices()).toBe(invoicesBefore + 2)
    expect(balanceBefore - (await payerBalance())).toBe(20)

    // A is back: restores and payments at once send its open once, and pay on it.
    network_.failing.delete(a)
    const [again, , paidA, paidA2] = await Promise.all([
      second.sessions.restore(),
      second.sessions.restore(),
      second.client.fetch(urlA),
      second.client.fetch(urlA),
    ])
    expect(network_.opens(a)).toBe(5)
    expect(again.map((state) => state.sessionId).sort()).toEqual([sessionB, savedA.sessionId].sort())
    expect(second.sessions.pending.size).toBe(0)
    for (const response of [paidA, paidA2]) {
      expect(response.status).toBe(200)
      expect(referenceOf(response)).toBe(savedA.sessionId)
    }
    expect(readSaved(path)[a]).toMatchObject({ sessionId: savedA.sessionId, opened: true })
    // One deposit per server in all.
    expect(await paidInvoices()).toBe(invoicesBefore + 2)
    expect(balanceBefore - (await payerBalance())).toBe(20)
    expect((await second.sessions.close(urlA)).status).toBe(200)
    expect((await second.sessions.close(urlB)).status).toBe(200)
    expect(readSaved(path)).toEqual({})
    second.store.close()
  })

  it("a lost open of one server does not hold back another's session; lost() lists its record and forgetLost() deletes only lost records", async () => {
    const handlers = { [a]: server('a.test'), [b]: server('b.test') }
    const network_ = net(handlers)
    const path = join(dir, 'lost.json')
    const invoicesBefore = await paidInvoices()
    const first = process_(network_.fetch, path)
    const openedB = await first.client.fetch(urlB)
    const sessionB = referenceOf(openedB)
    await expect.poll(() => readSaved(path)[b]?.opened).toBe(true)
    network_.failing.set(a, 'throw')
    await expect(first.client.fetch(urlA)).rejects.toThrow()
    network_.failing.delete(a)
    const savedA = readSaved(path)[a]!
    first.store.close()
    // A's server was reset meanwhile (a new secret, no sessions): it refuses the open, and has no such
    // session.
    handlers[a] = server('a.test', 'lightning-session-pending-a-reset-0123456789')

    // The first payment (to B) restores: it pays on B's session; A's loss waits for its report.
    const second = process_(network_.fetch, path)
    const paidB = await second.client.fetch(urlB)
    expect(paidB.status).toBe(200)
    expect(referenceOf(paidB)).toBe(sessionB)
    expect(await paidInvoices()).toBe(invoicesBefore + 2)
    // A's check goes on on its own (the payment to B does not wait for it): its record is moved shortly.
    await expect
      .poll(() => Object.keys(readSaved(path)).sort())
      .toEqual([b, `lost:${savedA.sessionId}`].sort())
    // Reported once, by the next restore (naming the session, never its preimage); B's session stays.
    const error = await second.sessions.restore().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    // Its own code: a caller goes on with the sessions restored (any other restore failure stops it).
    expect((error as PaymentFailedError).code).toBe('session-lost')
    expect([...second.sessions.sessions.values()].map((state) => state.sessionId)).toEqual([sessionB])
    expect((error as Error).message).toContain(`${savedA.sessionId} (${a})`)
    expect((error as Error).message).not.toContain(savedA.preimage)
    expect((await second.sessions.restore()).map((state) => state.sessionId)).toEqual([sessionB])
    expect(second.sessions.pending.size).toBe(0)

    // The lost record: listed (checked, with its preimage: the proof of payment).
    const lost = await second.sessions.lost()
    expect(lost).toEqual([readSaved(path)[`lost:${savedA.sessionId}`]])
    expect(lost[0]).toMatchObject({ sessionId: savedA.sessionId, preimage: savedA.preimage, url: urlA })
    // forgetLost refuses what is not a lost record: the live session (by its key or its id), nonsense.
    expect(await second.sessions.forgetLost(b)).toBe(false)
    expect(await second.sessions.forgetLost(sessionB)).toBe(false)
    expect(await second.sessions.forgetLost(`lost:${savedA.sessionId}`)).toBe(false)
    expect(Object.keys(readSaved(path)).sort()).toEqual([b, `lost:${savedA.sessionId}`].sort())
    expect(await second.sessions.forgetLost(savedA.sessionId)).toBe(true)
    expect(Object.keys(readSaved(path))).toEqual([b])
    expect(await second.sessions.lost()).toEqual([])
    expect(await second.sessions.forgetLost(savedA.sessionId)).toBe(false)

    // A is free for a new session; B's pays on.
    const openedA = await second.client.fetch(urlA)
    expect(openedA.status).toBe(200)
    expect(referenceOf(openedA)).not.toBe(savedA.sessionId)
    expect(referenceOf(await second.client.fetch(urlB))).toBe(sessionB)
    expect((await second.sessions.close(urlA)).status).toBe(200)
    expect((await second.sessions.close(urlB)).status).toBe(200)
    // restore() returns only the sessions still held: B's, closed, no longer.
    expect(await second.sessions.restore()).toEqual([])
    second.store.close()
  })

  it('a lost open is reported by the next payment to its own server, once, before any new deposit there', async () => {
    const handlers = { [a]: server('a.test') }
    const network_ = net(handlers)
    const path = join(dir, 'lost-payment.json')
    const first = process_(network_.fetch, path)
    network_.failing.set(a, 'throw')
    await expect(first.client.fetch(urlA)).rejects.toThrow()
    network_.failing.delete(a)
    const savedA = readSaved(path)[a]!
    first.store.close()
    handlers[a] = server('a.test', 'lightning-session-pending-a-reset-0123456789')
    const invoicesBefore = await paidInvoices()

    const second = process_(network_.fetch, path)
    const error = await second.client.fetch(urlA).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as Error).message).toContain(`${savedA.sessionId} (${a})`)
    expect(await paidInvoices()).toBe(invoicesBefore)
    // Reported: the restore no longer rejects, and the next payment opens a new session.
    expect(await second.sessions.restore()).toEqual([])
    const opened = await second.client.fetch(urlA)
    expect(opened.status).toBe(200)
    expect(referenceOf(opened)).not.toBe(savedA.sessionId)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect((await second.sessions.lost()).map((record) => record.sessionId)).toEqual([savedA.sessionId])
    expect((await second.sessions.close(urlA)).status).toBe(200)
    second.store.close()
  })

  it('an open whose challenge expired while its server is unreachable stays pending (not lost); the server back says it got through, and the session pays on', async () => {
    let skew = 0
    const clock = () => Date.now() + skew
    const serverA = server('a.test', undefined, clock)
    const network_ = net({ [a]: serverA })
    const path = join(dir, 'expired-down.json')
    // The open reaches the server; its answer never comes back.
    const lossy = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      if (actionOf(request) === 'open') {
        await serverA(request)
        throw new TypeError('fetch failed')
      }
      return network_.fetch(request)
    }) as typeof globalThis.fetch
    const first = process_(lossy, path)
    await expect(first.client.fetch(urlA)).rejects.toThrow()
    const savedA = readSaved(path)[a]!
    expect(savedA.opened).toBe(false)
    first.store.close()

    // Two hours later (its challenge long expired) and the server unreachable: it cannot tell.
    skew = 7_200_000
    network_.down.add(a)
    const second = process_(network_.fetch, path, clock)
    expect(await second.sessions.restore()).toEqual([])
    expect(second.sessions.pending.get(a)).toMatchObject({
      sessionId: savedA.sessionId,
      reason:
        'its challenge has expired and the server cannot be reached to tell whether the open got through',
    })
    expect(Object.keys(readSaved(path))).toEqual([a])
    expect(await second.sessions.lost()).toEqual([])
    // Back: the server has the session open; it is restored and pays on, no new deposit.
    network_.down.delete(a)
    const invoicesBefore = await paidInvoices()
    expect((await second.sessions.restore()).map((state) => state.sessionId)).toEqual([savedA.sessionId])
    expect(second.sessions.pending.size).toBe(0)
    const response = await second.client.fetch(urlA)
    expect(response.status).toBe(200)
    expect(referenceOf(response)).toBe(savedA.sessionId)
    expect(await paidInvoices()).toBe(invoicesBefore)
    expect((await second.sessions.close(urlA)).status).toBe(200)
    second.store.close()
  })

  it('a lost open whose record the store cannot move stays pending, kept under its key, and is moved and reported once the store can', async () => {
    const handlers = { [a]: server('a.test') }
    const network_ = net(handlers)
    const path = join(dir, 'lost-unmovable.json')
    const first = process_(network_.fetch, path)
    network_.failing.set(a, 'throw')
    await expect(first.client.fetch(urlA)).rejects.toThrow()
    network_.failing.delete(a)
    const savedA = readSaved(path)[a]!
    first.store.close()
    handlers[a] = server('a.test', 'lightning-session-pending-a-reset-0123456789')

    const file = fileSessionStore(path)
    let broken = true
    const told: { operation: string; key: string; sessionId: string }[] = []
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      fetch: network_.fetch,
      sessionStore: {
        load: () => file.load(),
        save: async (key, value) => {
          if (broken && key.startsWith('lost:')) throw new Error('disk full')
          return file.save(key, value)
        },
        delete: (key) => file.delete(key),
      },
      onStoreError: (_error, info) => told.push(info),
    })
    expect(await sessions.restore()).toEqual([])
    expect(sessions.pending.get(a)?.reason).toBe(
      `it can no longer be sent, and the sessionStore could not move its record to "lost:${savedA.sessionId}" (onStoreError has the store's error)`,
    )
    expect(told).toEqual([{ operation: 'save', key: a, sessionId: savedA.sessionId }])
    expect(readSaved(path)).toEqual({ [a]: savedA })
    broken = false
    const error = await sessions.restore().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as Error).message).toContain(`${savedA.sessionId} (${a})`)
    expect(sessions.pending.size).toBe(0)
    expect(readSaved(path)).toEqual({ [`lost:${savedA.sessionId}`]: savedA })
    expect(await sessions.restore()).toEqual([])
    file.close()
  })
})

/** Satoshis the payer's node received on its invoices (the refunds to the return invoices). */
const refunded = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payer), limit: 1000 })).invoices.reduce(
    (sum, invoice) => sum + Number(invoice.received),
    0,
  )

describe('lightning/session: a close waits for what the server has not taken yet', () => {
  it('close(url) on a session whose open its server answered 503 sends the open again; refused now, it rejects typed and keeps the session and its record; once through, it closes it (refund)', async () => {
    const network_ = net({ [a]: server('a.test') })
    const path = join(dir, 'close-unconfirmed.json')
    const { store, sessions, client } = process_(network_.fetch, path)
    const invoicesBefore = await paidInvoices()
    network_.failing.set(a, 503)
    expect((await client.fetch(urlA)).status).toBe(503)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    const saved = readSaved(path)[a]!
    expect(saved.opened).toBe(false)
    const refundsBefore = await refunded()

    // The close sends the open first (never a close on the open's challenge, which a server that never
    // took the open answers session-not-found); answered 503, the close is refused and nothing dropped.
    const error = await sessions.close(urlA).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).code).toBe('session-open-pending')
    expect((error as Error).message).toContain(`${saved.sessionId} (${a})`)
    expect((error as Error).message).toContain('(the server answered 503)')
    expect((error as Error).message).not.toContain(saved.preimage)
    expect(network_.opens(a)).toBe(2)
    expect(sessions.sessions.has(a)).toBe(false)
    expect(sessions.pending.get(a)).toEqual({
      sessionId: saved.sessionId,
      realm: 'a.test',
      url: urlA,
      deposit: 10n,
      reason: 'the server answered 503',
    })
    expect(readSaved(path)[a]).toEqual(saved)
    // No payment pays a second deposit meanwhile.
    await expect(client.fetch(urlA)).rejects.toMatchObject({ code: 'session-open-pending' })
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(await refunded()).toBe(refundsBefore)

    // The server takes opens again: the open goes through, then the close refunds deposit − price.
    network_.failing.delete(a)
    const closed = await sessions.close(urlA)
    expect(closed.status).toBe(200)
    expect(await closed.json()).toMatchObject({ status: 'closed', refundSats: 9 })
    expect(sessions.pending.size).toBe(0)
    expect(sessions.sessions.size).toBe(0)
    expect(readSaved(path)).toEqual({})
    expect(await refunded()).toBe(refundsBefore + 9)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    store.close()
  })

  it('without a sessionStore too: the unconfirmed session is kept pending, and closed once its open gets through', async () => {
    const network_ = net({ [a]: server('a.test') })
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      fetch: network_.fetch,
    })
    const client = createClient({
      methods: [sessions],
      fetch: network_.fetch,
      policy: { maxDeposit: { sat: 100n } },
    })
    network_.failing.set(a, 503)
    expect((await client.fetch(urlA)).status).toBe(503)
    const { sessionId } = sessions.sessions.get(a)!
    await expect(sessions.close(urlA)).rejects.toMatchObject({ code: 'session-open-pending' })
    expect(sessions.pending.get(a)?.sessionId).toBe(sessionId)
    const refundsBefore = await refunded()
    network_.failing.delete(a)
    expect(await (await sessions.close(urlA)).json()).toMatchObject({ status: 'closed', refundSats: 9 })
    expect(await refunded()).toBe(refundsBefore + 9)
  })

  it('a bearer refused session-not-found on a session whose open was never confirmed does not drop it nor pay a second deposit', async () => {
    const network_ = net({ [a]: server('a.test') })
    const path = join(dir, 'bearer-unconfirmed.json')
    const { store, sessions, client } = process_(network_.fetch, path)
    network_.failing.set(a, 503)
    expect((await client.fetch(urlA)).status).toBe(503)
    const saved = readSaved(path)[a]!
    const invoicesBefore = await paidInvoices()
    // The server never took the open: the bearer is refused session-not-found, and returned as such.
    const refused = await client.fetch(urlA)
    expect(refused.status).toBe(402)
    expect(await paidInvoices()).toBe(invoicesBefore)
    expect(sessions.sessions.get(a)?.sessionId).toBe(saved.sessionId)
    expect(readSaved(path)[a]).toMatchObject({ sessionId: saved.sessionId, opened: false })
    // Its open challenge kept (never the bearer's): the close gets the open through, then closes it.
    network_.failing.delete(a)
    expect(await (await sessions.close(urlA)).json()).toMatchObject({ status: 'closed', refundSats: 9 })
    expect(readSaved(path)).toEqual({})
    store.close()
  })

  it('a paid top-up its server answered 503 is sent again by close: refused now, the close is typed and keeps it; once credited, the refund counts it', async () => {
    const serverA = server('a.test')
    // The status topUp credentials get before they reach the server (none: they reach it).
    const topUps: { status: number | undefined } = { status: undefined }
    const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      if (actionOf(request) === 'topUp' && topUps.status) return new Response('{}', { status: topUps.status })
      return serverA(request)
    }) as typeof globalThis.fetch
    const path = join(dir, 'close-topup.json')
    const { store, sessions, client } = process_(fetch, path)
    expect((await client.fetch(urlA)).status).toBe(200)
    const invoicesBefore = await paidInvoices()
    // A proxy's 502 says nothing of the top-up either: it stays pending (never paid again).
    topUps.status = 502
    expect((await sessions.topUp(urlA)).status).toBe(502)
    topUps.status = 503
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    const pendingTopUp = sessions.sessions.get(a)!.pendingTopUp!
    expect(pendingTopUp.sats).toBe(10n)
    const refundsBefore = await refunded()

    const error = await sessions.close(urlA).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).code).toBe('session-topup-pending')
    expect((error as Error).message).toContain(
      'its top-up of 10 sat is paid but its server has not credited it (the server answered 503)',
    )
    expect((error as Error).message).not.toContain(pendingTopUp.preimage)
    expect(sessions.sessions.get(a)?.pendingTopUp?.preimage).toBe(pendingTopUp.preimage)
    expect(readSaved(path)[a]).toMatchObject({
      pendingTopUp: { preimage: pendingTopUp.preimage, sats: '10' },
    })
    expect(await refunded()).toBe(refundsBefore)

    // Credited by the next close (the same preimage: never paid again): 20 deposited, 1 spent.
    topUps.status = undefined
    const closed = await sessions.close(urlA)
    expect(await closed.json()).toMatchObject({ status: 'closed', refundSats: 19 })
    expect(await refunded()).toBe(refundsBefore + 19)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(readSaved(path)).toEqual({})
    store.close()
  })
})

describe('lightning/session: abandonPending, giving up a paid open its server never takes', () => {
  it('moves it to lost:<sessionId> with its proof: no longer sent again (after a restart neither), listed by lost(), deleted only by forgetLost; its server is free for a new session', async () => {
    const handlers = { [a]: server('a.test'), [b]: server('b.test') }
    const network_ = net(handlers)
    const path = join(dir, 'abandon.json')
    const first = process_(network_.fetch, path)
    const sessionB = referenceOf(await first.client.fetch(urlB))
    await expect.poll(() => readSaved(path)[b]?.opened).toBe(true)
    network_.failing.set(a, 'throw')
    await expect(first.client.fetch(urlA)).rejects.toThrow()
    network_.failing.delete(a)
    const savedA = readSaved(path)[a]!
    expect(savedA.opened).toBe(false)
    first.store.close()

    // A is gone: its open waits in `pending`, sent again by every restore.
    network_.down.add(a)
    const second = process_(network_.fetch, path)
    expect((await second.sessions.restore()).map((state) => state.sessionId)).toEqual([sessionB])
    expect(second.sessions.pending.get(a)?.sessionId).toBe(savedA.sessionId)
    const opensBefore = network_.opens(a)
    const invoicesBefore = await paidInvoices()

    // Only a pending open is given up: not an open session, not an unknown id.
    expect(await second.sessions.abandonPending(sessionB)).toBeUndefined()
    expect(await second.sessions.abandonPending(savedA.preimage)).toBeUndefined()
    expect(await second.sessions.abandonPending(42 as unknown as string)).toBeUndefined()
    expect(second.sessions.sessions.get(b)?.sessionId).toBe(sessionB)
    expect(Object.keys(readSaved(path)).sort()).toEqual([a, b].sort())

    // Given up: its record, preimage included, moved whole to lost:<sessionId>.
    const record = await second.sessions.abandonPending(savedA.sessionId)
    expect(record).toEqual(savedA)
    expect(second.sessions.pending.size).toBe(0)
    expect(readSaved(path)).toEqual({ [b]: readSaved(path)[b], [`lost:${savedA.sessionId}`]: savedA })
    expect(await second.sessions.lost()).toEqual([savedA])
    expect(await second.sessions.abandonPending(savedA.sessionId)).toBeUndefined()
    // Never sent again, nor reported as a loss it did not find: the restore resolves.
    expect((await second.sessions.restore()).map((state) => state.sessionId)).toEqual([sessionB])
    expect(network_.opens(a)).toBe(opensBefore)

    // A back (having lost everything): the next payment there opens a new session (a new deposit), and
    // the abandoned open is not sent first.
    handlers[a] = server('a.test', 'lightning-session-pending-a-reset-0123456789')
    network_.down.delete(a)
    const openedA = await second.client.fetch(urlA)
    expect(openedA.status).toBe(200)
    const sessionA = referenceOf(openedA)
    expect(sessionA).not.toBe(savedA.sessionId)
    expect(network_.opens(a)).toBe(opensBefore + 1)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    await expect.poll(() => readSaved(path)[a]?.opened).toBe(true)
    second.store.close()

    // Restarted: the lost record is listed, never restored nor sent.
    const third = process_(network_.fetch, path)
    expect((await third.sessions.restore()).map((state) => state.sessionId).sort()).toEqual(
      [sessionA, sessionB].sort(),
    )
    expect(third.sessions.pending.size).toBe(0)
    expect(network_.opens(a)).toBe(opensBefore + 1)
    expect(await third.sessions.lost()).toEqual([savedA])
    expect(await third.sessions.forgetLost(savedA.sessionId)).toBe(true)
    expect(await third.sessions.lost()).toEqual([])
    expect((await third.sessions.close(urlA)).status).toBe(200)
    expect((await third.sessions.close(urlB)).status).toBe(200)
    expect(readSaved(path)).toEqual({})
    third.store.close()
  })

  it('waits for an attempt at the open under way: one that gets through is not given up', async () => {
    const network_ = net({ [a]: server('a.test') })
    const path = join(dir, 'abandon-racing.json')
    const first = process_(network_.fetch, path)
    network_.failing.set(a, 'throw')
    await expect(first.client.fetch(urlA)).rejects.toThrow()
    const savedA = readSaved(path)[a]!
    first.store.close()

    network_.failing.set(a, 503)
    const second = process_(network_.fetch, path)
    expect(await second.sessions.restore()).toEqual([])
    expect(second.sessions.pending.get(a)?.reason).toBe('the server answered 503')
    // The server takes opens again; the restore's attempt is held on its way there.
    network_.failing.delete(a)
    const release = network_.hold()
    const opens = network_.opens(a)
    const restoring = second.sessions.restore()
    await expect.poll(() => network_.opens(a)).toBe(opens + 1)
    const abandoning = second.sessions.abandonPending(savedA.sessionId)
    release()
    expect(await abandoning).toBeUndefined()
    expect((await restoring).map((state) => state.sessionId)).toEqual([savedA.sessionId])
    expect(second.sessions.pending.size).toBe(0)
    expect(readSaved(path)).toEqual({
      [a]: expect.objectContaining({ sessionId: savedA.sessionId, opened: true }),
    })
    expect(await second.sessions.lost()).toEqual([])
    expect((await second.sessions.close(urlA)).status).toBe(200)
    second.store.close()
  })

  it('gives nothing up when the store cannot save or move its record: rejects session-store-failed, the open still pending, its record kept', async () => {
    const network_ = net({ [a]: server('a.test') })
    const path = join(dir, 'abandon-store.json')
    const first = process_(network_.fetch, path)
    network_.failing.set(a, 'throw')
    await expect(first.client.fetch(urlA)).rejects.toThrow()
    const savedA = readSaved(path)[a]!
    first.store.close()

    const file = fileSessionStore(path)
    const broken = { save: true, delete: false }
    const told: { operation: string; key: string; sessionId: string }[] = []
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      fetch: network_.fetch,
      sessionStore: {
        load: () => file.load(),
        save: async (key, value) => {
          if (broken.save && key.startsWith('lost:')) throw new Error(`disk full ${JSON.stringify(value)}`)
          return file.save(key, value)
        },
        delete: async (key) => {
          if (broken.delete) throw new Error('read-only')
          return file.delete(key)
        },
      },
      onStoreError: (_error, info) => told.push(info),
    })
    expect(await sessions.restore()).toEqual([])
    expect(sessions.pending.has(a)).toBe(true)
    const lostKey = `lost:${savedA.sessionId}`

    const unsaved = await sessions.abandonPending(savedA.sessionId).catch((caught: unknown) => caught)
    expect(unsaved).toBeInstanceOf(PaymentFailedError)
    expect((unsaved as PaymentFailedError).code).toBe('session-store-failed')
    expect((unsaved as Error).message).toBe(
      `lightning session: could not move the pending open of session ${savedA.sessionId} (${a}) to "${lostKey}" in the sessionStore (could not save "${lostKey}"); it stays pending, its record kept (onStoreError has the store's error)`,
    )
    expect((unsaved as Error).message).not.toContain(savedA.preimage)
    expect(told).toEqual([{ operation: 'save', key: lostKey, sessionId: savedA.sessionId }])
    expect(sessions.pending.get(a)?.sessionId).toBe(savedA.sessionId)
    expect(readSaved(path)).toEqual({ [a]: savedA })

    // Saved, but the live record cannot be deleted: still pending (a restart would read it back as such).
    broken.save = false
    broken.delete = true
    const undeleted = await sessions.abandonPending(savedA.sessionId).catch((caught: unknown) => caught)
    expect((undeleted as PaymentFailedError).code).toBe('session-store-failed')
    expect((undeleted as Error).message).toContain(`(could not delete "${a}")`)
    expect(told.at(-1)).toEqual({ operation: 'delete', key: a, sessionId: savedA.sessionId })
    expect(sessions.pending.has(a)).toBe(true)
    expect(readSaved(path)).toEqual({ [a]: savedA, [lostKey]: savedA })

    broken.delete = false
    expect(await sessions.abandonPending(savedA.sessionId)).toEqual(savedA)
    expect(sessions.pending.size).toBe(0)
    expect(readSaved(path)).toEqual({ [lostKey]: savedA })
    file.close()
  })

  it('without a sessionStore: the record returned (its preimage the proof of the deposit) is all that is left; the server is free for a new session', async () => {
    const network_ = net({ [a]: server('a.test') })
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      fetch: network_.fetch,
    })
    const client = createClient({
      methods: [sessions],
      fetch: network_.fetch,
      policy: { maxDeposit: { sat: 100n } },
    })
    network_.failing.set(a, 503)
    expect((await client.fetch(urlA)).status).toBe(503)
    const { sessionId, preimage } = sessions.sessions.get(a)!
    await expect(sessions.close(urlA)).rejects.toMatchObject({ code: 'session-open-pending' })
    expect(sessions.pending.get(a)?.sessionId).toBe(sessionId)

    const record = await sessions.abandonPending(sessionId)
    expect(record).toMatchObject({ sessionId, preimage, url: urlA, deposit: '10', opened: false })
    expect(sessions.pending.size).toBe(0)
    expect(await sessions.lost()).toEqual([])
    // The server takes opens again: a new session, the abandoned open never sent.
    network_.failing.delete(a)
    const opens = network_.opens(a)
    const opened = await client.fetch(urlA)
    expect(opened.status).toBe(200)
    expect(referenceOf(opened)).not.toBe(sessionId)
    expect(network_.opens(a)).toBe(opens + 1)
    expect((await sessions.close(urlA)).status).toBe(200)
  })
})
