import { Challenge, Credential, Receipt } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { RedisStore } from '@mppkit/store-redis'
import { getChannelBalance } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { sessionClient } from '../src/client/index.js'
import { type SessionOptions, sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

// Two servers, each with its own method instance and its own Redis connection, sharing one Redis: what
// two server processes behind a load balancer see.
const reason = await redisUnavailableReason()
if (reason) console.warn(`[skip] lightning session on Redis: ${reason}`)

const realm = 'lightning.test'
const secret = 'lightning-session-redis-secret-0123456789'
const url = 'https://lightning.test/generate'

let network: Lightning
const stores: RedisStore[] = []
beforeAll(async () => {
  if (!reason) network = await startLightning()
})
afterAll(async () => {
  for (const store of stores) await store.close()
  await network?.stop()
})

/** Two servers on one Redis key prefix. */
function pair(options: Partial<Omit<SessionOptions, 'lnd'>> = {}) {
  const keyPrefix = `mppkit-test:lightning:${Math.random().toString(36).slice(2, 10)}:`
  return [0, 1].map(() => {
    const store = new RedisStore({ url: redisUrl, keyPrefix })
    stores.push(store)
    const server = createServer({
      realm,
      secrets: [secret],
      store,
      methods: [sessionServer({ lnd: lndFor(network.info.nodes.payee), depositSats: 50, ...options })],
    })
    const handler = server.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
      () => Response.json({ ok: true }),
    )
    return { server, handler }
  })
}

const payerBalance = async () =>
  (await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance

describe.skipIf(!!reason)('sessionServer on a shared Redis', () => {
  it('never spends more than the deposit under 200 concurrent bearer requests on two servers', async () => {
    const [a, b] = pair()
    const fetchA = ((input: RequestInfo | URL, init?: RequestInit) =>
      a!.handler(new Request(input, init))) as typeof fetch
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      fetch: fetchA,
    })
    const client = createClient({ methods: [sessions], fetch: fetchA })
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    const servers = [a!, b!]
    const challenges = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const response = await servers[i % 2]!.handler(new Request(url))
        return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
      }),
    )
    const responses = await Promise.all(
      challenges.map((challenge, i) =>
        servers[(i + 1) % 2]!.handler(
          new Request(url, {
            headers: {
              authorization: Credential.format({
                challenge,
                payload: { action: 'bearer', sessionId: state.sessionId, preimage: state.preimage },
              }),
            },
          }),
        ),
      ),
    )
    const statuses = responses.map((r) => r.status)
    // 50 sat deposited, 1 spent by the open: exactly 49 bearer requests are served.
    expect(statuses.filter((s) => s === 200)).toHaveLength(49)
    expect(statuses.filter((s) => s === 402)).toHaveLength(151)
    const refused = await responses.find((r) => r.status === 402)!.json()
    expect(refused.type).toBe('https://paymentauth.org/problems/lightning/insufficient-balance')
    const closed = await sessions.close(url)
    expect(await closed.json()).toEqual({ status: 'closed', refundSats: 0, refundStatus: 'skipped' })
  }, 120_000)

  it('closes an idle session seen by both servers exactly once, with one refund', async () => {
    const failures: unknown[] = []
    const [a, b] = pair({
      idleTimeoutSeconds: 1,
      idleCheckIntervalMs: 50,
      onRefundFailure: (f) => failures.push(f),
    })
    const fetchA = ((input: RequestInfo | URL, init?: RequestInit) =>
      a!.handler(new Request(input, init))) as typeof fetch
    const fetchB = ((input: RequestInfo | URL, init?: RequestInit) =>
      b!.handler(new Request(input, init))) as typeof fetch
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      fetch: fetchA,
    })
    const before = await payerBalance()
    const opened = await createClient({ methods: [sessions], fetch: fetchA }).fetch(url)
    expect(opened.status).toBe(200)
    const used = await createClient({ methods: [sessions], fetch: fetchB }).fetch(url)
    expect(used.status).toBe(200)
    expect(Receipt.parse(used.headers.get('payment-receipt')!).reference).toBe(
      Receipt.parse(opened.headers.get('payment-receipt')!).reference,
    )
    await new Promise((resolve) => setTimeout(resolve, 2_500))
    // Deposit 50, spent 2: one refund of 48, not two.
    expect(await payerBalance()).toBe(before - 2)
    expect(failures).toEqual([])
    await a!.server.close()
    await b!.server.close()
  }, 60_000)
})
