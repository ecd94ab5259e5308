import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Base64url from './Base64url.js'
import * as Binding from './Binding.js'
import * as Credential from './Credential.js'
import { ParseError } from './Errors.js'
import { create as createServer } from './server/Server.js'
import { createTestRail } from './testing/index.js'

const secret = 'credential-test-secret-0123456789abcdefg'
const challenge = Binding.create(
  { realm: 'api.example.com', method: 'tempo', intent: 'charge', request: { amount: '1' } },
  secret,
)
const token = Credential.format({ challenge, payload: { hash: '0xabc' } }).slice('Payment '.length)
const megabyte = 1 << 20

describe('maxHeaderLength', () => {
  it('is 64 KiB', () => {
    expect(Credential.maxHeaderLength).toBe(65536)
  })
})

describe('extract', () => {
  it('finds exactly the Payment elements of a list, in order (property)', () => {
    const element = fc.oneof(
      fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/).map((t) => ({ payment: true, text: `Payment ${t}`, t })),
      fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/).map((t) => ({ payment: true, text: `pAyMeNt  ${t}`, t })),
      fc.stringMatching(/^[A-Za-z0-9+/=]{0,40}$/).map((t) => ({ payment: false, text: `Bearer ${t}`, t })),
      fc.stringMatching(/^[a-z]{1,8}$/).map((t) => ({ payment: false, text: `Payments ${t}`, t })),
      // Another scheme's auth-params: a comma inside a quoted-string (with `\"` escapes) separates nothing.
      fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/).map((t) => ({
        payment: false,
        text: `Digest realm="a, Payment ${t}", nonce="\\", Payment ${t}"`,
        t,
      })),
    )
    fc.assert(
      fc.property(
        fc.array(element, { maxLength: 6 }),
        fc.constantFrom(',', ', ', ' ,\t'),
        (elements, sep) => {
          const value = elements.map((e) => e.text).join(sep)
          expect(Credential.extract(value)).toEqual(elements.filter((e) => e.payment).map((e) => e.t))
        },
      ),
      { numRuns: 1000 },
    )
  })
  it('does not split a quoted-string of another scheme', () => {
    expect(Credential.extract(`Digest username="a, Payment x", Payment ${token}`)).toEqual([token])
    expect(Credential.extract(`Digest realm="a \\", Payment x", Payment ${token}`)).toEqual([token])
    expect(Credential.extract(`Basic abc, Digest realm="x,y", qop="auth, Payment z"`)).toEqual([])
    // An unterminated quote runs to the end of the value.
    expect(Credential.extract(`Payment ${token}, Digest realm="x, Payment y`)).toEqual([token])
  })
  it('reads only the first maxHeaderLength characters: a cut Payment element is the empty token', () => {
    const long = `Payment ${token}, Bearer ${'x'.repeat(Credential.maxHeaderLength)}`
    expect(Credential.extract(long)).toEqual([token])
    const cut = `Payment ${'A'.repeat(Credential.maxHeaderLength)}`
    expect(Credential.extract(cut)).toEqual([''])
    expect(Credential.extract(`Bearer x, ${cut}`)).toEqual([''])
    expect(() => Credential.decode('')).toThrowError(ParseError)
  })
  it('takes linear time on a megabyte of commas and whitespace', () => {
    for (const value of [`Payment ${', '.repeat(megabyte / 2)}`, `Payment${' '.repeat(megabyte)}x`]) {
      // The fastest of three runs: the least disturbed by other work on a shared machine.
      let best = Number.POSITIVE_INFINITY
      for (let run = 0; run < 3; run++) {
        const started = performance.now()
        Credential.extract(value)
        best = Math.min(best, performance.now() - started)
      }
      expect(best).toBeLessThan(200)
    }
  })
})

describe('parse', () => {
  it('refuses a header longer than maxHeaderLength without decoding it', () => {
    const value = `Payment ${token}${' '.repeat(Credential.maxHeaderLength)}`
    expect(() => Credential.parse(value)).toThrowErrorMatchingInlineSnapshot(
      `[ParseError: header is too long]`,
    )
    expect(Credential.parse(`Payment ${token}  `).payload).toEqual({ hash: '0xabc' })
  })
  it('never throws an untyped error (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (value) => {
        try {
          Credential.parse(`Payment ${value}`)
        } catch (error) {
          expect(error).toBeInstanceOf(ParseError)
        }
      }),
      { numRuns: 1000 },
    )
  })
})

describe('decode', () => {
  it('refuses a token longer than maxHeaderLength', () => {
    const big = Base64url.encode(JSON.stringify({ pad: 'x'.repeat(Credential.maxHeaderLength) }))
    expect(() => Credential.decode(big)).toThrowErrorMatchingInlineSnapshot(
      `[ParseError: credential is too long]`,
    )
  })
})

describe('decodeWithRequest', () => {
  const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`
  const forge = (request: string, payload: string) =>
    Base64url.encode(
      `{"challenge":{"id":"${challenge.id}","realm":"api.example.com","method":"test","intent":"charge","request":"${Base64url.encode(request)}"},"payload":${payload}}`,
    )
  it('refuses an echoed request or a payload nested deeper than Jcs.maxDepth with a ParseError', () => {
    expect(() =>
      Credential.decodeWithRequest(forge(`{"a":${deep(64)}}`, '{}')),
    ).toThrowErrorMatchingInlineSnapshot(`[ParseError: request nests deeper than 64 levels]`)
    expect(() =>
      Credential.decodeWithRequest(forge('{}', `{"a":${deep(63)}}`)),
    ).toThrowErrorMatchingInlineSnapshot(`[ParseError: credential nests deeper than 64 levels]`)
    expect(Credential.decodeWithRequest(forge(`{"a":${deep(63)}}`, `{"a":${deep(62)}}`)).requestB64).toBe(
      Base64url.encode(`{"a":${deep(63)}}`),
    )
  })
  it('lets a server answer a deeply nested credential with a 402 problem, not a 503 (stack overflow)', async () => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.example.com', secrets: [secret], methods: [rail.server()] })
    const handler = server.protect(
      { offers: [{ method: 'test', request: { amount: '1', currency: 'usd', recipient: 'm' } }] },
      () => new Response('ok'),
    )
    for (const depth of [5_000, 50_000]) {
      const authorization = `Payment ${forge(`{"a":${deep(depth)}}`, '{}')}`
      const response = await handler(new Request('http://api.example.com/r', { headers: { authorization } }))
      expect(response.status).toBe(402)
      expect(response.headers.get('content-type')).toContain('problem+json')
    }
  })
})
