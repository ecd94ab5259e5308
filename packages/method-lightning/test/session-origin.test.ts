import { Challenge, Credential, MemoryStore, type Store } from '@mppkit/core'
import { create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { getChannelBalance } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { sessionClient } from '../src/client/index.js'
import { session } from '../src/Methods.js'
import { sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

// The session client keeps one session per server origin, whatever realm the server's challenges name:
// a server naming a new realm on every 402 must not get a deposit per realm (past `maxDeposit`), and two
// origins naming the same realm must not share a session (nor see each other's preimage).

const secret = 'lightning-session-origin-test-secret-0123'
const url = 'https://lightning.test/generate'
const route = { offers: [{ method: 'lightning', intent: 'session' as const, request: { amount: '1' } }] }

let network: Lightning
const servers: Array<{ close(): Promise<void> }> = []
beforeAll(async () => {
  network = await startLightning()
})
afterAll(async () => {
  for (const server of servers) await server.close()
  await network?.stop()
})

const payerBalance = async () =>
  (await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance

/**
 * Servers of realms `realm-0`, `realm-1`, … sharing one Store (one operator's servers, or one that renames
 * its realm): an unauthenticated request gets the challenge of the realm `pick()` names, a credential goes
 * to the server of its challenge's realm. `opens` lists the realm of every `open` presented, and `seen`
 * the session ids each origin was shown.
 */
function realms(count: number, pick: () => number, store: Store = new MemoryStore()) {
  const handlers = Array.from({ length: count }, (_, i) => {
    const server = createServer({
      realm: `realm-${i}`,
      secrets: [secret],
      store,
      methods: [sessionServer({ lnd: lndFor(network.info.nodes.payee), depositSats: 10 })],
    })
    servers.push(server)
    return server.protect(route, () => Response.json({ ok: true }))
  })
  const opens: string[] = []
  const seen = new Map<string, Set<string>>()
  const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const header = request.headers.get('authorization')
    if (!header) return handlers[pick() % count]!(request)
    const { challenge, payload } = Credential.parse(header)
    const { action, sessionId } = payload as { action: string; sessionId?: string }
    if (action === 'open') opens.push(challenge.realm)
    const origin = new URL(request.url).origin
    if (sessionId !== undefined) seen.set(origin, (seen.get(origin) ?? new Set()).add(sessionId))
    return handlers[Number(challenge.realm.slice('realm-'.length))]!(request)
  }) as typeof globalThis.fetch
  const challenge = async (realm: number) =>
    Challenge.parseAll((await handlers[realm]!(new Request(url))).headers.get('www-authenticate')!)[0]!
  return { fetch, opens, seen, challenge }
}

const clientOf = (fetch: typeof globalThis.fetch, maxDeposit = 10n) => {
  const sessions = sessionClient({ lnd: lndFor(network.info.nodes.payer), network: 'regtest', fetch })
  const client = createClient({
    methods: [sessions],
    fetch,
    policy: { maxDeposit: { sat: maxDeposit }, budget: { sat: 1_000n } },
  })
  return { sessions, client }
}

describe('sessionClient keeps one session per server origin', () => {
  it('pays one deposit to a server naming a new realm on every 402, within maxDeposit', async () => {
    let next = 0
    const s = realms(5, () => next++)
    const { sessions, client } = clientOf(s.fetch)
    const before = await payerBalance()
    expect((await client.fetch(url)).status).toBe(200)
    // Every later 402 names another realm of the same origin: refused, nothing paid.
    for (let i = 0; i < 4; i++) {
      const refused = client.fetch(url)
      await expect(refused).rejects.toBeInstanceOf(PaymentFailedError)
      await expect(refused).rejects.toThrow(/open session in realm "realm-0"/)
    }
    expect(s.opens).toEqual(['realm-0'])
    expect(before - (await payerBalance())).toBe(10)
    expect([...sessions.sessions.keys()]).toEqual(['https://lightning.test'])
    expect([...sessions.sessions.values()][0]).toMatchObject({ realm: 'realm-0', deposit: 10n, spent: 1n })
    // Only what was paid is booked: the one deposit (its requests are paid from it); the refused
    // requests booked nothing.
    expect(client.ledger.spent('sat')).toBe(10n)
  })

  it('pays no top-up into another realm, and opens in the new realm once the session is closed', async () => {
    let current = 0
    const s = realms(2, () => current)
    // A limit the top-up would fit in: only the realm refuses it.
    const { sessions, client } = clientOf(s.fetch, 20n)
    expect((await client.fetch(url)).status).toBe(200)
    const before = await payerBalance()
    current = 1
    await expect(sessions.topUp(url)).rejects.toThrow(/now names realm "realm-1"/)
    expect(await payerBalance()).toBe(before)
    expect([...sessions.sessions.values()][0]!.deposit).toBe(10n)
    // A close pays nothing: it ends the session (refunding deposit - spent), and the origin is free again.
    const closed = await sessions.close(url)
    expect(closed.status).toBe(200)
    expect(await closed.json()).toMatchObject({ status: 'closed', refundSats: 9 })
    expect(sessions.sessions.size).toBe(0)
    expect((await client.fetch(url)).status).toBe(200)
    expect(s.opens).toEqual(['realm-0', 'realm-1'])
    expect([...sessions.sessions.values()][0]).toMatchObject({ realm: 'realm-1' })
  })

  it('opens a session per origin when origins name the same realm, never showing one the other’s', async () => {
    const s = realms(1, () => 0)
    const { sessions, client } = clientOf(s.fetch)
    for (const origin of ['https://a.test', 'https://b.test', 'https://a.test', 'https://b.test'])
      expect((await client.fetch(`${origin}/generate`)).status).toBe(200)
    expect(s.opens).toEqual(['realm-0', 'realm-0'])
    expect([...sessions.sessions.keys()]).toEqual(['https://a.test', 'https://b.test'])
    const [a, b] = [s.seen.get('https://a.test')!, s.seen.get('https://b.test')!]
    expect([a.size, b.size]).toEqual([1, 1])
    expect([...a][0]).not.toBe([...b][0])
    for (const state of sessions.sessions.values()) expect(state).toMatchObject({ deposit: 10n, spent: 2n })
  })

  it('keys by realm when driven directly with a url that has no origin', async () => {
    const s = realms(2, () => 0)
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      fetch: s.fetch,
    })
    const pay = async (realm: number) => {
      const challenge = await s.challenge(realm)
      const request = session.request.parse(challenge.request)
      return (await sessions.createPayload({ challenge, request, url: 'generate' })).payload
    }
    expect(await pay(0)).toMatchObject({ action: 'open' })
    expect(await pay(1)).toMatchObject({ action: 'open' })
    expect(await pay(0)).toMatchObject({ action: 'bearer' })
    expect([...sessions.sessions.keys()]).toEqual(['realm:realm-0', 'realm:realm-1'])
  })
})
