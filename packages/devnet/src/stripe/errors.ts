import { DevnetError } from '../errors.js'

/**
 * The `error` member of a Stripe v1 error envelope, as the simulator sends it.
 *
 * @example
 * ```ts
 * const body: StripeErrorBody = { type: 'card_error', code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' }
 * ```
 */
export type StripeErrorBody = {
  type: 'api_error' | 'card_error' | 'idempotency_error' | 'invalid_request_error'
  message: string
  code?: string
  decline_code?: string
  param?: string
  doc_url?: string
  request_log_url?: string
  charge?: string
  payment_intent?: unknown
  payment_method?: unknown
}

/**
 * An HTTP error answer of the Stripe simulator: carries the status and the `error` body that is sent in
 * Stripe's `{ error: { … } }` envelope. `persist` says whether the answer is stored against the request's
 * Idempotency-Key: Stripe saves a result only once the endpoint "started executing" (a card decline is
 * saved and replayed; a parameter validation failure is not).
 *
 * @example
 * ```ts
 * throw new StripeHttpError(404, { type: 'invalid_request_error', code: 'resource_missing', message: "No such refund: 're_1'" })
 * ```
 */
export class StripeHttpError extends DevnetError {
  override name = 'StripeHttpError'
  readonly status: number
  readonly body: StripeErrorBody
  readonly persist: boolean
  readonly headers: Record<string, string>
  constructor(
    status: number,
    body: StripeErrorBody,
    options: { persist?: boolean; headers?: Record<string, string> } = {},
  ) {
    super(body.message, { code: body.code ?? body.type })
    this.status = status
    this.body = body
    this.persist = options.persist ?? false
    this.headers = options.headers ?? {}
  }
}

/**
 * Stripe's documentation link for an error code.
 *
 * @example
 * ```ts
 * docUrl('card_declined') // 'https://stripe.com/docs/error-codes/card-declined'
 * ```
 */
export function docUrl(code: string): string {
  return `https://stripe.com/docs/error-codes/${code.replaceAll('_', '-')}`
}

/**
 * A 400 `invalid_request_error` about one parameter.
 *
 * @example
 * ```ts
 * throw invalidParam('amount', 'Amount must be at least $0.50 usd', 'amount_too_small')
 * ```
 */
export function invalidParam(param: string, message: string, code?: string): StripeHttpError {
  return new StripeHttpError(400, {
    type: 'invalid_request_error',
    message,
    param,
    ...(code === undefined ? {} : { code, doc_url: docUrl(code) }),
  })
}

/**
 * Stripe's answer to a required parameter that is absent.
 *
 * @example
 * ```ts
 * throw missingParam('amount') // "Missing required param: amount."
 * ```
 */
export function missingParam(param: string): StripeHttpError {
  return invalidParam(param, `Missing required param: ${param}.`, 'parameter_missing')
}

/**
 * Stripe's answer to a parameter the endpoint does not know.
 *
 * @example
 * ```ts
 * throw unknownParam('bogus') // code parameter_unknown
 * ```
 */
export function unknownParam(param: string): StripeHttpError {
  return invalidParam(
    param,
    `Received unknown parameter: ${param}. Did you mean to pass a different parameter?`,
    'parameter_unknown',
  )
}

/**
 * Stripe's 404 for an object id that does not exist in the request's account.
 *
 * @example
 * ```ts
 * throw resourceMissing('payment_intent', 'intent', 'pi_123') // "No such payment_intent: 'pi_123'"
 * ```
 */
export function resourceMissing(kind: string, param: string, id: string | undefined): StripeHttpError {
  // The id is echoed as Stripe does, except for kinds whose id is itself a credential (an SPT).
  const message = id === undefined ? `No such ${kind}.` : `No such ${kind}: '${id}'`
  return new StripeHttpError(404, {
    type: 'invalid_request_error',
    code: 'resource_missing',
    doc_url: docUrl('resource_missing'),
    message,
    param,
  })
}

/**
 * Stripe's answer to an operation that the object's current status does not allow.
 *
 * @example
 * ```ts
 * throw unexpectedState('You cannot confirm this PaymentIntent because it has a status of succeeded.')
 * ```
 */
export function unexpectedState(message: string, code = 'payment_intent_unexpected_state'): StripeHttpError {
  return new StripeHttpError(400, { type: 'invalid_request_error', code, doc_url: docUrl(code), message })
}
