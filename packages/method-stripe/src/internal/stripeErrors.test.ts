import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fromStripeError, redact, savedServerError, sptProblem } from './stripeErrors.js'

const stripeError = (fields: Record<string, unknown>) => ({ type: 'StripeInvalidRequestError', ...fields })

describe('redact', () => {
  it('removes SPT ids', () => {
    expect(
      redact("No such shared_payment_granted_token: 'spt_1N4Zv32eZvKYlo2CPhVPkJlW'"),
    ).toMatchInlineSnapshot(`"No such shared_payment_granted_token: 'spt_…'"`)
  })

  it('property: no spt_ id survives', () => {
    fc.assert(
      fc.property(fc.string(), fc.stringMatching(/^[A-Za-z0-9_]{1,30}$/), fc.string(), (a, id, b) => {
        expect(redact(`${a}spt_${id}${b}`)).not.toContain(`spt_${id}`)
      }),
    )
  })
})

describe('sptProblem', () => {
  it('is a verification-failed problem with the reason', () => {
    expect(sptProblem('spt-expired').toProblem()).toMatchInlineSnapshot(`
      {
        "detail": "The Shared Payment Token has expired.",
        "reason": "spt-expired",
        "status": 402,
        "title": "Payment Verification Failed",
        "type": "https://paymentauth.org/problems/verification-failed",
      }
    `)
  })
})

describe('fromStripeError', () => {
  it('maps each Stripe failure to its problem', () => {
    const reasons = [
      { type: 'StripeCardError', code: 'card_declined', decline_code: 'insufficient_funds', statusCode: 402 },
      { type: 'StripeCardError', code: 'expired_card', decline_code: '', statusCode: 402 },
      { type: 'StripeRateLimitError', statusCode: 429, headers: { 'retry-after': '7' } },
      { type: 'StripeAPIError', statusCode: 500 },
      { type: 'StripeConnectionError' },
      stripeError({ statusCode: 409, code: 'idempotency_key_in_use' }),
      stripeError({ statusCode: 400, param: 'shared_payment_granted_token', code: 'token_already_used' }),
      stripeError({ statusCode: 400, param: 'shared_payment_granted_token', code: 'something_new' }),
      stripeError({ statusCode: 404, param: 'shared_payment_granted_token', code: 'resource_missing' }),
      stripeError({
        statusCode: 400,
        code: 'amount_too_small',
        message: 'Amount must be at least $0.50 usd',
      }),
      { type: 'StripeAuthenticationError', statusCode: 401 },
    ].map((error) => {
      const problem = fromStripeError(error, 2)
      return `${problem?.status} ${problem?.reason} ${problem?.retryAfter ?? '-'}`
    })
    expect(reasons).toMatchInlineSnapshot(`
      [
        "402 insufficient_funds -",
        "402 expired_card -",
        "503 stripe-rate-limited 7",
        "503 stripe-unavailable 2",
        "503 stripe-unreachable 2",
        "503 stripe-unavailable 2",
        "402 spt-already-used -",
        "402 spt-invalid -",
        "402 spt-unknown -",
        "402 amount_too_small -",
        "503 stripe-misconfigured 2",
      ]
    `)
  })

  it('leaves other errors to the core, and never echoes an SPT', () => {
    expect(fromStripeError(new TypeError('boom'), 1)).toBeUndefined()
    expect(fromStripeError('text', 1)).toBeUndefined()
    const problem = fromStripeError(
      { type: 'StripeCardError', code: 'card_declined', message: 'Declined for spt_abc123' },
      1,
    )
    expect(problem?.detail).toBe('Declined for spt_…')
  })
})

describe('savedServerError', () => {
  it('is a Stripe 5xx that says a resend only replays it', () => {
    const cases = [
      { type: 'StripeAPIError', statusCode: 500, headers: { 'stripe-should-retry': 'false' } },
      { type: 'StripeAPIError', statusCode: 502, headers: { 'idempotent-replayed': 'true' } },
      // Not saved (a proxy error, a failure before execution): a resend returns the real result.
      { type: 'StripeAPIError', statusCode: 500, headers: {} },
      { type: 'StripeAPIError', statusCode: 500 },
      { type: 'StripeAPIError', statusCode: 503, headers: { 'stripe-should-retry': 'true' } },
      // A saved 4xx is Stripe's answer (a decline, a refused token), not an unknown outcome.
      { type: 'StripeCardError', statusCode: 402, headers: { 'idempotent-replayed': 'true' } },
      { type: 'StripeConnectionError', headers: { 'stripe-should-retry': 'false' } },
      { statusCode: 500, headers: { 'stripe-should-retry': 'false' } },
      null,
    ].map(savedServerError)
    expect(cases).toEqual([true, true, false, false, false, false, false, false, false])
  })
})
