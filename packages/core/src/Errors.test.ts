import { describe, expect, it } from 'vitest'
import {
  InvalidChallengeError,
  PaymentError,
  ServiceUnavailableError,
  VerificationFailedError,
} from './Errors.js'

describe('PaymentError.consumed', () => {
  it('is false unless a method sets it, and never reaches the problem body', () => {
    expect(new VerificationFailedError().consumed).toBe(false)
    expect(new InvalidChallengeError({ consumed: false }).consumed).toBe(false)
    const consumed = new VerificationFailedError({
      detail: 'The transfer landed for the wrong amount.',
      reason: 'amount-mismatch',
      consumed: true,
    })
    expect(consumed.consumed).toBe(true)
    expect(PaymentError.is(consumed)).toBe(true)
    expect(consumed.toProblem()).toMatchInlineSnapshot(`
      {
        "detail": "The transfer landed for the wrong amount.",
        "reason": "amount-mismatch",
        "status": 402,
        "title": "Payment Verification Failed",
        "type": "https://paymentauth.org/problems/verification-failed",
      }
    `)
  })

  it('drops Retry-After from a consumed error: resending the same credential cannot succeed', () => {
    expect(new ServiceUnavailableError().retryAfter).toBe(1)
    expect(new ServiceUnavailableError({ retryAfter: 5 }).retryAfter).toBe(5)
    const sent = new ServiceUnavailableError({ detail: 'Sent, then the RPC went away.', consumed: true })
    expect(sent.status).toBe(503)
    expect(sent.retryAfter).toBeUndefined()
    expect(new VerificationFailedError({ retryAfter: 60, consumed: true }).retryAfter).toBeUndefined()
  })
})
