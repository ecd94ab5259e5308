import { DevnetError } from '../errors.js'

/**
 * A failure the Stripe simulator injects into matching requests, so rails can test what an outage does
 * to a payment: a 5xx, a 429 rate limit or a timeout, either **before** the request executes (nothing
 * happened at Stripe) or **after** it (the request executed and its result was saved against its
 * Idempotency-Key, but the answer never reaches the caller, like a proxy 502 or a dropped connection).
 *
 * @example
 * ```ts
 * stripeNode.injectFault({ kind: 500, when: 'after' }) // the next PaymentIntent is created, its answer lost
 * ```
 */
export type StripeFault = {
  /** An HTTP status (500, 502, 503, 504, 429) or `timeout` (the connection is held, then dropped). */
  kind: 429 | 500 | 502 | 503 | 504 | 'timeout'
  /** `before` (default): the request never executes. `after`: it executes, then its answer is lost. */
  when?: 'before' | 'after'
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
    if (fault.when !== undefined && fault.when !== 'before' && fault.when !== 'after')
      throw new DevnetError('injectFault: when must be "before" or "after"', {
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

/** The Stripe error envelope the simulator answers for an injected status fault. */
export function faultBody(status: number): { status: number; body: string; headers: Record<string, string> } {
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
    headers: status === 429 ? { 'Retry-After': '1' } : {},
  }
}
