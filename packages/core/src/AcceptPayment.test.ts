import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as AcceptPayment from './AcceptPayment.js'

// The regular expression the parser used before the scanner, kept as an oracle for the accepted
// language (it backtracked quadratically on long whitespace runs, so it only sees short inputs here).
const oracle = (value: string): AcceptPayment.Range[] | undefined => {
  const pattern =
    /^[ \t]*([a-z]+|\*)\/([A-Za-z0-9-]+|\*)[ \t]*(?:;[ \t]*q[ \t]*=[ \t]*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?))?[ \t]*$/
  if (value.trim() === '') return undefined
  const ranges: AcceptPayment.Range[] = []
  for (const part of value.split(',')) {
    if (part.trim() === '') continue
    const match = pattern.exec(part)
    if (!match) return undefined
    ranges.push({ method: match[1]!, intent: match[2]!, q: match[3] === undefined ? 1 : Number(match[3]) })
  }
  return ranges.length ? ranges : undefined
}

// Inputs shaped like the grammar: fragments that matter, in any order.
const fragment = fc.constantFrom(
  'tempo',
  'stripe',
  '*',
  '/',
  'charge',
  'Ses-1',
  ';',
  'q',
  '=',
  '0',
  '1',
  '.',
  '5',
  '000',
  ',',
  ' ',
  '\t',
  'x',
)
const acceptish = fc.oneof(
  fc.array(fragment, { maxLength: 40 }).map((parts) => parts.join('')),
  fc
    .array(
      fc.record({
        method: fc.constantFrom('tempo', 'stripe', '*'),
        intent: fc.constantFrom('charge', 'session', '*'),
        q: fc.option(fc.constantFrom('0', '1', '0.5', '0.125', '1.000', '1.5', '0.1234'), { nil: undefined }),
        ows: fc.constantFrom('', ' ', ' \t '),
      }),
      { maxLength: 6 },
    )
    .map((rs) =>
      rs
        .map((r) => `${r.ows}${r.method}/${r.intent}${r.ows}${r.q === undefined ? '' : `;${r.ows}q=${r.q}`}`)
        .join(','),
    ),
)

// Timing bound a quadratic parser cannot meet on a megabyte (the old one needed ~3 s for 60 KB, so
// about 15 minutes for 1 MB), loose enough for a loaded 2-core CI machine (a linear scan takes a few ms).
const megabyte = 1 << 20
const adversarial = [
  `a/b${' '.repeat(megabyte)}x`,
  `a/b;q=0${' '.repeat(megabyte)}x`,
  `a/b ;${' \t'.repeat(megabyte / 2)}`,
  'a/b,'.repeat(megabyte / 4),
  `${'a'.repeat(megabyte)}`,
  `*/${'a-'.repeat(megabyte / 2)} x`,
]

describe('parse', () => {
  it('reads the spec examples', () => {
    expect(AcceptPayment.parse('tempo/*, solana/*;q=0.6, */session;q=0.3')).toEqual([
      { method: 'tempo', intent: '*', q: 1 },
      { method: 'solana', intent: '*', q: 0.6 },
      { method: '*', intent: 'session', q: 0.3 },
    ])
    expect(AcceptPayment.parse('tempo/charge ; Q = 0.250 ,, stripe/charge;q=1.000')).toEqual([
      { method: 'tempo', intent: 'charge', q: 0.25 },
      { method: 'stripe', intent: 'charge', q: 1 },
    ])
  })
  it.each([
    'Tempo/charge',
    'tempo',
    'tempo/',
    'tempo/charge;',
    'tempo/charge;q=',
    'tempo/charge;q=1.5',
    'tempo/charge;q=0.1234',
    'tempo/charge x',
    'tempo/charge;r=1',
  ])('treats %j as malformed', (value) => {
    expect(AcceptPayment.parse(value)).toBeUndefined()
  })
  it('accepts the same language as the former regular expression (property)', () => {
    fc.assert(
      fc.property(acceptish, (value) => {
        expect(AcceptPayment.parse(value)).toEqual(oracle(value))
      }),
      { numRuns: 3000 },
    )
  })
  it('ignores a value longer than maxHeaderLength or with more than maxRanges ranges', () => {
    expect(AcceptPayment.maxHeaderLength).toBe(8192)
    expect(AcceptPayment.maxRanges).toBe(64)
    const ranges = (count: number) => Array.from({ length: count }, () => 'tempo/charge').join(',')
    expect(AcceptPayment.parse(ranges(64))).toHaveLength(64)
    expect(AcceptPayment.parse(ranges(65))).toBeUndefined()
    const padded = `tempo/charge${' '.repeat(AcceptPayment.maxHeaderLength)}`
    expect(AcceptPayment.parse(padded.slice(0, AcceptPayment.maxHeaderLength))).toHaveLength(1)
    expect(AcceptPayment.parse(padded)).toBeUndefined()
    expect(AcceptPayment.parse(padded, { maxLength: Number.POSITIVE_INFINITY })).toHaveLength(1)
  })
  it('scans a megabyte of adversarial input in linear time', () => {
    for (const [index, value] of adversarial.entries()) {
      const started = performance.now()
      AcceptPayment.parse(value, { maxLength: Number.POSITIVE_INFINITY, maxRanges: Number.POSITIVE_INFINITY })
      expect([index, performance.now() - started < 1000]).toEqual([index, true])
    }
  })
  it('rejects a 60 KB adversarial header at once (the former parser blocked ~3 s)', () => {
    // The fastest of three runs: the least disturbed by other work on a shared machine.
    let best = Number.POSITIVE_INFINITY
    for (let run = 0; run < 3; run++) {
      const started = performance.now()
      expect(AcceptPayment.parse(`a/b${' '.repeat(60_000)}x`)).toBeUndefined()
      best = Math.min(best, performance.now() - started)
    }
    expect(best).toBeLessThan(50)
  })
})

describe('select', () => {
  const offers = ['tempo/charge', 'stripe/charge', 'tempo/session'].map((s) => {
    const [method, intent] = s.split('/') as [string, string]
    return { method, intent }
  })
  it('offers everything when the header is too long to read', () => {
    const long = `stripe/charge, ${' '.repeat(AcceptPayment.maxHeaderLength)}tempo/charge;q=0`
    expect(AcceptPayment.select(offers, long)).toEqual(offers)
    expect(AcceptPayment.select(offers, 'stripe/charge')).toEqual([offers[1]])
  })
})
