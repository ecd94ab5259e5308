import fc from 'fast-check'
import * as Mppx from 'mppx'
import { describe, expect, it } from 'vitest'
import * as Binding from '../src/Binding.js'
import * as Challenge from '../src/Challenge.js'
import * as Credential from '../src/Credential.js'
import * as Receipt from '../src/Receipt.js'

// Property tests against the reference SDK (mppx@0.11.0, a devDependency): our codecs and challenge
// ids must agree with its on generated challenges, credentials and receipts, in both directions.

const secretKey = 'interop-secret-key-0123456789abcdefghij'
const token = fc.stringMatching(/^[a-z]{1,12}$/)
// Any well-formed Unicode (not only ASCII): non-Latin-1 text travels as `\uXXXX` escapes both ways.
const text = fc
  .oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }))
  .filter((s) => !/[\u0000-\u001f\u007f]/.test(s))
// mppx's zod records drop `__proto__` keys; generated JSON avoids them so the comparison is about codecs.
const hasProto = (v: unknown): boolean =>
  typeof v === 'object' && v !== null && (Object.hasOwn(v, '__proto__') || Object.values(v).some(hasProto))
const requestValue = fc.jsonValue({ maxDepth: 3 }).filter((v) => !Object.is(v, -0) && !hasProto(v))
const key = fc.string({ maxLength: 12 }).filter((k) => k !== '__proto__')
const request = fc.dictionary(key, requestValue, { maxKeys: 6 })
const expires = fc
  .date({ min: new Date('2020-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
  .map((d) => d.toISOString())
const meta = fc.dictionary(fc.stringMatching(/^[a-zA-Z]{1,8}$/), fc.string({ maxLength: 16 }), {
  minKeys: 1,
  maxKeys: 3,
})

const fields = fc.record(
  {
    realm: text.filter((s) => s.length > 0),
    method: token,
    intent: fc.constantFrom('charge', 'session', 'authorize'),
    request,
    expires,
    // mppx treats an empty description as absent; non-empty values must match exactly.
    description: text.filter((s) => s.length > 0),
    digest: fc.base64String({ minLength: 4, maxLength: 44 }).map((d) => `sha-256=:${d}:`),
    meta,
  },
  { requiredKeys: ['realm', 'method', 'intent', 'request'] },
)

type Fields = {
  realm: string
  method: string
  intent: string
  request: Record<string, unknown>
  expires?: string
  description?: string
  digest?: string
  meta?: Record<string, string>
}

const ours = (f: Fields): Challenge.ChallengeFields => {
  const { meta: m, ...rest } = f
  return m ? { ...rest, opaque: Challenge.encodeOpaque(m) } : rest
}
const normalize = (c: Record<string, unknown>) => {
  const { meta: _meta, ...rest } = c
  return JSON.parse(JSON.stringify(rest))
}

describe('interop with mppx@0.11.0', () => {
  it('computes the same challenge ids', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const theirs = Mppx.Challenge.from({ secretKey, ...f } as any)
        expect(Binding.computeId(ours(f), secretKey)).toBe(theirs.id)
        expect(theirs.opaque).toBe(ours(f).opaque)
      }),
      { numRuns: 500 },
    )
  })

  it('parses challenges mppx serializes, and mppx parses ours', () => {
    fc.assert(
      fc.property(fields, (f) => {
        const theirs = Mppx.Challenge.from({ secretKey, ...f } as any)
        const parsedByUs = Challenge.parse(Mppx.Challenge.serialize(theirs))
        expect(parsedByUs).toEqual(normalize(theirs as any))
        const mine = Binding.create(ours(f), secretKey)
        const parsedByThem = Mppx.Challenge.deserialize(Challenge.format(mine))
        expect(normalize(parsedByThem as any)).toEqual(JSON.parse(JSON.stringify(mine)))
        expect(Mppx.Challenge.verify(parsedByThem, { secretKey })).toBe(true)
      }),
      { numRuns: 300 },
    )
  })

  it('round-trips credentials in both directions', () => {
    const payload = fc.dictionary(key, requestValue, { maxKeys: 4 })
    fc.assert(
      fc.property(
        fields,
        payload,
        fc.option(
          text.filter((s) => s.length > 0),
          { nil: undefined },
        ),
        (f, p, source) => {
          const challenge = Binding.create(ours(f), secretKey)
          const credential: Credential.Credential = { challenge, payload: p as Record<string, unknown> }
          if (source !== undefined) credential.source = source
          const theirs = Mppx.Credential.deserialize(Credential.format(credential))
          expect(theirs.payload).toEqual(JSON.parse(JSON.stringify(p)))
          expect(theirs.challenge.id).toBe(challenge.id)
          expect(theirs.challenge.request).toEqual(JSON.parse(JSON.stringify(challenge.request)))
          if (source !== undefined) expect(theirs.source).toBe(source)
          const back = Credential.parse(Mppx.Credential.serialize(theirs))
          expect(back).toEqual(JSON.parse(JSON.stringify(credential)))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('round-trips receipts in both directions', () => {
    const receipt = fc.record(
      {
        method: token,
        reference: fc.string({ minLength: 1, maxLength: 66 }),
        timestamp: expires,
        externalId: fc.string({ maxLength: 20 }),
      },
      { requiredKeys: ['method', 'reference', 'timestamp'] },
    )
    fc.assert(
      fc.property(receipt, (r) => {
        const mine: Receipt.Receipt = { status: 'success', ...r }
        expect(Mppx.Receipt.deserialize(Receipt.format(mine))).toEqual(mine)
        expect(Receipt.parse(Mppx.Receipt.serialize(Mppx.Receipt.from({ status: 'success', ...r })))).toEqual(
          mine,
        )
      }),
      { numRuns: 300 },
    )
  })
})
