import { BaseError, ConfigurationError, ServiceUnavailableError } from '@mppkit/core/client'

/**
 * True for a rejection of the `lightning` package that means the node could not be reached (its
 * `[503, 'Message', { err: { code: 14 } }]` arrays: gRPC UNAVAILABLE / DEADLINE_EXCEEDED).
 */
export function isUnavailable(error: unknown): boolean {
  if (!Array.isArray(error)) return false
  const grpcCode = (error[2] as { err?: { code?: unknown } } | undefined)?.err?.code
  return grpcCode === 14 || grpcCode === 4 || (error[0] === 503 && grpcCode === undefined)
}

/** The node's failure as a 503 + Retry-After (nothing from the node's message: it may name hosts). */
export function unavailable(cause: unknown): ServiceUnavailableError {
  return new ServiceUnavailableError({
    detail: 'The Lightning node is unavailable.',
    reason: 'node-unavailable',
    retryAfter: 2,
    cause,
  })
}

/**
 * How long the server waits for its node, in ms: `callMs` for one call (an invoice issued or looked up,
 * a payment looked up), `payMs` for a refund payment. `lightning` sets no gRPC deadline, so a node that
 * stalls, or a connection that died without a reset, would otherwise hold a request forever.
 */
export type NodeTimeouts = { callMs: number; payMs: number }

/** Ten seconds for a call; thirty for a refund payment (a multi-hop route may take a while). */
export const defaultNodeTimeouts: NodeTimeouts = { callMs: 10_000, payMs: 30_000 }

/**
 * A timeout option in ms, or `fallback` when absent. Anything but a positive whole number that a timer
 * can hold throws `ConfigurationError` (`what` names the option): a larger one would fire at once.
 *
 * @example
 * ```ts
 * const callMs = checkedTimeout(options.nodeTimeoutMs, defaultNodeTimeouts.callMs, 'lightning: nodeTimeoutMs')
 * ```
 */
export function checkedTimeout(value: unknown, fallback: number, what: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > 2_147_483_647)
    throw new ConfigurationError(`${what} must be a whole number of milliseconds, 1 to 2147483647`)
  return value
}

const timedOut: unique symbol = Symbol('timed out')

/**
 * What `work` settles with, or what `late()` gives when it has not settled within `ms`. The work is not
 * stopped (a node call cannot be taken back); what it settles with afterwards is ignored. The timer is
 * cleared either way, so nothing is left to keep the process alive.
 *
 * @example
 * ```ts
 * const paid = await within(pay({ lnd, request }), 30_000, () => 'in flight' as const)
 * ```
 */
export async function within<T, L>(work: Promise<T>, ms: number, late: () => L): Promise<T | L> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<typeof timedOut>((resolve) => {
    timer = setTimeout(resolve, ms, timedOut)
  })
  try {
    const first = await Promise.race([work, deadline])
    return first === timedOut ? late() : first
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Runs a node call, turning "node unreachable" into {@link unavailable}, and so also a call that gets no
 * answer within `timeoutMs` (default {@link defaultNodeTimeouts}`.callMs`).
 *
 * @example
 * ```ts
 * const invoice = await call(() => getInvoice({ lnd, id }), 10_000)
 * ```
 */
export async function call<T>(
  run: () => Promise<T>,
  timeoutMs: number = defaultNodeTimeouts.callMs,
): Promise<T> {
  try {
    return await within((async () => run())(), timeoutMs, () => {
      throw unavailable(
        new BaseError(`The Lightning node did not answer within ${timeoutMs} ms.`, {
          code: 'lightning-node-timeout',
        }),
      )
    })
  } catch (error) {
    if (isUnavailable(error)) throw unavailable(error)
    throw error
  }
}

/** The `lightning` package's error name (`[code, 'Name', …]`), for logs without secrets. */
export function errorName(error: unknown): string {
  if (Array.isArray(error) && typeof error[1] === 'string') return error[1]
  return error instanceof Error ? error.name : 'unknown error'
}

/**
 * Texts of LND's refusals of `SendPaymentV2` made before any HTLC leaves (the `lightning` package reports
 * them as `[503, 'UnexpectedPaymentError', { err }]`, the same as a dropped connection).
 */
const refusedBeforeSending =
  /invoice expired|invoice is already paid|payment is in transition|amount must|not for current active network|self-payments not allowed/i

/**
 * Failures `lightning`'s `pay` reports once LND finished the payment as failed: LND marks a payment
 * failed only after every HTLC of it resolved, so nothing was paid.
 */
const finishedFailed = new Set([
  'PaymentExecutionCanceled',
  'InsufficientBalanceToAttemptPayment',
  'PaymentRejectedByDestination',
  'PaymentAttemptsTimedOut',
  'PaymentPathfindingFailedToFindPossibleRoute',
  'FailedToFindPayableRouteToDestination',
])

/**
 * True when a rejection of `lightning`'s `pay` certainly paid nothing: refused before sending (a 4xx,
 * an unsupported feature, one of LND's refusals), or finished as failed by LND. Anything else (a lost
 * connection, a stream error while HTLCs may be in flight) leaves the outcome unknown: the node knows.
 */
export function paidNothing(error: unknown): boolean {
  if (!Array.isArray(error)) return false
  const [status, name, details] = error as [unknown, unknown, { err?: { details?: unknown } } | undefined]
  if (typeof status === 'number' && status >= 400 && status < 500) return true
  if (name === 'UnsupportedPaymentFeatureInPayRequest' || finishedFailed.has(name as string)) return true
  const text = details?.err?.details
  return name === 'UnexpectedPaymentError' && typeof text === 'string' && refusedBeforeSending.test(text)
}

/**
 * A routing fee limit as `max_fee` takes it: a whole number of satoshis, 0 or more. Anything else throws
 * `ConfigurationError` (`what` names the option): `lightning`'s `pay` without a usable limit lets the node
 * spend up to `Number.MAX_SAFE_INTEGER` satoshis on fees.
 */
export function checkedFee(limit: unknown, what: string): number {
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0)
    throw new ConfigurationError(`${what} must give a whole number of satoshis, 0 or more`)
  return limit
}
