/**
 * The error hierarchy of mppkit: `BaseError` → `PaymentError` (an RFC 9457 problem) → one class per
 * problem type of the Payment scheme. Errors are recognized by a `Symbol.for` marker, so two copies of
 * `@mppkit/core` in one process still agree on what a payment error is.
 *
 * Messages never contain credentials, preimages, tokens or keys.
 *
 * @see draft-httpauth-payment-00 §8 (Error Handling)
 */

const baseMarker = Symbol.for('mppkit.BaseError')
const paymentMarker = Symbol.for('mppkit.PaymentError')

/** The canonical base URI for problem types. */
export const problemBase = 'https://paymentauth.org/problems/'

/**
 * Root of every error mppkit throws.
 *
 * @example
 * ```ts
 * if (BaseError.is(error)) console.log(error.code)
 * ```
 */
export class BaseError extends Error {
  override name = 'BaseError'
  /** A stable machine-readable code. */
  readonly code: string
  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = options.code ?? 'mppkit'
    Object.defineProperty(this, baseMarker, { value: true })
  }
  /** True for any mppkit error, from any copy of the package. */
  static is(value: unknown): value is BaseError {
    return typeof value === 'object' && value !== null && (value as any)[baseMarker] === true
  }
}

/** A problem+json body (RFC 9457). */
export type Problem = {
  type: string
  title: string
  status: number
  detail?: string
  [extension: string]: unknown
}

type PaymentErrorOptions = {
  detail?: string
  cause?: unknown
  /** Seconds after which a retry may succeed; set for transient failures (rail or store unavailable). */
  retryAfter?: number
  /** A stable rail-specific reason, e.g. `amount-mismatch`. */
  reason?: string
  /** Problem extension members (never secrets). */
  extensions?: Record<string, unknown>
  /**
   * Set by a method whose `settle` fails after it moved value or spent the credential's proof, or may
   * have (a transfer broadcast and then not confirmed, a payment received for the wrong amount): the
   * server then keeps the challenge consumed instead of releasing it, so the same credential is never
   * verified or settled again, and the error never carries `Retry-After` (a retry cannot succeed).
   * Default false: the challenge is released and the same credential may be retried.
   */
  consumed?: boolean
}

/**
 * An error that maps to an RFC 9457 problem and an HTTP status.
 *
 * @example
 * ```ts
 * throw new PaymentError({ type: 'verification-failed', title: 'Payment Verification Failed', status: 402 })
 * ```
 * @see draft-httpauth-payment-00 §8.2
 */
export class PaymentError extends BaseError {
  override name = 'PaymentError'
  /** Problem type, relative to {@link problemBase} (e.g. `verification-failed`, `session/delta-too-small`). */
  readonly type: string
  readonly title: string
  readonly status: number
  readonly detail: string | undefined
  readonly retryAfter: number | undefined
  readonly reason: string | undefined
  readonly extensions: Record<string, unknown>
  /**
   * True when the failure consumed the challenge: value moved, or may have, before the method refused
   * (see {@link PaymentErrorOptions.consumed}). Never serialized into the problem.
   */
  readonly consumed: boolean

  constructor(problem: { type: string; title: string; status: number } & PaymentErrorOptions) {
    super(problem.detail ?? problem.title, { code: problem.type, cause: problem.cause })
    this.type = problem.type
    this.title = problem.title
    this.status = problem.status
    this.detail = problem.detail
    this.consumed = problem.consumed === true
    // "Servers SHOULD use the `Retry-After` HTTP header […] to indicate when clients may retry" (§8.3):
    // never, with a consumed challenge. Clients resend the same credential after a 503 + Retry-After.
    this.retryAfter = this.consumed ? undefined : problem.retryAfter
    this.reason = problem.reason
    this.extensions = problem.extensions ?? {}
    Object.defineProperty(this, paymentMarker, { value: true })
  }

  /** True for any payment error, from any copy of the package. */
  static override is(value: unknown): value is PaymentError {
    return typeof value === 'object' && value !== null && (value as any)[paymentMarker] === true
  }

  /** The absolute problem type URI (a type that already has a scheme, such as `about:blank`, is kept). */
  get typeUri(): string {
    return /^[A-Za-z][A-Za-z0-9+.-]*:/.test(this.type) ? this.type : problemBase + this.type
  }

  /** The RFC 9457 problem body. */
  toProblem(extra: Record<string, unknown> = {}): Problem {
    const problem: Problem = { type: this.typeUri, title: this.title, status: this.status }
    if (this.detail !== undefined) problem.detail = this.detail
    if (this.reason !== undefined) problem.reason = this.reason
    return { ...problem, ...this.extensions, ...extra }
  }
}

/**
 * What {@link problemClass} returns, spelled out: an inferred type would copy `ErrorConstructor`'s
 * statics, which @types/node augments (`NodeJS.CallSite`), into the declarations.
 */
type ProblemClass = {
  new (options?: PaymentErrorOptions): PaymentError
  readonly prototype: PaymentError
  is(value: unknown): value is PaymentError
}

function problemClass(type: string, title: string, status: number, className: string): ProblemClass {
  const Class = class extends PaymentError {
    constructor(options: PaymentErrorOptions = {}) {
      super({ type, title, status, ...options })
      this.name = className
    }
  }
  Object.defineProperty(Class, 'name', { value: className })
  return Class
}

/** `payment-required`: the resource requires payment. @see draft-httpauth-payment-00 §8.2 */
export class PaymentRequiredError extends problemClass(
  'payment-required',
  'Payment Required',
  402,
  'PaymentRequiredError',
) {}
/** `payment-insufficient`: the amount is too low. */
export class PaymentInsufficientError extends problemClass(
  'payment-insufficient',
  'Payment Insufficient',
  402,
  'PaymentInsufficientError',
) {}
/** `payment-expired`: the challenge or authorization expired. */
export class PaymentExpiredError extends problemClass(
  'payment-expired',
  'Payment Expired',
  402,
  'PaymentExpiredError',
) {}
/** `verification-failed`: the proof is invalid. */
export class VerificationFailedError extends problemClass(
  'verification-failed',
  'Payment Verification Failed',
  402,
  'VerificationFailedError',
) {}
/** `method-unsupported`: the method/intent is not accepted (HTTP 400). */
export class MethodUnsupportedError extends problemClass(
  'method-unsupported',
  'Payment Method Unsupported',
  400,
  'MethodUnsupportedError',
) {}
/** `malformed-credential`: the credential could not be decoded. */
export class MalformedCredentialError extends problemClass(
  'malformed-credential',
  'Malformed Payment Credential',
  402,
  'MalformedCredentialError',
) {}
/** `invalid-challenge`: the challenge id is unknown, expired, or already used. */
export class InvalidChallengeError extends problemClass(
  'invalid-challenge',
  'Invalid Payment Challenge',
  402,
  'InvalidChallengeError',
) {}

/**
 * A rail or store is unavailable: HTTP 503 with `Retry-After`. Nothing was consumed or charged, unless
 * the method says otherwise with `consumed: true` (the rail went away after a transfer was sent): then
 * the challenge stays consumed and there is no `Retry-After`.
 *
 * @example
 * ```ts
 * throw new ServiceUnavailableError({ detail: 'RPC unreachable', retryAfter: 2 })
 * ```
 */
export class ServiceUnavailableError extends PaymentError {
  constructor(options: PaymentErrorOptions = {}) {
    super({
      type: 'service-unavailable',
      title: 'Payment Service Unavailable',
      status: 503,
      retryAfter: 1,
      ...options,
    })
    this.name = 'ServiceUnavailableError'
  }
}

/** The shared Store could not be reached; maps to 503 + Retry-After. */
export class StoreUnavailableError extends ServiceUnavailableError {
  constructor(options: PaymentErrorOptions = {}) {
    super({ detail: 'Payment store unavailable', reason: 'store-unavailable', ...options })
    this.name = 'StoreUnavailableError'
  }
}

/**
 * A store refused an operation for a reason a retry does not fix (permission denied, a key or table of
 * the wrong shape, a failed login): HTTP 500 without `Retry-After`, and a problem body that names no key,
 * table or command (those stay in `cause`). Store implementations subclass it with their own details.
 */
export class StoreError extends PaymentError {
  constructor(options: PaymentErrorOptions = {}) {
    super({
      type: 'store-error',
      title: 'Payment Store Error',
      status: 500,
      detail: 'The payment store refused the operation; retrying does not help until it is fixed.',
      reason: 'store-error',
      ...options,
    })
    this.name = 'StoreError'
  }
}

/**
 * A counter key holds something other than a decimal integer (written by something else, or corrupted):
 * a {@link StoreError} (HTTP 500, no `Retry-After`: a retry cannot fix the value), with the stable code
 * `store_invalid_counter`. Every store throws it for the same values.
 */
export class InvalidCounterError extends StoreError {
  override readonly code: string = 'store_invalid_counter'
  constructor(options: { cause?: unknown } = {}) {
    super({ detail: 'The payment store holds a counter that is not a decimal integer.', ...options })
    this.name = 'InvalidCounterError'
  }
}

/** A request is already being processed under the same Idempotency-Key (HTTP 409, retry later). */
export class IdempotencyConflictError extends PaymentError {
  constructor(options: PaymentErrorOptions = {}) {
    super({
      type: 'idempotency-conflict',
      title: 'Request In Progress',
      status: 409,
      retryAfter: 1,
      ...options,
    })
    this.name = 'IdempotencyConflictError'
  }
}

/**
 * Several `Authorization: Payment` credentials in one request: "Servers receiving multiple Payment
 * credentials in a single request SHOULD reject with 400 (Bad Request)." (draft-httpauth-payment-00 §A)
 * The spec's `malformed-credential` type is a 402, so this 400 is a plain RFC 9457 `about:blank`
 * problem (title: the status phrase), with `reason: multiple-credentials`.
 */
export class MultipleCredentialsError extends PaymentError {
  constructor(options: PaymentErrorOptions = {}) {
    super({
      type: 'about:blank',
      title: 'Bad Request',
      status: 400,
      reason: 'multiple-credentials',
      ...options,
    })
    this.name = 'MultipleCredentialsError'
  }
}

/**
 * A request body larger than the server accepts (`maxBodyBytes`): HTTP 413, an RFC 9457 `about:blank`
 * problem titled with the status phrase, `reason: body-too-large`. Nothing was read past the limit.
 *
 * @example
 * ```ts
 * throw new ContentTooLargeError({ detail: 'The request body exceeds 1048576 bytes.' })
 * ```
 */
export class ContentTooLargeError extends PaymentError {
  constructor(options: PaymentErrorOptions = {}) {
    super({
      type: 'about:blank',
      title: 'Content Too Large',
      status: 413,
      reason: 'body-too-large',
      ...options,
    })
    this.name = 'ContentTooLargeError'
  }
}

/**
 * A retry (same Idempotency-Key, or the credential that consumed the challenge) of a paid request whose
 * response was streamed: a stream is delivered as it is produced and never stored, so it cannot be
 * replayed, and the handler is not run again without a new payment. HTTP 410, `response-not-replayable`.
 *
 * @example
 * ```ts
 * new ResponseNotReplayableError().status // 410
 * ```
 */
export class ResponseNotReplayableError extends PaymentError {
  constructor(options: PaymentErrorOptions = {}) {
    super({
      type: 'response-not-replayable',
      title: 'Response Not Replayable',
      status: 410,
      detail: 'The paid response was streamed and cannot be replayed; pay again for a new response.',
      ...options,
    })
    this.name = 'ResponseNotReplayableError'
  }
}

/** A codec could not parse its input (a header, base64url, JSON). `kind` matches the conformance ABI. */
export class ParseError extends BaseError {
  override name = 'ParseError'
  readonly kind: 'parse_error' | 'encoding_error'
  constructor(message: string, options: { kind?: 'parse_error' | 'encoding_error'; cause?: unknown } = {}) {
    super(message, { code: options.kind ?? 'parse_error', cause: options.cause })
    this.kind = options.kind ?? 'parse_error'
  }
}

/** A value could not be formatted safely (e.g. CRLF in a header parameter). */
export class FormatError extends BaseError {
  override name = 'FormatError'
  constructor(message: string) {
    super(message, { code: 'format_error' })
  }
}

/** Invalid configuration given by the library user (weak secret, duplicate method, …). */
export class ConfigurationError extends BaseError {
  override name = 'ConfigurationError'
  constructor(message: string) {
    super(message, { code: 'configuration_error' })
  }
}

/** The client's spend policy refused to pay a challenge. Nothing was signed or sent. */
export class PolicyError extends BaseError {
  override name = 'PolicyError'
  readonly reason: string
  constructor(reason: string, message: string) {
    super(message, { code: 'policy_refused' })
    this.reason = reason
  }
}
