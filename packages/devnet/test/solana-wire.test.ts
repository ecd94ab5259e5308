import { getBase58Decoder, getBase58Encoder, isAddress } from '@solana/kit'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fromBase58, isBase58Address, toBase58 } from '../src/solana/wire.js'

// Bytes with a run of leading zeros now and then (each is a leading '1' in base58).
const bytes = fc
  .tuple(fc.nat({ max: 4 }), fc.uint8Array({ maxLength: 96 }))
  .map(([zeros, rest]) => new Uint8Array([...new Uint8Array(zeros), ...rest]))
const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

describe('toBase58', () => {
  it('agrees with @solana/kit (property)', () => {
    const kit = getBase58Decoder()
    fc.assert(
      fc.property(bytes, (value) => {
        expect(toBase58(value)).toBe(kit.decode(value))
      }),
      { numRuns: 3000 },
    )
    expect(toBase58(new Uint8Array(32))).toBe('11111111111111111111111111111111')
    expect(toBase58(new Uint8Array())).toBe('')
  })
})

describe('fromBase58', () => {
  it('agrees with @solana/kit and inverts toBase58 (property)', () => {
    const kit = getBase58Encoder()
    const text = fc.array(fc.constantFrom(...alphabet), { maxLength: 90 }).map((chars) => chars.join(''))
    fc.assert(
      fc.property(text, (value) => {
        expect(fromBase58(value)).toEqual(new Uint8Array(kit.encode(value)))
      }),
      { numRuns: 3000 },
    )
    fc.assert(
      fc.property(bytes, (value) => {
        expect(fromBase58(toBase58(value))).toEqual(value)
      }),
    )
  })

  it('throws on a character outside the alphabet', () => {
    for (const bad of ['0', 'O', 'I', 'l', '+', 'é', '1110'])
      expect(() => fromBase58(bad)).toThrow(/invalid base58 character/)
  })
})

describe('isBase58Address', () => {
  it('accepts exactly what isAddress accepts (property)', () => {
    const near = fc
      .array(fc.constantFrom(...`${alphabet}0OIl+/`), { minLength: 28, maxLength: 48 })
      .map((chars) => chars.join(''))
    const keys = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(toBase58)
    fc.assert(
      fc.property(fc.oneof(near, keys, fc.string()), (value) => {
        expect(isBase58Address(value)).toBe(isAddress(value))
      }),
      { numRuns: 2000 },
    )
    expect(isBase58Address(42)).toBe(false)
  })
})
