// A Lightning session client that restarts keeps paying from its prepaid session (`sessionStore`): on
// the LND simulator, through the unmodified `lightning` client, the core's paying client and a real
// session server, with the session file written by `fileSessionStore`. A restart is a new sessionClient
// on the same file once the first store's lock is released. What makes it safe is write-ahead: the
// deposit preimage is saved before the open is sent, and a paid top-up before its credential leaves.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Challenge, Credential, MemoryStore, Receipt } from '@mppkit/core'
import { ConfigurationError, create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { getChannelBalance, getInvoices } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { sessionClient } from '../src/client/index.js'
import { fileSessionStore } from '../src/client/node.js'
import { type SessionMeter, sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

const realm = 'lightning.test'
const secret = 'lightning-session-resume-secret-0123456789'
const url = 'https://lightning.test/generate'
const origin = 'https://lightning.test'

let network: Lightning
let dir: string
beforeAll(async () => {
  network = await startLightning()
  dir = mkdtempSync(join(tmpdir(), 'mppkit-ln-resume-'))
})
afterAll(async () => {
  await network?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** A session server (deposit 10 sat, 1 sat a request) that lives across the client's restarts. */
function server(store: MemoryStore = new MemoryStore(), now?: () => number) {
  const method = sessionServer({ depositSats: 10, lnd: lndFor(network.info.nodes.payee) })
  const core = createServer({ realm, secrets: [secret], methods: [method], store, ...(now ? { now } : {}) })
  const handler = core.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
    (_request, payment) => {
      void (payment.context as SessionMeter)
      return Response.json({ ok: true })
    },
  )
  return handler
}

type Gate = (request: Request) => Response | undefined | Promise<Response | undefined>
const actionOf = (request: Request) => {
  const authorization = request.headers.get('authorization')
  return authorization ? (Credential.parse(authorization).payload as { action?: string }).action : undefined
}

/** A client (one process's) on the session file `path`: its fetch goes through `gate` first. */
function process_(
  handler: (request: Request) => Promise<Response>,
  path: string,
  gate?: Gate,
  now?: () => number,
  extra: Partial<Parameters<typeof sessionClient>[0]> = {},
) {
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    return (await gate?.(request)) ?? handler(request)
  }) as typeof globalThis.fetch
  const store = fileSessionStore(path)
  const sessions = sessionClient({
    lnd: lndFor(network.info.nodes.payer),
    network: 'regtest',
    fetch,
    sessionStore: store,
    ...(now ? { now } : {}),
    ...extra,
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
/** The invoices the payee's node has been paid (deposits and top-ups). */
const paidInvoices = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payee), limit: 1000 })).invoices.filter(
    (invoice) => invoice.is_confirmed,
  ).length
type Saved = {
  sessionId: string
  preimage: string
  spent: string
  opened: boolean
  pendingTopUp?: { preimage: string }
}
const readSaved = (path: string): Record<string, Saved> =>
  (JSON.parse(readFileSync(path, 'utf8')) as { sessions: Record<string, Saved> }).sessions
const referenceOf = (response: Response) => Receipt.parse(response.headers.get('payment-receipt')!).reference

describe('lightning/session: a restarted client resumes its session (sessionStore)', () => {
  it('two clients in sequence on one file pay one server session with one deposit, and the second closes it', async () => {
    const handler = server()
    const path = join(dir, 'sequence.json')
    const before = await payerBalance()
    const invoicesBefore = await paidInvoices()

    const first = process_(handler, path)
    const opened = await first.client.fetch(url)
    expect(opened.status).toBe(200)
    const sessionId = referenceOf(opened)
    expect((await first.client.fetch(url)).status).toBe(200)
    // Saved with its preimage (the file is the owner's only), its open confirmed by the receipt.
    expect((statSync(path).mode & 0o777).toString(8)).toBe('600')
    await expect.poll(() => readSaved(path)[origin]?.opened).toBe(true)
    expect(readSaved(path)[origin]).toMatchObject({ sessionId, spent: '2', deposit: '10' })
    first.store.close()

    // The restart: a new client on the same file.
    const second = process_(handler, path)
    const restored = await second.sessions.restore()
    expect(restored.map((state) => state.sessionId)).toEqual([sessionId])
    expect(second.sessions.sessions.get(origin)?.sessionId).toBe(sessionId)
    for (let i = 0; i < 2; i++) {
      const response = await second.client.fetch(url)
      expect(response.status).toBe(200)
      expect(referenceOf(response)).toBe(sessionId)
    }
    // One deposit paid in all; this process booked none of it against its budget.
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(before - (await payerBalance())).toBe(10)
    expect(second.client.ledger.spent('sat')).toBe(0n)
    // A top-up of this process is booked against its budget (and saved).
    expect((await second.sessions.topUp(url)).status).toBe(200)
    expect(second.client.ledger.spent('sat')).toBe(10n)
    expect(readSaved(path)[origin]).toMatchObject({ deposit: '20', spent: '4' })

    // Closed by the second client: refunded (20 deposited - 4 served) to the first's return invoice, the
    // record deleted; this process gets back what it booked (the top-up), never the first's deposit.
    const closed = await second.sessions.close(url)
    expect(closed.status).toBe(200)
    expect(await closed.json()).toMatchObject({ refundSats: 16, refundStatus: 'succeeded' })
    expect(readSaved(path)).toEqual({})
    await expect.poll(payerBalance, { timeout: 5_000, interval: 50 }).toBe(before - 4)
    expect(second.client.ledger.spent('sat')).toBe(0n)
    expect(second.sessions.sessions.size).toBe(0)
    second.store.close()
  })

  it('a paid top-up still pending when the client stops is sent again after the restart, never paid twice', async () => {
    const handler = server()
    const path = join(dir, 'pending.json')
    let unavailable = false
    // What the file held as each top-up credential left.
    const atSend: (Saved | undefined)[] = []
    // The server is unavailable for top-up credentials while `unavailable` (before they reach it).
    const gate: Gate = (request) => {
      if (actionOf(request) !== 'topUp') return undefined
      atSend.push(readSaved(path)[origin])
      return unavailable ? new Response('{}', { status: 503, headers: { 'retry-after': '0' } }) : undefined
    }
    const first = process_(handler, path, gate)
    expect((await first.client.fetch(url)).status).toBe(200)
    const before = await payerBalance()
    const invoicesBefore = await paidInvoices()
    unavailable = true
    expect((await first.sessions.topUp(url)).status).toBe(503)
    // Saved as pending before its credential first left (write-ahead), with the preimage it presents.
    expect(atSend).toHaveLength(3)
    expect(atSend[0]?.pendingTopUp?.preimage).toMatch(/^[0-9a-f]{64}$/)
    expect(readSaved(path)[origin]?.pendingTopUp).toEqual(atSend[0]?.pendingTopUp)
    expect(before - (await payerBalance())).toBe(10)
    first.store.close()

    unavailable = false
    const second = process_(handler, path, gate)
    const [state] = await second.sessions.restore()
    expect(state?.pendingTopUp?.sats).toBe(10n)
    expect((await second.sessions.topUp(url)).status).toBe(200)
    expect(state?.deposit).toBe(20n)
    expect(state?.pendingTopUp).toBeUndefined()
    expect(readSaved(path)[origin]).toMatchObject({ deposit: '20' })
    expect(readSaved(path)[origin]?.pendingTopUp).toBeUndefined()
    // The one top-up invoice paid, once.
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(before - (await payerBalance())).toBe(10)
    expect((await second.sessions.close(url)).status).toBe(200)
    second.store.close()
  })

  it('a client that stops between paying the deposit and sending the open: the restore sends that open, one deposit paid', async () => {
    const handler = server()
    const path = join(dir, 'crash.json')
    const before = await payerBalance()
    const invoicesBefore = await paidInvoices()
    // The process "dies" as the open leaves: it never reaches the server. The file held the session then.
    let atSend: Saved | undefined
    const first = process_(handler, path, (request) => {
      if (actionOf(request) !== 'open') return undefined
      atSend = readSaved(path)[origin]
      throw new TypeError('fetch failed')
    })
    await expect(first.client.fetch(url)).rejects.toThrow()
    expect(before - (await payerBalance())).toBe(10)
    const saved = readSaved(path)[origin]
    expect(saved?.opened).toBe(false)
    expect(atSend).toEqual(saved)
    first.store.close()

    const second = process_(handler, path)
    const [state] = await second.sessions.restore()
    expect(state?.sessionId).toBe(saved?.sessionId)
    expect(readSaved(path)[origin]?.opened).toBe(true)
    const response = await second.client.fetch(url)
    expect(response.status).toBe(200)
    expect(referenceOf(response)).toBe(saved?.sessionId)
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(before - (await payerBalance())).toBe(10)
    expect((await second.sessions.close(url)).status).toBe(200)
    second.store.close()
  })

  it('an open never sent whose challenge has expired by the restore is reported once, its record kept as proof', async () => {
    const handler = server()
    const path = join(dir, 'lost.json')
    const first = process_(handler, path, (request) => {
      if (actionOf(request) === 'open') throw new TypeError('fetch failed')
      return undefined
    })
    await expect(first.client.fetch(url)).rejects.toThrow()
    const saved = readSaved(path)[origin]!
    first.store.close()

    // Restarted two hours later (the server's challenges live minutes): no credential can be sent (a
    // standing probe needs a fresh challenge, which this client's clock sees as expired).
    let sent = 0
    const second = process_(
      handler,
      path,
      (request) => {
        if (request.headers.has('authorization')) sent++
        return undefined
      },
      () => Date.now() + 7_200_000,
    )
    const error = await second.sessions.restore().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as Error).message).toContain(saved.sessionId)
    expect((error as Error).message).not.toContain(saved.preimage)
    expect(sent).toBe(0)
    expect(readSaved(path)).toEqual({ [`lost:${saved.sessionId}`]: saved })
    // Reported once: the origin is free, the record kept.
    expect(await second.sessions.restore()).toEqual([])
    expect(second.sessions.sessions.size).toBe(0)
    second.store.close()
    const third = process_(handler, path)
    expect(await third.sessions.restore()).toEqual([])
    const response = await third.client.fetch(url)
    expect(response.status).toBe(200)
    expect(referenceOf(response)).not.toBe(saved.sessionId)
    expect(Object.keys(readSaved(path)).sort()).toEqual([origin, `lost:${saved.sessionId}`].sort())
    expect((await third.sessions.close(url)).status).toBe(200)
    third.store.close()
  })

  it('a session the server closed meanwhile is dropped on restore; the next payment opens a new one', async () => {
    const handler = server()
    const path = join(dir, 'closed.json')
    const first = process_(handler, path)
    expect((await first.client.fetch(url)).status).toBe(200)
    const { sessionId, preimage } = readSaved(path)[origin]!
    first.store.close()
    // Closed behind the client's back (as an idle close would).
    const fresh = Challenge.parseAll((await handler(new Request(url))).headers.get('www-authenticate')!)[0]!
    const authorization = Credential.format({
      challenge: fresh,
      payload: { action: 'close', sessionId, preimage },
    } as never)
    expect((await handler(new Request(url, { headers: { authorization } }))).status).toBe(200)

    const second = process_(handler, path)
    expect(await second.sessions.restore()).toEqual([])
    expect(readSaved(path)).toEqual({})
    const response = await second.client.fetch(url)
    expect(response.status).toBe(200)
    expect(referenceOf(response)).not.toBe(sessionId)
    expect((await second.sessions.close(url)).status).toBe(200)
    second.store.close()
  })

  it('a session restored with its balance spent is still open (a top-up pays on), never dropped', async () => {
    const handler = server()
    const path = join(dir, 'exhausted.json')
    const first = process_(handler, path)
    for (let i = 0; i < 10; i++) expect((await first.client.fetch(url)).status).toBe(200)
    const { sessionId } = readSaved(path)[origin]!
    await expect.poll(() => readSaved(path)[origin]?.spent).toBe('10')
    first.store.close()
    const second = process_(handler, path)
    expect((await second.sessions.restore()).map((state) => state.sessionId)).toEqual([sessionId])
    const response = await second.client.fetch(url)
    expect(response.status).toBe(200)
    expect(referenceOf(response)).toBe(sessionId)
    expect(second.sessions.sessions.get(origin)?.deposit).toBe(20n)
    expect((await second.sessions.close(url)).status).toBe(200)
    second.store.close()
  })

  it('skips a tampered record, naming it by its key (never the preimage), and pays nothing over it', async () => {
    const handler = server()
    const path = join(dir, 'tampered.json')
    const first = process_(handler, path)
    expect((await first.client.fetch(url)).status).toBe(200)
    first.store.close()
    const contents = JSON.parse(readFileSync(path, 'utf8')) as { sessions: Record<string, Saved> }
    const record = contents.sessions[origin]!
    const other = 'ab'.repeat(32)
    for (const [tampered, pattern] of [
      [{ ...record, spent: '-1' }, /is not a valid record \(spent\)/],
      [{ ...record, preimage: other }, /holds a preimage that is not its session's/],
      [{ ...record, preimage: 42 }, /is not a valid record \(preimage\)/],
      // Its credentials would go to another host.
      [
        { ...record, url: 'https://elsewhere.test/r' },
        /is not a valid record \(url: not of its key's origin/,
      ],
      [{ ...record, url: 'file:///etc/passwd' }, /is not a valid record \(url: not of its key's origin/],
    ] as const) {
      const text = JSON.stringify({ v: 1, sessions: { [origin]: tampered } })
      writeFileSync(path, text, { mode: 0o600 })
      let sent = 0
      const second = process_(handler, path, () => {
        sent++
        return undefined
      })
      // Skipped (named by its key, what is wrong by its fields), not presented: nothing sent.
      expect(await second.sessions.restore()).toEqual([])
      const [skipped, ...more] = second.sessions.skipped()
      expect(more).toEqual([])
      expect(skipped).toMatchObject({ key: origin, reason: 'invalid' })
      expect(skipped!.problem).toMatch(pattern)
      expect(JSON.stringify(skipped)).not.toContain(record.preimage)
      expect(JSON.stringify(skipped)).not.toContain(other)
      expect(sent).toBe(0)
      // A payment to its server would save a new session over it: refused, nothing paid or sent but the
      // unauthenticated request, and the record left as it was.
      const error = await second.client.fetch(url).catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(ConfigurationError)
      expect((error as Error).message).toContain(JSON.stringify(origin))
      expect((error as Error).message).not.toContain(record.preimage)
      expect((error as Error).message).not.toContain(other)
      expect(sent).toBe(1)
      expect(readFileSync(path, 'utf8')).toBe(text)
      second.store.close()
    }
  })

  it('refuses a second store on a locked file, and a sessionStore that is not one', async () => {
    const handler = server()
    const path = join(dir, 'locked.json')
    const first = process_(handler, path)
    expect((await first.client.fetch(url)).status).toBe(200)
    const second = process_(handler, path)
    await expect(second.sessions.restore()).rejects.toThrow(
      /fileSessionStore: .* is in use by another session store of this process/,
    )
    expect(second.sessions.sessions.size).toBe(0)
    first.store.close()
    expect(await second.sessions.restore()).toHaveLength(1)
    expect((await second.sessions.close(url)).status).toBe(200)
    second.store.close()
    for (const sessionStore of [null, {}, { load() {}, save() {} }, 'file.json'])
      expect(() =>
        sessionClient({ lnd: lndFor(network.info.nodes.payer), sessionStore: sessionStore as never }),
      ).toThrow(
        new ConfigurationError(
          'lightning session: sessionStore must be an object with load, save and delete functions (e.g. fileSessionStore(path) from @mppkit/method-lightning/client/node)',
        ),
      )
  })

  it('restore never presents a close credential: a server that does not record its challenges as consumed keeps the session open', async () => {
    // Its consumed markers and replay records are forgotten (evicted, another instance's): a close
    // credential on the session's last challenge would be accepted and close the session.
    const inner = new MemoryStore()
    const forgotten = (key: string) => key.includes('consumed:') || key.includes('replay:')
    const store = new Proxy(inner, {
      get(target, property) {
        if (property === 'putIfAbsent')
          return async (key: string, value: string, ttl: number) =>
            forgotten(key) ? true : target.putIfAbsent(key, value, ttl)
        if (property === 'get') return async (key: string) => (forgotten(key) ? undefined : target.get(key))
        const value = Reflect.get(target, property, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const handler = server(store)
    const path = join(dir, 'forgetful.json')
    const first = process_(handler, path)
    expect((await first.client.fetch(url)).status).toBe(200)
    const { sessionId } = readSaved(path)[origin]!
    first.store.close()
    const actions: (string | undefined)[] = []
    const second = process_(handler, path, (request) => {
      actions.push(actionOf(request))
      return undefined
    })
    expect((await second.sessions.restore()).map((state) => state.sessionId)).toEqual([sessionId])
    expect(actions).not.toContain('close')
    const response = await second.client.fetch(url)
    expect(response.status).toBe(200)
    expect(referenceOf(response)).toBe(sessionId)
    expect((await second.sessions.close(url)).status).toBe(200)
    second.store.close()
  })

  it('an open that got through but whose answer was lost, restored after its challenge expired: the session is kept, not reported lost', async () => {
    let skew = 0
    const clock = () => Date.now() + skew
    const handler = server(new MemoryStore(), clock)
    const path = join(dir, 'through.json')
    // The open reaches the server; its answer never comes back.
    const first = process_(handler, path, async (request) => {
      if (actionOf(request) !== 'open') return undefined
      await handler(request)
      throw new TypeError('fetch failed')
    })
    await expect(first.client.fetch(url)).rejects.toThrow()
    const saved = readSaved(path)[origin]!
    expect(saved.opened).toBe(false)
    first.store.close()
    skew = 7_200_000
    const second = process_(handler, path, undefined, clock)
    expect((await second.sessions.restore()).map((state) => state.sessionId)).toEqual([saved.sessionId])
    expect(Object.keys(readSaved(path))).toEqual([origin])
    const response = await second.client.fetch(url)
    expect(response.status).toBe(200)
    expect(referenceOf(response)).toBe(saved.sessionId)
    expect((await second.sessions.close(url)).status).toBe(200)
    second.store.close()
  })

  it('a sessionStore failing mid-run is told to onStoreError; a bearer request it cannot save sends nothing, a paid deposit is still opened', async () => {
    const handler = server()
    const path = join(dir, 'broken.json')
    const file = fileSessionStore(path)
    let broken = true
    const sessionStore = {
      load: () => file.load(),
      save: async (key: string, value: never) => {
        if (broken) throw new Error('disk full')
        return file.save(key, value)
      },
      delete: (key: string) => file.delete(key),
    }
    const errors: { operation: string; key: string; sessionId: string }[] = []
    const sent: (string | undefined)[] = []
    const { client, sessions } = process_(
      handler,
      join(dir, 'unused.json'),
      (request) => {
        sent.push(actionOf(request))
        return undefined
      },
      undefined,
      { sessionStore, onStoreError: (_error, info) => errors.push(info) },
    )
    // The deposit is paid before its save: the open is sent all the same, the failure told.
    const opened = await client.fetch(url)
    expect(opened.status).toBe(200)
    const sessionId = referenceOf(opened)
    expect(errors[0]).toEqual({ operation: 'save', key: origin, sessionId })
    // A bearer request moves no money: unsaved, it is not sent.
    errors.length = 0
    sent.length = 0
    const error = await client.fetch(url).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).code).toBe('session-store-failed')
    expect(sent).toEqual([undefined])
    expect(errors).toEqual([{ operation: 'save', key: origin, sessionId }])
    expect(sessions.sessions.get(origin)?.spent).toBe(1n)
    broken = false
    expect((await client.fetch(url)).status).toBe(200)
    expect(readSaved(path)[origin]).toMatchObject({ sessionId, spent: '2' })
    expect((await sessions.close(url)).status).toBe(200)
    file.close()
  })

  it('a saved open that cannot be sent again: neither its pending reason nor the payment held back quote the preimage, not even in a cause', async () => {
    const handler = server()
    const path = join(dir, 'leak.json')
    const first = process_(handler, path, (request) => {
      if (actionOf(request) === 'open') throw new TypeError('fetch failed')
      return undefined
    })
    await expect(first.client.fetch(url)).rejects.toThrow()
    const saved = readSaved(path)[origin]!
    first.store.close()
    // A fetch whose failure quotes the request's headers (as undici's header errors do).
    const second = process_(handler, path, (request) => {
      if (actionOf(request) === 'open')
        throw new TypeError(`invalid header ${request.headers.get('authorization')}`)
      return undefined
    })
    // The restore goes on (the open stays pending); what it says of the failure quotes no header.
    expect(await second.sessions.restore()).toEqual([])
    const pending = second.sessions.pending.get(origin)
    expect(pending).toMatchObject({
      sessionId: saved.sessionId,
      reason: expect.stringContaining('TypeError'),
    })
    expect(
      JSON.stringify(pending, (_key, value) => (typeof value === 'bigint' ? String(value) : value)),
    ).not.toMatch(new RegExp(`${saved.preimage}|Payment [A-Za-z0-9_-]{40,}`))
    // Nor does the payment it holds back.
    const error = await second.client.fetch(url).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).code).toBe('session-open-pending')
    const chain: string[] = []
    for (let e: unknown = error; e instanceof Error; e = e.cause) chain.push(e.message, String(e.stack))
    expect(chain.join('\n')).toContain(saved.sessionId)
    expect(chain.join('\n')).not.toContain(saved.preimage)
    expect(chain.join('\n')).not.toMatch(/Payment [A-Za-z0-9_-]{40,}/)
    second.store.close()
  })

  it('a sessionStore whose load fails with the text it read: told to onStoreError, never in the error thrown', async () => {
    const preimage = 'cd'.repeat(32)
    let told: unknown
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      sessionStore: {
        load: async () => JSON.parse(`{"x":{"preimage":${preimage}}}`),
        save: async () => {},
        delete: async () => {},
      },
      onStoreError: (error, info) => {
        told = { error, info }
      },
    })
    const error = await sessions.restore().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    const chain: string[] = []
    for (let e: unknown = error; e instanceof Error; e = e.cause) chain.push(e.message, String(e.stack))
    expect(chain.join('\n')).not.toMatch(/cdcdcdcd/)
    expect(told).toMatchObject({ error: expect.any(SyntaxError), info: { operation: 'load' } })
  })

  it("close(url) on a server that replays a consumed challenge's original response by its id: a replayed 200 is not taken for the close", async () => {
    const handler = server()
    const path = join(dir, 'replaying.json')
    // Answers any credential on a challenge it has answered before with that first response (the spec's
    // idempotency keyed by challenge id), as a stand-in in front of the real server.
    const answered = new Map<string, Response>()
    const { client, sessions, store } = process_(handler, path, async (request) => {
      const authorization = request.headers.get('authorization')
      if (!authorization) return undefined
      const id = Credential.parse(authorization).challenge.id
      const first = answered.get(id)
      if (first) return first.clone()
      const response = await handler(request)
      answered.set(id, response.clone())
      return response
    })
    expect((await client.fetch(url)).status).toBe(200)
    const { sessionId } = readSaved(path)[origin]!
    const closed = await sessions.close(url)
    expect(closed.status).toBe(200)
    expect(await closed.json()).toMatchObject({ status: 'closed', refundSats: 9 })
    expect(sessions.sessions.size).toBe(0)
    expect(readSaved(path)).toEqual({})
    // Closed at the server indeed: its id refused as closed.
    const fresh = Challenge.parseAll((await handler(new Request(url))).headers.get('www-authenticate')!)[0]!
    const bearer = Credential.format({
      challenge: fresh,
      payload: { action: 'bearer', sessionId, preimage: 'ab'.repeat(32) },
    } as never)
    const refused = await handler(new Request(url, { headers: { authorization: bearer } }))
    expect(refused.status).toBe(402)
    expect(((await refused.json()) as { type: string }).type).toMatch(/\/session-closed$/)
    store.close()
  })
})
