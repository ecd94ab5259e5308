import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import * as AcceptPayment from '../src/AcceptPayment.js'
import * as Base64url from '../src/Base64url.js'
import * as Binding from '../src/Binding.js'
import * as Challenge from '../src/Challenge.js'
import * as Credential from '../src/Credential.js'
import * as Digest from '../src/Digest.js'
import { ConfigurationError, FormatError, ParseError } from '../src/Errors.js'
import * as Expires from '../src/Expires.js'
import * as Jcs from '../src/Jcs.js'
import * as Receipt from '../src/Receipt.js'

const secret = 'codec-test-secret-0123456789abcdefghijkl'
const base = {
  realm: 'api.example.com',
  method: 'tempo',
  intent: 'charge',
  request: { amount: '1000', currency: 'usd' },
}

describe('Challenge.parseAll', () => {
  it('finds several Payment challenges in one header, across headers, among other schemes', () => {
    const a = Challenge.format(Binding.create(base, secret))
    const b = Challenge.format(Binding.create({ ...base, intent: 'session' }, secret))
    const oneHeader = `Bearer realm="x", error="invalid_token", ${a}, Basic realm="y", ${b}, Negotiate abc==`
    expect(Challenge.parseAll(oneHeader).map((c) => c.intent)).toEqual(['charge', 'session'])
    expect(Challenge.parseAll([`Basic realm="y"`, a, `Bearer xyz`, b]).map((c) => c.intent)).toEqual([
      'charge',
      'session',
    ])
  })
  it('accepts token (unquoted) values and case-insensitive parameter names', () => {
    const [c] = Challenge.parseAll('Payment ID=abc, Realm=api, method=tempo, intent=charge, request=e30')
    expect(c).toEqual({ id: 'abc', realm: 'api', method: 'tempo', intent: 'charge', request: {} })
  })
  it('skips unusable Payment challenges instead of failing the whole header', () => {
    const good = Challenge.format(Binding.create(base, secret))
    expect(
      Challenge.parseAll(`Payment id="", realm="a", method="tempo", intent="charge", request="e30", ${good}`),
    ).toHaveLength(1)
  })
})

describe('Challenge.parse', () => {
  it.each([
    ['missing id', 'Payment realm="a", method="tempo", intent="charge", request="e30"'],
    ['empty id', 'Payment id="", realm="a", method="tempo", intent="charge", request="e30"'],
    ['uppercase method', 'Payment id="x", realm="a", method="Tempo", intent="charge", request="e30"'],
    ['method with digits', 'Payment id="x", realm="a", method="tempo2", intent="charge", request="e30"'],
    [
      'request not an object',
      `Payment id="x", realm="a", method="tempo", intent="charge", request="${Base64url.encode('[1]')}"`,
    ],
    ['padded request', 'Payment id="x", realm="a", method="tempo", intent="charge", request="e30="'],
  ])('rejects %s with a ParseError', (_, header) => {
    expect(() => Challenge.parse(header)).toThrow(ParseError)
  })
  it('unescapes quoted-string escapes', () => {
    const c = Challenge.parse(
      'Payment id="a\\"b", realm="r\\\\s", method="tempo", intent="charge", request="e30"',
    )
    expect(c.id).toBe('a"b')
    expect(c.realm).toBe('r\\s')
  })
})

describe('Challenge.format', () => {
  it('formats canonical wire strings', () => {
    const challenge = Binding.create(
      {
        ...base,
        expires: '2030-01-01T00:00:00Z',
        description: 'Say "hi"',
        opaque: Challenge.encodeOpaque({ route: '/a' }),
      },
      secret,
    )
    expect(Challenge.format(challenge)).toMatchInlineSnapshot(
      `"Payment id="AAa4uB-bQOT3LKWow9VXhhIbK7zhpP5uPFi2BAY1iPI", realm="api.example.com", method="tempo", intent="charge", request="eyJhbW91bnQiOiIxMDAwIiwiY3VycmVuY3kiOiJ1c2QifQ", description="Say \\"hi\\"", expires="2030-01-01T00:00:00Z", opaque="eyJyb3V0ZSI6Ii9hIn0""`,
    )
  })
  it('binds the id to the seven pipe-joined slots (independent HMAC)', () => {
    const challenge = Binding.create({ ...base, expires: '2030-01-01T00:00:00Z', opaque: 'b3BhcXVl' }, secret)
    const input = `api.example.com|tempo|charge|${Base64url.encode('{"amount":"1000","currency":"usd"}')}|2030-01-01T00:00:00Z||b3BhcXVl`
    expect(challenge.id).toBe(createHmac('sha256', secret).update(input).digest('base64url'))
  })
  it('refuses CR, LF and other control characters (header injection)', () => {
    for (const description of ['a\r\nSet-Cookie: x=1', 'a\nb', 'a\u0000b']) {
      expect(() => Challenge.format({ ...Binding.create(base, secret), description })).toThrow(FormatError)
    }
  })
  it('refuses secrets shorter than 32 bytes', () => {
    expect(() => Binding.computeId(base, 'x'.repeat(31))).toThrow(ConfigurationError)
    expect(Binding.computeId(base, 'x'.repeat(32))).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })
})

describe('Credential', () => {
  it('round-trips and formats canonical wire strings', () => {
    const challenge = Binding.create({ ...base, expires: '2030-01-01T00:00:00Z' }, secret)
    const header = Credential.format({
      challenge,
      payload: { type: 'hash', hash: '0xab' },
      source: 'did:example:1',
    })
    expect(header).toMatchInlineSnapshot(
      `"Payment eyJjaGFsbGVuZ2UiOnsiaWQiOiJ2dHZjUUd4MWRpZ1o3c0hmd1lhRFFfTElQUXFDZXRCSjZOOGMwOFlndXl3IiwicmVhbG0iOiJhcGkuZXhhbXBsZS5jb20iLCJtZXRob2QiOiJ0ZW1wbyIsImludGVudCI6ImNoYXJnZSIsInJlcXVlc3QiOiJleUpoYlc5MWJuUWlPaUl4TURBd0lpd2lZM1Z5Y21WdVkza2lPaUoxYzJRaWZRIiwiZXhwaXJlcyI6IjIwMzAtMDEtMDFUMDA6MDA6MDBaIn0sInBheWxvYWQiOnsidHlwZSI6Imhhc2giLCJoYXNoIjoiMHhhYiJ9LCJzb3VyY2UiOiJkaWQ6ZXhhbXBsZToxIn0"`,
    )
    expect(Credential.parse(header)).toEqual({
      challenge,
      payload: { type: 'hash', hash: '0xab' },
      source: 'did:example:1',
    })
  })
  it('finds one credential among several Authorization values, and counts duplicates', () => {
    expect(Credential.extract('Bearer abc')).toEqual([])
    expect(Credential.extract('Payment abc')).toEqual(['abc'])
    expect(Credential.extract('Bearer x, Payment abc, payment def')).toEqual(['abc', 'def'])
  })
})

describe('Receipt', () => {
  it('formats and parses', () => {
    const receipt: Receipt.Receipt = {
      status: 'success',
      method: 'tempo',
      timestamp: '2030-01-01T00:00:00Z',
      reference: '0xab',
    }
    expect(Receipt.format(receipt)).toMatchInlineSnapshot(
      `"eyJzdGF0dXMiOiJzdWNjZXNzIiwibWV0aG9kIjoidGVtcG8iLCJ0aW1lc3RhbXAiOiIyMDMwLTAxLTAxVDAwOjAwOjAwWiIsInJlZmVyZW5jZSI6IjB4YWIifQ"`,
    )
    expect(Receipt.parse(Receipt.format(receipt))).toEqual(receipt)
    expect(() =>
      Receipt.parse(Base64url.encode('{"status":"failed","method":"x","timestamp":"t","reference":"r"}')),
    ).toThrow(ParseError)
  })
})

describe('Jcs.canonicalize', () => {
  it('sorts keys by UTF-16 code units and serializes numbers as ECMAScript does (RFC 8785)', () => {
    expect(
      Jcs.canonicalize({ b: [1e21, 0.1, -0], a: { d: 'é', C: null }, '\u20ac': true, '\u{1F600}': 1 }),
    ).toMatchInlineSnapshot(`"{"a":{"C":null,"d":"é"},"b":[1e+21,0.1,0],"€":true,"😀":1}"`)
  })
})

describe('Digest', () => {
  it('computes RFC 9530 sha-256 values and verifies them', () => {
    expect(Digest.compute('{"hello": "world"}')).toBe(
      'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:',
    )
    expect(
      Digest.verify('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', '{"hello": "world"}'),
    ).toBe(true)
    expect(Digest.verify('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', '{"hello":"world"}')).toBe(
      false,
    )
    expect(Digest.verify('sha-512=:AAAA:', 'x')).toBe(false)
  })
})

describe('AcceptPayment', () => {
  const offers = ['tempo/charge', 'tempo/session', 'stripe/charge', 'solana/charge'].map((s) => {
    const [method, intent] = s.split('/') as [string, string]
    return { method, intent }
  })
  const order = (header: string | null) =>
    AcceptPayment.select(offers, header).map((o) => `${o.method}/${o.intent}`)
  it('orders by q, keeps server order on ties, honours q=0 and the most specific range (spec examples)', () => {
    expect(order('tempo/charge, tempo/session, stripe/charge;q=0.5, solana/charge;q=0.3')).toEqual([
      'tempo/charge',
      'tempo/session',
      'stripe/charge',
      'solana/charge',
    ])
    expect(order('tempo/*, solana/*;q=0.6, stripe/charge;q=0.2')).toEqual([
      'tempo/charge',
      'tempo/session',
      'solana/charge',
      'stripe/charge',
    ])
    expect(order('tempo/charge, tempo/session;q=0, solana/charge;q=0.8, stripe/charge;q=0.4')).toEqual([
      'tempo/charge',
      'solana/charge',
      'stripe/charge',
    ])
    expect(order('*/*;q=0.1, stripe/*')).toEqual([
      'stripe/charge',
      'tempo/charge',
      'tempo/session',
      'solana/charge',
    ])
  })
  it('ignores a missing, malformed or unmatched header', () => {
    const all = offers.map((o) => `${o.method}/${o.intent}`)
    expect(order(null)).toEqual(all)
    expect(order('tempo charge;;')).toEqual(all)
    expect(order('bitcoin/charge')).toEqual(all)
  })
})

describe('Expires', () => {
  it('formats RFC 3339 UTC and parses offsets', () => {
    expect(Expires.format(0)).toBe('1970-01-01T00:00:00Z')
    expect(Expires.parse('2025-01-15T12:05:00+01:00')).toBe(Date.parse('2025-01-15T11:05:00Z'))
    expect(() => Expires.parse('2025-13-01T00:00:00Z')).toThrow(ParseError)
    expect(() => Expires.parse('tomorrow')).toThrow(ParseError)
    expect(Expires.isExpired('2000-01-01T00:00:00Z')).toBe(true)
    expect(Expires.isExpired('not a date')).toBe(true)
  })
})
