import { Credential } from '@mppkit/core'
import { Server } from '@mppkit/core/server'
import Stripe from 'stripe'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type ChargeOptions, stripe } from '../src/server/index.js'
import {
  intentsFor,
  problem,
  realm,
  rig,
  type StripeDevnet,
  sdk,
  secret,
  startStripe,
  url,
} from './helpers.js'

// A Stripe that stops answering must not hold a paid request for the SDK's default 80 s per attempt (and
// a retry of each timeout): the rail's own `timeout` and `maxNetworkRetries` bound every call a paid
// request waits on, and a timeout answers the same 503 + Retry-After as an outage. The simulator's
// `timeout` fault holds the connection open (far longer than the rail waits), then drops it.

let node: StripeDevnet
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})
afterEach(() => node.clearFaults())

/** Far longer than any timeout the rail is given here: only the rail's own timeout can end the wait. */
const holdMs = 20_000
/** Upper bound of a 300 ms timeout's answer on a loaded machine, well below `holdMs`. */
const slack = 2_500

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now()
  const value = await run()
  return { value, ms: performance.now() - start }
}

describe('a Stripe that stalls', () => {
  it('PaymentIntent create: 503 + Retry-After within the timeout; the same credential then settles one intent', async () => {
    const r = rig(node, { server: { timeout: 300, maxNetworkRetries: 0 } })
    const authorization = await r.credential()
    const challengeId = Credential.parse(authorization).challenge.id
    // The intent is created and paid at Stripe, and its answer never comes.
    node.injectFault({ kind: 'timeout', when: 'after', holdMs })
    const { value: failed, ms } = await timed(() => r.submit(authorization))
    expect(failed.status, await failed.clone().text()).toBe(503)
    expect(ms).toBeGreaterThanOrEqual(250)
    expect(ms).toBeLessThan(slack)
    expect(Number(failed.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await problem(failed)).toMatchObject({ reason: 'stripe-unreachable' })
    expect(r.runs()).toBe(0)
    const during = await intentsFor(r.stripe, challengeId)
    expect(during).toHaveLength(1)

    // Not a saved failure: the challenge was released, and Stripe's idempotent replay answers the retry.
    const retried = await r.submit(authorization)
    expect(retried.status, await retried.clone().text()).toBe(200)
    expect(r.runs()).toBe(1)
    const intents = await intentsFor(r.stripe, challengeId)
    expect(intents.map((pi) => [pi.id, pi.status])).toEqual([[during[0]?.id, 'succeeded']])
    expect((await r.submit(authorization)).status).toBe(402)
  })

  it('with one retry: each attempt is bounded, the SDK resend reuses the idempotency key', async () => {
    const r = rig(node, { server: { timeout: 300, maxNetworkRetries: 1 } })
    const authorization = await r.credential()
    const challengeId = Credential.parse(authorization).challenge.id
    const fault = node.injectFault({ kind: 'timeout', when: 'after', holdMs, times: 2 })
    const { value: failed, ms } = await timed(() => r.submit(authorization))
    expect(failed.status, await failed.clone().text()).toBe(503)
    expect(fault.remaining()).toBe(0) // the SDK resent it once
    // Two 300 ms attempts and the SDK's backoff (0.5–1 s) between them.
    expect(ms).toBeLessThan(slack + 1_000)
    expect(Number(failed.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await intentsFor(r.stripe, challengeId)).toHaveLength(1)
    expect((await r.submit(authorization)).status).toBe(200)
    const intents = await intentsFor(r.stripe, challengeId)
    expect(intents.map((pi) => pi.status)).toEqual(['succeeded'])
  })

  it('the pre-check: 503 + Retry-After within the timeout, no PaymentIntent; the retry settles', async () => {
    const r = rig(node, { server: { timeout: 300, maxNetworkRetries: 0, precheck: true } })
    const authorization = await r.credential()
    const challengeId = Credential.parse(authorization).challenge.id
    node.injectFault({
      kind: 'timeout',
      method: 'GET',
      path: '/v1/shared_payment/granted_tokens/',
      holdMs,
    })
    const { value: failed, ms } = await timed(() => r.submit(authorization))
    expect(failed.status, await failed.clone().text()).toBe(503)
    expect(ms).toBeLessThan(slack)
    expect(Number(failed.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await intentsFor(r.stripe, challengeId)).toHaveLength(0)
    expect((await r.submit(authorization)).status).toBe(200)
    expect(await intentsFor(r.stripe, challengeId)).toHaveLength(1)
  })

  it('the pre-check and a create whose answer was lost: the retry is served by that one intent', async () => {
    const r = rig(node, { server: { timeout: 300, maxNetworkRetries: 0, precheck: true } })
    const authorization = await r.credential()
    const challengeId = Credential.parse(authorization).challenge.id
    // The intent is created and paid at Stripe (the token is spent), and its answer never comes.
    node.injectFault({ kind: 'timeout', when: 'after', method: 'POST', path: '/v1/payment_intents', holdMs })
    const failed = await r.submit(authorization)
    expect(failed.status, await failed.clone().text()).toBe(503)
    expect(Number(failed.headers.get('retry-after'))).toBeGreaterThan(0)
    const during = await intentsFor(r.stripe, challengeId)
    expect(during.map((pi) => pi.status)).toEqual(['succeeded'])

    // The pre-check would read the token as used (by this very intent): the retry skips it, and
    // Stripe's idempotent replay answers with that intent.
    const retried = await r.submit(authorization)
    expect(retried.status, await retried.clone().text()).toBe(200)
    expect(await retried.json()).toMatchObject({ reference: during[0]?.id })
    expect(r.runs()).toBe(1)
    expect((await intentsFor(r.stripe, challengeId)).map((pi) => pi.id)).toEqual([during[0]?.id])
  })

  it('the pre-check still runs for a token not bound to the challenge, and refuses a spent one', async () => {
    const payer = rig(node)
    const paid = await payer.credential()
    expect((await payer.submit(paid)).status).toBe(200)
    const spt = (Credential.parse(paid).payload as { spt: string }).spt
    // Another server (its own Store, so the token is bound to nothing there) with the pre-check on.
    const client = sdk(node)
    const reads: string[] = []
    const rawRequest = client.rawRequest.bind(client)
    client.rawRequest = ((method: string, path: string, ...rest: never[]) => {
      if (path.startsWith('/v1/shared_payment/granted_tokens/')) reads.push(method)
      return rawRequest(method, path, ...rest)
    }) as typeof client.rawRequest
    const r = rig(node, { stripe: client, server: { timeout: 300, maxNetworkRetries: 0, precheck: true } })
    const fresh = Credential.parse(await r.credential())
    const refused = await r.submit(Credential.format({ challenge: fresh.challenge, payload: { spt } }))
    expect(refused.status).toBe(402)
    expect((await problem(refused)).reason).toBe('spt-already-used')
    expect(reads).toEqual(['GET'])
    expect(await intentsFor(r.stripe, fresh.challenge.id)).toHaveLength(0)
  })

  it('the cancel of a requires_action intent: the 402 comes within the timeout, the failure is reported', async () => {
    const errors: unknown[] = []
    const r = rig(node, {
      paymentMethod: 'pm_card_threeDSecureRequired',
      server: { timeout: 300, maxNetworkRetries: 0 },
      onError: (error) => errors.push(error),
    })
    const authorization = await r.credential()
    node.injectFault({ kind: 'timeout', path: '/v1/payment_intents/', holdMs })
    const { value: response, ms } = await timed(() => r.submit(authorization))
    expect(response.status).toBe(402)
    expect(ms).toBeLessThan(slack)
    expect((await problem(response)).reason).toBe('requires_action')
    expect(errors.map((error) => (error as { code?: string }).code)).toEqual(['stripe_cancel_failed'])
  })
})

describe('options', () => {
  const client = new Stripe('sk_test_options')
  const make = (options: Partial<ChargeOptions>) => () =>
    stripe({ client, networkId: 'profile_x', ...options })

  it('refuses a timeout that is not a positive integer number of milliseconds', () => {
    for (const timeout of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, '300' as never])
      expect(make({ timeout }), String(timeout)).toThrowError(
        expect.objectContaining({
          name: 'ConfigurationError',
          message: 'stripe: timeout must be a positive integer number of milliseconds (at most 2147483647)',
        }),
      )
  })

  it('refuses a maxNetworkRetries that is not a non-negative integer', () => {
    for (const maxNetworkRetries of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, '1' as never])
      expect(make({ maxNetworkRetries }), String(maxNetworkRetries)).toThrowError(
        expect.objectContaining({
          name: 'ConfigurationError',
          message: 'stripe: maxNetworkRetries must be a non-negative integer',
        }),
      )
  })

  it('accepts the smallest values', () => {
    expect(make({ timeout: 1, maxNetworkRetries: 0 })).not.toThrow()
  })
})

describe('one method on several servers', () => {
  it('a closed server is not told of errors the method reports afterwards', async () => {
    // A requires_action intent whose cancel fails: the method reports it to the onError of its servers.
    const method = stripe({
      client: sdk(node),
      networkId: node.info.networkId,
      currency: 'usd',
      maxNetworkRetries: 0,
    })
    const errors = { a: [] as unknown[], b: [] as unknown[], c: [] as unknown[] }
    const servers = Object.fromEntries(
      (['a', 'b', 'c'] as const).map((name) => [
        name,
        Server.create({
          realm,
          secrets: [secret],
          methods: [method],
          onError: (error) => errors[name].push(error),
          logger: false,
        }),
      ]),
    ) as Record<'a' | 'b' | 'c', Server.Server>
    const payer = rig(node, { paymentMethod: 'pm_card_threeDSecureRequired' })
    const payThrough = async (server: Server.Server) => {
      const handler = server.protect({ offers: [{ method: 'stripe', request: { amount: '1000' } }] }, () =>
        Response.json({ ok: true }),
      )
      node.injectFault({ kind: 500, path: '/v1/payment_intents/' })
      const response = await payer.clientWith(handler).fetch(url)
      expect((await problem(response)).reason).toBe('requires_action')
    }
    const cancelFailures = (list: unknown[]) =>
      list.filter((error) => (error as { code?: string }).code === 'stripe_cancel_failed').length

    await payThrough(servers.c)
    expect([errors.a, errors.b, errors.c].map(cancelFailures)).toEqual([1, 1, 1])

    await servers.a.close()
    await servers.b.close()
    await payThrough(servers.c)
    expect([errors.a, errors.b, errors.c].map(cancelFailures)).toEqual([1, 1, 2])
    await servers.c.close()
  })
})
