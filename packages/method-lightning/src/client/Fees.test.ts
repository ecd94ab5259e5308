import { Ledger, PolicyError, Value } from '@mppkit/core/client'
import { describe, expect, it } from 'vitest'
import { bookFee } from './Fees.js'

const sat = { currency: 'sat', network: 'lightning:regtest' }
const reservation = { method: 'lightning', intent: 'charge', realm: 'ln.test' }
/** A `spend` booking into `ledger`, as the core client's does. */
const spendOf = (ledger: Ledger) => (quote: Parameters<Ledger['reserve']>[0]['quote']) =>
  ledger.reserve({ ...reservation, quote })

describe('bookFee', () => {
  it('books the whole limit before paying, then only the fee paid', () => {
    const ledger = new Ledger({ budget: { sat: 1_000n } })
    const booking = bookFee(spendOf(ledger), { limit: 10, ...sat })
    expect(ledger.spent('sat')).toBe(10n)
    booking.settle(3)
    expect(ledger.spent('sat')).toBe(3n)
    // Settled once: a late release gives nothing more back.
    booking.release()
    expect(ledger.spent('sat')).toBe(3n)
  })

  it('keeps the whole limit when the fee paid is not known, and gives it all back when nothing was paid', () => {
    const ledger = new Ledger({ budget: { sat: 1_000n } })
    for (const unknown of [undefined, -1, 11, 2.5, '3', Number.NaN]) {
      bookFee(spendOf(ledger), { limit: 10, ...sat }).settle(unknown)
    }
    expect(ledger.spent('sat')).toBe(60n)
    bookFee(spendOf(ledger), { limit: 10, ...sat }).release()
    expect(ledger.spent('sat')).toBe(60n)
  })

  it('refuses a limit that does not fit the budget, booking nothing', () => {
    const ledger = new Ledger({ budget: { sat: 109n } })
    ledger.reserve({ ...reservation, quote: { amount: 100n, ...sat } })
    expect(() => bookFee(spendOf(ledger), { limit: 10, ...sat })).toThrowErrorMatchingInlineSnapshot(
      `[PolicyError: lightning: the payment and its routing fee limit of 10 sat (maxFeeSats) would exceed the remaining budget]`,
    )
    expect(ledger.spent('sat')).toBe(100n)
  })

  it('is not held to maxAmount: a fee quote counts against the budget only', () => {
    const ledger = new Ledger({ maxAmount: { sat: 2n }, budget: { sat: 100n } })
    const booking = bookFee(spendOf(ledger), { limit: 10, ...sat })
    expect(ledger.spent('sat')).toBe(10n)
    booking.settle(7)
    expect(ledger.spent('sat')).toBe(7n)
  })

  it('counts against the cross-rail budget, and keeps its share of the price once paid', () => {
    const ledger = new Ledger({
      crossRail: { unit: 'USD', budget: 1, price: (q) => ({ numerator: q.amount, denominator: 100n }) },
    })
    ledger.reserve({ ...reservation, quote: { amount: 90n, ...sat } })
    const error = (() => {
      try {
        bookFee(spendOf(ledger), { limit: 11, ...sat })
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(PolicyError)
    expect((error as PolicyError).reason).toBe('cross-rail-budget')
    expect(Value.format(ledger.spentTotal)).toBe('0.9')
    bookFee(spendOf(ledger), { limit: 10, ...sat }).settle(4)
    expect(Value.format(ledger.spentTotal)).toBe('0.94')
  })

  it('books nothing without a spend (a method driven directly) or with a zero limit', () => {
    expect(() => bookFee(undefined, { limit: 10, ...sat }).settle(3)).not.toThrow()
    const booked: unknown[] = []
    bookFee(
      (quote) => {
        booked.push(quote)
        return () => {}
      },
      { limit: 0, ...sat },
    ).settle(0)
    expect(booked).toEqual([])
  })
})
