import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { stringify } from '../src/solana/json.js'

// The straightforward writer the node used before (reference for the property below).
function reference(value: unknown): string {
  if (typeof value === 'bigint') return value.toString()
  if (value === null || value === undefined) return 'null'
  if (Array.isArray(value))
    return `[${value.map((item) => (item === undefined ? 'null' : reference(item))).join(',')}]`
  if (typeof value === 'object') {
    const parts: string[] = []
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue
      parts.push(`${JSON.stringify(key)}:${reference(item)}`)
    }
    return `{${parts.join(',')}}`
  }
  return JSON.stringify(value)
}

describe('solana RPC JSON writer', () => {
  it('writes u64 values as plain numbers', () => {
    expect(stringify({ rentEpoch: 18446744073709551615n, lamports: 5n, neg: -(2n ** 60n) })).toBe(
      '{"rentEpoch":18446744073709551615,"lamports":5,"neg":-1152921504606846976}',
    )
  })

  it('matches the reference writer on arbitrary JSON with bigints (property)', () => {
    const leaf = fc.oneof(
      fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
      fc.string({ unit: 'binary' }),
      fc.constantFrom('\u0000', '"\u0000:1"', '\\u0000'),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
    )
    const tree = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.array(tie('node')),
        fc.dictionary(fc.string(), tie('node')),
      ),
    })).node
    fc.assert(
      fc.property(tree, (value) => {
        expect(stringify(value)).toBe(reference(value))
      }),
      { numRuns: 500 },
    )
  })
})
