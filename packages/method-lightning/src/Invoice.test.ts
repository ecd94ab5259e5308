import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodePaymentRequest } from '../../devnet/src/lightning/bolt11.js'
import * as Invoice from './Invoice.js'

// Invoices encoded by the devnet's independent BOLT 11 encoder (test-only import), signed with a random key.
const key = randomBytes(32)
const encode = (fields: {
  currency?: string
  amountMsat?: bigint
  expirySeconds?: number
  description?: string
}) =>
  encodePaymentRequest(
    {
      currency: fields.currency ?? 'bcrt',
      amountMsat: fields.amountMsat,
      timestamp: 1_800_000_000,
      paymentHash: Buffer.alloc(32, 0xab),
      paymentSecret: Buffer.alloc(32, 0xcd),
      description: fields.description ?? 'coffee',
      descriptionHash: undefined,
      expirySeconds: fields.expirySeconds ?? 600,
      minFinalCltvExpiry: 80,
      features: [8, 14, 17],
    },
    key,
  )

describe('decode', () => {
  it('reads the hash, network, amount, times and memo', () => {
    expect(Invoice.decode(encode({ amountMsat: 250_000n }))).toMatchInlineSnapshot(`
      {
        "amountMsat": 250000n,
        "createdAt": 1800000000000,
        "description": "coffee",
        "expiresAt": 1800000600000,
        "network": "regtest",
        "paymentHash": "abababababababababababababababababababababababababababababababab",
      }
    `)
  })

  it('names the network of each prefix and reads amountless invoices', () => {
    expect(
      ['bc', 'bcrt', 'tbs', 'tb'].map((currency) => Invoice.decode(encode({ currency })).network),
    ).toEqual(['mainnet', 'regtest', 'signet', 'testnet'])
    expect(Invoice.decode(encode({})).amountMsat).toBeUndefined()
  })

  it('throws a ParseError without echoing the input', () => {
    const secret = 'a'.repeat(64)
    expect(() => Invoice.decode(`lnbcrt1${secret}`)).toThrowErrorMatchingInlineSnapshot(
      `[ParseError: not a BOLT11 invoice]`,
    )
    expect(() => Invoice.decode('lnxy1qqqq')).toThrowErrorMatchingInlineSnapshot(
      `[ParseError: not a BOLT11 invoice of a known network]`,
    )
    expect(() => Invoice.decode(42 as never)).toThrowErrorMatchingInlineSnapshot(
      `[ParseError: not a BOLT11 invoice]`,
    )
  })

  it('fails with a ParseError (or decodes) on any string, never another error', () => {
    const valid = encode({ amountMsat: 1_000n })
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc
            .string({ unit: fc.constantFrom(...'qpzry9x8gf2tvdw0s3jn54khce6mua7l1'.split('')) })
            .map((s) => `lnbcrt${s}`),
          fc
            .tuple(fc.nat(valid.length - 1), fc.string({ minLength: 1, maxLength: 3 }))
            .map(([at, s]) => valid.slice(0, at) + s + valid.slice(at + s.length)),
        ),
        (text) => {
          try {
            const decoded = Invoice.decode(text)
            expect(decoded.paymentHash).toMatch(/^[0-9a-f]{64}$/)
          } catch (error) {
            expect((error as Error).name).toBe('ParseError')
            // A fixed message: the input is never echoed.
            expect([
              'not a BOLT11 invoice',
              'not a BOLT11 invoice of a known network',
              'the BOLT11 invoice has no payment hash or timestamp',
              'the BOLT11 amount is invalid',
            ]).toContain((error as Error).message)
          }
        },
      ),
    )
  })

  it('round-trips any amount and expiry the encoder writes', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 2_100_000_000_000_000_000n }),
        fc.integer({ min: 1, max: 1_000_000 }),
        (amountMsat, expirySeconds) => {
          const decoded = Invoice.decode(encode({ amountMsat, expirySeconds }))
          expect(decoded.amountMsat).toBe(amountMsat)
          expect(decoded.expiresAt - decoded.createdAt).toBe(expirySeconds * 1000)
        },
      ),
      { numRuns: 50 },
    )
  })
})

describe('tryDecode', () => {
  it('is undefined for what decode refuses', () => {
    expect(Invoice.tryDecode('lnbc')).toBeUndefined()
    expect(Invoice.tryDecode(undefined)).toBeUndefined()
    expect(Invoice.tryDecode(encode({}))?.network).toBe('regtest')
  })
})
