import { VerificationFailedError } from '@mppkit/core'
import { generateKeyPairSigner } from '@solana/kit'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { SolanaChargeRequest } from '../Methods.js'
import { associatedTokenAddress, decodeBase64, decodeTransaction, expectedLegs } from './inspect.js'
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

describe('decodeTransaction (canonical encoding)', () => {
  const signedTransfer = async () => {
    const kit = await import('@solana/kit')
    const { getTransferSolInstruction } = await import('@solana-program/system')
    const payer = await kit.generateKeyPairSigner()
    const message = kit.pipe(
      kit.createTransactionMessage({ version: 0 }),
      (m) => kit.setTransactionMessageFeePayerSigner(payer, m),
      (m) =>
        kit.setTransactionMessageLifetimeUsingBlockhash(
          { blockhash: '11111111111111111111111111111111' as never, lastValidBlockHeight: 0n },
          m,
        ),
      (m) =>
        kit.appendTransactionMessageInstructions(
          [getTransferSolInstruction({ source: payer, destination: payer.address, amount: 5n })],
          m,
        ),
    )
    const signed = await kit.signTransactionMessageWithSigners(message)
    return { payer, bytes: new Uint8Array(kit.getTransactionEncoder().encode(signed)) }
  }

  it('reads what @solana/kit writes: accounts, instructions, signatures', async () => {
    const { payer, bytes } = await signedTransfer()
    const decoded = decodeTransaction(bytes)
    expect(decoded.accounts[0]).toBe(payer.address)
    expect(decoded.signatures[0]?.[0]).toBe(payer.address)
    expect(decoded.signatures[0]?.[1]).toMatch(/^[1-9A-HJ-NP-Za-km-z]{64,88}$/)
    expect(decoded.instructions).toHaveLength(1)
    expect(decoded.instructions[0]?.program).toBe(programs.system)
  })

  it('refuses trailing bytes and a non-minimal length (one transaction, one encoding)', async () => {
    const { bytes } = await signedTransfer()
    expect(() => decodeTransaction(Uint8Array.from([...bytes, 0]))).toThrow(/could not be decoded/)
    // The signature count 1 written as two bytes (0x81 0x00) instead of one.
    expect(() => decodeTransaction(Uint8Array.from([0x81, 0x00, ...bytes.subarray(1)]))).toThrow(
      /could not be decoded/,
    )
  })
})

describe('decodeBase64', () => {
  // The check the server made before (re-encode, compare without trailing '='), as the reference.
  const reference = (value: string) => {
    const bytes = new Uint8Array(Buffer.from(value, 'base64'))
    return Buffer.from(bytes).toString('base64').replace(/=+$/, '') === value.replace(/=+$/, '')
      ? bytes
      : undefined
  }
  const outcome = (value: string) => {
    try {
      return decodeBase64(value)
    } catch (error) {
      expect(error).toBeInstanceOf(VerificationFailedError)
      return undefined
    }
  }

  it('accepts and refuses exactly what the re-encoding comparison did (property)', () => {
    const canonical = fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes).toString('base64'))
    const padding = fc.constantFrom('', '=', '==', '===')
    const mangled = fc
      .tuple(canonical, fc.nat(), fc.constantFrom(...'AQgw+/=Z9'), padding)
      .map(([text, at, char, pad]) => {
        const stripped = text.replace(/=+$/, '')
        const index = stripped.length === 0 ? 0 : at % stripped.length
        return `${stripped.slice(0, index)}${char}${stripped.slice(index + 1)}${pad}`
      })
    const repadded = fc.tuple(canonical, padding).map(([text, pad]) => text.replace(/=+$/, '') + pad)
    fc.assert(
      fc.property(fc.oneof(canonical, repadded, mangled), (value) => {
        expect(outcome(value)).toEqual(reference(value))
      }),
      { numRuns: 3000 },
    )
  })

  it('refuses a last digit with stray low bits', () => {
    expect(() => decodeBase64('QR==')).toThrowErrorMatchingInlineSnapshot(
      `[VerificationFailedError: The transaction is not canonical base64.]`,
    )
    expect(decodeBase64('QQ')).toEqual(new Uint8Array([65]))
  })
})

describe('expectedLegs', () => {
  it('gives the same legs with and without a promise once the ATAs were derived', async () => {
    // Fresh keys: nothing about them is remembered yet.
    const [mint, recipient, split] = await Promise.all(
      [0, 1, 2].map(async () => String((await generateKeyPairSigner()).address)),
    )
    const request = {
      amount: '1000',
      currency: mint!,
      recipient: recipient!,
      methodDetails: { decimals: 6, splits: [{ recipient: split!, amount: '100' }] },
    } as SolanaChargeRequest
    const first = expectedLegs(request, programs.token)
    expect(first).toBeInstanceOf(Promise)
    const derived = await first
    const again = expectedLegs(request, programs.token)
    expect(Array.isArray(again)).toBe(true)
    expect(again).toEqual(derived)
    expect(derived.map((leg) => [leg.amount, leg.destination])).toEqual([
      [900n, await associatedTokenAddress(recipient!, mint!, programs.token)],
      [100n, await associatedTokenAddress(split!, mint!, programs.token)],
    ])
  })
})
