import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Value from './Value.js'

describe('Value.from', () => {
  it('reads numbers as their shortest decimal, exactly', () => {
    expect(Value.from(0.1)).toEqual({ numerator: 1n, denominator: 10n })
    expect(Value.from(1e-7)).toEqual({ numerator: 1n, denominator: 10_000_000n })
    expect(Value.from(1.5e21)).toEqual({ numerator: 1_500_000_000_000_000_000_000n, denominator: 1n })
    expect(Value.from(7n)).toEqual({ numerator: 7n, denominator: 1n })
    expect(Value.from({ numerator: 6n, denominator: 4n })).toEqual({ numerator: 3n, denominator: 2n })
  })

  it('refuses anything that is not a finite non-negative amount', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, -1, -0.5, -1n, '1', null, undefined, {}])
      expect(Value.from(bad)).toBeUndefined()
    expect(Value.from({ numerator: 1n, denominator: 0n })).toBeUndefined()
    expect(Value.from({ numerator: 1, denominator: 2 })).toBeUndefined()
    expect(Value.from(Promise.resolve(1))).toBeUndefined()
  })

  it('agrees with the number it read, and never throws on untrusted values (property)', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1e300, noNaN: true }), (n) => {
        const value = Value.from(n)
        expect(value).toBeDefined()
        // Below 1e-280 the denominator (10^(digits − exponent)) no longer fits a double: compare only
        // where it does.
        if (n !== 0 && n < 1e-280) return
        const back = Number(value!.numerator) / Number(value!.denominator)
        expect(Math.abs(back - n) <= Math.abs(n) * 1e-12).toBe(true)
      }),
    )
    fc.assert(
      fc.property(fc.anything({ withBigInt: true }), (anything) => {
        const value = Value.from(anything)
        if (value) expect(value.numerator >= 0n && value.denominator > 0n).toBe(true)
      }),
    )
  })
})

describe('Value.format', () => {
  it('renders short decimals, marking inexact ones', () => {
    expect(Value.format({ numerator: 1n, denominator: 4n })).toMatchInlineSnapshot(`"0.25"`)
    expect(Value.format({ numerator: 1n, denominator: 3n })).toMatchInlineSnapshot(`"~0.333333"`)
    expect(Value.format({ numerator: 5n, denominator: 1n })).toMatchInlineSnapshot(`"5"`)
  })
})

describe('Value arithmetic', () => {
  it('adds and subtracts exactly (property)', () => {
    const rational = fc
      .tuple(fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.bigInt({ min: 1n, max: 10n ** 12n }))
      .map(([numerator, denominator]) => Value.from({ numerator, denominator })!)
    fc.assert(
      fc.property(rational, rational, (a, b) => {
        const sum = Value.add(a, b)
        expect(Value.subtract(sum, b)).toEqual(Value.from(a))
        expect(Value.greater(sum, a) || b.numerator === 0n).toBe(true)
      }),
    )
  })
})
