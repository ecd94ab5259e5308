// A paid top-up its server will never credit (its challenge expired before it could be sent again, or the
// server refused it for good): the Lightning session client keeps its proof of payment (the top-up's
// preimage) in the sessionStore under `lost:<sessionId>:topup:<paymentHash>`, reports it once
// (`session-topup-lost`, never the preimage), and lets the close go on (the deposit's refund is not held
// back). `lost()` lists the record and `forgetLost()` deletes it. On the LND simulator, through the core's
// paying client and real session servers, with the session file written by `fileSessionStore`.

import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Challenge, Credential, MemoryStore } from '@mppkit/core'
import { create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { getInvoice, getInvoices } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { type SessionStore, sessionClient } from '../src/client/index.js'
import { fileSessionStore } from '../src/client/node.js'
import { checkLost, checkSaved } from '../src/client/Saved.js'
import { sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

const a = 'https://a.lightning.test'
const urlA = `${a}/generate`

let network: Lightning
let dir: string
beforeAll(async () => {
  network = await startLightning()
  dir = mkdtempSync(join(tmpdir(), 'mppkit-ln-topup-lost-'))
})
afterAll(async () => {
  await network?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/**
 * A session server of realm `a.test` (deposit 10 sat, `amount` sat a request) on its own clock `now`,
 * its sessions never closed for idleness during a test.
 */
function server(options: { amount?: string; now?: () => number } = {}) {
  return servers(options).generate
}

/** The session server of `server`, with a second resource, `/other`, at 2 sat a request (`both` routes). */
function servers({ amount = '1', now }: { amount?: string; now?: () => number } = {}) {
  const method = sessionServer({
    depositSats: 10,
    idleTimeoutSeconds: 86_400,
    lnd: lndFor(network.info.nodes.payee),
  })
  const core = createServer({
    realm: 'a.test',
    secrets: ['lightning-session-topup-lost-0123456789'],
    methods: [method],
    store: new MemoryStore(),
    ...(now ? { now } : {}),
  })
  const protect = (price: string) =>
    core.protect({ offers: [{ method: 'lightning', intent: 'session', request: { amount: price } }] }, () =>
      Response.json({ ok: true }),
    )
  const generate = protect(amount)
  const other = protect('2')
  return {
    generate,
    both: (request: Request) => (new URL(request.url).pathname === '/other' ? other : generate)(request),
  }
}

const actionOf = (request: Request) => {
  const authorization = request.headers.get('authorization')
  return authorization ? (Credential.parse(authorization).payload as { action?: string }).action : undefined
}

/**
 * The network to `handler`: while `down`, every topUp credential is answered `status` (503 unless told)
 * before it gets there; while `closes.down`, no close credential gets there (the fetch fails). While
 * `topUps.unacknowledged` is set, every topUp credential is answered 200 with another body than the
 * spec's `{"status":"ok"}`: `'unsent'`, before it gets there (a captive portal's page); `'credited'`, once
 * the server has answered it (its answer replaced on the way back). `answers` lists the server's own
 * answers to topUp credentials (status and body).
 */
function net(handler: (request: Request) => Promise<Response>) {
  const topUps = {
    down: false,
    status: 503,
    sent: 0,
    unacknowledged: undefined as 'unsent' | 'credited' | undefined,
    answers: [] as { status: number; body: unknown }[],
  }
  const closes = { down: false }
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    if (actionOf(request) === 'close' && closes.down) throw new TypeError('fetch failed')
    if (actionOf(request) === 'topUp') {
      topUps.sent++
      if (topUps.down) return Response.json({ title: 'unavailable' }, { status: topUps.status })
      if (topUps.unacknowledged === 'unsent')
        return new Response('<html>Welcome</html>', { status: 200, headers: { 'content-type': 'text/html' } })
      const answer = await handler(request)
      topUps.answers.push({ status: answer.status, body: await answer.clone().json() })
      if (topUps.unacknowledged === 'credited') return Response.json({ credited: true }, { status: 200 })
      return answer
    }
    return handler(request)
  }) as typeof globalThis.fetch
  return { fetch, topUps, closes }
}

/** A client (one process's) on the session store `store` (the session file `path` unless given). */
function process_(
  fetch: typeof globalThis.fetch,
  path: string | undefined,
  options: { now?: () => number; store?: SessionStore; onStoreError?: (info: unknown) => void } = {},
) {
  const file = path === undefined ? undefined : fileSessionStore(path)
  const store = options.store ?? file
  const sessions = sessionClient({
    lnd: lndFor(network.info.nodes.payer),
    network: 'regtest',
    fetch,
    ...(store ? { sessionStore: store } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.onStoreError ? { onStoreError: (_error, info) => options.onStoreError!(info) } : {}),
  })
  const client = createClient({
    methods: [sessions],
    fetch,
    policy: { maxDeposit: { sat: 100n }, budget: { sat: 1_000n } },
  })
  return { close: () => file?.close(), sessions, client }
}

const readSaved = (path: string): Record<string, Record<string, unknown>> =>
  (JSON.parse(readFileSync(path, 'utf8')) as { sessions: Record<string, Record<string, unknown>> }).sessions
/** The invoices the payee's node has been paid (deposits and top-ups). */
const paidInvoices = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payee), limit: 1000 })).invoices.filter(
    (invoice) => invoice.is_confirmed,
  ).length
/** Satoshis the payer's node received on its invoices (the refunds to the return invoices). */
const refunded = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payer), limit: 1000 })).invoices.reduce(
    (sum, invoice) => sum + Number(invoice.received),
    0,
  )
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as PaymentFailedError,
  )
const expiredReason =
  'its challenge expired before it could be sent again (not sent: an earlier attempt left unanswered may have been credited)'

/**
 * A session of `a` on `fetch` whose paid top-up of 10 sat got 503 (the client's clock `skew`ed as the
 * test says): the session's id and deposit preimage, and its pending top-up.
 */
async function pendingTopUp(
  process: ReturnType<typeof process_>,
  topUps: { down: boolean; status: number; sent: number },
) {
  expect((await process.client.fetch(urlA)).status).toBe(200)
  const { sessionId, preimage } = process.sessions.sessions.get(a)!
  topUps.down = true
  expect((await process.sessions.topUp(urlA)).status).toBe(503)
  const pending = process.sessions.sessions.get(a)!.pendingTopUp!
  expect(pending.sats).toBe(10n)
  const paymentHash = pending.challenge.request.paymentHash as string
  return { sessionId, depositPreimage: preimage, pending, paymentHash }
}

describe('lightning/session: a paid top-up its server will never credit', () => {
  it('its challenge expired before it could be sent again: the close goes on (the deposit refunded), the top-up is reported once and its proof kept; lost() lists it, after a restart too, and forgetLost deletes it', async () => {
    let skew = 0
    const now = () => Date.now() + skew
    const { fetch, topUps } = net(server())
    const path = join(dir, 'expired.json')
    const first = process_(fetch, path, { now })
    const invoicesBefore = await paidInvoices()
    const { sessionId, depositPreimage, pending, paymentHash } = await pendingTopUp(first, topUps)
    // The deposit and the top-up paid; the top-up sent three times (503 each), kept pending.
    expect(await paidInvoices()).toBe(invoicesBefore + 2)
    expect(topUps.sent).toBe(3)
    expect(readSaved(path)[a]).toMatchObject({ pendingTopUp: { preimage: pending.preimage, sats: '10' } })
    const refundsBefore = await refunded()

    // By the client's clock its challenge has expired ("Clients MUST NOT submit credentials for expired
    // challenges"): not sent (the server, whose clock is not skewed, would still credit it).
    topUps.down = false
    skew = Date.parse(pending.challenge.expires!) - Date.now() + 1_000
    const error = await failure(first.sessions.close(urlA))
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error?.code).toBe('session-topup-lost')
    const key = `lost:${sessionId}:topup:${paymentHash}`
    expect(error?.message).toBe(
      `lightning session: the top-up of 10 sat of session ${sessionId} (${a}) is paid but will not be credited: ${expiredReason}; its proof of payment (the top-up's preimage) is kept in the sessionStore under "${key}" (lost() lists it); the session was closed: its server refunds what it did not spend of the deposit to the return invoice`,
    )
    for (const secret of [pending.preimage, depositPreimage]) expect(error?.message).not.toContain(secret)
    expect(topUps.sent).toBe(3)
    // The close went on: the deposit's 10 sat less the 1 spent came back; nothing paid again.
    expect(await refunded()).toBe(refundsBefore + 9)
    expect(await paidInvoices()).toBe(invoicesBefore + 2)
    expect(first.sessions.sessions.size).toBe(0)
    // The session's record is gone, the top-up's proof kept: the preimage of the invoice the payee was paid.
    const payee = await getInvoice({ lnd: lndFor(network.info.nodes.payee), id: paymentHash })
    expect(payee.is_confirmed).toBe(true)
    expect(payee.secret).toBe(pending.preimage)
    const record = {
      v: 1,
      kind: 'topUp',
      network: 'regtest',
      sessionId,
      realm: 'a.test',
      url: urlA,
      paymentHash,
      preimage: pending.preimage,
      sats: '10',
      challenge: Challenge.format(pending.challenge, Challenge.wireRequest(pending.challenge)),
      reason: expiredReason,
    }
    expect(readSaved(path)).toEqual({ [key]: record })
    expect(await first.sessions.lost()).toEqual([record])
    // Reported once: nothing is left to close.
    await expect(first.sessions.close(urlA)).rejects.toThrow('no open session for this server')
    first.close()

    // A restarted client: the record does not stop its restore, and lost() lists it.
    const second = process_(fetch, path)
    expect(await second.sessions.restore()).toEqual([])
    expect(await second.sessions.lost()).toEqual([record])
    // forgetLost deletes only what it names: not another payment hash, not a malformed one.
    expect(await second.sessions.forgetLost(sessionId, sessionId)).toBe(false)
    expect(await second.sessions.forgetLost(sessionId, 'nope')).toBe(false)
    expect(await second.sessions.forgetLost(paymentHash)).toBe(false)
    expect(Object.keys(readSaved(path))).toEqual([key])
    expect(await second.sessions.forgetLost(sessionId, paymentHash)).toBe(true)
    expect(readSaved(path)).toEqual({})
    expect(await second.sessions.lost()).toEqual([])
    expect(await second.sessions.forgetLost(sessionId, paymentHash)).toBe(false)
    second.close()
  })

  it('refused for good by its server when sent again before a payment: the payment fails typed, nothing paid, the proof kept; the session stays open and the next payment tops up anew', async () => {
    let serverSkew = 0
    const { fetch, topUps } = net(server({ amount: '10', now: () => Date.now() + serverSkew }))
    const path = join(dir, 'refused.json')
    const { sessions, client, close } = process_(fetch, path)
    // 10 sat a request on a deposit of 10: the second request needs a top-up, answered 503.
    expect((await client.fetch(urlA)).status).toBe(200)
    const { sessionId, preimage: depositPreimage } = sessions.sessions.get(a)!
    topUps.down = true
    await expect(client.fetch(urlA)).rejects.toThrow('the top-up was refused (503)')
    const pending = sessions.sessions.get(a)!.pendingTopUp!
    const paymentHash = pending.challenge.request.paymentHash as string
    const invoicesBefore = await paidInvoices()

    // The server's clock an hour on: the top-up's challenge expired there, and it refuses it for good.
    topUps.down = false
    serverSkew = 3_600_000
    const error = await failure(client.fetch(urlA))
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error?.code).toBe('session-topup-lost')
    const key = `lost:${sessionId}:topup:${paymentHash}`
    const reason = 'the server refused it (HTTP 402 challenge-expired)'
    expect(error?.message).toBe(
      `lightning session: the top-up of 10 sat of session ${sessionId} (${a}) is paid but will not be credited: ${reason}; its proof of payment (the top-up's preimage) is kept in the sessionStore under "${key}" (lost() lists it); the session stays open, without it`,
    )
    for (const secret of [pending.preimage, depositPreimage]) expect(error?.message).not.toContain(secret)
    expect(topUps.sent).toBe(4)
    expect(await paidInvoices()).toBe(invoicesBefore)
    // The session's record no longer holds it (never sent again); the lost record does.
    const saved = readSaved(path)
    expect(Object.keys(saved).sort()).toEqual([a, key].sort())
    expect(saved[a]).not.toHaveProperty('pendingTopUp')
    expect(saved[key]).toMatchObject({ kind: 'topUp', sats: '10', preimage: pending.preimage, reason })
    expect((await sessions.lost()).map((record) => record.sessionId)).toEqual([sessionId])
    expect(sessions.sessions.get(a)?.pendingTopUp).toBeUndefined()

    // The server's clock right again: the next payment pays a new top-up, credited, on the same session.
    serverSkew = 0
    expect((await client.fetch(urlA)).status).toBe(200)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(sessions.sessions.get(a)).toMatchObject({ sessionId, deposit: 20n })
    expect(await (await sessions.close(urlA)).json()).toMatchObject({ status: 'closed', refundSats: 0 })
    expect(Object.keys(readSaved(path))).toEqual([key])
    // Without a payment hash, every lost record of the session.
    expect(await sessions.forgetLost(sessionId)).toBe(true)
    expect(readSaved(path)).toEqual({})
    close()
  })

  it('a pending top-up is sent again to the URL it was paid on (after a restart too), not the one a later close names: credited there, the refund counts it', async () => {
    const { fetch, topUps } = net(servers().both)
    const path = join(dir, 'other-url.json')
    const first = process_(fetch, path)
    expect((await first.client.fetch(urlA)).status).toBe(200)
    const invoicesBefore = await paidInvoices()
    // Paid on /other (2 sat a request): its server pins the challenge to that resource.
    topUps.down = true
    expect((await first.sessions.topUp(`${a}/other`)).status).toBe(503)
    expect(readSaved(path)[a]).toMatchObject({ pendingTopUp: { sats: '10', url: `${a}/other` } })
    first.close()
    const refundsBefore = await refunded()

    topUps.down = false
    const second = process_(fetch, path)
    const closed = await second.sessions.close(urlA)
    expect(await closed.json()).toMatchObject({ status: 'closed', refundSats: 19 })
    expect(await refunded()).toBe(refundsBefore + 19)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(readSaved(path)).toEqual({})
    expect(await second.sessions.lost()).toEqual([])
    second.close()
  })

  it('when the close that follows fails, the report comes once, with the next payment to that server (nothing paid), and the next close closes quietly', async () => {
    let skew = 0
    const { fetch, topUps, closes } = net(server())
    const path = join(dir, 'close-fails.json')
    const process = process_(fetch, path, { now: () => Date.now() + skew })
    const { sessionId, pending, paymentHash } = await pendingTopUp(process, topUps)
    topUps.down = false
    skew = Date.parse(pending.challenge.expires!) - Date.now() + 1_000
    closes.down = true
    await expect(process.sessions.close(urlA)).rejects.toThrow(TypeError)
    const key = `lost:${sessionId}:topup:${paymentHash}`
    // The proof moved already; the session (and its record) stay for the next close.
    expect(Object.keys(readSaved(path)).sort()).toEqual([a, key].sort())
    expect(readSaved(path)[a]).not.toHaveProperty('pendingTopUp')
    const invoicesBefore = await paidInvoices()
    const error = await failure(process.client.fetch(urlA))
    expect(error?.code).toBe('session-topup-lost')
    expect(error?.message).toContain(`"${key}" (lost() lists it); nothing was paid now`)
    expect(error?.message).not.toContain(pending.preimage)
    expect(await paidInvoices()).toBe(invoicesBefore)
    closes.down = false
    expect(await (await process.sessions.close(urlA)).json()).toMatchObject({ status: 'closed' })
    expect(Object.keys(readSaved(path))).toEqual([key])
    process.close()
  })

  it('a top-up answered 429 (or 408) is not refused for good: it stays pending, the close is held back, and it is credited once sent again', async () => {
    const { fetch, topUps } = net(server())
    const path = join(dir, 'too-many.json')
    const { sessions, client, close } = process_(fetch, path)
    expect((await client.fetch(urlA)).status).toBe(200)
    topUps.down = true
    topUps.status = 429
    expect((await sessions.topUp(urlA)).status).toBe(429)
    expect(sessions.sessions.get(a)?.pendingTopUp?.sats).toBe(10n)
    const held = await failure(sessions.close(urlA))
    expect(held?.code).toBe('session-topup-pending')
    expect(held?.message).toContain('(the server answered 429)')
    expect(await sessions.lost()).toEqual([])
    const refundsBefore = await refunded()
    topUps.down = false
    expect(await (await sessions.close(urlA)).json()).toMatchObject({ status: 'closed', refundSats: 19 })
    expect(await refunded()).toBe(refundsBefore + 19)
    expect(readSaved(path)).toEqual({})
    close()
  })

  it('a store that cannot keep the proof holds the close back (session-topup-pending, the session record kept); once it can, the close goes on and reports it', async () => {
    let skew = 0
    const now = () => Date.now() + skew
    const { fetch, topUps } = net(server())
    const path = join(dir, 'unkept.json')
    const file = fileSessionStore(path)
    let broken = true
    const told: unknown[] = []
    const process = process_(fetch, undefined, {
      now,
      store: {
        load: () => file.load(),
        save: async (key, value) => {
          if (broken && key.startsWith('lost:')) throw new Error('disk full')
          return file.save(key, value)
        },
        delete: (key) => file.delete(key),
      },
      onStoreError: (info) => told.push(info),
    })
    const { sessionId, depositPreimage, pending, paymentHash } = await pendingTopUp(process, topUps)
    const refundsBefore = await refunded()
    topUps.down = false
    skew = Date.parse(pending.challenge.expires!) - Date.now() + 1_000
    const key = `lost:${sessionId}:topup:${paymentHash}`

    const held = await failure(process.sessions.close(urlA))
    expect(held?.code).toBe('session-topup-pending')
    expect(held?.message).toContain(
      `its top-up of 10 sat is paid but its server has not credited it (${expiredReason}, and the sessionStore could not keep its proof under "${key}" (onStoreError has the store's error))`,
    )
    for (const secret of [pending.preimage, depositPreimage]) expect(held?.message).not.toContain(secret)
    expect(told).toEqual([{ operation: 'save', key, sessionId }])
    // Not closed: the session's record, the only one holding the top-up's preimage, is kept.
    expect(process.sessions.sessions.has(a)).toBe(true)
    expect(readSaved(path)).toEqual({
      [a]: expect.objectContaining({ pendingTopUp: expect.objectContaining({ preimage: pending.preimage }) }),
    })
    expect(await refunded()).toBe(refundsBefore)
    expect(topUps.sent).toBe(3)

    broken = false
    const reported = await failure(process.sessions.close(urlA))
    expect(reported?.code).toBe('session-topup-lost')
    expect(reported?.message).toContain('the session was closed')
    expect(await refunded()).toBe(refundsBefore + 9)
    expect(Object.keys(readSaved(path))).toEqual([key])
    expect(topUps.sent).toBe(3)
    file.close()
  })

  it('without a sessionStore: the close goes on and the report names the payment hash whose payment holds the preimage', async () => {
    let skew = 0
    const { fetch, topUps } = net(server())
    const process = process_(fetch, undefined, { now: () => Date.now() + skew })
    const { sessionId, pending, paymentHash } = await pendingTopUp(process, topUps)
    const refundsBefore = await refunded()
    skew = Date.parse(pending.challenge.expires!) - Date.now() + 1_000
    const error = await failure(process.sessions.close(urlA))
    expect(error?.code).toBe('session-topup-lost')
    expect(error?.message).toContain(
      `the top-up of 10 sat of session ${sessionId} (${a}) is paid but will not be credited: ${expiredReason}; no sessionStore keeps its record: the payer node's payment of ${paymentHash} holds the preimage, the proof of payment; the session was closed`,
    )
    expect(error?.message).not.toContain(pending.preimage)
    expect(await refunded()).toBe(refundsBefore + 9)
    expect(await process.sessions.lost()).toEqual([])
  })
})

describe('lightning/session: a top-up answered 2xx without {"status":"ok"}', () => {
  const unacknowledged =
    'its server answered HTTP 200 without the {"status":"ok"} body that acknowledges the credit'

  it('is not taken for credited: topUp rejects session-topup-pending, the top-up stays pending with its preimage, is sent again and never paid again, holds the close back, and counts in the refund once credited', async () => {
    const { fetch, topUps } = net(server())
    const path = join(dir, 'unacknowledged.json')
    const { sessions, client, close } = process_(fetch, path)
    expect((await client.fetch(urlA)).status).toBe(200)
    const { sessionId, preimage: depositPreimage } = sessions.sessions.get(a)!
    const invoicesBefore = await paidInvoices()

    // Answered 200 with a page that is not the spec's answer (it never reached the server).
    topUps.unacknowledged = 'unsent'
    const error = await failure(sessions.topUp(urlA))
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error?.code).toBe('session-topup-pending')
    expect(error?.message).toBe(
      `lightning session: the top-up of 10 sat of session ${sessionId} (${a}) is paid but ${unacknowledged}: its outcome is unknown; it is kept pending and sent again (never paid again) by the next top-up, payment or close to this server`,
    )
    const pending = sessions.sessions.get(a)!.pendingTopUp!
    for (const secret of [pending.preimage, depositPreimage]) expect(error?.message).not.toContain(secret)
    // Not credited: the deposit as it was; the top-up kept pending, its preimage saved.
    expect(sessions.sessions.get(a)?.deposit).toBe(10n)
    expect(readSaved(path)[a]).toMatchObject({
      deposit: '10',
      pendingTopUp: { preimage: pending.preimage, sats: '10', url: urlA },
    })
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(topUps.sent).toBe(1)

    // A second top-up sends the same one again: nothing paid.
    expect((await failure(sessions.topUp(urlA)))?.code).toBe('session-topup-pending')
    expect(topUps.sent).toBe(2)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    // The close is held back (it would refund the deposit without the top-up), the session kept.
    const refundsBefore = await refunded()
    const held = await failure(sessions.close(urlA))
    expect(held?.code).toBe('session-topup-pending')
    expect(held?.message).toContain(
      `its top-up of 10 sat is paid but its server has not credited it (${unacknowledged})`,
    )
    expect(held?.message).not.toContain(pending.preimage)
    expect(topUps.sent).toBe(3)
    expect(topUps.answers).toEqual([])
    expect(sessions.sessions.has(a)).toBe(true)
    expect(await refunded()).toBe(refundsBefore)
    expect(await sessions.lost()).toEqual([])

    // Through again: the close sends it first (credited once), then closes: 10 + 10 - 1 refunded.
    topUps.unacknowledged = undefined
    expect(await (await sessions.close(urlA)).json()).toMatchObject({ status: 'closed', refundSats: 19 })
    expect(topUps.answers).toEqual([{ status: 200, body: { status: 'ok' } }])
    expect(await refunded()).toBe(refundsBefore + 19)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(readSaved(path)).toEqual({})
    close()
  })

  it('credited by the server, its answer replaced: the payment whose auto top-up it was fails typed; the next one sends it again, the server answers it as before, and it is credited once', async () => {
    const { fetch, topUps } = net(server({ amount: '10' }))
    const path = join(dir, 'unacknowledged-credited.json')
    const { sessions, client, close } = process_(fetch, path)
    // 10 sat a request on a deposit of 10: the second request needs a top-up.
    expect((await client.fetch(urlA)).status).toBe(200)
    const { sessionId } = sessions.sessions.get(a)!
    const invoicesBefore = await paidInvoices()
    topUps.unacknowledged = 'credited'
    const error = await failure(client.fetch(urlA))
    expect(error?.code).toBe('session-topup-pending')
    expect(error?.message).toContain(
      `the top-up of 10 sat of session ${sessionId} (${a}) is paid but ${unacknowledged}`,
    )
    // The server credited it (and said so); the client did not hear it.
    expect(topUps.answers).toEqual([{ status: 200, body: { status: 'ok' } }])
    expect(sessions.sessions.get(a)).toMatchObject({ deposit: 10n, spent: 10n })
    expect(readSaved(path)[a]).toMatchObject({ pendingTopUp: { sats: '10' } })
    expect(await paidInvoices()).toBe(invoicesBefore + 1)

    // The next payment sends the same top-up again: its server answers it as it did ("MUST return the
    // original HTTP response"), credited once; no second invoice paid.
    topUps.unacknowledged = undefined
    expect((await client.fetch(urlA)).status).toBe(200)
    expect(topUps.answers).toEqual([
      { status: 200, body: { status: 'ok' } },
      { status: 200, body: { status: 'ok' } },
    ])
    expect(sessions.sessions.get(a)).toMatchObject({ deposit: 20n, spent: 20n })
    expect(readSaved(path)[a]).not.toHaveProperty('pendingTopUp')
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    // Credited once: 20 deposited, 20 spent, nothing to refund.
    expect(await (await sessions.close(urlA)).json()).toMatchObject({ status: 'closed', refundSats: 0 })
    expect(await sessions.lost()).toEqual([])
    close()
  })
})

describe('checkSaved: a pending top-up', () => {
  it('is sent nowhere but its session’s origin', () => {
    const preimage = randomBytes(32).toString('hex')
    const topUp = randomBytes(32).toString('hex')
    const hash = (hex: string) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')
    const record = (url: string) => ({
      v: 1,
      network: 'regtest',
      sessionId: hash(preimage),
      preimage,
      realm: 'a.test',
      deposit: '10',
      spent: '1',
      price: '1',
      url: urlA,
      opened: true,
      pendingTopUp: {
        challenge: Challenge.format({
          id: 'x',
          realm: 'a.test',
          method: 'lightning',
          intent: 'session',
          request: { amount: '1', currency: 'sat', paymentHash: hash(topUp) },
        }),
        preimage: topUp,
        sats: '10',
        url,
      },
    })
    expect(checkSaved(a, record(`${a}/other`))).toEqual({ ok: true, saved: record(`${a}/other`) })
    for (const url of ['https://evil.example/other', 'ftp://a.lightning.test/other']) {
      const checked = checkSaved(a, record(url))
      expect(checked.ok).toBe(false)
      const { problem } = checked as { problem: string }
      expect(problem).toContain('(pendingTopUp.url: not of its session')
      expect(problem).not.toContain(topUp)
    }
  })
})

describe('checkLost', () => {
  const hash = (hex: string) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')
  const preimage = randomBytes(32).toString('hex')
  const sessionId = hash(randomBytes(32).toString('hex'))
  const paymentHash = hash(preimage)
  const challenge = (forHash: string) =>
    Challenge.format({
      id: 'x',
      realm: 'a.test',
      method: 'lightning',
      intent: 'session',
      request: { amount: '1', currency: 'sat', paymentHash: forHash },
    })
  const record = {
    v: 1,
    kind: 'topUp',
    network: 'regtest',
    sessionId,
    realm: 'a.test',
    url: urlA,
    paymentHash,
    preimage,
    sats: '10',
    challenge: challenge(paymentHash),
    reason: expiredReason,
  }
  const key = `lost:${sessionId}:topup:${paymentHash}`

  it('accepts a lost top-up under its own key', () => {
    expect(checkLost(key, record)).toEqual({ ok: true, saved: record })
  })

  it('refuses one under another key, or whose preimage is not its payment hash’s or its challenge’s, naming fields, never the preimage', () => {
    const other = randomBytes(32).toString('hex')
    for (const [at, bad, pattern] of [
      [`lost:${sessionId}:topup:${hash(other)}`, record, /not a valid lost top-up \(sessionId, paymentHash/],
      [
        `lost:${paymentHash}:topup:${paymentHash}`,
        record,
        /not a valid lost top-up \(sessionId, paymentHash/,
      ],
      [key, { ...record, preimage: other }, /preimage: not its payment hash's, or not its challenge's/],
      [key, { ...record, challenge: challenge(hash(other)) }, /preimage: not its payment hash's/],
      [key, { ...record, sats: 10 }, /not a valid lost top-up \(sats\)/],
      [key, { ...record, kind: 'session' }, /not a valid lost top-up \(kind\)/],
    ] as const) {
      const checked = checkLost(at, bad)
      expect(checked.ok).toBe(false)
      const { problem } = checked as { problem: string }
      expect(problem).toMatch(pattern)
      expect(problem).not.toContain(preimage)
      expect(problem).not.toContain(other)
    }
  })
})
