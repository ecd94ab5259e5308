import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { parseChallenges } from './AuthHeader.js'

const megabyte = 1 << 20
// Shapes that make a backtracking or rescanning tokenizer quadratic.
const adversarial = {
  spaces: `Payment${' '.repeat(megabyte)}x`,
  schemes: `Payment ${'a '.repeat(megabyte / 2)}`,
  token68: `Payment ${'a/'.repeat(megabyte / 2)} b`,
  padding: `Payment a${'='.repeat(megabyte)}x`,
  params: `Payment ${'a=1 '.repeat(megabyte / 4)}`,
  escapes: `Payment a="${'\\"'.repeat(megabyte / 2)}`,
  unicodeEscapes: `Payment a="${'\\u2615'.repeat(megabyte / 6)}"`,
  commas: `Payment ${', '.repeat(megabyte / 2)}`,
  lists: 'Payment a=b, '.repeat(megabyte / 13),
  quotes: '"'.repeat(megabyte),
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
    // A quadratic tokenizer needs minutes on a megabyte; a linear one well under a second even on a
    // loaded two-core CI machine (most shapes take a few ms; one challenge per two characters allocates).
    for (const [name, value] of Object.entries(adversarial)) {
      const started = performance.now()
      parseChallenges(value)
      expect([name, performance.now() - started < 1000]).toEqual([name, true])
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
