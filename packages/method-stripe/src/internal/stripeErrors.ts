import { BaseError, type PaymentError, ServiceUnavailableError, VerificationFailedError } from '@mppkit/core'

/** The fields of a `stripe` SDK error this rail reads (duck-typed, so any SDK copy or version works). */
type StripeErrorLike = {
  type?: unknown
  statusCode?: unknown
  code?: unknown
  decline_code?: unknown
  param?: unknown
  message?: unknown
  headers?: Record<string, unknown>
  requestId?: unknown
}

/**
 * Removes SPT ids from a text that comes from Stripe: "Never put a credential, preimage, SPT or private
 * key in an error message or a log line."
 */
export function redact(text: string): string {
  return text.replace(/spt_[A-Za-z0-9_]+/g, 'spt_…')
}

const sptParams = new Set([
  'shared_payment_granted_token',
  'payment_method_data[shared_payment_granted_token]',
])

// Stripe does not publish the codes of these preview-API failures: the codes the devnet simulator uses
// (and `token_already_used`, Stripe's public code for a reused single-use token) are recognized by the
// words in them, anything else about the token parameter is `spt-invalid`.
const sptReasons: [RegExp, string, string][] = [
  [/already_used|consumed|resolved/, 'spt-already-used', 'The Shared Payment Token has already been used.'],
  [/expired/, 'spt-expired', 'The Shared Payment Token has expired.'],
  [/revoked/, 'spt-revoked', 'The Shared Payment Token has been revoked by its issuer.'],
  [
    /limit_exceeded|max_amount|amount/,
    'spt-amount-exceeded',
    "The amount exceeds the Shared Payment Token's usage_limits[max_amount].",
  ],
  [
    /currency/,
    'spt-currency-mismatch',
    "The currency differs from the Shared Payment Token's usage_limits[currency].",
  ],
  [
    /seller|network|profile/,
    'spt-wrong-network',
    "The Shared Payment Token was issued to another seller's Stripe profile (networkId).",
  ],
]

/**
 * A problem about the SPT itself, by reason (e.g. `spt-expired`).
 *
 * @example
 * ```ts
 * throw sptProblem('spt-expired')
 * ```
 */
export function sptProblem(reason: string, detail?: string): PaymentError {
  const known = sptReasons.find(([, name]) => name === reason)
  return new VerificationFailedError({
    reason,
    detail: detail ?? known?.[2] ?? 'The Shared Payment Token cannot pay this charge.',
  })
}

function header(error: StripeErrorLike, name: string): string | undefined {
  const value = error.headers?.[name]
  return typeof value === 'string' ? value : undefined
}

/**
 * Maps an error thrown by the `stripe` SDK to the problem the client receives, or `undefined` when it is
 * not a Stripe error (the core then answers 503). Card declines keep Stripe's decline code as `reason`;
 * outages (5xx, 429, timeouts, an idempotency key in use) are 503 with `Retry-After`, so the core
 * releases the challenge and the same credential can be retried (Stripe's idempotency replays it). A 5xx
 * Stripe saved for the key is not retryable: settlement checks {@link savedServerError} first.
 */
export function fromStripeError(error: unknown, retryAfter: number): PaymentError | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const e = error as StripeErrorLike
  const type = typeof e.type === 'string' ? e.type : ''
  if (!type.startsWith('Stripe')) return undefined
  const status = typeof e.statusCode === 'number' ? e.statusCode : undefined
  const code = typeof e.code === 'string' ? e.code : undefined
  const message = typeof e.message === 'string' ? redact(e.message) : undefined

  if (type === 'StripeConnectionError')
    return new ServiceUnavailableError({
      reason: 'stripe-unreachable',
      detail: 'Stripe did not answer in time.',
      retryAfter,
    })
  if (type === 'StripeRateLimitError' || status === 429) {
    const hinted = Number(header(e, 'retry-after'))
    return new ServiceUnavailableError({
      reason: 'stripe-rate-limited',
      detail: 'Stripe is rate limiting this server.',
      retryAfter: Number.isFinite(hinted) && hinted > 0 ? hinted : retryAfter,
    })
  }
  if (
    type === 'StripeAPIError' ||
    (status !== undefined && status >= 500) ||
    code === 'idempotency_key_in_use'
  )
    return new ServiceUnavailableError({
      reason: 'stripe-unavailable',
      detail: 'Stripe is unavailable; retry the same credential.',
      retryAfter,
    })
  if (type === 'StripeCardError') {
    // "If the PaymentIntent fails … server returns 402 with a new challenge": the reason is Stripe's
    // decline code (`insufficient_funds`, `generic_decline`, …), the detail its public message.
    const declineCode =
      typeof e.decline_code === 'string' && e.decline_code !== '' ? e.decline_code : undefined
    return new VerificationFailedError({
      reason: declineCode ?? code ?? 'card_declined',
      detail: message ?? 'The card was declined.',
      extensions: { stripeCode: code ?? 'card_declined', ...(declineCode ? { declineCode } : {}) },
    })
  }
  if (type === 'StripeAuthenticationError' || type === 'StripePermissionError')
    return new ServiceUnavailableError({
      reason: 'stripe-misconfigured',
      detail: "The server's Stripe credentials were refused.",
      retryAfter,
    })
  if (typeof e.param === 'string' && sptParams.has(e.param)) {
    if (code === 'resource_missing' || status === 404)
      return sptProblem(
        'spt-unknown',
        "The Shared Payment Token does not exist or was not granted to this seller's Stripe profile.",
      )
    const match = sptReasons.find(([pattern]) => pattern.test(code ?? ''))
    return match ? sptProblem(match[1]) : sptProblem('spt-invalid')
  }
  if (type === 'StripeIdempotencyError')
    return new VerificationFailedError({
      reason: 'stripe-idempotency-conflict',
      detail: 'This challenge and token were already sent to Stripe with other parameters.',
    })
  return new VerificationFailedError({
    reason: code ?? 'stripe-invalid-request',
    detail: message ?? 'Stripe refused the payment.',
  })
}

/**
 * True when a `stripe` SDK error from an idempotent POST is a 5xx that Stripe's idempotency layer keeps
 * for the key, so that resending the request can never tell what happened: "Stripe saves the status
 * code and body of the first request made with a given idempotency key after endpoint execution begins.
 * Retries with the same key return the saved response, including `500` errors"
 * (https://docs.stripe.com/api/idempotent_requests). The endpoint began executing, so the PaymentIntent
 * may exist and the token may be charged. Stripe says so on the answer itself with
 * `Stripe-Should-Retry: false` (a resend "would be a no-op", as the SDK's retry logic puts it), and on
 * each replay with `Idempotent-Replayed: true`. A 5xx without either (a proxy error, a failure before
 * execution) is not saved: a resend with the same key returns the real result.
 *
 * @example
 * ```ts
 * if (savedServerError(error)) throw new ServiceUnavailableError({ reason: 'stripe-outcome-unknown', consumed: true })
 * ```
 */
export function savedServerError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const e = error as StripeErrorLike
  if (typeof e.type !== 'string' || !e.type.startsWith('Stripe')) return false
  if (typeof e.statusCode !== 'number' || e.statusCode < 500) return false
  return header(e, 'stripe-should-retry') === 'false' || header(e, 'idempotent-replayed') === 'true'
}

/** What identifies a `stripe` SDK error, without the rest of it. */
export type StripeErrorSummary = {
  type?: string
  code?: string
  statusCode?: number
  requestId?: string
}

/**
 * The identifying fields of a `stripe` SDK error (`type`, `code`, `statusCode`, `requestId`) and nothing
 * else: the SDK copies `raw.payment_intent` onto its errors, which can carry the SPT
 * (`shared_payment_granted_token`), and "Never put a credential, preimage, SPT or private key in an error
 * message or a log line."
 */
export function stripeErrorSummary(error: unknown): StripeErrorSummary {
  if (typeof error !== 'object' || error === null) return {}
  const e = error as StripeErrorLike
  return {
    ...(typeof e.type === 'string' ? { type: e.type } : {}),
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.statusCode === 'number' ? { statusCode: e.statusCode } : {}),
    ...(typeof e.requestId === 'string' ? { requestId: e.requestId } : {}),
  }
}

/**
 * A refund Stripe refused or could not be reached for (code `stripe_refund_failed`). A seller-side
 * failure, not a payment problem: `statusCode` and `stripeCode` say why (e.g. 404 `resource_missing`
 * when the PaymentIntent is on another account), and `cause` holds only {@link stripeErrorSummary}.
 */
export class StripeRefundError extends BaseError {
  override name = 'StripeRefundError'
  /** Stripe's HTTP status, when Stripe answered. */
  readonly statusCode: number | undefined
  /** Stripe's error code (e.g. `resource_missing`, `charge_already_refunded`), when it gave one. */
  readonly stripeCode: string | undefined

  constructor(paymentIntent: string, error: unknown) {
    const summary = stripeErrorSummary(error)
    const message = (error as StripeErrorLike | null)?.message
    super(
      `stripe refund of ${paymentIntent} failed${summary.statusCode ? ` (${summary.statusCode}${summary.code ? ` ${summary.code}` : ''})` : ''}${typeof message === 'string' && summary.type ? `: ${redact(message)}` : ''}`,
      { code: 'stripe_refund_failed', cause: summary },
    )
    this.statusCode = summary.statusCode
    this.stripeCode = summary.code
  }
}
