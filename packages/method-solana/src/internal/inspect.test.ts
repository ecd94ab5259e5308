import { VerificationFailedError } from '@mppkit/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeTransaction } from './inspect.js'
import { mintFacts } from './mint.js'
import { programs } from './programs.js'

describe('decodeTransaction', () => {
  it('refuses oversize and garbage bytes with a typed problem', () => {
    expect(() => decodeTransaction(new Uint8Array(1233))).toThrowErrorMatchingInlineSnapshot(
      `[VerificationFailedError: The transaction exceeds the 1232-byte size limit.]`,
    )
    expect(() => decodeTransaction(new Uint8Array([1, 2, 3]))).toThrowErrorMatchingInlineSnapshot(
      `[VerificationFailedError: The transaction could not be decoded.]`,
    )
  })

  it('only ever throws VerificationFailedError on untrusted bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 1400 }), (bytes) => {
        try {
          decodeTransaction(bytes)
        } catch (error) {
          expect(error).toBeInstanceOf(VerificationFailedError)
        }
      }),
    )
  })
})

describe('mintFacts', () => {
  const mint = (extension?: { type: number; value: Uint8Array }) => {
    const base = new Uint8Array(extension ? 166 : 82)
    base[44] = 6 // decimals
    base[45] = 1 // initialized
    if (!extension) return base
    base[165] = 1 // account type: mint
    const tlv = new Uint8Array(4 + extension.value.length)
    new DataView(tlv.buffer).setUint16(0, extension.type, true)
    new DataView(tlv.buffer).setUint16(2, extension.value.length, true)
    tlv.set(extension.value, 4)
    const out = new Uint8Array(base.length + tlv.length)
    out.set(base)
    out.set(tlv, base.length)
    return out
  }
  it('reads decimals and the token program', () => {
    expect(mintFacts(programs.token, mint())).toEqual({ tokenProgram: programs.token, decimals: 6 })
  })
  it('refuses a Token-2022 mint with a non-zero transfer fee, accepts a zero one', () => {
    const fee = new Uint8Array(108)
    new DataView(fee.buffer).setUint16(106, 50, true)
    expect(() =>
      mintFacts(programs.token2022, mint({ type: 1, value: fee })),
    ).toThrowErrorMatchingInlineSnapshot(
      `[VerificationFailedError: The mint has a transfer fee; its transfers cannot be verified exactly.]`,
    )
    expect(mintFacts(programs.token2022, mint({ type: 1, value: new Uint8Array(108) })).decimals).toBe(6)
  })
  it('refuses non-transferable mints and accounts of other programs', () => {
    expect(() => mintFacts(programs.token2022, mint({ type: 9, value: new Uint8Array(0) }))).toThrow(
      /non-transferable/,
    )
    expect(() => mintFacts(programs.system, mint())).toThrow(/not a mint/)
  })
  it('only ever throws VerificationFailedError on untrusted account data (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (data) => {
        try {
          mintFacts(programs.token2022, data)
        } catch (error) {
          expect(error).toBeInstanceOf(VerificationFailedError)
        }
      }),
    )
  })
})
