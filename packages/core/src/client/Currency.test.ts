import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Currency from './Currency.js'

const usdc = '0x20C0000000000000000000000000000000000001'

describe('Currency.same', () => {
  it('is exact, except for the case of EVM addresses', () => {
    expect(Currency.same(usdc, usdc.toLowerCase())).toBe(true)
    expect(Currency.same('usd', 'USD')).toBe(false)
    expect(
      Currency.same(
        'So11111111111111111111111111111111111111112',
        'so11111111111111111111111111111111111111112',
      ),
    ).toBe(false)
    // 0x + 39 hex is not an address: exact.
    expect(Currency.same('0xAB', '0xab')).toBe(false)
  })

  it('is an equivalence that only folds 0x+40-hex identifiers (property)', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        expect(Currency.same(a, a)).toBe(true)
        expect(Currency.same(a, b)).toBe(Currency.same(b, a))
        if (Currency.same(a, b) && a !== b)
          expect(/^0x[0-9a-f]{40}$/i.test(a) && a.toLowerCase() === b.toLowerCase()).toBe(true)
      }),
    )
  })
})

describe('Currency.match', () => {
  it('tells network-qualified keys from bare ones', () => {
    const asset = { currency: usdc, network: 'tempo:4217' }
    expect(Currency.match(`tempo:4217:${usdc.toLowerCase()}`, asset)).toBe(2)
    expect(Currency.match(usdc, asset)).toBe(1)
    expect(Currency.match(`tempo:42431:${usdc}`, asset)).toBe(0)
    expect(Currency.match(`tempo:4217:${usdc}`, { currency: usdc })).toBe(0)
  })

  it('never throws and a key names its own label (property)', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.option(fc.string(), { nil: undefined }),
        fc.string(),
        (currency, network, key) => {
          const asset = { currency, network }
          expect(Currency.match(Currency.label(asset), asset)).toBeGreaterThan(0)
          expect([0, 1, 2]).toContain(Currency.match(key, asset))
        },
      ),
    )
  })
})

describe('Currency.label', () => {
  it('prefixes the network when known', () => {
    expect(Currency.label({ currency: 'usd' })).toMatchInlineSnapshot(`"usd"`)
    expect(Currency.label({ currency: usdc, network: 'tempo:4217' })).toMatchInlineSnapshot(
      `"tempo:4217:0x20C0000000000000000000000000000000000001"`,
    )
  })
})
