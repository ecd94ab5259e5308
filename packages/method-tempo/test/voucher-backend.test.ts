// The voucher verifier's two ECDSA engines (native libsecp256k1, pure-JS noble) and its hashing:
// how the engine is chosen, that both give the same answer as an independent reference (viem) on
// valid, mutated and malleable signatures, and that the fast Keccak equals @noble/hashes.
import { ParseError } from '@mppkit/core'
import { keccak_256 } from '@noble/hashes/sha3'
import fc from 'fast-check'
import { type Address, bytesToHex, type Hex, hashTypedData, recoverTypedDataAddress } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Voucher } from '../src/index.js'
import { keccak256 } from '../src/internal/keccak.js'
import { defaultBackend, loadBinding, nativeBinding } from '../src/internal/secp256k1.js'
import { backends } from './voucher-backends.js'

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const hex = (bytes: number) =>
  fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => bytesToHex(b) as Hex)

describe('keccak256', () => {
  it('equals @noble/hashes on any input, across block boundaries', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 420 }), (input) => {
        expect(bytesToHex(keccak256(input))).toBe(bytesToHex(keccak_256(input)))
      }),
      { numRuns: 500 },
    )
    for (const length of [0, 1, 135, 136, 137, 271, 272, 273])
      expect(bytesToHex(keccak256(new Uint8Array(length).fill(length)))).toBe(
        bytesToHex(keccak_256(new Uint8Array(length).fill(length))),
      )
  })
})

describe('Voucher.verifierBackend', () => {
  afterEach(() => {
    vi.unstubAllEnvs()
  })

  it('is libsecp256k1 when the binding loads, noble when MPPKIT_SECP256K1=js or noble', () => {
    const native = nativeBinding() !== undefined
    expect(defaultBackend({})).toBe(native ? 'libsecp256k1' : 'noble')
    expect(defaultBackend({ MPPKIT_SECP256K1: 'js' })).toBe('noble')
    expect(defaultBackend({ MPPKIT_SECP256K1: 'NOBLE' })).toBe('noble')
    vi.stubEnv('MPPKIT_SECP256K1', 'js')
    expect(Voucher.verifierBackend()).toBe('noble')
    expect(Voucher.createVerifier().backend).toBe('noble')
    vi.stubEnv('MPPKIT_SECP256K1', '')
    expect(Voucher.verifierBackend()).toBe(native ? 'libsecp256k1' : 'noble')
    expect(Voucher.createVerifier().backend).toBe(native ? 'libsecp256k1' : 'noble')
    if (process.platform === 'linux' && process.arch === 'x64')
      expect(native, 'secp256k1 ships a linux-x64 prebuild').toBe(true)
  })

  it('falls back when the binding cannot load, lacks the API or disagrees with noble', () => {
    expect(
      loadBinding(() => {
        throw new Error('Cannot find module')
      }),
    ).toBeUndefined()
    expect(loadBinding(() => undefined)).toBeUndefined()
    expect(loadBinding(() => ({ ecdsaRecover: 1 }))).toBeUndefined()
    // A binding that recovers some other key is never trusted.
    expect(loadBinding(() => ({ ecdsaRecover: () => new Uint8Array(65).fill(4) }))).toBeUndefined()
    if (nativeBinding()) expect(loadBinding()).toBeDefined()
  })
})

describe.each(backends)('Voucher.createVerifier on %s', (backend) => {
  const escrow = '0x00000000000000000000000000000000000e5c40' as Address

  it('agrees with viem (EIP-712 recovery, low-s only) on signed, re-encoded and mutated vouchers', async () => {
    const verifier = Voucher.createVerifier({ backend, maxSigners: 4 })
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom('11', '22', '33', '44', '55', '66')
          .map((b) => privateKeyToAccount(`0x${b.repeat(32)}`)),
        fc.constantFrom<Voucher.Protocol>('v1', 'v2'),
        hex(32),
        fc.bigInt({ min: 0n, max: (1n << 96n) - 2n }),
        fc.constantFrom('as-signed', 'compact', 'v-0-1', 'high-s', 'flip-v', 'other-amount'),
        async (account, protocol, channelId, amount, form) => {
          const parameters = { chainId: 4217, escrow, channelId, cumulativeAmount: amount, protocol }
          const signed = await Voucher.sign(account, parameters)
          const r = BigInt(signed.slice(0, 66))
          const s = BigInt(`0x${signed.slice(66, 130)}`)
          const parity = Number.parseInt(signed.slice(130), 16) - 27
          const word = (n: bigint) => n.toString(16).padStart(64, '0')
          const encoded: Record<string, Hex> = {
            'as-signed': signed,
            compact: `0x${word(r)}${word((BigInt(parity) << 255n) | s)}`,
            'v-0-1': `0x${word(r)}${word(s)}0${parity}`,
            'high-s': `0x${word(r)}${word(N - s)}${(28 - parity).toString(16)}`,
            'flip-v': `0x${word(r)}${word(s)}${(28 - parity).toString(16)}`,
            'other-amount': signed,
          }
          const signature = encoded[form]!
          const cumulativeAmount = form === 'other-amount' ? amount + 1n : amount
          const result = verifier.verify({
            chainId: 4217,
            escrow,
            voucher: { channelId, cumulativeAmount, signature },
            signer: account.address,
            protocol,
          })
          // The reference: viem's recovery of the typed data, and the spec's low-s rule.
          const recovered = await recoverTypedDataAddress({
            ...(Voucher.typedData({ ...parameters, cumulativeAmount }) as object),
            signature: form === 'compact' ? `0x${word(r)}${word(s)}${(27 + parity).toString(16)}` : signature,
          } as never)
          // "65-byte `(r, s, v)` format where `v` is 27 or 28": v 0/1 recovers the same key off chain,
          // but the escrow's ecrecover refuses it, so it is refused as malformed before any recovery.
          const expected =
            form === 'v-0-1'
              ? 'malformed-signature'
              : form === 'high-s'
                ? 'high-s'
                : recovered === account.address
                  ? undefined
                  : 'signer-mismatch'
          expect(result).toBe(expected)
          expect(['as-signed', 'compact'].includes(form)).toBe(result === undefined)
        },
      ),
      { numRuns: 60 },
    )
    expect(verifier.cachedSigners).toBeLessThanOrEqual(4)
  })

  it('refuses r or s of zero or ≥ n, v outside 27/28, and a channel id that is not 32 bytes', async () => {
    const account = privateKeyToAccount(`0x${'77'.repeat(32)}`)
    const channelId = `0x${'ab'.repeat(32)}` as Hex
    const signature = await Voucher.sign(account, { chainId: 1, escrow, channelId, cumulativeAmount: 9n })
    const verifier = Voucher.createVerifier({ backend })
    const check = (sig: string, id: string = channelId) =>
      verifier.verify({
        chainId: 1,
        escrow,
        voucher: { channelId: id as Hex, cumulativeAmount: 9n, signature: sig as Hex },
        signer: account.address,
      })
    const [r, s, v] = [signature.slice(2, 66), signature.slice(66, 130), signature.slice(130)]
    expect(check(signature)).toBeUndefined()
    expect(check(signature.toUpperCase().replace('0X', '0x'))).toBeUndefined()
    expect(check(`0x${'00'.repeat(32)}${s}${v}`)).toBe('malformed-signature')
    expect(check(`0x${r}${'00'.repeat(32)}${v}`)).toBe('malformed-signature')
    expect(check(`0x${N.toString(16)}${s}${v}`)).toBe('malformed-signature')
    expect(check(`0x${r}${(N + 1n).toString(16)}${v}`)).toBe('malformed-signature')
    for (const bad of ['00', '01', '02', '1d', 'ff', 'g1'])
      expect(check(`0x${r}${s}${bad}`)).toBe('malformed-signature')
    expect(
      Voucher.parseSignature(`0x${r}${s}${(Number.parseInt(v, 16) - 27).toString(16).padStart(2, '0')}`),
    ).toBeUndefined()
    expect(check(`${signature}00`)).toBe('malformed-signature')
    expect(check(` ${signature.slice(1)}`)).toBe('malformed-signature')
    expect(check(signature, `0x${'ab'.repeat(31)}`)).toBe('malformed-voucher')
    expect(check(signature, `0x${'zz'.repeat(32)}`)).toBe('malformed-voucher')
    expect(() =>
      Voucher.digest({ chainId: 1, escrow, channelId: '0x12', cumulativeAmount: 1n }),
    ).toThrowErrorMatchingInlineSnapshot(`[ParseError: Voucher: the channel id is not 32 bytes of hex.]`)
    expect(() =>
      Voucher.digest({ chainId: 1, escrow, channelId, cumulativeAmount: 1n << 96n, protocol: 'v2' }),
    ).toThrow(ParseError)
  })
})

describe('Voucher.digest', () => {
  it('is the EIP-712 hash viem computes, for any chain, escrow, channel and in-range amount', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        hex(20),
        hex(32),
        fc.constantFrom<Voucher.Protocol>('v1', 'v2'),
        fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }),
        (chainId, escrow, channelId, protocol, raw) => {
          const cumulativeAmount = protocol === 'v2' ? raw >> 32n : raw
          const parameters = { chainId, escrow, channelId, cumulativeAmount, protocol }
          expect(bytesToHex(Voucher.digest(parameters))).toBe(
            hashTypedData(Voucher.typedData(parameters) as never),
          )
        },
      ),
      { numRuns: 300 },
    )
  })
})
