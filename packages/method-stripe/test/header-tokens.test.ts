import { randomUUID } from 'node:crypto'
import { MemoryStore, Receipt, type Store } from '@mppkit/core'
import { Server } from '@mppkit/core/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisStore } from '../../store-redis/src/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { type ChargeOptions, stripe, withHeaderTokens } from '../src/server/index.js'
import { problem, realm, rig, type StripeDevnet, sdk, secret, startStripe, url } from './helpers.js'

// The opt-in header forms (X-Payment-Token, Bearer spt_ + X-Payment-Protocol): the route's price is
// charged, each SPT settles once through the Store (shared across servers), receipts are still sent.

let node: StripeDevnet
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})

const route = { offers: [{ method: 'stripe', request: { amount: '1000' } }] }

function gateway(
  store: Store = new MemoryStore(),
  stripeClient = sdk(node),
  methodOptions: Partial<ChargeOptions> = {},
  serverOptions: { now?: () => number; expiresIn?: number } = {},
) {
  const server = Server.create({
    realm,
    secrets: [secret],
    store,
    ...serverOptions,
    // Short TTLs: the Redis case leaves nothing behind for long in a shared Redis.
    methods: [
      stripe({
        client: stripeClient,
        networkId: node.info.networkId,
        currency: 'usd',
        sptReplayTtlSeconds: 600,
        // No SDK retries: the outage case needs the fault to reach the rail.
        maxNetworkRetries: 0,
        ...methodOptions,
      }),
    ],
  })
  let runs = 0
  const handler = withHeaderTokens({
    server,
    route,
    tokenTtlSeconds: 600,
    handler: () => {
      runs++
      return Response.json({ ok: true })
    },
  })
  return { server, handler, runs: () => runs }
}

async function token(maxAmount = 1000): Promise<string> {
  const issued = await sdk(node).rawRequest('POST', '/v1/shared_payment/issued_tokens', {
    payment_method: 'pm_card_visa',
    usage_limits: { currency: 'usd', max_amount: maxAmount },
    seller_details: { network_business_profile: node.info.networkId },
  })
  return issued.id as string
}

const count = async () => (await sdk(node).paymentIntents.list({ limit: 100 })).data.length

describe('withHeaderTokens', () => {
  it('is off by default: a plain protected route ignores X-Payment-Token', async () => {
    const { handler } = rig(node)
    const before = await count()
    const response = await handler(new Request(url, { headers: { 'x-payment-token': await token() } }))
    expect(response.status).toBe(402)
    expect(await count()).toBe(before)
  })

  it('hints the price beside the 402', async () => {
    const response = await gateway().handler(new Request(url))
    expect(response.status).toBe(402)
    expect(response.headers.get('x-payment-amount')).toBe('1000')
    expect(response.headers.get('x-payment-currency')).toBe('usd')
    expect(response.headers.get('www-authenticate')).toMatch(/^Payment /)
  })

  it('X-Payment-Token settles at the route price with a receipt, once', async () => {
    const g = gateway()
    const spt = await token(5000)
    const response = await g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    expect(response.status, await response.clone().text()).toBe(200)
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    const pi = await sdk(node).paymentIntents.retrieve(receipt.reference)
    expect(pi).toMatchObject({ status: 'succeeded', amount: 1000 })
    const before = await count()
    const again = await g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    expect(again.status).toBe(402)
    expect((await problem(again)).reason).toBe('spt-already-used')
    expect(await count()).toBe(before)
    expect(g.runs()).toBe(1)
  })

  it('settles on a route whose offer binds an externalId, and the receipt carries it', async () => {
    const server = Server.create({
      realm,
      secrets: [secret],
      methods: [stripe({ client: sdk(node), networkId: node.info.networkId, currency: 'usd' })],
    })
    const handler = withHeaderTokens({
      server,
      route: { offers: [{ method: 'stripe', request: { amount: '1000', externalId: 'order_42' } }] },
      handler: () => Response.json({ ok: true }),
    })
    const response = await handler(new Request(url, { headers: { 'x-payment-token': await token() } }))
    expect(response.status, await response.clone().text()).toBe(200)
    expect(Receipt.parse(response.headers.get('payment-receipt')!).externalId).toBe('order_42')
  })

  it('Bearer spt_ needs X-Payment-Protocol: MPP/1.0', async () => {
    const g = gateway()
    const spt = await token()
    const without = await g.handler(new Request(url, { headers: { authorization: `Bearer ${spt}` } }))
    expect(without.status).toBe(402)
    const response = await g.handler(
      new Request(url, { headers: { authorization: `Bearer ${spt}`, 'x-payment-protocol': 'MPP/1.0' } }),
    )
    expect(response.status, await response.clone().text()).toBe(200)
    expect(response.headers.get('payment-receipt')).not.toBeNull()
  })

  it('one Store across two servers: a token settled by one is refused by the other', async () => {
    const store = new MemoryStore()
    const spt = await token()
    expect(
      (await gateway(store).handler(new Request(url, { headers: { 'x-payment-token': spt } }))).status,
    ).toBe(200)
    const before = await count()
    const other = await gateway(store).handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    expect(other.status).toBe(402)
    expect(await count()).toBe(before)
  })

  it('an outage answers 503; the retry with the same token settles through the same PaymentIntent', async () => {
    const g = gateway()
    const spt = await token()
    const before = await count()
    node.injectFault({ kind: 500, when: 'after' })
    const failed = await g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    expect(failed.status).toBe(503)
    expect(failed.headers.get('retry-after')).not.toBeNull()
    const retried = await g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    expect(retried.status, await retried.clone().text()).toBe(200)
    expect(await count()).toBe(before + 1)
  })

  it('with the pre-check, a create whose answer was lost: the retry with the same token is served by that intent', async () => {
    const g = gateway(new MemoryStore(), sdk(node), { precheck: true, timeout: 300 })
    const spt = await token()
    const before = await count()
    // The intent is created and paid at Stripe (the token is spent), and its answer never comes.
    node.injectFault({
      kind: 'timeout',
      when: 'after',
      method: 'POST',
      path: '/v1/payment_intents',
      holdMs: 20_000,
    })
    const failed = await g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    expect(failed.status, await failed.clone().text()).toBe(503)
    expect(failed.headers.get('retry-after')).not.toBeNull()
    const [created] = (await sdk(node).paymentIntents.list({ limit: 1 })).data
    expect(created?.status).toBe('succeeded')
    expect(await count()).toBe(before + 1)
    const retried = await g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    expect(retried.status, await retried.clone().text()).toBe(200)
    expect(Receipt.parse(retried.headers.get('payment-receipt')!).reference).toBe(created?.id)
    expect(g.runs()).toBe(1)
    expect(await count()).toBe(before + 1)
  })

  it('a create whose answer was lost, Stripe out past the challenge expiry: the retry with the same token is served by that intent', async () => {
    // Challenges of one second, on the real clock (the wrapper's and the server's).
    const g = gateway(new MemoryStore(), sdk(node), { timeout: 300 }, { expiresIn: 1 })
    const spt = await token()
    const before = await count()
    node.injectFault({
      kind: 'timeout',
      when: 'after',
      method: 'POST',
      path: '/v1/payment_intents',
      holdMs: 20_000,
    })
    const failed = await g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    expect(failed.status, await failed.clone().text()).toBe(503)
    const [created] = (await sdk(node).paymentIntents.list({ limit: 1 })).data
    expect(created?.status).toBe('succeeded')
    await new Promise((resolve) => setTimeout(resolve, 2_100))
    const retried = await g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    expect(retried.status, await retried.clone().text()).toBe(200)
    expect(Receipt.parse(retried.headers.get('payment-receipt')!).reference).toBe(created?.id)
    expect(g.runs()).toBe(1)
    expect(await count()).toBe(before + 1)
  })

  it('a challenge whose settlement never began, refused as expired: the token pays a fresh one', async () => {
    let clock = Date.now()
    const g = gateway(
      new MemoryStore({ now: () => clock }),
      sdk(node),
      { timeout: 300, precheck: true },
      { now: () => clock },
    )
    const spt = await token()
    const before = await count()
    // The pre-check times out: 503, nothing was created and the token is bound to no challenge.
    node.injectFault({
      kind: 'timeout',
      method: 'GET',
      path: '/v1/shared_payment/granted_tokens/',
      holdMs: 20_000,
    })
    // A request with a body: the fresh challenge binds it, and it is sent once more.
    const send = () =>
      g.handler(new Request(url, { method: 'POST', body: 'the body', headers: { 'x-payment-token': spt } }))
    const failed = await send()
    expect(failed.status, await failed.clone().text()).toBe(503)
    expect(await count()).toBe(before)
    clock += 6 * 60_000
    const retried = await send()
    expect(retried.status, await retried.clone().text()).toBe(200)
    expect(g.runs()).toBe(1)
    expect(await count()).toBe(before + 1)
    const receipt = Receipt.parse(retried.headers.get('payment-receipt')!)
    const pi = await sdk(node).paymentIntents.retrieve(receipt.reference)
    expect(pi.metadata.challenge_id).toBe(receipt.challengeId)
  })

  it('a Store failure after the paid response does not turn it into an error', async () => {
    const store = new MemoryStore()
    const failing: Store = {
      putIfAbsent: (...args) => store.putIfAbsent(...args),
      get: (key) => store.get(key),
      delete: (key) => store.delete(key),
      compareAndSet: (...args) => store.compareAndSet(...args),
      increment: (...args) => store.increment(...args),
      set: (key, value, ttlMs) =>
        value.includes('"state":"settled"')
          ? Promise.reject(new Error('store down'))
          : store.set(key, value, ttlMs),
    }
    const g = gateway(failing)
    const response = await g.handler(new Request(url, { headers: { 'x-payment-token': await token() } }))
    expect(response.status, await response.clone().text()).toBe(200)
    expect(response.headers.get('payment-receipt')).not.toBeNull()
    expect(g.runs()).toBe(1)
  })

  it('concurrent uses of one token settle once', async () => {
    const g = gateway()
    const spt = await token()
    const before = await count()
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))),
    )
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
    for (const r of responses.filter((x) => x.status !== 200)) expect([402, 409]).toContain(r.status)
    expect(g.runs()).toBe(1)
    expect(await count()).toBe(before + 1)
  })

  it('a malformed token is a malformed-credential 402, and Payment credentials still work', async () => {
    const g = gateway()
    const bad = await g.handler(new Request(url, { headers: { 'x-payment-token': 'sk_live_oops' } }))
    expect(bad.status).toBe(402)
    expect((await problem(bad)).type).toBe('https://paymentauth.org/problems/malformed-credential')
    expect(JSON.stringify(await problem(bad))).not.toContain('sk_live_oops')
    const standard = rig(node)
    const paid = await standard.clientWith(g.handler).fetch(url)
    expect(paid.status, await paid.clone().text()).toBe(200)
  })
})

const redisReason = await redisUnavailableReason()
if (redisReason) console.warn(`[skip] header tokens on Redis: ${redisReason}`)

describe.skipIf(!!redisReason)('withHeaderTokens on Redis (two servers, two connections)', () => {
  it('a token sent to both servers at once settles once', async () => {
    const keyPrefix = `mppkit-stripe-test:${randomUUID()}:`
    const stores = [
      new RedisStore({ url: redisUrl, keyPrefix }),
      new RedisStore({ url: redisUrl, keyPrefix }),
    ]
    try {
      const [a, b] = stores.map((store) => gateway(store)) as [
        ReturnType<typeof gateway>,
        ReturnType<typeof gateway>,
      ]
      const spt = await token()
      const before = await count()
      const responses = await Promise.all(
        [a, b, a, b].map((g) => g.handler(new Request(url, { headers: { 'x-payment-token': spt } }))),
      )
      expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
      expect(a.runs() + b.runs()).toBe(1)
      expect(await count()).toBe(before + 1)
      const later = await b.handler(new Request(url, { headers: { 'x-payment-token': spt } }))
      expect((await problem(later)).reason).toBe('spt-already-used')
    } finally {
      for (const store of stores) await store.close?.()
    }
  })
})
