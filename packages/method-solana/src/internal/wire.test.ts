import { getBase58Decoder, isAddress } from '@solana/kit'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fromBase58, isBase58Address, keyToBase58, toBase58 } from './wire.js'

describe('base58', () => {
  it('round-trips bytes and agrees with @solana/kit (property)', () => {
    const kit = getBase58Decoder()
    fc.assert(
      // Runs of leading zero bytes now and then (each is a leading '1').
      fc.property(
        fc
          .tuple(fc.nat({ max: 3 }), fc.uint8Array({ maxLength: 80 }))
          .map(([zeros, rest]) => new Uint8Array([...new Uint8Array(zeros), ...rest])),
        (bytes) => {
          const text = toBase58(bytes)
          expect(text).toBe(kit.decode(bytes))
          expect(fromBase58(text)).toEqual(bytes)
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('encodes a range of a buffer as its own bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const [start, end] = [a % (bytes.length + 1), b % (bytes.length + 1)].sort((x, y) => x - y) as [
          number,
          number,
        ]
        expect(toBase58(bytes, start, end)).toBe(toBase58(bytes.slice(start, end)))
      }),
      { numRuns: 2000 },
    )
  })

  it('remembered keys come out as their own bytes, also after the buffer changed (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 48 }),
        fc.nat(),
        fc.nat(255),
        (bytes, at, flip) => {
          const start = at % (bytes.length - 31)
          const expected = toBase58(bytes.slice(start, start + 32))
          expect(keyToBase58(bytes, start)).toBe(expected)
          expect(keyToBase58(bytes, start)).toBe(expected)
          const changed = start + (flip % 32)
          bytes[changed] = bytes[changed]! ^ (flip || 1)
          expect(keyToBase58(bytes, start)).toBe(toBase58(bytes.slice(start, start + 32)))
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('isBase58Address accepts exactly what isAddress accepts (property)', () => {
    const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0OIl+/'
    const near = fc
      .array(fc.constantFrom(...alphabet), { minLength: 28, maxLength: 48 })
      .map((chars) => chars.join(''))
    const keys = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(toBase58)
    fc.assert(
      fc.property(fc.oneof(near, keys, fc.string()), (value) => {
        expect(isBase58Address(value)).toBe(isAddress(value))
        expect(isBase58Address(value)).toBe(isAddress(value)) // remembered when valid
      }),
      { numRuns: 2000 },
    )
    expect(isBase58Address('11111111111111111111111111111111')).toBe(true)
    expect(isBase58Address(42)).toBe(false)
  })
})
