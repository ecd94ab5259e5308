import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseChallenges } from './AuthHeader.js'

const megabyte = 1 << 20
// Shapes that make a backtracking or rescanning tokenizer quadratic, at any size (in characters).
const adversarial: Record<string, (size: number) => string> = {
  spaces: (n) => `Payment${' '.repeat(n)}x`,
  schemes: (n) => `Payment ${'a '.repeat(n / 2)}`,
  token68: (n) => `Payment ${'a/'.repeat(n / 2)} b`,
  padding: (n) => `Payment a${'='.repeat(n)}x`,
  params: (n) => `Payment ${'a=1 '.repeat(n / 4)}`,
  escapes: (n) => `Payment a="${'\\"'.repeat(n / 2)}`,
  closedEscapes: (n) => `Payment a="${'\\"'.repeat(n / 2 - 1)}"`,
  unicodeEscapes: (n) => `Payment a="${'\\u2615'.repeat(Math.floor(n / 6))}"`,
  commas: (n) => `Payment ${', '.repeat(n / 2)}`,
  lists: (n) => 'Payment a=b, '.repeat(Math.floor(n / 13)),
  quotes: (n) => '"'.repeat(n),
}

/** The fastest of a few runs, in ms: the least disturbed by other work on a shared machine. */
function fastest(input: string): number {
  let best = Number.POSITIVE_INFINITY
  for (let run = 0; run < 3; run++) {
    const started = performance.now()
    parseChallenges(input)
    best = Math.min(best, performance.now() - started)
  }
  return best
}

const headerChars = fc.constantFrom(
  ...'Payment id="realm,method=\\ \t;=:-_ abcXYZ019/+u"'.split(''),
  '\\u2615',
  '\\ud83d',
  'Payment ',
  ', ',
  '="',
  '\\"',
  '☕',
)

describe('parseChallenges', () => {
  it('reads quoted-pairs and \\uXXXX escapes', () => {
    const [c] = parseChallenges('Payment a="x\\"y\\\\z", b="\\u20AC\\u00e9\\uD83D\\uDE80", c="\\u26", d=tok')
    expect(Object.fromEntries(c!.params)).toEqual({ a: 'x"y\\z', b: '€é🚀', c: 'u26', d: 'tok' })
  })
  it('parses a megabyte of adversarial input in linear time', () => {
    // A megabyte takes 10-200 ms on every shape here; a tokenizer that rescans (quadratic) needs ~10^11
    // steps on it, minutes. A wall-clock bound that far from both holds on a busy machine, where the
    // growth between two sizes did not: the garbage collector's share grows with the heap under load.
    for (const [name, shape] of Object.entries(adversarial)) {
      const ms = fastest(shape(megabyte))
      expect([name, ms < 1500, Math.round(ms)]).toEqual([name, true, expect.any(Number)])
    }
  })
  it('never throws, and each parameter value appears in the input once unescaped (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.array(headerChars, { maxLength: 80 }).map((a) => a.join('')),
        ),
        (input) => {
          for (const challenge of parseChallenges(input)) {
            expect(input).toContain(challenge.scheme)
            for (const [key] of challenge.params) expect(input.toLowerCase()).toContain(key)
          }
        },
      ),
      { numRuns: 3000 },
    )
  })
  it('round-trips any parameter values written as quoted-strings (property)', () => {
    const quote = (value: string) =>
      `"${value.replace(/[\\"]/g, '\\$&').replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/), fc.string({ unit: 'binary', maxLength: 20 })),
          {
            selector: ([key]) => key,
            maxLength: 6,
          },
        ),
        (params) => {
          const header = `Basic realm="x", Payment ${params.map(([k, v]) => `${k}=${quote(v)}`).join(', ')}`
          const payment = parseChallenges(header).find((c) => c.scheme === 'Payment')
          expect(payment && Object.fromEntries(payment.params)).toEqual(Object.fromEntries(params))
        },
      ),
      { numRuns: 400 },
    )
  })
})
