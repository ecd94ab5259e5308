import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ConfigurationError, PolicyError } from '../Errors.js'
import type { Quote } from '../Method.js'
import { Ledger, type Policy } from './Policy.js'

const usdc = '0x20C0000000000000000000000000000000000001'
const other = '0x20c0000000000000000000000000000000000002'
// Base58 Solana mints are case-sensitive: these two differ only by the case of one letter.
const mint = 'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v'
const mintTwin = 'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1V'

const at = (quote: Quote) => ({ method: 'test', intent: 'charge', realm: 'api.test', quote })
const refusal = (fn: () => unknown) => {
  try {
    fn()
  } catch (error) {
    if (error instanceof PolicyError) return error.reason
    throw error
  }
  return 'allowed'
}

describe('Ledger', () => {
  it('a scalar limit with several currencies configured is a ConfigurationError', () => {
    expect(
      () => new Ledger({ maxAmount: 1_000_000n, currencies: [usdc, 'usd'] }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: a scalar maxAmount is in one currency's base units, but currencies lists 2: give a limit per currency ({ [currency]: amount })]`,
    )
    expect(() => new Ledger({ budget: 5n, currencies: [] })).toThrow(ConfigurationError)
    // One currency pins the scalar; a map is fine with any number.
    expect(() => new Ledger({ maxAmount: 1n, budget: 2n, currencies: [usdc] })).not.toThrow()
    expect(
      () => new Ledger({ maxAmount: { [usdc]: 1n, usd: 100n }, currencies: [usdc, 'usd'] }),
    ).not.toThrow()
  })

  it('a scalar limit without currencies binds to the first currency paid and refuses the others', () => {
    // 1 000 000 base units is 1 USDC, but 10 000 dollars in cents: the scalar must not cover both.
    const ledger = new Ledger({ maxAmount: 1_000_000n, budget: 2_000_000n })
    expect(ledger.pinned).toBeUndefined()
    ledger.reserve(at({ amount: 1_000_000n, currency: usdc, network: 'tempo:4217', decimals: 6 }))
    expect(ledger.pinned).toBe(`tempo:4217:${usdc}`)
    expect(refusal(() => ledger.reserve(at({ amount: 1_000_000n, currency: 'usd', decimals: 2 })))).toBe(
      'currency',
    )
    // The same token on another chain is another asset.
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: usdc, network: 'tempo:42431' })))).toBe(
      'currency',
    )
    // The checksum case of an EVM address is not identity.
    ledger.reserve(at({ amount: 1_000_000n, currency: usdc.toLowerCase(), network: 'tempo:4217' }))
    expect(ledger.spent(usdc)).toBe(2_000_000n)
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: usdc, network: 'tempo:4217' })))).toBe(
      'budget',
    )
  })

  it('currencies pin the scalar limits up front', () => {
    const ledger = new Ledger({ currencies: ['usd'], maxAmount: 500n })
    expect(ledger.pinned).toBe('usd')
    expect(refusal(() => ledger.check(at({ amount: 500n, currency: 'usd' })))).toBe('allowed')
    expect(refusal(() => ledger.check(at({ amount: 501n, currency: 'usd' })))).toBe('max-amount')
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: 'eur' })))).toBe('currency')
  })

  it('compares identifiers exactly: case-sensitive mints stay apart', () => {
    expect(
      refusal(() => new Ledger({ currencies: [mint] }).check(at({ amount: 1n, currency: mintTwin }))),
    ).toBe('currency')
    expect(
      refusal(() => new Ledger({ currencies: ['USD'] }).check(at({ amount: 1n, currency: 'usd' }))),
    ).toBe('currency')
    const ledger = new Ledger({ budget: { [mint]: 10n, [mintTwin]: 3n } })
    ledger.reserve(at({ amount: 10n, currency: mint }))
    expect(ledger.spent(mint)).toBe(10n)
    expect(ledger.spent(mintTwin)).toBe(0n)
    expect(refusal(() => ledger.check(at({ amount: 4n, currency: mintTwin })))).toBe('budget')
    expect(refusal(() => ledger.check(at({ amount: 3n, currency: mintTwin })))).toBe('allowed')
  })

  it('compares EVM addresses case-insensitively, in the allowlist and in limit keys', () => {
    const ledger = new Ledger({ currencies: [usdc.toLowerCase()], maxAmount: { [usdc]: 10n } })
    expect(
      refusal(() => ledger.check(at({ amount: 10n, currency: usdc.toUpperCase().replace('0X', '0x') }))),
    ).toBe('allowed')
    expect(
      () => new Ledger({ budget: { [usdc]: 1n, [usdc.toLowerCase()]: 2n } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: budget: 0x20C0000000000000000000000000000000000001 and 0x20c0000000000000000000000000000000000001 name the same currency]`,
    )
  })

  it('keys limits by currency (every network) or network:currency (that network only)', () => {
    const ledger = new Ledger({
      maxAmount: { [`tempo:4217:${usdc}`]: 100n, [usdc]: 1_000n, usd: 50n },
      budget: { [usdc]: 1_500n, usd: 50n },
    })
    // Both keys name the asset on tempo:4217: the tighter one applies.
    expect(refusal(() => ledger.check(at({ amount: 101n, currency: usdc, network: 'tempo:4217' })))).toBe(
      'max-amount',
    )
    expect(refusal(() => ledger.check(at({ amount: 101n, currency: usdc, network: 'tempo:42431' })))).toBe(
      'allowed',
    )
    ledger.reserve(at({ amount: 100n, currency: usdc, network: 'tempo:4217' }))
    ledger.reserve(at({ amount: 1_000n, currency: usdc, network: 'tempo:42431' }))
    // The bare budget key adds up every network.
    expect(ledger.spent(usdc)).toBe(1_100n)
    expect(ledger.spent(usdc, 'tempo:42431')).toBe(1_000n)
    expect(refusal(() => ledger.check(at({ amount: 401n, currency: usdc, network: 'tempo:42431' })))).toBe(
      'budget',
    )
    // A currency the maps never name is allowed nothing.
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: other })))).toBe('max-amount')
    expect(refusal(() => ledger.check(at({ amount: 0n, currency: other })))).toBe('allowed')
  })

  it('checks session deposits per currency', () => {
    const ledger = new Ledger({ currencies: [usdc], maxDeposit: 1_000n })
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: usdc, deposit: 1_001n })))).toBe(
      'max-deposit',
    )
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: usdc, deposit: 1_000n })))).toBe('allowed')
  })

  it('rejects malformed limits at construction', () => {
    expect(() => new Ledger({ maxAmount: '1.5' })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: maxAmount must be a non-negative integer in base units]`,
    )
    expect(() => new Ledger({ budget: { usd: -1n } })).toThrow(ConfigurationError)
    expect(() => new Ledger({ crossRail: { unit: 'USD', budget: Number.NaN, price: () => 0 } })).toThrow(
      ConfigurationError,
    )
  })

  it('refuses unknown keys, naming the nearest known one (a typo never lifts a limit)', () => {
    expect(() => new Ledger({ maxAmout: 100n } as Policy)).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: unknown spend policy key "maxAmout" (did you mean maxAmount?): known keys are maxAmount, budget, maxDeposit, maxLocked, methods, currencies, realms, minValiditySeconds, crossRail]`,
    )
    expect(() => new Ledger({ max_amount: 100n } as Policy)).toThrow(/did you mean maxAmount\?/)
    expect(() => new Ledger({ budgets: 100n } as Policy)).toThrow(/did you mean budget\?/)
    expect(() => new Ledger({ spendingCap: 100n } as Policy)).toThrow(
      /^unknown spend policy key "spendingCap": known/,
    )
    expect(
      () => new Ledger({ crossRail: { unit: 'USD', budget: 5, maxAmout: 1, price: () => 0 } } as Policy),
    ).toThrow(/unknown crossRail key "maxAmout" \(did you mean maxAmount\?\)/)
    expect(() => new Ledger(5 as unknown as Policy)).toThrow(ConfigurationError)
  })

  it('refuses methods, currencies and realms that are not arrays of strings', () => {
    expect(
      () => new Ledger({ realms: 'api.example.com' as unknown as string[] }),
    ).toThrowErrorMatchingInlineSnapshot(`[ConfigurationError: realms must be an array of non-empty strings]`)
    expect(() => new Ledger({ methods: 'test' as unknown as string[] })).toThrow(
      'methods must be an array of non-empty strings',
    )
    expect(() => new Ledger({ currencies: 'usd' as unknown as string[] })).toThrow(
      'currencies must be an array of non-empty strings',
    )
    expect(() => new Ledger({ methods: [''] })).toThrow(ConfigurationError)
    // A string realm was matched as a substring: realm `api` passed `realms: 'api.example.com'`.
    expect(
      refusal(() =>
        new Ledger({ realms: ['api.example.com'] }).check({
          ...at({ amount: 1n, currency: 'usd' }),
          realm: 'api',
        }),
      ),
    ).toBe('realm')
  })

  it('undo returns the spend once', () => {
    const ledger = new Ledger({ currencies: ['usd'], budget: 10n })
    const release = ledger.reserve(at({ amount: 10n, currency: 'usd' }))
    release()
    release()
    expect(ledger.spent('usd')).toBe(0n)
    ledger.reserve(at({ amount: 10n, currency: 'usd' }))
    expect(ledger.spent('usd')).toBe(10n)
  })

  it('a fee counts against the budget, not against maxAmount or maxDeposit', () => {
    const ledger = new Ledger({ maxAmount: { sat: 100n }, maxDeposit: { sat: 100n }, budget: { sat: 300n } })
    expect(refusal(() => ledger.check(at({ amount: 101n, currency: 'sat' })))).toBe('max-amount')
    expect(refusal(() => ledger.check(at({ amount: 101n, currency: 'sat', deposit: 101n })))).toBe(
      'max-amount',
    )
    ledger.reserve(at({ amount: 100n, currency: 'sat' }))
    // A fee above maxAmount is allowed while the budget holds it…
    expect(refusal(() => ledger.check(at({ amount: 150n, currency: 'sat', deposit: 200n, fee: true })))).toBe(
      'allowed',
    )
    // …and refused past the budget.
    expect(refusal(() => ledger.check(at({ amount: 201n, currency: 'sat', fee: true })))).toBe('budget')
  })

  it('a prepayment counts against the budget and maxDeposit, not maxAmount; requests paid from it book nothing', () => {
    const ledger = new Ledger({ maxAmount: { sat: 10n }, maxDeposit: { sat: 200n }, budget: { sat: 300n } })
    // A custodial deposit above maxAmount is allowed as a prepayment, within maxDeposit…
    expect(
      refusal(() => ledger.check(at({ amount: 200n, currency: 'sat', deposit: 201n, prepay: true }))),
    ).toBe('max-deposit')
    const undo = ledger.reserve(at({ amount: 200n, currency: 'sat', deposit: 200n, prepay: true }))
    expect(ledger.spent('sat')).toBe(200n)
    // …and booked: a second one past the budget is refused.
    expect(
      refusal(() => ledger.check(at({ amount: 101n, currency: 'sat', deposit: 101n, prepay: true }))),
    ).toBe('budget')
    // A request paid from it is checked against maxAmount, not the budget, and books nothing.
    expect(refusal(() => ledger.check(at({ amount: 11n, currency: 'sat', prepaid: true })))).toBe(
      'max-amount',
    )
    for (let i = 0; i < 50; i++) ledger.reserve(at({ amount: 10n, currency: 'sat', prepaid: true }))
    expect(ledger.spent('sat')).toBe(200n)
    // Its undo gives nothing back (it booked nothing).
    ledger.reserve(at({ amount: 10n, currency: 'sat', prepaid: true }))()
    expect(ledger.spent('sat')).toBe(200n)
    // A plain payment still books against the same budget.
    expect(refusal(() => ledger.check(at({ amount: 10n, currency: 'sat' })))).toBe('allowed')
    // The prepayment given back (the deposit refunded): the budget holds it again.
    undo()
    expect(ledger.spent('sat')).toBe(0n)
    // A quote is one kind at most.
    expect(
      refusal(() => ledger.check(at({ amount: 1n, currency: 'sat', prepay: true, prepaid: true }))),
    ).toBe('quote')
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: 'sat', fee: true, prepaid: true })))).toBe(
      'quote',
    )
  })

  it('maxLocked bounds what is held in escrows at once, per currency; a lock given back frees its room', () => {
    const ledger = new Ledger({ maxLocked: { [usdc]: 1_000n }, budget: { [usdc]: 50n, [other]: 50n } })
    const first = ledger.reserve(at({ amount: 0n, currency: usdc, deposit: 600n, locked: 600n }))
    expect(ledger.locked(usdc)).toBe(600n)
    // Locked is not spent: the budget is untouched.
    expect(ledger.spent(usdc)).toBe(0n)
    expect(refusal(() => ledger.check(at({ amount: 0n, currency: usdc, locked: 401n })))).toBe('max-locked')
    const second = ledger.reserve(at({ amount: 0n, currency: usdc, locked: 400n }))
    expect(refusal(() => ledger.check(at({ amount: 0n, currency: usdc, locked: 1n })))).toBe('max-locked')
    // Requests paid on the channels lock nothing more.
    expect(refusal(() => ledger.check(at({ amount: 10n, currency: usdc })))).toBe('allowed')
    // A channel closed: its lock comes back whole (with or without keep), once.
    first(100n)
    first()
    expect(ledger.locked(usdc)).toBe(400n)
    expect(refusal(() => ledger.check(at({ amount: 0n, currency: usdc, locked: 600n })))).toBe('allowed')
    second()
    expect(ledger.locked(usdc)).toBe(0n)
    // A currency the map does not name may lock nothing; negative or non-bigint locks are refused.
    expect(refusal(() => ledger.check(at({ amount: 0n, currency: other, locked: 1n })))).toBe('max-locked')
    expect(refusal(() => ledger.check(at({ amount: 0n, currency: other })))).toBe('allowed')
    expect(refusal(() => ledger.check(at({ amount: 0n, currency: usdc, locked: -1n })))).toBe('amount')
    expect(refusal(() => ledger.check(at({ amount: 0n, currency: usdc, locked: 5 as never })))).toBe('amount')
    // Scalar: in the pinned currency's base units; without maxLocked nothing is bounded.
    const scalar = new Ledger({ currencies: [usdc], maxLocked: 10n })
    expect(refusal(() => scalar.check(at({ amount: 0n, currency: usdc, locked: 11n })))).toBe('max-locked')
    expect(refusal(() => scalar.check(at({ amount: 0n, currency: usdc, locked: 10n })))).toBe('allowed')
    expect(refusal(() => scalar.check(at({ amount: 1n, currency: usdc, locked: 1n, prepaid: true })))).toBe(
      'quote',
    )
    const open = new Ledger({})
    open.reserve(at({ amount: 0n, currency: usdc, locked: 10n ** 30n }))
    expect(open.locked(usdc)).toBe(10n ** 30n)
    expect(() => new Ledger({ maxLocked: '-1' })).toThrow(/maxLocked must be a non-negative integer/)
  })

  it('undo with keep gives back all but what was kept, once', () => {
    const ledger = new Ledger({ budget: { sat: 100n } })
    const release = ledger.reserve(at({ amount: 40n, currency: 'sat', fee: true }))
    release(3n)
    expect(ledger.spent('sat')).toBe(3n)
    release()
    expect(ledger.spent('sat')).toBe(3n)
    ledger.reserve(at({ amount: 10n, currency: 'sat', fee: true }))(10n)
    expect(ledger.spent('sat')).toBe(13n)
    ledger.reserve(at({ amount: 10n, currency: 'sat', fee: true }))(99n)
    expect(ledger.spent('sat')).toBe(23n)
    ledger.reserve(at({ amount: 10n, currency: 'sat', fee: true }))(0n)
    expect(ledger.spent('sat')).toBe(23n)
  })

  it('never lets the sum of reservations exceed a budget, in any order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ amount: fc.bigInt({ min: 0n, max: 100n }), undo: fc.boolean() }), {
          maxLength: 40,
        }),
        fc.bigInt({ min: 0n, max: 500n }),
        (steps, budget) => {
          const ledger = new Ledger({ currencies: ['usd'], budget })
          let booked = 0n
          for (const step of steps) {
            try {
              const release = ledger.reserve(at({ amount: step.amount, currency: 'usd' }))
              booked += step.amount
              if (step.undo) {
                release()
                booked -= step.amount
              }
            } catch (error) {
              if (!(error instanceof PolicyError)) throw error
              expect(booked + step.amount > budget).toBe(true)
            }
            expect(ledger.spent('usd')).toBe(booked)
            expect(booked <= budget).toBe(true)
          }
        },
      ),
    )
  })
})

describe('Ledger cross-rail budget', () => {
  // Caller-supplied prices: USDC is 1:1 with USD, a sat is 1/1000 of a cent, a cent is 1/100 USD.
  const price = (quote: Quote) => {
    if (quote.currency.toLowerCase() === usdc.toLowerCase())
      return { numerator: quote.amount, denominator: 10n ** BigInt(quote.decimals ?? 6) }
    if (quote.currency === 'sat') return { numerator: quote.amount, denominator: 100_000n }
    if (quote.currency === 'usd') return { numerator: quote.amount, denominator: 100n }
    return undefined
  }
  const policy = (budget: number): Policy => ({
    maxAmount: { [usdc]: 10_000_000n, sat: 10_000_000n, usd: 100_000n },
    crossRail: { unit: 'USD', budget, maxAmount: 4, price },
  })

  it('adds up every rail in one unit, exactly', () => {
    const ledger = new Ledger(policy(3))
    ledger.reserve(at({ amount: 1_000_000n, currency: usdc, decimals: 6 })) // 1 USD
    ledger.reserve(at({ amount: 100n, currency: 'usd' })) // 1 USD
    expect(ledger.spentTotal).toEqual({ numerator: 2n, denominator: 1n })
    expect(refusal(() => ledger.check(at({ amount: 100_001n, currency: 'sat' })))).toBe('cross-rail-budget')
    ledger.reserve(at({ amount: 100_000n, currency: 'sat' })) // 1 USD: exactly the budget
    expect(ledger.spentTotal).toEqual({ numerator: 3n, denominator: 1n })
  })

  it('reads number prices as written (0.1 + 0.2 fits a 0.3 budget)', () => {
    const ledger = new Ledger({
      maxAmount: { usd: 100n },
      crossRail: { unit: 'USD', budget: 0.3, price: (q) => Number(q.amount) / 100 },
    })
    ledger.reserve(at({ amount: 10n, currency: 'usd' }))
    ledger.reserve(at({ amount: 20n, currency: 'usd' }))
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: 'usd' })))).toBe('cross-rail-budget')
  })

  it('refuses what it cannot price, and payments above the per-request maximum', () => {
    const ledger = new Ledger(policy(100))
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: 'eur' } as Quote)))).toBe('max-amount')
    const loose = new Ledger({ crossRail: { unit: 'USD', budget: 100, maxAmount: 4, price } })
    expect(refusal(() => loose.check(at({ amount: 1n, currency: 'eur' })))).toBe('unpriced')
    expect(refusal(() => loose.check(at({ amount: 5_000_000n, currency: usdc, decimals: 6 })))).toBe(
      'max-amount',
    )
    const asynchronous = new Ledger({
      crossRail: { unit: 'USD', budget: 100, price: (async () => 1) as never },
    })
    expect(refusal(() => asynchronous.check(at({ amount: 1n, currency: 'usd' })))).toBe('unpriced')
    const throwing = new Ledger({
      crossRail: {
        unit: 'USD',
        budget: 100,
        price: () => {
          throw new Error('rate feed down')
        },
      },
    })
    expect(refusal(() => throwing.check(at({ amount: 1n, currency: 'usd' })))).toBe('unpriced')
  })

  it('a fee skips the cross-rail maxAmount but not its budget; undo with keep keeps its share of the price', () => {
    const ledger = new Ledger(policy(6))
    // 5 USD of sat: above the cross-rail maxAmount of 4, allowed as a fee.
    expect(refusal(() => ledger.check(at({ amount: 500_000n, currency: 'sat' })))).toBe('max-amount')
    const release = ledger.reserve(at({ amount: 500_000n, currency: 'sat', fee: true }))
    expect(refusal(() => ledger.check(at({ amount: 100_001n, currency: 'sat', fee: true })))).toBe(
      'cross-rail-budget',
    )
    release(100_000n) // 1 USD of it was paid
    expect(ledger.spentTotal).toEqual({ numerator: 1n, denominator: 1n })
    expect(ledger.spent('sat')).toBe(100_000n)
  })

  it('a prepayment skips the cross-rail maxAmount but not its budget; a request paid from it checks only maxAmount', () => {
    const ledger = new Ledger(policy(6))
    // 5 USD of sat: above the cross-rail maxAmount of 4, allowed as a prepayment and booked.
    ledger.reserve(at({ amount: 500_000n, currency: 'sat', deposit: 500_000n, prepay: true }))
    expect(ledger.spentTotal).toEqual({ numerator: 5n, denominator: 1n })
    expect(refusal(() => ledger.check(at({ amount: 100_001n, currency: 'sat', prepay: true })))).toBe(
      'cross-rail-budget',
    )
    // Paid from the prepayment: within the cross-rail maxAmount, whatever is left of the budget.
    ledger.reserve(at({ amount: 300_000n, currency: 'sat', prepaid: true }))
    expect(ledger.spentTotal).toEqual({ numerator: 5n, denominator: 1n })
    expect(refusal(() => ledger.check(at({ amount: 400_001n, currency: 'sat', prepaid: true })))).toBe(
      'max-amount',
    )
  })

  it('undo gives the unit back', () => {
    const ledger = new Ledger(policy(1))
    const release = ledger.reserve(at({ amount: 100n, currency: 'usd' }))
    expect(refusal(() => ledger.check(at({ amount: 1n, currency: 'usd' })))).toBe('cross-rail-budget')
    release()
    expect(ledger.spentTotal).toEqual({ numerator: 0n, denominator: 1n })
  })
})
