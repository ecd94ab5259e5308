import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as AcceptPayment from '../src/AcceptPayment.js'
import * as Base64url from '../src/Base64url.js'
import * as Challenge from '../src/Challenge.js'
import * as Credential from '../src/Credential.js'
import * as Digest from '../src/Digest.js'
import { BaseError } from '../src/Errors.js'
import * as Expires from '../src/Expires.js'
import * as Receipt from '../src/Receipt.js'
import { create as createServer } from '../src/server/Server.js'
import { createTestRail } from '../src/testing/index.js'

// Only typed errors may escape a parser of untrusted input.
const onlyTyped = (fn: () => unknown) => {
  try {
    fn()
  } catch (error) {
    if (!BaseError.is(error)) throw error
  }
}

// Header-ish strings: mixes of the characters that matter to the grammar.
const headerChars = fc.constantFrom(
  ...'Payment id="realm,method=\\ \t;=:-_ abcXYZ019/+"'.split(''),
  'Payment ',
  ', ',
  '="',
  '\\"',
  '\r\n',
  '\\u2615',
  '\\ud83d',
  '☕',
)
const headerish = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.array(headerChars, { maxLength: 80 }).map((a) => a.join('')),
)
const base64ish = fc.oneof(
  fc.base64String().map((s) => s.replace(/=/g, '')),
  fc.string({ maxLength: 100 }),
)
const jsonish = fc.jsonValue({ maxDepth: 3 }).map((v) => Base64url.encode(JSON.stringify(v)))

describe('parsers never throw untyped errors', () => {
  const runs = { numRuns: 2000 }
  it('Challenge.parse / parseAll', () => {
    fc.assert(
      fc.property(headerish, (value) => {
        onlyTyped(() => Challenge.parse(value))
        expect(Array.isArray(Challenge.parseAll(value))).toBe(true)
      }),
      runs,
    )
  })
  it('Challenge.parse on structurally valid headers with random values', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.oneof(jsonish, base64ish),
        fc.string(),
        (id, realm, request, extra) => {
          const header = `Payment id="${id}", realm="${realm}", method="tempo", intent="charge", request="${request}", x="${extra}"`
          onlyTyped(() => Challenge.parse(header))
        },
      ),
      runs,
    )
  })
  it('Credential.parse / extract / decode', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          headerish,
          jsonish.map((j) => `Payment ${j}`),
        ),
        (value) => {
          onlyTyped(() => Credential.parse(value))
          for (const token of Credential.extract(value)) onlyTyped(() => Credential.decode(token))
        },
      ),
      runs,
    )
  })
  it('Credential.decode on JSON with a challenge-shaped object', () => {
    const challengeLike = fc.record(
      {
        id: fc.anything(),
        realm: fc.anything(),
        method: fc.anything(),
        intent: fc.anything(),
        request: fc.oneof(fc.anything(), jsonish),
      },
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(challengeLike, fc.anything(), fc.anything(), (challenge, payload, source) => {
        let token: string
        try {
          token = Base64url.encode(JSON.stringify({ challenge, payload, source }))
        } catch {
          return
        }
        onlyTyped(() => Credential.decode(token))
      }),
      runs,
    )
  })
  it('Receipt.parse, Base64url.decode, AcceptPayment.parse, Digest, Expires', () => {
    fc.assert(
      fc.property(fc.oneof(headerish, base64ish, jsonish), (value) => {
        onlyTyped(() => Receipt.parse(value))
        onlyTyped(() => Base64url.decodeText(value))
        AcceptPayment.parse(value)
        Digest.parse(value)
        expect(typeof Digest.verify(value, value)).toBe('boolean')
        onlyTyped(() => Expires.parse(value))
      }),
      runs,
    )
  })
  it('Base64url round-trips every byte string', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(Buffer.from(Base64url.decode(Base64url.encode(bytes)))).toEqual(Buffer.from(bytes))
      }),
    )
  })
})

describe('the server never answers 5xx to malformed payment input', () => {
  const rail = createTestRail()
  const server = createServer({
    realm: 'fuzz.test',
    secrets: ['fuzz-secret-0123456789abcdefghijklmnop'],
    methods: [rail.server()],
  })
  const handler = server.protect(
    { offers: [{ method: 'test', request: { amount: '1', currency: 'usd', recipient: 'm' } }] },
    () => new Response('ok'),
  )
  it('random Authorization, Accept-Payment, Idempotency-Key and bodies', async () => {
    const latin1 = fc.string({ maxLength: 300 }).map((s) => s.replace(/[^\x20-\x7e\t]/g, ''))
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          latin1.map((s) => `Payment ${s}`),
          jsonish.map((j) => `Payment ${j}`),
          latin1,
        ),
        latin1,
        latin1,
        fc.option(fc.string({ maxLength: 200 })),
        async (authorization, accept, key, body) => {
          const headers = new Headers({ authorization, 'accept-payment': accept })
          if (key) headers.set('idempotency-key', key)
          const init: RequestInit = body === null ? { headers } : { method: 'POST', headers, body }
          const response = await handler(new Request('http://fuzz.test/r', init))
          expect(response.status).toBeLessThan(500)
          expect(response.headers.get('payment-receipt')).toBeNull()
        },
      ),
      { numRuns: 1000 },
    )
  })
})
