import { createHash, randomBytes } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1'
import fc from 'fast-check'
// `invoices` is the BOLT 11 parser the `lightning` package itself uses: an independent reader.
import { parsePaymentRequest } from 'invoices'
import { describe, expect, it } from 'vitest'
import { DevnetError } from '../src/errors.js'
import { decodePaymentRequest, encodePaymentRequest } from '../src/lightning/bolt11.js'
import { checkMacaroon, macaroonOperations, mintMacaroon } from '../src/lightning/macaroons.js'

const privateKey = randomBytes(32)
const publicKey = Buffer.from(secp256k1.getPublicKey(privateKey, true)).toString('hex')
const base = () => ({
  currency: 'bcrt',
  timestamp: Math.floor(Date.now() / 1000),
  paymentHash: createHash('sha256').update(randomBytes(32)).digest(),
  paymentSecret: randomBytes(32),
  description: 'coffee ☕',
  descriptionHash: undefined,
  expirySeconds: 600,
  minFinalCltvExpiry: 80,
  features: [8, 14, 17],
})

describe('encodePaymentRequest', () => {
  it.each([1n, 1_234n, 10_000n, 250_000_000n, 100_000_000_000n, undefined])(
    'round-trips %s msat through the independent `invoices` parser',
    (amountMsat) => {
      const fields = { ...base(), amountMsat }
      const request = encodePaymentRequest(fields, privateKey)
      expect(request.startsWith('lnbcrt')).toBe(true)
      const parsed = parsePaymentRequest({ request })
      expect(parsed.network).toBe('regtest')
      expect(parsed.destination).toBe(publicKey)
      expect(parsed.id).toBe(fields.paymentHash.toString('hex'))
      expect(parsed.payment).toBe(fields.paymentSecret.toString('hex'))
      expect(parsed.mtokens).toBe(amountMsat === undefined ? '0' : String(amountMsat))
      expect(parsed.description).toBe('coffee ☕')
      expect(parsed.cltv_delta).toBe(80)
      expect(parsed.features.map((feature: { bit: number }) => feature.bit)).toEqual([8, 14, 17])
      const decoded = decodePaymentRequest(request)
      expect(decoded.payee.toString('hex')).toBe(publicKey)
      expect(decoded.amountMsat).toBe(amountMsat)
      expect(decoded.features).toEqual([8, 14, 17])
      expect(decoded.expirySeconds).toBe(600)
    },
  )
})

describe('decodePaymentRequest', () => {
  it('rejects a request whose checksum or signature was tampered with', () => {
    const request = encodePaymentRequest({ ...base(), amountMsat: 5_000n }, privateKey)
    const flipped = `${request.slice(0, 20)}${request[20] === 'q' ? 'p' : 'q'}${request.slice(21)}`
    expect(() => decodePaymentRequest(flipped)).toThrow(/checksum/)
  })
})

describe('decodePaymentRequest (fuzz)', () => {
  it('round-trips any amount, description and expiry, and agrees with `invoices`', () => {
    fc.assert(
      fc.property(
        fc.option(fc.bigInt({ min: 1n, max: 2_100_000_000_000_000_000n }), { nil: undefined }),
        fc.string({ maxLength: 200 }).filter((text) => Buffer.byteLength(text) <= 639),
        fc.integer({ min: 1, max: 31_536_000 }),
        (amountMsat, description, expirySeconds) => {
          const request = encodePaymentRequest(
            { ...base(), amountMsat, description, expirySeconds },
            privateKey,
          )
          const decoded = decodePaymentRequest(request)
          expect(decoded.amountMsat).toBe(amountMsat)
          expect(decoded.description).toBe(description)
          expect(decoded.expirySeconds).toBe(expirySeconds)
          expect(decoded.payee.toString('hex')).toBe(publicKey)
          const parsed = parsePaymentRequest({ request })
          expect(parsed.mtokens).toBe(amountMsat === undefined ? '0' : String(amountMsat))
          expect(parsed.description).toBe(description)
        },
      ),
      { numRuns: 60 },
    )
  })

  it('only ever fails with a DevnetError on arbitrary or mutated input', () => {
    const valid = encodePaymentRequest({ ...base(), amountMsat: 1_000n }, privateKey)
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.stringMatching(/^lnbcrt[0-9a-z]{0,300}$/),
          fc
            .tuple(fc.nat({ max: valid.length - 1 }), fc.constantFrom(...'qpzry9x8gf2tvdw0s3jn54khce6mua7l'))
            .map(([index, character]) => `${valid.slice(0, index)}${character}${valid.slice(index + 1)}`),
        ),
        (text) => {
          try {
            decodePaymentRequest(text)
          } catch (error) {
            expect(error).toBeInstanceOf(DevnetError)
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})

describe('checkMacaroon (fuzz)', () => {
  const rootKey = randomBytes(32)
  const required = { entity: 'info', action: 'read' }

  it('accepts the minted admin macaroon and answers every other input with an LND error text', () => {
    const admin = mintMacaroon({ rootKey, operations: macaroonOperations.admin }).toString('hex')
    expect(checkMacaroon({ rootKey, values: [admin], required })).toBeUndefined()
    // Binary v2 macaroon: version byte, then field type 1 (location), its length, then "lnd".
    const adminBytes = Buffer.from(admin, 'hex')
    expect(adminBytes.subarray(3, 6).toString()).toBe('lnd')
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string().map((value) => ({ value, index: -1 })),
          fc
            .uint8Array({ maxLength: 300 })
            .map((bytes) => ({ value: Buffer.from(bytes).toString('hex'), index: -1 })),
          fc
            .tuple(fc.nat({ max: adminBytes.length - 1 }), fc.integer({ min: 1, max: 255 }))
            .map(([index, flip]) => {
              const bytes = Buffer.from(adminBytes)
              bytes[index] = (bytes[index] ?? 0) ^ flip
              return { value: bytes.toString('hex'), index }
            }),
        ),
        ({ value, index }) => {
          const failure = checkMacaroon({ rootKey, values: [value], required })
          // The location is a hint outside the HMAC chain (as in every macaroon implementation);
          // any other change must be refused.
          if (index >= 3 && index < 6) return
          expect(typeof failure).toBe('string')
        },
      ),
      { numRuns: 300 },
    )
  })

  it('enforces a time-before caveat', () => {
    const soon = mintMacaroon({
      rootKey,
      operations: macaroonOperations.readonly,
      caveats: ['time-before 2030-01-01T00:00:00Z'],
    }).toString('hex')
    expect(
      checkMacaroon({ rootKey, values: [soon], required, now: new Date('2029-12-31T00:00:00Z') }),
    ).toBeUndefined()
    expect(
      checkMacaroon({ rootKey, values: [soon], required, now: new Date('2030-01-02T00:00:00Z') }),
    ).toMatch(/expired/)
  })
})
