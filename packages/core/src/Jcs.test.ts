import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FormatError, ParseError } from './Errors.js'
import * as Jcs from './Jcs.js'

const nested = (depth: number, open = '[', close = ']') => `${open.repeat(depth)}${close.repeat(depth)}`
const nestedValue = (depth: number): unknown => {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value }
  return value
}

describe('maxDepth', () => {
  it('is 64', () => {
    expect(Jcs.maxDepth).toBe(64)
  })
})

describe('parse', () => {
  it('accepts maxDepth levels and refuses one more with a ParseError', () => {
    expect(Jcs.parse(nested(64))).toEqual(JSON.parse(nested(64)))
    expect(() => Jcs.parse(nested(65))).toThrowErrorMatchingInlineSnapshot(
      `[ParseError: JSON nests deeper than 64 levels]`,
    )
    expect(() =>
      Jcs.parse(`{"a":${nested(70, '[{"b":', '}]')}}`, 'request'),
    ).toThrowErrorMatchingInlineSnapshot(`[ParseError: request nests deeper than 64 levels]`)
    expect(() => Jcs.parse(nested(100_000))).toThrowError(ParseError)
  })
  it('does not count brackets inside strings, escaped quotes included', () => {
    const text = JSON.stringify({ s: `\\"${'['.repeat(1000)}"\\`, t: ['{'.repeat(100)] })
    expect(Jcs.parse(text)).toEqual(JSON.parse(text))
  })
  it('reads shallow text with many brackets (more than maxDepth in all, siblings)', () => {
    const text = JSON.stringify([Array.from({ length: 100 }, () => ({ a: [1] })), '{'.repeat(10)])
    expect(Jcs.parse(text)).toEqual(JSON.parse(text))
    // 64 levels after 100 shallow siblings: the full scan runs and accepts; one more level refused.
    expect(Jcs.parse(`[${'{},'.repeat(100)}${nested(63)}]`)).toHaveLength(101)
    expect(() => Jcs.parse(`[${'{},'.repeat(100)}${nested(64)}]`)).toThrowError(ParseError)
  })
  it('refuses what is not JSON with a ParseError', () => {
    expect(() => Jcs.parse('{"a":', 'credential')).toThrowErrorMatchingInlineSnapshot(
      `[ParseError: credential is not JSON]`,
    )
  })
  it('agrees with JSON.parse on JSON within the limit, and refuses exactly what is deeper (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (value) => {
        const text = JSON.stringify(value)
        expect(Jcs.parse(text)).toEqual(JSON.parse(text))
      }),
      { numRuns: 1000 },
    )
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.jsonValue({ maxDepth: 0 }), (depth, leaf) => {
        let value: unknown = leaf
        for (let i = 0; i < depth; i++) value = i % 3 ? [value] : { '[k{': value }
        const text = JSON.stringify(value)
        if (depth <= Jcs.maxDepth)
          expect(Jcs.parse(text)).toEqual(JSON.parse(text)) // not `value`: JSON has no -0
        else expect(() => Jcs.parse(text)).toThrowError(ParseError)
      }),
      { numRuns: 500 },
    )
  })
})

describe('canonicalize', () => {
  it('serializes maxDepth levels and throws FormatError past them, never RangeError', () => {
    expect(Jcs.canonicalize(nestedValue(64))).toBe(JSON.stringify(nestedValue(64)))
    expect(() => Jcs.canonicalize(nestedValue(65))).toThrowErrorMatchingInlineSnapshot(
      `[FormatError: JCS: nesting deeper than 64 levels]`,
    )
    expect(() => Jcs.canonicalize(nestedValue(10_000))).toThrowError(FormatError)
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    expect(() => Jcs.canonicalize(cyclic)).toThrowError(FormatError)
    const looping = { toJSON: () => looping }
    expect(() => Jcs.canonicalize(looping)).toThrowError(FormatError)
  })
  it('canonicalizes whatever parse accepts (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const text = JSON.stringify(value)
        expect(JSON.parse(Jcs.canonicalize(Jcs.parse(text)))).toEqual(JSON.parse(text))
      }),
      { numRuns: 500 },
    )
  })
})
