// A Lightning session client whose session the server closed (its idle close, refunding to the return
// invoice) or lost while the client runs: the next request's bearer is refused 402 `session-closed` /
// `session-not-found`, and the same `fetch` drops the session and pays the resource's fresh challenge (a
// new deposit, within the policy). On the LND simulator, through the unmodified `lightning` client, the
// core's paying client and a real session server.

import { Credential, MemoryStore, Receipt } from '@mppkit/core'
import { create as createClient, PolicyError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { getChannelBalance, getInvoices } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import {
  type SavedLostTopUp,
  type SavedSession,
  type SessionStore,
  sessionClient,
} from '../src/client/index.js'
import { type SessionMeter, type SessionOptions, sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

const realm = 'lightning.test'
const secret = 'lightning-session-closed-secret-0123456789'
const url = 'https://lightning.test/generate'
const origin = 'https://lightning.test'

let network: Lightning
beforeAll(async () => {
  network = await startLightning()
})
afterAll(async () => {
  await network?.stop()
})

/** A session server (deposit 10 sat, 1 sat a request). */
function server(options: Partial<SessionOptions> = {}) {
  const method = sessionServer({ depositSats: 10, ...options, lnd: lndFor(network.info.nodes.payee) })
  const core = createServer({ realm, secrets: [secret], methods: [method], store: new MemoryStore() })
  const handler = core.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
    (_request, payment) => {
      void (payment.context as SessionMeter)
      return Response.json({ ok: true })
    },
  )
  return { core, handler }
}

/** A sessionStore in memory that records its deletes. */
function memoryStore() {
  const records = new Map<string, SavedSession | SavedLostTopUp>()
  const deleted: string[] = []
  const store: SessionStore = {
    load: async () => Object.fromEntries(records),
    save: async (key, session) => {
      records.set(key, session)
    },
    delete: async (key) => {
      deleted.push(key)
      records.delete(key)
    },
  }
  return { store, records, deleted }
}

/** A client whose requests go to `target.handler` (swappable), recording each credential's action. */
function client(
  target: { handler: (request: Request) => Promise<Response> },
  budget: bigint,
  store?: SessionStore,
) {
  const actions: string[] = []
  const refusals: string[] = []
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const authorization = request.headers.get('authorization')
    if (authorization) actions.push((Credential.parse(authorization).payload as { action: string }).action)
    const response = await target.handler(request)
    if (authorization && response.status === 402)
      refusals.push(((await response.clone().json()) as { type: string }).type.replace(/^.*\/problems\//, ''))
    return response
  }) as typeof globalThis.fetch
  const sessions = sessionClient({
    lnd: lndFor(network.info.nodes.payer),
    network: 'regtest',
    fetch,
    ...(store ? { sessionStore: store, onStoreError: (error) => expect.fail(String(error)) } : {}),
  })
  const paying = createClient({
    methods: [sessions],
    fetch,
    policy: { maxDeposit: { sat: 100n }, budget: { sat: budget } },
  })
  return { sessions, client: paying, actions, refusals }
}

const payerBalance = async () =>
  (await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance
/** The invoices the payee's node has been paid (the deposits). */
const paidInvoices = async () =>
  (await getInvoices({ lnd: lndFor(network.info.nodes.payee), limit: 1000 })).invoices.filter(
    (invoice) => invoice.is_confirmed,
  ).length
const referenceOf = (response: Response) => Receipt.parse(response.headers.get('payment-receipt')!).reference

describe('lightning/session: a session the server closed or lost while the client runs', () => {
  it('idle-closed by the server: the next fetch opens a new session within the same call', async () => {
    const { core, handler } = server({ idleTimeoutSeconds: 1, idleCheckIntervalMs: 100 })
    const { store, records, deleted } = memoryStore()
    const { sessions, client: paying, actions, refusals } = client({ handler }, 1_000n, store)
    const before = await payerBalance()
    const invoicesBefore = await paidInvoices()
    const first = await paying.fetch(url)
    expect(first.status).toBe(200)
    const closed = referenceOf(first)
    expect(records.get(origin)?.sessionId).toBe(closed)
    // The server's idle close refunds 9 of the 10 sat deposit to the return invoice.
    await expect.poll(payerBalance, { timeout: 5_000, interval: 50 }).toBe(before - 1)

    const second = await paying.fetch(url)
    expect(second.status).toBe(200)
    const opened = referenceOf(second)
    expect(opened).not.toBe(closed)
    expect(actions).toEqual(['open', 'bearer', 'open'])
    expect(refusals).toEqual(['lightning/session-closed'])
    expect(await paidInvoices()).toBe(invoicesBefore + 2)
    expect(sessions.sessions.get(origin)?.sessionId).toBe(opened)
    // The closed session's record was deleted; the store holds the new one only.
    expect(deleted).toEqual([origin])
    expect([...records.values()].map((record) => record.sessionId)).toEqual([opened])
    // And the new session is paid from on the next request.
    expect(referenceOf(await paying.fetch(url))).toBe(opened)
    expect((await sessions.close(url)).status).toBe(200)
    await core.close()
  })

  it('lost by the server, with no budget left for a second deposit: a PolicyError, one bearer, no loop', async () => {
    // 20 sat: the first deposit (10) and its routing fee limit (10), nothing more.
    const target = server()
    const { sessions, client: paying, actions, refusals } = client(target, 20n)
    const invoicesBefore = await paidInvoices()
    expect((await paying.fetch(url)).status).toBe(200)
    // An open moved money (the deposit): its refusal is never paid again, the session never dropped.
    const open = sessions.sessions.get(origin)!.challenge!
    const closedType = 'https://paymentauth.org/problems/lightning/session-closed'
    expect(sessions.retryRefused!({ status: 402, problem: { type: closedType } }, open)).toBe(false)
    expect(sessions.sessions.size).toBe(1)
    // A server that lost its sessions (a new store) answers the bearer 402 `session-not-found`.
    const lost = server()
    target.handler = lost.handler
    const error = await paying.fetch(url).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PolicyError)
    expect(error).toMatchObject({ reason: 'budget' })
    expect(actions).toEqual(['open', 'bearer'])
    expect(refusals).toEqual(['lightning/session-not-found'])
    expect(await paidInvoices()).toBe(invoicesBefore + 1)
    expect(sessions.sessions.size).toBe(0)
    await target.core.close()
    await lost.core.close()
  })
})
