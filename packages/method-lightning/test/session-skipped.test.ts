// A restarted Lightning session client whose store holds records it cannot use (broken JSON text, a
// wrong shape, an unknown version, a preimage that is not its session's, a session of another network,
// lost records that do not parse) skips them: they are named in `skipped()` (key and fields, never a
// value: they hold preimages), left in the store byte for byte, never saved over, and they stop neither
// the restore, nor the payments to other servers, nor `closeAll()` or `lost()`. On the LND simulator,
// through the core's paying client and real session servers, with the session file of `fileSessionStore`.

import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Credential, MemoryStore, Receipt } from '@mppkit/core'
import { ConfigurationError, create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { getChannelBalance, getInvoices } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { type SavedSession, type SessionStore, sessionClient } from '../src/client/index.js'
import { fileSessionStore } from '../src/client/node.js'
import { sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

const a = 'https://a.lightning.test'
const b = 'https://b.lightning.test'
const c = 'https://c.lightning.test'
const e = 'https://e.lightning.test'
const f = 'https://f.lightning.test'
const g = 'https://g.lightning.test'

let network: Lightning
let dir: string
beforeAll(async () => {
  network = await startLightning()
  dir = mkdtempSync(join(tmpdir(), 'mppkit-ln-skipped-'))
})
afterAll(async () => {
  await network?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** A session server (deposit 10 sat, 1 sat a request) whose state lives across the client's restarts. */
function server(realm: string) {
  const method = sessionServer({ depositSats: 10, lnd: lndFor(network.info.nodes.payee) })
  const core = createServer({
    realm,
    secrets: [`lightning-session-skipped-${realm}-0123456789`],
    methods: [method],
    store: new MemoryStore(),
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
 * The servers by origin; `requests` counts what reached each (unauthenticated or not); an origin in
 * `refuseOpens` has its open credentials answered 503 before its server sees them (the deposit paid,
 * the open never taken).
 */
function net(handlers: Record<string, (request: Request) => Promise<Response>>) {
  const requests = new Map<string, number>()
  const refuseOpens = new Set<string>()
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const { origin } = new URL(request.url)
    requests.set(origin, (requests.get(origin) ?? 0) + 1)
    if (refuseOpens.has(origin) && actionOf(request) === 'open')
      return new Response('opening is down', { status: 503 })
    return handlers[origin]!(request)
  }) as typeof globalThis.fetch
  return { fetch, refuseOpens, requests: (origin: string) => requests.get(origin) ?? 0 }
}

/** A client (one process's) on the session file `path`; `storeErrors` gets what `onStoreError` is told. */
function process_(fetch: typeof globalThis.fetch, path: string, storeErrors: unknown[] = []) {
  const store = fileSessionStore(path)
  const sessions = sessionClient({
    lnd: lndFor(network.info.nodes.payer),
    network: 'regtest',
    fetch,
    sessionStore: store,
    onStoreError: (error) => storeErrors.push(error),
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
const hash = (hex: string) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')
const secret = () => randomBytes(32).toString('hex')
const fileOf = (path: string) =>
  JSON.parse(readFileSync(path, 'utf8')) as { sessions: Record<string, unknown> }
/** The file as `fileSessionStore` writes these records. */
const written = (sessions: Record<string, unknown>) => `${JSON.stringify({ v: 1, sessions }, null, 2)}\n`
const referenceOf = (response: Response) => Receipt.parse(response.headers.get('payment-receipt')!).reference

describe('lightning/session: saved records the client cannot use are skipped (sessionStore)', () => {
  it('restore() names them in skipped(), the valid session is restored, paid on, closed and refunded; payments to other servers go on, none over a skipped record; the bad records stay byte for byte', async () => {
    const handlers = {
      [a]: server('a.test'),
      [b]: server('b.test'),
      [e]: server('e.test'),
      [f]: server('f.test'),
    }
    const net_ = net(handlers)
    const path = join(dir, 'skipped.json')

    // The first run: a session with A (10 sat deposit, 1 spent), kept open in the file.
    const first = process_(net_.fetch, path)
    const opened = await first.client.fetch(`${a}/generate`)
    expect(opened.status).toBe(200)
    const sessionA = referenceOf(opened)
    await expect.poll(() => (fileOf(path).sessions[a] as SavedSession | undefined)?.opened).toBe(true)
    first.store.close()
    const valid = fileOf(path).sessions[a] as SavedSession

    // Beside it, as a crash, an old or newer version, another network's client or a hand edit could
    // leave them, each holding a preimage: never to be printed.
    const secrets = Array.from({ length: 7 }, secret)
    const [forB, forC, forE, forTool, forLost, forTopUp, forValidLost] = secrets as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ]
    const like = (preimage: string, changes: Partial<SavedSession> | Record<string, unknown>) => ({
      ...valid,
      sessionId: hash(preimage),
      preimage,
      ...changes,
    })
    const validLost = like(forValidLost, { url: `${g}/generate`, realm: 'g.test', opened: false })
    const bad: Record<string, unknown> = {
      [b]: `{"v":1,"network":"regtest","sessionId":"${hash(forB)}","preimage":"${forB}`,
      [c]: like(forC, { url: `${c}/generate`, spent: 'none', opened: 'yes' }),
      'https://d.lightning.test': like(secret(), { url: 'https://d.lightning.test/x', v: 2 }),
      [e]: like(forE, { url: `${e}/generate`, realm: 'e.test', network: 'mainnet' }),
      'realm:tool.test': like(forTool, { url: 'tool:generate', realm: 'tool.test', preimage: forC }),
      [`lost:${hash(forLost)}`]: like(forLost, { deposit: 'ten' }),
      [`lost:${sessionA}:topup:${hash(forTopUp)}`]: `{"v":1,"kind":"topUp","preimage":"${forTopUp}`,
    }
    const others = { ...bad, [`lost:${validLost.sessionId}`]: validLost }
    writeFileSync(path, written({ [a]: valid, ...others }), { mode: 0o600 })

    const storeErrors: unknown[] = []
    const second = process_(net_.fetch, path, storeErrors)
    const restored = await second.sessions.restore()
    expect(restored.map((state) => state.sessionId)).toEqual([sessionA])
    const skipped = second.sessions.skipped()
    expect(skipped).toEqual([
      { key: b, reason: 'invalid', problem: 'is not a valid record (record)', origin: b },
      { key: c, reason: 'invalid', problem: 'is not a valid record (spent, opened)', origin: c },
      {
        key: 'https://d.lightning.test',
        reason: 'invalid',
        problem: 'is a record of version 2, which this client does not read (it reads version 1)',
        origin: 'https://d.lightning.test',
      },
      {
        key: e,
        reason: 'network',
        problem: 'is a session of network mainnet, not of regtest, which this client pays on',
        sessionId: hash(forE),
        network: 'mainnet',
        origin: e,
      },
      {
        key: 'realm:tool.test',
        reason: 'invalid',
        problem: "holds a preimage that is not its session's (preimage, sessionId)",
      },
      {
        key: `lost:${hash(forLost)}`,
        reason: 'invalid',
        problem: 'is not a valid record (deposit)',
        origin: a,
      },
      {
        key: `lost:${sessionA}:topup:${hash(forTopUp)}`,
        reason: 'invalid',
        problem: 'is not a valid lost top-up (record)',
      },
    ])
    // Nothing was sent to the servers of the records skipped.
    for (const origin of [b, c, e]) expect(net_.requests(origin)).toBe(0)

    // lost() lists the valid lost record; the bad ones stay named.
    expect(await second.sessions.lost()).toEqual([validLost])
    expect(second.sessions.skipped()).toEqual(skipped)

    // A payment to the server of a skipped record would save a new session over it: refused before
    // anything is paid (only the unauthenticated request went out).
    const [balance, invoices] = [await payerBalance(), await paidInvoices()]
    const refusedB = await second.client.fetch(`${b}/generate`).catch((error: unknown) => error)
    expect(refusedB).toBeInstanceOf(ConfigurationError)
    expect((refusedB as Error).message).toBe(
      `lightning session: saved session "${b}" is not a valid record (record): a new session for this server would be saved over it; nothing was paid (fix or remove it)`,
    )
    const refusedE = await second.client.fetch(`${e}/generate`).catch((error: unknown) => error)
    expect(refusedE).toBeInstanceOf(ConfigurationError)
    expect((refusedE as Error).message).toBe(
      `lightning session: saved session "${e}" is a session of network mainnet, not of regtest, which this client pays on: a new session for this server would be saved over it; nothing was paid (a client of network mainnet closes it)`,
    )
    expect([net_.requests(b), net_.requests(e)]).toEqual([1, 1])
    expect(await payerBalance()).toBe(balance)
    expect(await paidInvoices()).toBe(invoices)

    // Other servers are paid: A on its restored session (no deposit), F on a new one (10 sat).
    const paidA = await second.client.fetch(`${a}/generate`)
    expect(paidA.status).toBe(200)
    expect(referenceOf(paidA)).toBe(sessionA)
    const paidF = await second.client.fetch(`${f}/generate`)
    expect(paidF.status).toBe(200)
    expect(await paidInvoices()).toBe(invoices + 1)
    expect(balance - (await payerBalance())).toBe(10)

    // closeAll closes both, each refunded to its return invoice on the payer's node: A 10 - 2, F 10 - 1.
    const beforeClose = await payerBalance()
    const results = await second.sessions.closeAll()
    expect(results.map(({ sessionId, closed }) => [sessionId, closed])).toEqual([
      [sessionA, true],
      [referenceOf(paidF), true],
    ])
    expect(await results[0]!.response!.json()).toMatchObject({ status: 'closed', refundSats: 8 })
    expect(await results[1]!.response!.json()).toMatchObject({ status: 'closed', refundSats: 9 })
    await expect.poll(payerBalance).toBe(beforeClose + 17)
    expect(second.sessions.sessions.size).toBe(0)
    second.store.close()

    // The closed sessions left the file; every other record is there as it was, byte for byte.
    expect(readFileSync(path, 'utf8')).toBe(written(others))
    // No store failure; no preimage in anything the client said.
    expect(storeErrors).toEqual([])
    const said = JSON.stringify(skipped) + (refusedB as Error).message + (refusedE as Error).message
    for (const preimage of [...secrets, valid.preimage]) expect(said).not.toContain(preimage)
  })

  it('a pending open whose lost:<sessionId> key holds a skipped record is not given up over it', async () => {
    const net_ = net({ [g]: server('g.test') })
    const path = join(dir, 'lost-key.json')
    const first = process_(net_.fetch, path)
    net_.refuseOpens.add(g)
    // Its deposit paid, its open answered 503 (before its server saw it): saved, unopened.
    expect((await first.client.fetch(`${g}/generate`)).status).toBe(503)
    const unopened = fileOf(path).sessions[g] as SavedSession
    expect(unopened.opened).toBe(false)
    first.store.close()

    const lostKey = `lost:${unopened.sessionId}`
    const others = { [lostKey]: { ...unopened, v: 3 } }
    writeFileSync(path, written({ [g]: unopened, ...others }), { mode: 0o600 })
    const storeErrors: unknown[] = []
    const second = process_(net_.fetch, path, storeErrors)
    expect(await second.sessions.restore()).toEqual([])
    expect([...second.sessions.pending.keys()]).toEqual([g])
    expect(second.sessions.skipped().map(({ key, problem }) => [key, problem])).toEqual([
      [lostKey, 'is a record of version 3, which this client does not read (it reads version 1)'],
    ])
    const error = await second.sessions.abandonPending(unopened.sessionId).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).code).toBe('session-store-failed')
    expect(storeErrors).toHaveLength(1)
    expect(storeErrors[0]).toBeInstanceOf(ConfigurationError)
    expect((storeErrors[0] as Error).message).toBe(
      `lightning session: saved record "${lostKey}" is a record of version 3, which this client does not read (it reads version 1): it was skipped and is never saved over (fix or remove it)`,
    )
    // Still pending, both records as they were.
    expect(second.sessions.pending.has(g)).toBe(true)
    second.store.close()
    expect(readFileSync(path, 'utf8')).toBe(written({ [g]: unopened, ...others }))
  })

  it('a store that cannot be read still rejects restore(), skipping nothing; read again by the next call', async () => {
    let readable = false
    const storeErrors: unknown[] = []
    const store: SessionStore = {
      load: async () => {
        if (!readable) throw new SyntaxError(`Unexpected token in JSON at "${secret()}"`)
        return { [b]: 'broken' } as never
      },
      save: async () => {},
      delete: async () => {},
    }
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      sessionStore: store,
      onStoreError: (error) => storeErrors.push(error),
    })
    const error = await sessions.restore().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as PaymentFailedError).code).toBe('session-store-failed')
    expect(sessions.skipped()).toEqual([])
    expect(storeErrors).toHaveLength(1)
    readable = true
    expect(await sessions.restore()).toEqual([])
    expect(sessions.skipped()).toEqual([
      { key: b, reason: 'invalid', problem: 'is not a valid record (record)', origin: b },
    ])
  })
})
