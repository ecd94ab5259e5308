import { DevnetError } from '../errors.js'

/**
 * A failure the Stripe simulator injects into matching requests, so rails can test what an outage does
 * to a payment: a 5xx, a 429 rate limit or a timeout, either **before** the request executes (nothing
 * happened at Stripe), **after** it (the request executed and its result was saved against its
 * Idempotency-Key, but the answer never reaches the caller, like a proxy 502 or a dropped connection),
 * or **saved**: Stripe's own 5xx once the endpoint began executing, which Stripe's idempotency layer
 * keeps for the key ("Retries with the same key return the saved response, including `500` errors",
 * https://docs.stripe.com/api/idempotent_requests). The request executed (a PaymentIntent may be created
 * and paid), the answer says `Stripe-Should-Retry: false`, and every retry with the same key gets the
 * same 5xx back, marked `Idempotent-Replayed: true`: the caller can never learn the result from it.
 *
 * @example
 * ```ts
 * stripeNode.injectFault({ kind: 500, when: 'after' }) // the next PaymentIntent is created, its answer lost
 * stripeNode.injectFault({ kind: 500, when: 'saved' }) // created, and its key replays the 500 from now on
 * ```
 */
export type StripeFault = {
  /** An HTTP status (500, 502, 503, 504, 429) or `timeout` (the connection is held, then dropped). */
  kind: 429 | 500 | 502 | 503 | 504 | 'timeout'
  /**
   * `before` (default): the request never executes. `after`: it executes, then its answer is lost.
   * `saved` (a 5xx only): it executes, and the 5xx is the result saved against its Idempotency-Key.
   */
  when?: 'before' | 'after' | 'saved'
  /** HTTP method to match (default `POST`). */
  method?: string
  /** Path prefix to match (default `/v1/payment_intents`). */
  path?: string
  /** How many matching requests fail (default 1). */
  times?: number
  /** For `timeout`: how long the connection is held before it is dropped, in ms (default 30 000). */
  holdMs?: number
}

/** A fault being injected: how many requests it still fails; `clear` stops it. */
export type InjectedFault = { remaining(): number; clear(): void }

type Armed = Required<Omit<StripeFault, 'holdMs'>> & { holdMs: number; left: number }

const statuses = new Set([429, 500, 502, 503, 504])

/**
 * The simulator's fault table: `inject` arms a fault, `take` returns (and counts down) the first armed
 * fault that matches a request.
 *
 * @example
 * ```ts
 * const faults = new FaultTable()
 * faults.inject({ kind: 429 })
 * faults.take('POST', '/v1/payment_intents')?.kind // 429
 * ```
 */
export class FaultTable {
  readonly #armed: Armed[] = []

  inject(fault: StripeFault): InjectedFault {
    if (fault.kind !== 'timeout' && !statuses.has(fault.kind))
      throw new DevnetError('injectFault: kind must be 429, 500, 502, 503, 504 or "timeout"', {
        code: 'devnet_invalid_option',
      })
    const times = fault.times ?? 1
    if (!Number.isInteger(times) || times < 1)
      throw new DevnetError('injectFault: times must be a positive integer', {
        code: 'devnet_invalid_option',
      })
    if (
      fault.when !== undefined &&
      fault.when !== 'before' &&
      fault.when !== 'after' &&
      fault.when !== 'saved'
    )
      throw new DevnetError('injectFault: when must be "before", "after" or "saved"', {
        code: 'devnet_invalid_option',
      })
    // Stripe's rate limiter runs before its idempotency layer, and a timeout is no answer to save.
    if (fault.when === 'saved' && (fault.kind === 'timeout' || fault.kind === 429))
      throw new DevnetError('injectFault: a "saved" fault is a 5xx (500, 502, 503 or 504)', {
        code: 'devnet_invalid_option',
      })
    const armed: Armed = {
      kind: fault.kind,
      when: fault.when ?? 'before',
      method: (fault.method ?? 'POST').toUpperCase(),
      path: fault.path ?? '/v1/payment_intents',
      times,
      holdMs: fault.holdMs ?? 30_000,
      left: times,
    }
    this.#armed.push(armed)
    return {
      remaining: () => armed.left,
      clear: () => {
        armed.left = 0
      },
    }
  }

  clear(): void {
    for (const armed of this.#armed) armed.left = 0
    this.#armed.length = 0
  }

  take(method: string, path: string): Readonly<Armed> | undefined {
    const index = this.#armed.findIndex(
      (armed) => armed.left > 0 && armed.method === method.toUpperCase() && path.startsWith(armed.path),
    )
    if (index === -1) return undefined
    const armed = this.#armed[index] as Armed
    armed.left--
    if (armed.left === 0) this.#armed.splice(index, 1)
    return armed
  }
}

/**
 * The Stripe error envelope the simulator answers for an injected status fault. A `saved` 5xx also says
 * `Stripe-Should-Retry: false`: Stripe asks its SDKs not to retry an answer its idempotency layer would
 * only replay.
 */
export function faultBody(
  status: number,
  when: StripeFault['when'] = 'before',
): { status: number; body: string; headers: Record<string, string> } {
  const error =
    status === 429
      ? {
          type: 'invalid_request_error',
          code: 'rate_limit',
          message:
            'Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.',
        }
      : { type: 'api_error', message: 'An unknown error occurred (injected by the devnet simulator).' }
  return {
    status,
    body: JSON.stringify({ error }, null, 2),
    headers:
      status === 429 ? { 'Retry-After': '1' } : when === 'saved' ? { 'Stripe-Should-Retry': 'false' } : {},
  }
}
