import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestSpt, type StripeDevnet, sptErrorCodes, startStripe } from '../src/stripe/index.js'

// Every test drives the simulator with the unmodified `stripe` SDK (host/port/protocol options only).
// The SDK has no methods for Shared Payment Tokens, so those endpoints go through `stripe.rawRequest`.

let node: StripeDevnet
let stripe: Stripe

/** The PaymentIntent params of draft-stripe-charge-00 §Settlement Procedure, step 2. */
function chargeParams(spt: string, amount: number, currency = 'usd'): Stripe.PaymentIntentCreateParams {
  return {
    amount,
    currency,
    confirm: true,
    automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
    metadata: { challenge_id: 'ch_test_1' },
    shared_payment_granted_token: spt,
  } as Stripe.PaymentIntentCreateParams
}

function client(options: Partial<Stripe.StripeConfig> = {}, key = node.info.secretKey): Stripe {
  const { host, port, protocol } = node.info
  return new Stripe(key, { host, port, protocol, ...options })
}

async function grantToken(params: Record<string, unknown>, stripeAccount?: string): Promise<any> {
  return stripe.rawRequest(
    'POST',
    '/v1/test_helpers/shared_payment/granted_tokens',
    params,
    stripeAccount === undefined ? {} : { stripeAccount },
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
  stripe = client()
})

afterAll(async () => {
  await node.stop()
})

describe('startStripe', () => {
  it('returns JSON-serializable connection info with a test-mode key', () => {
    const info = JSON.parse(JSON.stringify(node.info))
    expect(info).toEqual(node.info)
    expect(info.secretKey).toMatch(/^sk_test_/)
    expect(info.apiBase).toBe(`http://127.0.0.1:${info.port}`)
    expect(info.accounts.connected).toHaveLength(2)
  })

  it('stops idempotently', async () => {
    const other = await startStripe()
    await Promise.all([other.stop(), other.stop()])
    await other.stop()
    await expect(fetch(`${other.info.apiBase}/v1/account`)).rejects.toThrow()
  })

  it('answers every response with a Request-Id and echoes the Stripe-Version', async () => {
    const account = await stripe.accounts.retrieve(null)
    expect(account.id).toBe(node.info.accounts.platform)
    expect(account.lastResponse.requestId).toMatch(/^req_/)
    expect(account.lastResponse.apiVersion).toBe(stripe.getApiField('version'))
    const missing = await fetch(`${node.info.apiBase}/v1/payment_intents/pi_none`)
    expect(missing.status).toBe(401)
    expect(missing.headers.get('request-id')).toMatch(/^req_/)
    const unversioned = await fetch(`${node.info.apiBase}/v1/account`, {
      headers: { authorization: `Bearer ${node.info.secretKey}` },
    })
    expect(unversioned.headers.get('stripe-version')).toBe(node.info.apiVersion)
    const bad = await fetch(`${node.info.apiBase}/v1/account`, {
      headers: { authorization: `Bearer ${node.info.secretKey}`, 'stripe-version': 'latest' },
    })
    expect(bad.status).toBe(400)
  })
})

describe('authentication', () => {
  it('rejects a wrong key with StripeAuthenticationError and never echoes the key', async () => {
    const error = await failure(client({}, 'sk_test_wrong').paymentIntents.retrieve('pi_1'))
    expect(error).toBeInstanceOf(Stripe.errors.StripeAuthenticationError)
    expect(error.statusCode).toBe(401)
    expect(error.message).not.toContain('sk_test_wrong')
  })

  it('rejects a missing key and accepts HTTP basic auth like curl -u', async () => {
    const none = await fetch(`${node.info.apiBase}/v1/account`)
    expect(none.status).toBe(401)
    expect((await none.json()).error.type).toBe('invalid_request_error')
    const basic = await fetch(`${node.info.apiBase}/v1/account`, {
      headers: { authorization: `Basic ${btoa(`${node.info.secretKey}:`)}` },
    })
    expect(basic.status).toBe(200)
  })
})

describe('PaymentIntents with a Shared Payment Token', () => {
  it('settles: the intent succeeds with the charge amount and the token is consumed', async () => {
    const spt = await grantToken({
      payment_method: 'pm_card_visa',
      usage_limits: { currency: 'usd', max_amount: 5000, expires_at: Math.floor(Date.now() / 1000) + 600 },
      seller_details: { network_id: 'internal' },
    })
    expect(spt.id).toMatch(/^spt_/)
    expect(spt.object).toBe('shared_payment.granted_token')
    expect(spt.usage_limits).toMatchObject({ currency: 'usd', max_amount: 5000 })

    const pi = await stripe.paymentIntents.create(chargeParams(spt.id, 5000), {
      idempotencyKey: `ch_test_1_${spt.id}`,
    })
    expect(pi.status).toBe('succeeded')
    expect(pi.amount).toBe(5000)
    expect(pi.amount_received).toBe(5000)
    expect(pi.metadata).toEqual({ challenge_id: 'ch_test_1' })
    expect(pi.payment_method).toMatch(/^pm_/)
    const charge = await stripe.charges.retrieve(pi.latest_charge as string)
    expect(charge).toMatchObject({
      amount: 5000,
      amount_captured: 5000,
      status: 'succeeded',
      payment_intent: pi.id,
    })

    const after = await stripe.rawRequest('GET', `/v1/shared_payment/granted_tokens/${spt.id}`)
    expect(after.deactivated_reason).toBe('consumed')
    expect(after.usage_details.amount_captured).toEqual({ value: 5000, currency: 'usd' })
    expect((await stripe.paymentIntents.retrieve(pi.id)).status).toBe('succeeded')
  })

  it('accepts the token as payment_method_data[shared_payment_granted_token] (newer API shape)', async () => {
    const spt = await createTestSpt(node.info, { maxAmount: 1000 })
    const pi = await stripe.paymentIntents.create({
      amount: 1000,
      currency: 'usd',
      confirm: true,
      payment_method_types: ['card'],
      payment_method_data: { shared_payment_granted_token: spt.id },
    } as unknown as Stripe.PaymentIntentCreateParams)
    expect(pi.status).toBe('succeeded')
  })

  it('rejects a second use of the same token', async () => {
    const spt = await createTestSpt(node.info, { maxAmount: 10_000 })
    await stripe.paymentIntents.create(chargeParams(spt.id, 1000))
    const error = await failure(stripe.paymentIntents.create(chargeParams(spt.id, 1000)))
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError)
    expect(error.code).toBe(sptErrorCodes.alreadyUsed)
    expect(error.param).toBe('shared_payment_granted_token')
    expect(error.message).not.toContain(spt.id)
  })

  it('rejects an amount over usage_limits[max_amount] and a different currency', async () => {
    const spt = await createTestSpt(node.info, { maxAmount: 1000, currency: 'usd' })
    const over = await failure(stripe.paymentIntents.create(chargeParams(spt.id, 1001)))
    expect(over).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError)
    expect(over.code).toBe(sptErrorCodes.amountExceeded)
    const currency = await failure(stripe.paymentIntents.create(chargeParams(spt.id, 1000, 'eur')))
    expect(currency.code).toBe(sptErrorCodes.currencyMismatch)
    // Rejected attempts leave the token usable for a payment within its limits.
    expect((await stripe.paymentIntents.create(chargeParams(spt.id, 1000))).status).toBe('succeeded')
  })

  it('rejects an expired token and shows it deactivated', async () => {
    const spt = await createTestSpt(node.info, {
      maxAmount: 1000,
      expiresAt: Math.floor(Date.now() / 1000) + 60,
    })
    node.advanceClock(120)
    try {
      const error = await failure(stripe.paymentIntents.create(chargeParams(spt.id, 1000)))
      expect(error.code).toBe(sptErrorCodes.expired)
      const token = await stripe.rawRequest('GET', `/v1/shared_payment/granted_tokens/${spt.id}`)
      expect(token.deactivated_reason).toBe('expired')
    } finally {
      node.advanceClock(-120)
    }
  })

  it('rejects a revoked token, an unknown token, and a token expiring in the past', async () => {
    const spt = await createTestSpt(node.info, { maxAmount: 1000 })
    const revoked = await stripe.rawRequest(
      'POST',
      `/v1/test_helpers/shared_payment/granted_tokens/${spt.id}/revoke`,
    )
    expect(revoked.deactivated_reason).toBe('revoked')
    expect((await failure(stripe.paymentIntents.create(chargeParams(spt.id, 1000)))).code).toBe(
      sptErrorCodes.revoked,
    )
    const unknown = await failure(stripe.paymentIntents.create(chargeParams('spt_doesnotexist', 1000)))
    expect(unknown).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError)
    expect(unknown.code).toBe('resource_missing')
    const past = await failure(
      grantToken({
        payment_method: 'pm_card_visa',
        usage_limits: { currency: 'usd', max_amount: 100, expires_at: 1 },
      }),
    )
    expect(past.param).toBe('usage_limits[expires_at]')
    await expect(createTestSpt(node.info, { maxAmount: 100, paymentMethod: 'pm_unknown' })).rejects.toThrow(
      /404/,
    )
  })

  it('declines a token whose card declines, with the PaymentIntent inside the StripeCardError', async () => {
    const spt = await createTestSpt(node.info, {
      maxAmount: 1000,
      paymentMethod: 'pm_card_visa_chargeDeclined',
    })
    const error = await failure(stripe.paymentIntents.create(chargeParams(spt.id, 1000)))
    expect(error).toBeInstanceOf(Stripe.errors.StripeCardError)
    expect(error.statusCode).toBe(402)
    expect(error.code).toBe('card_declined')
    expect(error.decline_code).toBe('generic_decline')
    expect(error.payment_intent.status).toBe('requires_payment_method')
    expect(error.payment_intent.last_payment_error.decline_code).toBe('generic_decline')
  })
})

describe('test PaymentMethods', () => {
  const base = { amount: 2000, currency: 'usd', confirm: true, payment_method_types: ['card'] }

  it('pm_card_visa succeeds', async () => {
    const pi = await stripe.paymentIntents.create({ ...base, payment_method: 'pm_card_visa' })
    expect(pi.status).toBe('succeeded')
    expect(pi.amount_received).toBe(2000)
  })

  it.each([
    ['pm_card_chargeDeclined', 'card_declined', 'generic_decline'],
    ['pm_card_visa_chargeDeclined', 'card_declined', 'generic_decline'],
    ['pm_card_visa_chargeDeclinedInsufficientFunds', 'card_declined', 'insufficient_funds'],
    ['pm_card_chargeDeclinedExpiredCard', 'expired_card', 'expired_card'],
  ])('%s declines with %s / %s', async (paymentMethod, code, declineCode) => {
    const error = await failure(stripe.paymentIntents.create({ ...base, payment_method: paymentMethod }))
    expect(error).toBeInstanceOf(Stripe.errors.StripeCardError)
    expect(error.type).toBe('StripeCardError')
    expect(error.code).toBe(code)
    expect(error.decline_code).toBe(declineCode)
    expect(error.requestId).toMatch(/^req_/)
    // The intent exists and records the failure.
    const pi = await stripe.paymentIntents.retrieve(error.payment_intent.id)
    expect(pi.status).toBe('requires_payment_method')
    expect(pi.last_payment_error?.code).toBe(code)
  })

  it('a 3DS card moves the intent to requires_action; completing the challenge settles it', async () => {
    const pi = await stripe.paymentIntents.create({
      ...base,
      payment_method: 'pm_card_authenticationRequired',
    })
    expect(pi.status).toBe('requires_action')
    expect(pi.next_action?.type).toBe('use_stripe_sdk')
    const sdk = pi.next_action?.use_stripe_sdk as { stripe_js: string } | undefined
    const url = sdk?.stripe_js as string
    expect(url.startsWith(node.info.apiBase)).toBe(true)
    const page = await fetch(url)
    expect(page.status).toBe(200)
    expect(page.headers.get('request-id')).toMatch(/^req_/)
    expect((await fetch(`${url}/complete`, { method: 'POST' })).status).toBe(200)
    const settled = await stripe.paymentIntents.retrieve(pi.id)
    expect(settled.status).toBe('succeeded')
    expect(settled.amount_received).toBe(2000)
  })

  it('a failed 3DS challenge returns the intent to requires_payment_method and redirects to return_url', async () => {
    const pi = await stripe.paymentIntents.create({
      ...base,
      payment_method: 'pm_card_threeDSecure2Required',
      return_url: 'https://shop.example/return',
    })
    expect(pi.next_action?.type).toBe('redirect_to_url')
    const url = pi.next_action?.redirect_to_url?.url as string
    const response = await fetch(`${url}/fail`, { method: 'POST', redirect: 'manual' })
    expect(response.status).toBe(302)
    expect(response.headers.get('location')).toContain('redirect_status=failed')
    const failed = await stripe.paymentIntents.retrieve(pi.id)
    expect(failed.status).toBe('requires_payment_method')
    expect(failed.last_payment_error?.code).toBe('payment_intent_authentication_failure')
  })

  it('off-session 3DS cards decline with authentication_required', async () => {
    const error = await failure(
      stripe.paymentIntents.create({
        ...base,
        payment_method: 'pm_card_authenticationRequired',
        off_session: true,
      }),
    )
    expect(error).toBeInstanceOf(Stripe.errors.StripeCardError)
    expect(error.code).toBe('authentication_required')
  })

  it('an SPT over a 3DS card requires action and binds the token to that intent', async () => {
    const spt = await createTestSpt(node.info, {
      maxAmount: 5000,
      paymentMethod: 'pm_card_authenticationRequired',
    })
    const pi = await stripe.paymentIntents.create(chargeParams(spt.id, 5000))
    expect(pi.status).toBe('requires_action')
    const other = await failure(stripe.paymentIntents.create(chargeParams(spt.id, 5000)))
    expect(other.code).toBe(sptErrorCodes.alreadyUsed)
  })

  it('confirms an unconfirmed intent later, and refuses to confirm it twice', async () => {
    const created = await stripe.paymentIntents.create({
      amount: 1500,
      currency: 'usd',
      ...({ payment_method_types: ['card'] } as object),
    })
    expect(created.status).toBe('requires_payment_method')
    const confirmed = await stripe.paymentIntents.confirm(created.id, { payment_method: 'pm_card_visa' })
    expect(confirmed.status).toBe('succeeded')
    const again = await failure(stripe.paymentIntents.confirm(created.id, { payment_method: 'pm_card_visa' }))
    expect(again.code).toBe('payment_intent_unexpected_state')
  })

  it('supports manual capture', async () => {
    const pi = await stripe.paymentIntents.create({
      ...base,
      payment_method: 'pm_card_visa',
      capture_method: 'manual',
    })
    expect(pi.status).toBe('requires_capture')
    expect(pi.amount_capturable).toBe(2000)
    const captured = await stripe.paymentIntents.capture(pi.id, { amount_to_capture: 1500 })
    expect(captured.status).toBe('succeeded')
    expect(captured.amount_received).toBe(1500)
  })
})

describe('request validation', () => {
  it('requires return_url or allow_redirects=never when automatic payment methods are on by default', async () => {
    const error = await failure(
      stripe.paymentIntents.create({
        amount: 1000,
        currency: 'usd',
        confirm: true,
        payment_method: 'pm_card_visa',
      }),
    )
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError)
    expect(error.param).toBe('return_url')
  })

  it('rejects unknown params, missing params, and amounts under the minimum', async () => {
    const unknown = await failure(
      stripe.paymentIntents.create({
        amount: 1000,
        currency: 'usd',
        bogus: 1,
      } as Stripe.PaymentIntentCreateParams),
    )
    expect(unknown.code).toBe('parameter_unknown')
    expect(unknown.param).toBe('bogus')
    const missing = await failure(
      stripe.paymentIntents.create({ currency: 'usd' } as Stripe.PaymentIntentCreateParams),
    )
    expect(missing.code).toBe('parameter_missing')
    const small = await failure(stripe.paymentIntents.create({ amount: 10, currency: 'usd' }))
    expect(small.code).toBe('amount_too_small')
  })

  it('rejects a currency Stripe does not support, for intents and SPT usage limits', async () => {
    // Stripe: 400 "Invalid currency: xyz. Stripe currently supports these currencies: usd, aed, …" on `currency`.
    const intent = await failure(stripe.paymentIntents.create({ amount: 1000, currency: 'xyz' }))
    expect(intent).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError)
    expect(intent.statusCode).toBe(400)
    expect(intent.param).toBe('currency')
    expect(intent.message).toMatch(
      /^Invalid currency: xyz\. Stripe currently supports these currencies: usd, /,
    )
    // Not a currency at all (a crypto ticker, a Lightning unit) is refused the same way.
    for (const currency of ['usdc', 'sat'])
      expect((await failure(stripe.paymentIntents.create({ amount: 1000, currency }))).param).toBe('currency')
    const token = await failure(
      grantToken({ payment_method: 'pm_card_visa', usage_limits: { currency: 'xyz', max_amount: 1000 } }),
    )
    expect(token.param).toBe('usage_limits[currency]')
    // Upper case is the same ISO code.
    await expect(stripe.paymentIntents.create({ amount: 100, currency: 'JPY' })).resolves.toMatchObject({
      currency: 'jpy',
      amount: 100,
    })
  })

  it('takes zero-decimal amounts as whole units and ISK only in multiples of 100', async () => {
    // JPY is zero-decimal: 50 is ¥50, Stripe's minimum; 49 is below it.
    expect((await failure(stripe.paymentIntents.create({ amount: 49, currency: 'jpy' }))).code).toBe(
      'amount_too_small',
    )
    await expect(stripe.paymentIntents.create({ amount: 50, currency: 'jpy' })).resolves.toMatchObject({
      amount: 50,
    })
    // ISK stays two-decimal in the API but must be whole krónur.
    const fractional = await failure(stripe.paymentIntents.create({ amount: 10_050, currency: 'isk' }))
    expect(fractional).toMatchObject({
      statusCode: 400,
      code: 'invalid_charge_amount_no_decimal_compatible',
      param: 'amount',
    })
    const paid = await stripe.paymentIntents.create({
      amount: 10_000,
      currency: 'isk',
      confirm: true,
      payment_method: 'pm_card_visa',
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
    })
    expect(paid.status).toBe('succeeded')
    const refund = await failure(stripe.refunds.create({ payment_intent: paid.id, amount: 150 }))
    expect(refund.code).toBe('invalid_charge_amount_no_decimal_compatible')
    await expect(stripe.refunds.create({ payment_intent: paid.id, amount: 200 })).resolves.toMatchObject({
      amount: 200,
    })
  })

  it('answers resource_missing 404 for an unknown intent', async () => {
    const error = await failure(stripe.paymentIntents.retrieve('pi_missing'))
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError)
    expect(error.statusCode).toBe(404)
    expect(error.code).toBe('resource_missing')
  })
})

describe('Idempotency-Key', () => {
  it('replays the stored response with Idempotent-Replayed: true', async () => {
    const spt = await createTestSpt(node.info, { maxAmount: 3000 })
    const key = `challenge_1_${spt.id}`
    const first = await stripe.paymentIntents.create(chargeParams(spt.id, 3000), { idempotencyKey: key })
    expect(first.lastResponse.headers['idempotent-replayed']).toBeUndefined()
    const second = await stripe.paymentIntents.create(chargeParams(spt.id, 3000), { idempotencyKey: key })
    expect(second.id).toBe(first.id)
    expect(second.lastResponse.headers['idempotent-replayed']).toBe('true')
    expect(second.lastResponse.headers['original-request']).toBe(first.lastResponse.requestId)
    expect(second.lastResponse.requestId).not.toBe(first.lastResponse.requestId)
    expect(second.lastResponse.idempotencyKey).toBe(key)
    // No second charge was made.
    const token = await stripe.rawRequest('GET', `/v1/shared_payment/granted_tokens/${spt.id}`)
    expect(token.usage_details.amount_captured.value).toBe(3000)
  })

  it('rejects the same key with different params with StripeIdempotencyError', async () => {
    const key = 'idem_different_params'
    await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' }, { idempotencyKey: key })
    const error = await failure(
      stripe.paymentIntents.create({ amount: 1001, currency: 'usd' }, { idempotencyKey: key }),
    )
    expect(error).toBeInstanceOf(Stripe.errors.StripeIdempotencyError)
    expect(error.statusCode).toBe(400)
    const endpoint = await failure(stripe.refunds.create({ payment_intent: 'pi_x' }, { idempotencyKey: key }))
    expect(endpoint).toBeInstanceOf(Stripe.errors.StripeIdempotencyError)
  })

  it('replays a decline, and does not store a validation failure', async () => {
    const key = 'idem_decline'
    const params = {
      amount: 1000,
      currency: 'usd',
      confirm: true,
      payment_method_types: ['card'],
      payment_method: 'pm_card_chargeDeclined',
    }
    const first = await failure(stripe.paymentIntents.create(params, { idempotencyKey: key }))
    const second = await failure(stripe.paymentIntents.create(params, { idempotencyKey: key }))
    expect(second).toBeInstanceOf(Stripe.errors.StripeCardError)
    expect(second.payment_intent.id).toBe(first.payment_intent.id)
    expect(second.headers['idempotent-replayed']).toBe('true')

    const invalidKey = 'idem_invalid'
    await failure(
      stripe.paymentIntents.create({ amount: 10, currency: 'usd' }, { idempotencyKey: invalidKey }),
    )
    const valid = await stripe.paymentIntents.create(
      { amount: 100, currency: 'usd' },
      { idempotencyKey: invalidKey },
    )
    expect(valid.amount).toBe(100)
  })

  it('answers 409 to a concurrent request with the same key, which the SDK retries into a replay', async () => {
    const slow = await startStripe({ latencyMs: 150 })
    try {
      const { host, port, protocol, secretKey, apiBase } = slow.info
      const headers = {
        authorization: `Bearer ${secretKey}`,
        'content-type': 'application/x-www-form-urlencoded',
        'idempotency-key': 'concurrent',
      }
      const body = 'amount=1000&currency=usd'
      const [a, b] = await Promise.all([
        fetch(`${apiBase}/v1/payment_intents`, { method: 'POST', headers, body }),
        new Promise((resolve) => setTimeout(resolve, 30)).then(() =>
          fetch(`${apiBase}/v1/payment_intents`, { method: 'POST', headers, body }),
        ),
      ])
      expect(a.status).toBe(200)
      expect(b.status).toBe(409)
      expect((await b.json()).error.code).toBe('idempotency_key_in_use')
      const sdk = new Stripe(secretKey, { host, port, protocol })
      const replay = await sdk.paymentIntents.create(
        { amount: 1000, currency: 'usd' },
        { idempotencyKey: 'concurrent' },
      )
      expect(replay.id).toBe((await a.json()).id)
    } finally {
      await slow.stop()
    }
  })
})

describe('refunds', () => {
  it('refunds partially, then the remainder, then refuses more', async () => {
    const spt = await createTestSpt(node.info, { maxAmount: 4000 })
    const pi = await stripe.paymentIntents.create(chargeParams(spt.id, 4000))
    const partial = await stripe.refunds.create({
      payment_intent: pi.id,
      amount: 1500,
      reason: 'requested_by_customer',
    })
    expect(partial).toMatchObject({
      object: 'refund',
      amount: 1500,
      status: 'succeeded',
      payment_intent: pi.id,
    })
    const rest = await stripe.refunds.create({ payment_intent: pi.id })
    expect(rest.amount).toBe(2500)
    expect((await stripe.refunds.retrieve(rest.id)).amount).toBe(2500)
    const charge = await stripe.charges.retrieve(pi.latest_charge as string)
    expect(charge.amount_refunded).toBe(4000)
    expect(charge.refunded).toBe(true)
    const more = await failure(stripe.refunds.create({ payment_intent: pi.id, amount: 1 }))
    expect(more.code).toBe('charge_already_refunded')
  })

  it('refuses a refund larger than the charge and one for an unpaid intent', async () => {
    const pi = await stripe.paymentIntents.create({
      amount: 1000,
      currency: 'usd',
      confirm: true,
      ...({ payment_method_types: ['card'] } as object),
      payment_method: 'pm_card_visa',
    })
    const large = await failure(stripe.refunds.create({ payment_intent: pi.id, amount: 1001 }))
    expect(large).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError)
    expect(large.param).toBe('amount')
    const unpaid = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' })
    const error = await failure(stripe.refunds.create({ payment_intent: unpaid.id }))
    expect(error.code).toBe('charge_not_refundable')
  })
})

describe('Stripe-Account', () => {
  it('scopes objects and tokens to the connected account', async () => {
    const [connected] = node.info.accounts.connected as [string]
    const spt = await createTestSpt(node.info, { maxAmount: 2000, stripeAccount: connected })
    // The platform cannot see or spend a token granted to the connected account.
    const notHere = await failure(stripe.paymentIntents.create(chargeParams(spt.id, 2000)))
    expect(notHere.code).toBe('resource_missing')
    const pi = await stripe.paymentIntents.create(
      { ...chargeParams(spt.id, 2000), application_fee_amount: 100 } as Stripe.PaymentIntentCreateParams,
      { stripeAccount: connected },
    )
    expect(pi.status).toBe('succeeded')
    expect(pi.lastResponse.stripeAccount).toBe(connected)
    expect((await stripe.paymentIntents.retrieve(pi.id, {}, { stripeAccount: connected })).id).toBe(pi.id)
    const error = await failure(stripe.paymentIntents.retrieve(pi.id))
    expect(error.statusCode).toBe(404)
  })

  it('accepts destination charges to a connected account and rejects unknown accounts', async () => {
    const [, destination] = node.info.accounts.connected as [string, string]
    const pi = await stripe.paymentIntents.create({
      amount: 3000,
      currency: 'usd',
      confirm: true,
      ...({ payment_method_types: ['card'] } as object),
      payment_method: 'pm_card_visa',
      application_fee_amount: 300,
      transfer_data: { destination },
    })
    expect(pi.transfer_data?.destination).toBe(destination)
    const fee = await failure(
      stripe.paymentIntents.create({ amount: 3000, currency: 'usd', application_fee_amount: 300 }),
    )
    expect(fee.param).toBe('application_fee_amount')
    const unknown = await failure(
      stripe.paymentIntents.retrieve('pi_x', {}, { stripeAccount: 'acct_unknown' }),
    )
    expect(unknown).toBeInstanceOf(Stripe.errors.StripePermissionError)
  })
})
