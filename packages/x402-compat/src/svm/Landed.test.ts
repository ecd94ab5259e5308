import { getAddressDecoder } from '@solana/kit'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { base58, payerOfMessage } from './Landed.js'

const key = (fill: number) => new Uint8Array(32).fill(fill)

describe('reading the payer of a transaction message', () => {
  it('base58 of 32 bytes is the address @solana/kit reads (leading zero bytes included)', () => {
    const decoder = getAddressDecoder()
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(32), (bytes, zeros) => {
        bytes.fill(0, 0, zeros)
        expect(base58(bytes)).toBe(decoder.decode(bytes))
      }),
    )
  })

  it('names the second signer when there are two (a sponsored fee payer first), else the first', () => {
    const legacy = (required: number, keys: Uint8Array[]) =>
      Uint8Array.from([required, 0, 1, keys.length, ...keys.flatMap((k) => [...k])])
    const [feePayer, payer] = [key(1), key(2)]
    expect(payerOfMessage(legacy(2, [feePayer, payer, key(3)]))).toBe(base58(payer))
    expect(payerOfMessage(legacy(1, [payer, key(3)]))).toBe(base58(payer))
    // A v0 message: the version prefix comes first.
    const v0 = Uint8Array.from([0x80, ...legacy(2, [feePayer, payer])])
    expect(payerOfMessage(v0)).toBe(base58(payer))
  })

  it('reads nothing from a truncated or empty message', () => {
    expect(payerOfMessage(new Uint8Array())).toBeUndefined()
    expect(payerOfMessage(Uint8Array.from([0, 0, 0, 1, ...key(1)]))).toBeUndefined()
    expect(payerOfMessage(Uint8Array.from([2, 0, 1, 2, ...key(1)]))).toBeUndefined()
    expect(payerOfMessage(Uint8Array.from([2, 0, 1, 1, ...key(1)]))).toBeUndefined()
  })
})
