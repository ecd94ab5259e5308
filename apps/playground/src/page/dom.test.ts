import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { baseUnits, display } from './dom.js'

describe('display', () => {
  it('writes base units in display units, without trailing zeros', () => {
    expect([
      display('1000', 6),
      display(50n, 2),
      display('0', 6),
      display(-1500n, 3),
      display('123', 0),
    ]).toEqual(['0.001', '0.5', '0', '-1.5', '123'])
  })
})

describe('baseUnits', () => {
  it('reads what display wrote (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 2n ** 128n }),
        fc.integer({ min: 0, max: 18 }),
        (amount, decimals) => {
          expect(baseUnits(display(amount, decimals), decimals)).toBe(amount)
        },
      ),
    )
  })

  it('refuses what is not an amount, or has too many decimals (the policy fields are typed by people)', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          const value = baseUnits(text, 6)
          expect(value).toBeGreaterThanOrEqual(0n)
          expect(text.trim()).toMatch(/^\d*(\.\d{0,6})?$/)
        } catch (error) {
          expect((error as Error).message).toMatch(/^(not an amount|.* has more than 6 decimals)/)
        }
      }),
    )
    expect(() => baseUnits('0.0000001', 6)).toThrowErrorMatchingInlineSnapshot(
      `[Error: 0.0000001 has more than 6 decimals]`,
    )
    expect(() => baseUnits('1e3', 6)).toThrowErrorMatchingInlineSnapshot(`[Error: not an amount: 1e3]`)
    expect(baseUnits(' 0.01 ', 6)).toBe(10_000n)
  })
})
