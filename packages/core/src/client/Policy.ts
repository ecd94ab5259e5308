import { PolicyError } from '../Errors.js'
import type { Quote } from '../Method.js'

/** Limits in base units: one number for every currency, or a map per currency. */
export type Limit = bigint | number | string | Readonly<Record<string, bigint | number | string>>

/**
 * A client spend policy, enforced before any payload is created.
 *
 * @see draft-httpauth-payment-00 §11.7: "Clients MUST verify before authorizing payment: 1. Requested
 *   amount is reasonable for the resource 2. Recipient/address is expected 3. Currency/asset is as
 *   expected 4. Validity window is appropriate"
 */
export type Policy = {
  /** Largest amount a single payment may move. */
  maxAmount?: Limit
  /** Total this client may spend over its lifetime. */
  budget?: Limit
  /** Largest session deposit. */
  maxDeposit?: Limit
  /** Allowed `method` or `method/intent` values. */
  methods?: readonly string[]
  /** Allowed currencies (compared case-insensitively). */
  currencies?: readonly string[]
  /** Allowed realms (exact). */
  realms?: readonly string[]
  /** Refuse challenges expiring sooner than this many seconds (default 0). */
  minValiditySeconds?: number
}

function limitFor(limit: Limit | undefined, currency: string): bigint | undefined {
  if (limit === undefined) return undefined
  if (typeof limit === 'object') {
    const entry = Object.entries(limit).find(([k]) => k.toLowerCase() === currency.toLowerCase())
    return entry === undefined ? 0n : BigInt(entry[1])
  }
  return BigInt(limit)
}

/**
 * Tracks spend against a policy; `reserve` is atomic within the process (no await between check and
 * update), so concurrent payments never overrun the budget.
 *
 * @example
 * ```ts
 * const ledger = new Ledger({ budget: 10_000n, maxAmount: 1_000n })
 * const release = ledger.reserve({ method: 'tempo', intent: 'charge', realm: 'api', quote })
 * ```
 */
export class Ledger {
  readonly policy: Policy
  readonly #spent = new Map<string, bigint>()

  constructor(policy: Policy = {}) {
    this.policy = policy
  }

  /** Spent so far in a currency. */
  spent(currency: string): bigint {
    return this.#spent.get(currency.toLowerCase()) ?? 0n
  }

  /** Throws `PolicyError` when the policy forbids the payment; otherwise records it and returns an undo. */
  reserve(input: { method: string; intent: string; realm: string; quote: Quote }): () => void {
    this.check(input)
    const currency = input.quote.currency.toLowerCase()
    this.#spent.set(currency, this.spent(currency) + input.quote.amount)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#spent.set(currency, this.spent(currency) - input.quote.amount)
    }
  }

  /** Throws `PolicyError` when the policy forbids the payment. */
  check(input: { method: string; intent: string; realm: string; quote: Quote }): void {
    const { policy } = this
    const { method, intent, realm, quote } = input
    if (policy.methods && !policy.methods.some((m) => m === method || m === `${method}/${intent}`))
      throw new PolicyError('method', `method ${method}/${intent} is not allowed by the spend policy`)
    if (policy.realms && !policy.realms.includes(realm))
      throw new PolicyError('realm', `realm ${realm} is not allowed by the spend policy`)
    if (policy.currencies && !policy.currencies.some((c) => c.toLowerCase() === quote.currency.toLowerCase()))
      throw new PolicyError('currency', `currency ${quote.currency} is not allowed by the spend policy`)
    if (quote.amount < 0n) throw new PolicyError('amount', 'negative amount')
    const max = limitFor(policy.maxAmount, quote.currency)
    if (max !== undefined && quote.amount > max)
      throw new PolicyError('max-amount', `amount ${quote.amount} exceeds the per-request maximum ${max}`)
    const maxDeposit = limitFor(policy.maxDeposit, quote.currency)
    if (maxDeposit !== undefined && quote.deposit !== undefined && quote.deposit > maxDeposit)
      throw new PolicyError('max-deposit', `deposit ${quote.deposit} exceeds the maximum ${maxDeposit}`)
    const budget = limitFor(policy.budget, quote.currency)
    if (budget !== undefined && this.spent(quote.currency) + quote.amount > budget)
      throw new PolicyError('budget', `payment of ${quote.amount} would exceed the remaining budget`)
  }
}
