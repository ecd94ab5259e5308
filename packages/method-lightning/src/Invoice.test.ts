import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Invoice from './Invoice.js'

// Invoices written by the devnet's independent BOLT 11 encoder (packages/devnet/src/lightning/bolt11.ts)
// with a fixed key: payment hash ab…ab, secret cd…cd, memo "coffee", timestamp 1 800 000 000, expiry 600 s.
const fixtures = {
  regtest:
    'lnbcrt2500n1p45n5sqpp54w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w4ssp5ehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxsdq2vdhkven9v5xqzjccqzzs9qyysgq4drzz4c9r0r0vp0yf8f3ddfu7cvers2k5zawsznl5tdh4gzmf49hgec4nhk3auhvqe26egylxfnv85smm2md205g6cs60sjh4qq098gpz4hf2j',
  mainnet:
    'lnbc10n1p45n5sqpp54w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w4ssp5ehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxsdq2vdhkven9v5xqzjccqzzs9qyysgqfndxcjqpe3xfq7g0gvv4x6j6zm28ecgf3haftavd3jzu4q4wng5szlgt52watugj7uld3sccaffdkvhpddrr9rl59nf69m9dm4f24egq94n6f7',
  signet:
    'lntbs10n1p45n5sqpp54w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w4ssp5ehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxsdq2vdhkven9v5xqzjccqzzs9qyysgq96acysw4dyfvs9jcxzrmxe6p5ap2umt3v8qtuqj59tf79mgjznj8kzvjt0yhjaw5m493gdpwg230hpxn4xnxs5y30j53njy6p30glfsqqh0s06',
  testnet:
    'lntb10n1p45n5sqpp54w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w4ssp5ehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxsdq2vdhkven9v5xqzjccqzzs9qyysgqxv0u7lmslafkx253nlzp0wekegz2rc0lmhxj63dcegcjjhvgl95jj3044lwx95lysvh7v2kre6u6yjx5hjfgc7dzznl6mlr0gwudwqgqyt895w',
  amountless:
    'lnbcrt1p45n5sqpp54w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w4ssp5ehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxsdq2vdhkven9v5xqzjccqzzs9qyysgqjpyygp2ufga0n7erq7qf4dr3yfaca28znpfkcj92xrzzhu7kydhnlfpsf4gp9ly0xqclrgcljrrtfcdk3c6d6hlcckdw67vtcfh2twcptac9ed',
} as const

describe('decode', () => {
  it('reads the hash, network, amount, times and memo', () => {
    expect(Invoice.decode(fixtures.regtest)).toMatchInlineSnapshot(`
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
      (['mainnet', 'regtest', 'signet', 'testnet'] as const).map(
        (name) => Invoice.decode(fixtures[name]).network,
      ),
    ).toEqual(['mainnet', 'regtest', 'signet', 'testnet'])
    expect(Invoice.decode(fixtures.amountless).amountMsat).toBeUndefined()
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
    const valid = fixtures.regtest
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

  it('accepts upper case, as bech32 allows', () => {
    expect(Invoice.decode(fixtures.mainnet.toUpperCase()).amountMsat).toBe(1_000n)
  })
})

describe('tryDecode', () => {
  it('is undefined for what decode refuses', () => {
    expect(Invoice.tryDecode('lnbc')).toBeUndefined()
    expect(Invoice.tryDecode(undefined)).toBeUndefined()
    expect(Invoice.tryDecode(fixtures.amountless)?.network).toBe('regtest')
  })
})
