import { ConfigurationError, PolicyError } from '../Errors.js'
import { editDistance } from '../internal/editDistance.js'
import type { Quote } from '../Method.js'
import * as Currency from './Currency.js'
import * as Value from './Value.js'

/**
 * An amount in a currency's base units (a non-negative integer).
 *
 * @example
 * ```ts
 * const tenCents: Amount = 100_000n // of a 6-decimal stablecoin
 * ```
 */
export type Amount = bigint | number | string

/**
 * A limit in base units: a map keyed by `currency` (any network) or `network:currency`, or one
 * scalar, which is only meaningful in one currency (see {@link Policy}).
 *
 * @example
 * ```ts
 * const maxAmount: Limit = { 'tempo:4217:0x20c0…0001': 100_000n, usd: 50n }
 * ```
 */
export type Limit = Amount | Readonly<Record<string, Amount>>

/**
 * A budget across every rail, in one unit of account (e.g. USD): the caller prices each quote.
 *
 * @example
 * ```ts
 * const crossRail: CrossRailBudget = {
 *   unit: 'USD', budget: 5, maxAmount: 0.5,
 *   price: (q) => (Currency.same(q.currency, usdc) ? { numerator: q.amount, denominator: 1_000_000n } : undefined),
 * }
 * ```
 */
export type CrossRailBudget = {
  /** The unit of account, for messages (e.g. `USD`). */
  unit: string
  /** Total the client may spend in `unit`, over all currencies and rails. */
  budget: Value.Value
  /** Largest single payment in `unit`. */
  maxAmount?: Value.Value
  /**
   * The price of a quote in `unit`, synchronously (keep rates cached): a number (read as its shortest
   * decimal, so `0.1` is exactly one tenth), a bigint, or an exact fraction. `undefined`, a throw, a
   * promise or a negative value refuse the payment (`PolicyError` reason `unpriced`). Price by the
   * currency you know: a quote's `decimals` (and `network`) may be only what the server's challenge
   * claims, and a server naming 18 decimals for a 6-decimal token would be priced 10^12 times too low.
   */
  price(quote: Quote): Value.Value | undefined
}

/**
 * A client spend policy, enforced before any payload is created.
 *
 * Limits are per currency. A scalar `maxAmount`/`budget`/`maxDeposit` is in the base units of one
 * currency: the one `currencies: [x]` pins, or, without `currencies`, the first currency (and network)
 * the client reserves a payment in; every other currency is then refused. A scalar limit with
 * `currencies` listing more (or fewer) than one currency is a `ConfigurationError`.
 *
 * @example
 * ```ts
 * const policy: Policy = { currencies: [usdc], maxAmount: 100_000n, budget: 5_000_000n }
 * ```
 * @see draft-httpauth-payment-00 §11.7: "Clients MUST verify before authorizing payment: 1. Requested
 *   amount is reasonable for the resource 2. Recipient/address is expected 3. Currency/asset is as
 *   expected 4. Validity window is appropriate"
 */
export type Policy = {
  /** Largest amount a single payment may move. */
  maxAmount?: Limit
  /** Total this client may spend over its lifetime. */
  budget?: Limit
  /** Largest session deposit (or deposit increase) in one payment. */
  maxDeposit?: Limit
  /**
   * Most this client may hold locked in escrows at once (non-custodial session deposits and top-ups,
   * e.g. Tempo channels): those stay the payer's and are not counted against `budget`, so without this
   * limit a client paying many servers can lock a deposit with each. A method books what it locks
   * (`quote.locked`) before it signs, and gives it back once the channel is closed.
   */
  maxLocked?: Limit
  /** Allowed `method` or `method/intent` values. */
  methods?: readonly string[]
  /** Allowed currencies: `currency` (any network) or `network:currency` (see {@link Currency.same}). */
  currencies?: readonly string[]
  /**
   * Allowed realms (exact). A realm is the label a server puts in its challenge, not checked against
   * the URL: any origin may name any realm, so this is no allowlist of servers (choose the URLs for that).
   */
  realms?: readonly string[]
  /** Refuse challenges expiring sooner than this many seconds (default 0). */
  minValiditySeconds?: number
  /** One budget across every currency and rail, in a unit the caller prices quotes in. */
  crossRail?: CrossRailBudget
}

/**
 * What the ledger is asked to book.
 *
 * @example
 * ```ts
 * ledger.reserve({ method: 'tempo', intent: 'charge', realm: 'api.example.com', quote })
 * ```
 */
export type Reservation = { method: string; intent: string; realm: string; quote: Quote }

type Rule = { scalar: bigint } | { entries: readonly (readonly [string, bigint])[] }

const limitNames = ['maxAmount', 'budget', 'maxDeposit', 'maxLocked'] as const

const policyKeys: readonly (keyof Policy)[] = [
  ...limitNames,
  'methods',
  'currencies',
  'realms',
  'minValiditySeconds',
  'crossRail',
]
const crossRailKeys: readonly (keyof CrossRailBudget)[] = ['unit', 'budget', 'maxAmount', 'price']

const squash = (key: string) => key.replace(/[-_\s]/g, '').toLowerCase()

// A key the policy does not know is a ConfigurationError: ignored, `maxAmout: 100n` would pay anything.
function refuseUnknownKeys(value: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue
    const wanted = squash(key).slice(0, 64)
    let best: { key: string; score: number } | undefined
    for (const candidate of known) {
      const score = editDistance(wanted, squash(candidate))
      if (score <= 2 && (!best || score < best.score)) best = { key: candidate, score }
    }
    const shown = JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)
    throw new ConfigurationError(
      `unknown ${where} key ${shown}${best ? ` (did you mean ${best.key}?)` : ''}: known keys are ${known.join(', ')}`,
    )
  }
}

function stringList(value: unknown, name: string): void {
  if (value === undefined) return
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string' || item === ''))
    throw new ConfigurationError(`${name} must be an array of non-empty strings`)
}

function amountOf(value: unknown, what: string): bigint {
  try {
    if (typeof value === 'bigint' || typeof value === 'number' || typeof value === 'string') {
      const amount = BigInt(value)
      if (amount >= 0n) return amount
    }
  } catch {}
  throw new ConfigurationError(`${what} must be a non-negative integer in base units`)
}

function ruleOf(limit: Limit | undefined, name: string): Rule | undefined {
  if (limit === undefined) return undefined
  if (typeof limit !== 'object') return { scalar: amountOf(limit, name) }
  const seen = new Map<string, string>()
  const entries = Object.entries(limit).map(([key, value]) => {
    if (key === '') throw new ConfigurationError(`${name}: a currency key is empty`)
    const identity = Currency.canonical(key)
    const twin = seen.get(identity)
    if (twin !== undefined) throw new ConfigurationError(`${name}: ${twin} and ${key} name the same currency`)
    seen.set(identity, key)
    return [key, amountOf(value, `${name}.${key}`)] as const
  })
  return { entries }
}

/**
 * Tracks spend against a policy. `reserve` is synchronous (no await between check and update), so
 * concurrent payments, on any rail, never overrun a limit.
 *
 * @example
 * ```ts
 * const ledger = new Ledger({ currencies: [usdc], maxAmount: 1_000n, budget: 10_000n })
 * const release = ledger.reserve({ method: 'tempo', intent: 'charge', realm: 'api', quote })
 * ```
 * @see draft-httpauth-payment-00 §11.7
 */
export class Ledger {
  readonly policy: Policy
  readonly #rules: Record<(typeof limitNames)[number], Rule | undefined>
  readonly #spent = new Map<string, { asset: Currency.Asset; amount: bigint }>()
  readonly #locked = new Map<string, { asset: Currency.Asset; amount: bigint }>()
  readonly #crossRail: { budget: Value.Rational; maxAmount: Value.Rational | undefined } | undefined
  #pin: string | undefined
  #total: Value.Rational = Value.zero

  /** Validates the policy: a malformed or ambiguous one is a `ConfigurationError`. */
  constructor(policy: Policy = {}) {
    if (typeof policy !== 'object' || policy === null || Array.isArray(policy))
      throw new ConfigurationError('the spend policy must be an object')
    refuseUnknownKeys(policy, policyKeys, 'spend policy')
    // A string where a list belongs would be matched as a substring (`realms: 'api.example.com'`).
    stringList(policy.methods, 'methods')
    stringList(policy.currencies, 'currencies')
    stringList(policy.realms, 'realms')
    this.policy = policy
    this.#rules = {
      maxAmount: ruleOf(policy.maxAmount, 'maxAmount'),
      budget: ruleOf(policy.budget, 'budget'),
      maxDeposit: ruleOf(policy.maxDeposit, 'maxDeposit'),
      maxLocked: ruleOf(policy.maxLocked, 'maxLocked'),
    }
    const scalars = limitNames.filter((name) => this.#rules[name] && 'scalar' in this.#rules[name])
    if (scalars.length > 0 && policy.currencies !== undefined) {
      if (policy.currencies.length !== 1)
        throw new ConfigurationError(
          `a scalar ${scalars.join('/')} is in one currency's base units, but currencies lists ${policy.currencies.length}: give a limit per currency ({ [currency]: amount })`,
        )
      this.#pin = policy.currencies[0]
    }
    const { minValiditySeconds } = policy
    if (minValiditySeconds !== undefined && !(minValiditySeconds >= 0))
      throw new ConfigurationError('minValiditySeconds must be a non-negative number')
    const crossRail = policy.crossRail
    if (crossRail) {
      if (typeof crossRail !== 'object') throw new ConfigurationError('crossRail must be an object')
      refuseUnknownKeys(crossRail, crossRailKeys, 'crossRail')
      if (typeof crossRail.price !== 'function')
        throw new ConfigurationError('crossRail.price must be a function')
      if (typeof crossRail.unit !== 'string' || crossRail.unit === '')
        throw new ConfigurationError('crossRail.unit must name the unit of account')
      this.#crossRail = {
        budget: Value.required(crossRail.budget, 'crossRail.budget'),
        maxAmount:
          crossRail.maxAmount === undefined
            ? undefined
            : Value.required(crossRail.maxAmount, 'crossRail.maxAmount'),
      }
    }
  }

  /**
   * The currency the scalar limits are in (`network:currency`, or a bare currency): the one
   * `currencies` pins, else the first one a payment was reserved in; `undefined` before that.
   */
  get pinned(): string | undefined {
    return this.#pin
  }

  /** Spent so far in a currency (bare: over every network; `network` given: on that network only). */
  spent(currency: string, network?: string): bigint {
    return this.#spentUnder(network === undefined ? currency : `${network}:${currency}`)
  }

  /** Held locked in escrows now (`quote.locked` bookings not given back), as {@link Ledger.spent} counts. */
  locked(currency: string, network?: string): bigint {
    return this.#sumUnder(this.#locked, network === undefined ? currency : `${network}:${currency}`)
  }

  /** Spent so far across every rail, in `policy.crossRail.unit` (zero without a cross-rail budget). */
  get spentTotal(): Value.Rational {
    return this.#total
  }

  /**
   * Throws `PolicyError` when the policy forbids the payment; otherwise records it and returns an undo:
   * called bare, it gives the whole booking back; with `keep` (0 ≤ keep < amount), all but `keep` base
   * units (the cross-rail price shrinks in proportion). An undo acts once.
   */
  reserve(input: Reservation): (keep?: bigint) => void {
    const { price, pin } = this.#evaluate(input)
    this.#pin ??= pin
    // Paid from a prepayment already booked: nothing more to book, nothing to give back.
    if (input.quote.prepaid === true) return () => {}
    const asset = { currency: input.quote.currency, network: input.quote.network }
    const bucket = Currency.bucket(asset)
    const entry = this.#spent.get(bucket) ?? { asset, amount: 0n }
    entry.amount += input.quote.amount
    this.#spent.set(bucket, entry)
    const locked = input.quote.locked ?? 0n
    const held = this.#locked.get(bucket) ?? { asset, amount: 0n }
    held.amount += locked
    this.#locked.set(bucket, held)
    if (price) this.#total = Value.add(this.#total, price)
    let released = false
    return (keep?: bigint) => {
      if (released) return
      released = true
      // What was locked comes back whole (the channel closed, or the lock was never signed).
      held.amount -= locked
      const amount = input.quote.amount
      const kept = typeof keep === 'bigint' && keep > 0n ? (keep < amount ? keep : amount) : 0n
      entry.amount -= amount - kept
      if (price)
        this.#total = Value.subtract(
          this.#total,
          kept === 0n
            ? price
            : Value.subtract(price, {
                numerator: price.numerator * kept,
                denominator: price.denominator * amount,
              }),
        )
    }
  }

  /** Throws `PolicyError` when the policy forbids the payment (books nothing). */
  check(input: Reservation): void {
    this.#evaluate(input)
  }

  #evaluate(input: Reservation): { price: Value.Rational | undefined; pin: string | undefined } {
    const { policy } = this
    const { method, intent, realm, quote } = input
    if (policy.methods && !policy.methods.some((m) => m === method || m === `${method}/${intent}`))
      throw new PolicyError('method', `method ${method}/${intent} is not allowed by the spend policy`)
    if (policy.realms && !policy.realms.includes(realm))
      throw new PolicyError('realm', `realm ${realm} is not allowed by the spend policy`)
    if (typeof quote.amount !== 'bigint' || typeof quote.currency !== 'string')
      throw new PolicyError('quote', 'the method quoted no base-unit amount and currency')
    const asset = { currency: quote.currency, network: quote.network }
    const name = Currency.label(asset)
    if (policy.currencies && !policy.currencies.some((c) => Currency.match(c, asset) > 0))
      throw new PolicyError('currency', `currency ${name} is not allowed by the spend policy`)
    if (
      quote.amount < 0n ||
      (quote.deposit !== undefined && quote.deposit < 0n) ||
      (quote.locked !== undefined && (typeof quote.locked !== 'bigint' || quote.locked < 0n))
    )
      throw new PolicyError('amount', 'negative amount')
    // One kind per quote: a fee, a prepayment into a custodial balance, a request paid from one, or a
    // plain payment.
    const kinds = [quote.fee, quote.prepay, quote.prepaid].filter((flag) => flag === true).length
    if (kinds > 1) throw new PolicyError('quote', 'a quote is at most one of fee, prepay and prepaid')
    // Locked money is booked until its undo; a request paid from a prepayment books nothing.
    if (quote.prepaid === true && quote.locked !== undefined)
      throw new PolicyError('quote', 'a quote paid from a prepayment locks nothing')
    const usesScalar = limitNames.some((n) => this.#rules[n] && 'scalar' in this.#rules[n])
    const pin = usesScalar ? (this.#pin ?? name) : undefined
    if (pin !== undefined && Currency.match(pin, asset) === 0)
      throw new PolicyError(
        'currency',
        `the spend policy's scalar limits are in ${pin}'s base units, not ${name}'s: configure a limit per currency to pay in both`,
      )
    // A fee (`quote.fee`) counts against the budgets only: the rail bounds it, not the per-request limits.
    // A prepayment (`quote.prepay`) is no request's price: its deposit is checked against maxDeposit.
    const perRequest = quote.fee !== true && quote.prepay !== true
    const max = perRequest ? this.#limit('maxAmount', asset, pin) : undefined
    if (max !== undefined && quote.amount > max)
      throw new PolicyError(
        'max-amount',
        `amount ${quote.amount} ${name} exceeds the per-request maximum ${max}`,
      )
    const maxDeposit = quote.fee === true ? undefined : this.#limit('maxDeposit', asset, pin)
    if (maxDeposit !== undefined && quote.deposit !== undefined && quote.deposit > maxDeposit)
      throw new PolicyError(
        'max-deposit',
        `deposit ${quote.deposit} ${name} exceeds the maximum ${maxDeposit}`,
      )
    const maxLocked = this.#rules.maxLocked
    if (maxLocked && quote.locked !== undefined && quote.locked > 0n) {
      const keys = 'scalar' in maxLocked ? [[pin as string, maxLocked.scalar] as const] : maxLocked.entries
      const matching = keys.filter(([key]) => Currency.match(key, asset) > 0)
      if (matching.length === 0)
        throw new PolicyError('max-locked', `the spend policy's maxLocked allows nothing locked in ${name}`)
      for (const [key, limit] of matching) {
        const now = this.#sumUnder(this.#locked, key)
        if (now + quote.locked > limit)
          throw new PolicyError(
            'max-locked',
            `locking ${quote.locked} ${name} more would hold ${now + quote.locked} in escrows, above the maximum ${limit} (close a channel to free some)`,
          )
      }
    }
    const budget = this.#rules.budget
    // A request paid from a prepayment: the budget holds that prepayment already.
    if (budget && quote.prepaid !== true) {
      const keys = 'scalar' in budget ? [[pin as string, budget.scalar] as const] : budget.entries
      const matching = keys.filter(([key]) => Currency.match(key, asset) > 0)
      if (matching.length === 0 && quote.amount > 0n)
        throw new PolicyError('budget', `the spend policy has no budget in ${name}`)
      for (const [key, limit] of matching)
        if (this.#spentUnder(key) + quote.amount > limit)
          throw new PolicyError(
            'budget',
            `payment of ${quote.amount} ${name} would exceed the remaining budget`,
          )
    }
    return { price: this.#price(quote), pin }
  }

  // The tightest limit among the keys naming the asset; a map that names it nowhere allows nothing.
  #limit(
    name: 'maxAmount' | 'maxDeposit',
    asset: Currency.Asset,
    pin: string | undefined,
  ): bigint | undefined {
    const rule = this.#rules[name]
    if (!rule) return undefined
    if ('scalar' in rule) return pin === undefined ? undefined : rule.scalar
    let tightest: bigint | undefined
    for (const [key, limit] of rule.entries)
      if (Currency.match(key, asset) > 0 && (tightest === undefined || limit < tightest)) tightest = limit
    return tightest ?? 0n
  }

  #spentUnder(key: string): bigint {
    return this.#sumUnder(this.#spent, key)
  }

  #sumUnder(map: Map<string, { asset: Currency.Asset; amount: bigint }>, key: string): bigint {
    let total = 0n
    for (const entry of map.values()) if (Currency.match(key, entry.asset) > 0) total += entry.amount
    return total
  }

  #price(quote: Quote): Value.Rational | undefined {
    const crossRail = this.#crossRail
    const config = this.policy.crossRail
    if (!crossRail || !config) return undefined
    let answer: unknown
    try {
      answer = config.price(Object.freeze({ ...quote }))
    } catch {
      answer = undefined
    }
    const price = Value.from(answer)
    if (!price)
      throw new PolicyError(
        'unpriced',
        `no ${config.unit} price for ${quote.amount} ${Currency.label(quote)} (the price function must answer synchronously with a non-negative amount)`,
      )
    if (
      quote.fee !== true &&
      quote.prepay !== true &&
      crossRail.maxAmount &&
      Value.greater(price, crossRail.maxAmount)
    )
      throw new PolicyError(
        'max-amount',
        `a payment of ${Value.format(price)} ${config.unit} exceeds the per-request maximum ${Value.format(crossRail.maxAmount)} ${config.unit}`,
      )
    if (quote.prepaid === true) return undefined
    if (Value.greater(Value.add(this.#total, price), crossRail.budget))
      throw new PolicyError(
        'cross-rail-budget',
        `a payment of ${Value.format(price)} ${config.unit} would exceed the remaining cross-rail budget`,
      )
    return price
  }
}
