import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type StripeDevnet, sptErrorCodes, startStripe } from '../src/stripe/index.js'

// The simulator features the Stripe charge rail needs beyond the PaymentIntent basics: the agent side of
// Shared Payment Tokens (issued tokens bound to a seller's Stripe profile), PaymentIntent listing, and
// injected outages. Driven by the unmodified `stripe` SDK.

let node: StripeDevnet
let stripe: Stripe

const client = (options: Partial<Stripe.StripeConfig> = {}) => {
  const { host, port, protocol, secretKey } = node.info
  return new Stripe(secretKey, { host, port, protocol, ...options })
}

const inAnHour = () => Math.floor(Date.now() / 1000) + 3600

function issue(params: Record<string, unknown>, stripeAccount?: string): Promise<any> {
  return stripe.rawRequest(
    'POST',
    '/v1/shared_payment/issued_tokens',
    params,
    stripeAccount === undefined ? {} : { stripeAccount },
  )
}

function pay(spt: string, amount: number, options: Stripe.RequestOptions = {}, via = stripe) {
  return via.paymentIntents.create(
    {
      amount,
      currency: 'usd',
      confirm: true,
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      shared_payment_granted_token: spt,
    } as Stripe.PaymentIntentCreateParams,
    options,
  )
}

async function failure(promise: Promise<unknown>): Promise<any> {
  try {
    await promise
  } catch (error) {
    return error
  }
  expect.unreachable('the request should have failed')
}

beforeAll(async () => {
  node = await startStripe()
  stripe = client({ maxNetworkRetries: 0 })
})
afterAll(async () => {
  await node.stop()
})

describe('startStripe info', () => {
  it('names a Stripe profile per account, the platform one as networkId', () => {
    const { networkId, accounts } = node.info
    expect(networkId).toMatch(/^profile_test_[A-Za-z0-9]+$/)
    expect(accounts.profiles[accounts.platform]).toBe(networkId)
    expect(Object.keys(accounts.profiles)).toHaveLength(1 + accounts.connected.length)
    expect(new Set(Object.values(accounts.profiles)).size).toBe(1 + accounts.connected.length)
  })
})

describe('POST /v1/shared_payment/issued_tokens', () => {
  it('issues a token the seller named by its profile can pay with, once', async () => {
    const issued = await issue({
      payment_method: 'pm_card_visa',
      usage_limits: { currency: 'usd', max_amount: 1500, expires_at: inAnHour() },
      seller_details: { network_business_profile: node.info.networkId, external_id: 'order-1' },
    })
    expect(issued).toMatchObject({
      object: 'shared_payment.issued_token',
      status: 'active',
      payment_method: 'pm_card_visa',
      seller_details: { network_business_profile: node.info.networkId, external_id: 'order-1' },
      usage_limits: { currency: 'usd', max_amount: 1500 },
    })
    expect(issued.id).toMatch(/^spt_/)
    const granted = await stripe.rawRequest('GET', `/v1/shared_payment/granted_tokens/${issued.id}`)
    expect(granted.object).toBe('shared_payment.granted_token')
    expect(granted.agent_details.network_business_profile).toBe(node.info.networkId)

    expect((await pay(issued.id, 1500)).status).toBe('succeeded')
    const reused = await failure(pay(issued.id, 1500))
    expect(reused.code).toBe(sptErrorCodes.alreadyUsed)
    const after = await stripe.rawRequest('GET', `/v1/shared_payment/issued_tokens/${issued.id}`)
    expect(after).toMatchObject({ status: 'deactivated', deactivated_reason: 'consumed' })
  })

  it('accepts the spec example spelling seller_details[network_id]', async () => {
    const issued = await issue({
      payment_method: 'pm_card_visa',
      usage_limits: { currency: 'usd', max_amount: 500 },
      seller_details: { network_id: node.info.networkId },
    })
    expect(issued.seller_details.network_business_profile).toBe(node.info.networkId)
  })

  it('enforces the seller: another account cannot pay with the token', async () => {
    const [connected] = node.info.accounts.connected as [string]
    const issued = await issue({
      payment_method: 'pm_card_visa',
      usage_limits: { currency: 'usd', max_amount: 1000 },
      seller_details: { network_business_profile: node.info.accounts.profiles[connected] },
    })
    const error = await failure(pay(issued.id, 1000))
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError)
    expect(error.code).toBe(sptErrorCodes.sellerMismatch)
    expect(error.message).not.toContain(issued.id)
    // The named seller can.
    expect((await pay(issued.id, 1000, { stripeAccount: connected })).status).toBe('succeeded')
  })

  it('enforces usage limits: currency, max amount and expiry', async () => {
    const issued = await issue({
      payment_method: 'pm_card_visa',
      usage_limits: { currency: 'eur', max_amount: 800, expires_at: Math.floor(Date.now() / 1000) + 60 },
      seller_details: { network_business_profile: node.info.networkId },
    })
    expect((await failure(pay(issued.id, 800))).code).toBe(sptErrorCodes.currencyMismatch)
    const overLimit = await failure(
      stripe.paymentIntents.create({
        amount: 801,
        currency: 'eur',
        confirm: true,
        automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
        shared_payment_granted_token: issued.id,
      } as Stripe.PaymentIntentCreateParams),
    )
    expect(overLimit.code).toBe(sptErrorCodes.amountExceeded)
    node.advanceClock(120)
    try {
      const expired = await stripe.rawRequest('GET', `/v1/shared_payment/issued_tokens/${issued.id}`)
      expect(expired.deactivated_reason).toBe('expired')
    } finally {
      node.advanceClock(-120)
    }
  })

  it('refuses an unknown profile, a missing seller and an unknown payment method', async () => {
    const limits = { currency: 'usd', max_amount: 100 }
    const unknown = await failure(
      issue({ payment_method: 'pm_card_visa', usage_limits: limits, seller_details: { network_id: 'x' } }),
    )
    expect(unknown.param).toBe('seller_details[network_business_profile]')
    const missing = await failure(issue({ payment_method: 'pm_card_visa', usage_limits: limits }))
    expect(missing.code).toBe('parameter_missing')
    const method = await failure(
      issue({
        payment_method: 'pm_nope',
        usage_limits: limits,
        seller_details: { network_id: node.info.networkId },
      }),
    )
    expect(method.statusCode).toBe(404)
  })

  it('revokes an issued token', async () => {
    const issued = await issue({
      payment_method: 'pm_card_visa',
      usage_limits: { currency: 'usd', max_amount: 1000 },
      seller_details: { network_business_profile: node.info.networkId },
    })
    const revoked = await stripe.rawRequest('POST', `/v1/shared_payment/issued_tokens/${issued.id}/revoke`)
    expect(revoked.deactivated_reason).toBe('revoked')
    expect((await failure(pay(issued.id, 1000))).code).toBe(sptErrorCodes.revoked)
  })
})

describe('GET /v1/payment_intents', () => {
  it('lists intents newest first with the SDK', async () => {
    const issued = await issue({
      payment_method: 'pm_card_visa',
      usage_limits: { currency: 'usd', max_amount: 1000 },
      seller_details: { network_business_profile: node.info.networkId },
    })
    const pi = await pay(issued.id, 1000)
    const list = await stripe.paymentIntents.list({ limit: 1 })
    expect(list.data.map((item) => item.id)).toEqual([pi.id])
  })
})

describe('injectFault', () => {
  const grant = () =>
    issue({
      payment_method: 'pm_card_visa',
      usage_limits: { currency: 'usd', max_amount: 1000 },
      seller_details: { network_business_profile: node.info.networkId },
    }).then((token) => token.id as string)
  const count = async () => (await stripe.paymentIntents.list({ limit: 100 })).data.length

  for (const kind of [500, 503, 429] as const) {
    it(`before: a ${kind} creates nothing and the same key then succeeds`, async () => {
      const spt = await grant()
      const before = await count()
      node.injectFault({ kind })
      const error = await failure(pay(spt, 1000, { idempotencyKey: `k_${spt}` }))
      expect(error.statusCode).toBe(kind)
      expect(error.type).toBe(kind === 429 ? 'StripeRateLimitError' : 'StripeAPIError')
      expect(await count()).toBe(before)
      const paid = await pay(spt, 1000, { idempotencyKey: `k_${spt}` })
      expect(paid.status).toBe('succeeded')
      expect(paid.lastResponse.headers['idempotent-replayed']).toBeUndefined()
    })
  }

  it('after: the intent is created, its answer lost, and the same key replays it', async () => {
    const spt = await grant()
    const before = await count()
    node.injectFault({ kind: 502, when: 'after' })
    expect((await failure(pay(spt, 1000, { idempotencyKey: `k_${spt}` }))).statusCode).toBe(502)
    expect(await count()).toBe(before + 1)
    const replay = await pay(spt, 1000, { idempotencyKey: `k_${spt}` })
    expect(replay.status).toBe('succeeded')
    expect(replay.lastResponse.headers['idempotent-replayed']).toBe('true')
    expect(await count()).toBe(before + 1)
  })

  it('timeout after: the SDK times out, the intent exists, the retry replays it', async () => {
    const spt = await grant()
    const before = await count()
    node.injectFault({ kind: 'timeout', when: 'after', holdMs: 10_000 })
    const error = await failure(
      pay(spt, 1000, { idempotencyKey: `k_${spt}` }, client({ timeout: 1_500, maxNetworkRetries: 0 })),
    )
    expect(error.type).toBe('StripeConnectionError')
    expect(await count()).toBe(before + 1)
    const replay = await pay(spt, 1000, { idempotencyKey: `k_${spt}` })
    expect(replay.lastResponse.headers['idempotent-replayed']).toBe('true')
  })

  it('counts down, matches by path and method, and clears', async () => {
    const fault = node.injectFault({ kind: 500, times: 2, path: '/v1/refunds' })
    expect((await stripe.paymentIntents.list({ limit: 1 })).object).toBe('list')
    expect(fault.remaining()).toBe(2)
    node.clearFaults()
    expect(fault.remaining()).toBe(0)
    expect(() => node.injectFault({ kind: 404 as never })).toThrowErrorMatchingInlineSnapshot(
      `[DevnetError: injectFault: kind must be 429, 500, 502, 503, 504 or "timeout"]`,
    )
  })

  it('is reachable over HTTP with the secret key', async () => {
    const url = `${node.info.apiBase}/_devnet/faults`
    const denied = await fetch(url, { method: 'POST', body: '{"kind":500}' })
    expect(denied.status).toBe(401)
    const armed = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${node.info.secretKey}` },
      body: JSON.stringify({ kind: 503, path: '/v1/account', method: 'GET' }),
    })
    expect(armed.status).toBe(200)
    expect((await failure(stripe.accounts.retrieve(null))).statusCode).toBe(503)
    expect((await stripe.accounts.retrieve(null)).id).toBe(node.info.accounts.platform)
  })
})
