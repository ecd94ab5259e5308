import * as Base64url from '../Base64url.js'
import type * as Challenge from '../Challenge.js'
import type * as Credential from '../Credential.js'
import { PaymentError } from '../Errors.js'
import * as IdempotencyCache from '../IdempotencyCache.js'
import type * as Receipt from '../Receipt.js'
import type { Core } from './Core.js'
import type { Binding, Idempotency } from './Idempotency.js'
import * as Problems from './Problems.js'

/** What a route handler learns about the payment. */
export type Payment = {
  receipt: Receipt.Receipt
  credential: Credential.Credential
  challenge: Challenge.Challenge
  /** Method-provided data (e.g. a session meter). */
  context: unknown
}

/** A Fetch-style route handler. */
export type Handler = (request: Request, payment: Payment) => Response | Promise<Response>

// Captured at load: frameworks may replace the global Response later.
const NativeResponse = globalThis.Response

/**
 * True for a Response that can be sent with a receipt: a final status (200–599) and headers. Frameworks'
 * own Response classes qualify, `Response.error()` (status 0) and non-Response values do not.
 *
 * @example
 * ```ts
 * isServable(Response.error()) // false
 * ```
 */
export function isServable(value: unknown): value is Response {
  if (typeof value !== 'object' || value === null) return false
  const { status, headers } = value as { status?: unknown; headers?: { get?: unknown } }
  return (
    typeof status === 'number' &&
    Number.isInteger(status) &&
    status >= 200 &&
    status <= 599 &&
    typeof headers?.get === 'function'
  )
}

/** What a paid outcome needs from the server (shared by every paid request). */
export type PaidInternals = { core: Core; idempotency: Idempotency }

/**
 * A settled payment, transport-neutral: the payment for the handler, and how to record what was
 * delivered (`delivered`/`failed`, for an Idempotency-Key or `replaysConsumed` record). The HTTP
 * members (`decorate`, `finalize`, `fail`) attach the receipt to a Response and record it.
 *
 * One object per paid request, with its methods on the prototype (no closures per request).
 *
 * @example
 * ```ts
 * if (outcome.status === 'paid') return outcome.finalize(await handler(request, outcome.payment))
 * ```
 * @see draft-httpauth-payment-00 §5.3
 */
export class Paid {
  readonly status = 'paid' as const
  readonly payment: Payment
  /** A response the method asked for instead of the route handler (session close/top-up). */
  readonly response: Response | undefined
  /** True when a record is kept for this payment (finalize then stores the response). */
  readonly idempotent: boolean
  readonly #internals: PaidInternals
  readonly #receiptHeader: string
  readonly #binding: Binding | undefined

  constructor(
    internals: PaidInternals,
    credential: Credential.Credential,
    receipt: Receipt.Receipt,
    context: unknown,
    methodResponse: Response | undefined,
    binding: Binding | undefined,
    /** The receipt's field value, when the caller serialized it already (a settlement checks it can be). */
    receiptHeader?: string,
  ) {
    this.#internals = internals
    // Built from checked parts (or read back from a JSON record), so it is encoded directly.
    this.#receiptHeader = receiptHeader ?? Base64url.encode(JSON.stringify(receipt))
    this.#binding = binding
    this.idempotent = binding !== undefined
    this.payment = { receipt, credential, challenge: credential.challenge, context }
    this.response = methodResponse
  }

  /** The receipt of this payment. */
  get receipt(): Receipt.Receipt {
    return this.payment.receipt
  }

  /** The `Payment-Receipt` field value (base64url JSON). */
  get receiptHeader(): string {
    return this.#receiptHeader
  }

  /** Records a delivered result: a stored response replays to retries, `streamed` never does. */
  async delivered(result: IdempotencyCache.StoredResponse | 'streamed'): Promise<void> {
    if (!this.#binding) return
    const receipt = this.payment.receipt
    await this.#internals.idempotency.record(
      this.#binding,
      result === 'streamed' ? { state: 'streamed', receipt } : { state: 'done', receipt, response: result },
    )
  }

  /** Records a failed delivery (reported as `handler`): one retry may serve the payment again. */
  async failed(error: unknown): Promise<void> {
    this.#internals.core.report(error, 'handler')
    await this.#recordFailed()
  }

  async #recordFailed(): Promise<void> {
    if (this.#binding)
      await this.#internals.idempotency.record(this.#binding, {
        state: 'failed',
        receipt: this.payment.receipt,
      })
  }

  /** Adds the receipt headers only (no record): what finalize does first. */
  decorate(response: Response): Response {
    let out = response
    let headers = response.headers
    // Native responses built by the handler are mutable: add headers in place (no copy). Anything else
    // (immutable fetch() responses, framework wrappers such as @hono/node-server's) is copied, headers
    // first, since some wrappers rebuild themselves from their original init when the body is read.
    const success = response.status >= 200 && response.status < 300
    let inPlace = response.constructor === NativeResponse
    if (inPlace) {
      try {
        // "Servers MUST NOT return a `Payment-Receipt` header on error responses." (§5.3.1)
        if (success) headers.set('payment-receipt', this.#receiptHeader)
        else headers.delete('payment-receipt')
      } catch {
        inPlace = false
      }
    }
    if (!inPlace) {
      headers = new Headers(response.headers)
      if (success) headers.set('payment-receipt', this.#receiptHeader)
      else headers.delete('payment-receipt')
    }
    if (success) {
      // "Responses containing `Payment-Receipt` headers MUST include `Cache-Control: private`" (§12.9)
      const cacheControl = headers.get('cache-control')
      if (cacheControl === null || !keepsFromSharedCaches(cacheControl))
        headers.set('cache-control', 'private')
    }
    if (!inPlace) {
      // Headers are complete now: the Response constructor copies them.
      const { status, statusText } = response
      out = new NativeResponse(response.body, { status, statusText, headers })
    }
    return out
  }

  /**
   * Adds the receipt headers and records the response for retries: a buffered copy, or `streamed`
   * for a stream (see IdempotencyCache.isStreamed), which flows to the client as it is produced.
   */
  async finalize(response: Response): Promise<Response> {
    if (!isServable(response))
      return this.fail(new TypeError('the route did not produce a servable Response'))
    let out = this.decorate(response)
    if (!this.#binding) return out
    // A 5xx is a failure to deliver what was paid for, not the answer to replay for 24 h: it is recorded
    // as failed, so a retry with the same Idempotency-Key runs the handler again (without charging).
    if (out.status >= 500) await this.#recordFailed()
    else if (IdempotencyCache.isStreamed(out)) await this.delivered('streamed')
    else {
      let snapshot: Awaited<ReturnType<typeof IdempotencyCache.snapshot>>
      try {
        snapshot = await IdempotencyCache.snapshot(out)
      } catch (cause) {
        // The handler's body failed while it was buffered for the record: nothing was delivered, so it
        // is recorded as failed (a retry with the key serves the payment again) and reported.
        return this.fail(cause)
      }
      out = snapshot.response
      await this.delivered(snapshot.stored)
    }
    return out
  }

  /** Marks the handler as failed: the payment stays settled and recoverable by Idempotency-Key. */
  async fail(error: unknown): Promise<Response> {
    await this.failed(error)
    return Problems.toResponse(
      new PaymentError({
        type: 'handler-failed',
        title: 'Resource Delivery Failed',
        status: 500,
        detail: this.#binding
          ? 'The payment was settled but the response failed; retry with the same Idempotency-Key and credential.'
          : 'The payment was settled but the response failed.',
      }),
    )
  }
}

/**
 * True when a `Cache-Control` value keeps the whole response out of shared caches: a `no-store`, or a
 * `private` without field names. "The qualified form of the private response directive, with an
 * argument that lists one or more field names, indicates that only the listed header fields are limited
 * to a single user: a shared cache MUST NOT store the listed header fields if they are present in the
 * original response but MAY store the remainder of the response message" (RFC 9111 §5.2.2.7), so
 * `private="set-cookie"` would let a shared cache serve the paid content to clients that never paid.
 * Directives are compared whole (`x-private-note` is not `private`), and a comma inside a quoted
 * argument does not start a directive. Linear time.
 */
function keepsFromSharedCaches(cacheControl: string): boolean {
  const length = cacheControl.length
  let i = 0
  while (i < length) {
    // One directive: `name [= token / quoted-string]`, up to the next comma outside quotes.
    const start = i
    while (i < length && cacheControl[i] !== ',' && cacheControl[i] !== '=') i++
    const name = cacheControl.slice(start, i).trim().toLowerCase()
    let argument = false
    if (cacheControl[i] === '=') {
      argument = true
      i++
      let quoted = false
      for (; i < length; i++) {
        const char = cacheControl[i]
        if (quoted) {
          if (char === '\\') i++
          else if (char === '"') quoted = false
        } else if (char === '"') quoted = true
        else if (char === ',') break
      }
    }
    if (name === 'no-store' || (name === 'private' && !argument)) return true
    i++
  }
  return false
}
