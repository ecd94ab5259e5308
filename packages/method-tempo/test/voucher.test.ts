import { VerificationFailedError } from '@mppkit/core'
import { bytesToHex, encodeAbiParameters, type Hex, hashTypedData, keccak256, zeroAddress } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { Channel, Voucher } from '../src/index.js'
import { backends } from './voucher-backends.js'

const escrow: Hex = '0x1234567890abcdef1234567890abcdef12345678'
const channelId = `0x${'6d'.repeat(32)}` as Hex
const account = privateKeyToAccount(generatePrivateKey())
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

describe.each(backends)('Voucher on %s', (backend) => {
  for (const protocol of ['v1', 'v2'] as const) {
    it(`${protocol}: digest equals viem's EIP-712 hash and signatures verify (recovery, then cached key)`, async () => {
      const parameters = { chainId: 4217, escrow, channelId, cumulativeAmount: 250_000n, protocol } as const
      expect(bytesToHex(Voucher.digest(parameters))).toBe(
        hashTypedData(Voucher.typedData(parameters) as never),
      )
      const verifier = Voucher.createVerifier({ backend })
      for (const amount of [250_000n, 250_001n, 9_999_999n]) {
        const signature = await Voucher.sign(account, { ...parameters, cumulativeAmount: amount })
        const voucher = { channelId, cumulativeAmount: amount, signature }
        expect(
          verifier.verify({ chainId: 4217, escrow, voucher, signer: account.address, protocol }),
        ).toBeUndefined()
        // Tampered amount, other signer, other escrow, other protocol: all refused.
        expect(
          verifier.verify({
            chainId: 4217,
            escrow,
            voucher: { ...voucher, cumulativeAmount: amount + 1n },
            signer: account.address,
            protocol,
          }),
        ).toBe('signer-mismatch')
        expect(
          verifier.verify({
            chainId: 4217,
            escrow,
            voucher,
            signer: privateKeyToAccount(generatePrivateKey()).address,
            protocol,
          }),
        ).toBe('signer-mismatch')
        expect(
          verifier.verify({ chainId: 4217, escrow: zeroAddress, voucher, signer: account.address, protocol }),
        ).toBe('signer-mismatch')
        expect(
          verifier.verify({
            chainId: 4217,
            escrow,
            voucher,
            signer: account.address,
            protocol: protocol === 'v1' ? 'v2' : 'v1',
          }),
        ).toBe('signer-mismatch')
      }
    })
  }

  it('rejects high-s signatures, accepts EIP-2098 compact ones, bounds v2 amounts to uint96', async () => {
    const parameters = { chainId: 1, escrow, channelId, cumulativeAmount: 5n }
    const signature = await Voucher.sign(account, parameters)
    const parsed = Voucher.parseSignature(signature)!
    const verifier = Voucher.createVerifier({ backend })
    const highS =
      `0x${parsed.r.toString(16).padStart(64, '0')}${(N - parsed.s).toString(16).padStart(64, '0')}${(1 - parsed.yParity + 27).toString(16)}` as Hex
    expect(
      verifier.verify({
        ...parameters,
        voucher: { channelId, cumulativeAmount: 5n, signature: highS },
        signer: account.address,
      }),
    ).toBe('high-s')
    const compact =
      `0x${parsed.r.toString(16).padStart(64, '0')}${((BigInt(parsed.yParity) << 255n) | parsed.s).toString(16).padStart(64, '0')}` as Hex
    expect(
      verifier.verify({
        ...parameters,
        voucher: { channelId, cumulativeAmount: 5n, signature: compact },
        signer: account.address,
      }),
    ).toBeUndefined()
    expect(
      verifier.verify({
        ...parameters,
        voucher: { channelId, cumulativeAmount: 5n, signature: '0x1234' },
        signer: account.address,
      }),
    ).toBe('malformed-signature')
    expect(
      verifier.verify({
        ...parameters,
        protocol: 'v2',
        voucher: { channelId, cumulativeAmount: 1n << 96n, signature },
        signer: account.address,
      }),
    ).toBe('amount-out-of-range')
  })

  it('remembers the last valid voucher per channel: the same voucher again is valid, nothing else is', async () => {
    const verifier = Voucher.createVerifier({ maxChannels: 2, backend })
    const signer = privateKeyToAccount(generatePrivateKey())
    const other = privateKeyToAccount(generatePrivateKey())
    const channels = [1, 2, 3].map((i) => `0x${String(i).repeat(64)}` as Hex)
    const voucherOn = async (id: Hex, amount: bigint) => ({
      channelId: id,
      cumulativeAmount: amount,
      signature: await Voucher.sign(signer, {
        chainId: 4217,
        escrow,
        channelId: id,
        cumulativeAmount: amount,
      }),
    })
    const check = (voucher: Voucher.Voucher, expected = signer.address, chainId = 4217) =>
      verifier.verify({ chainId, escrow, voucher, signer: expected })
    const voucher = await voucherOn(channels[0]!, 7n)
    expect(check(voucher)).toBeUndefined()
    expect(verifier.cachedVouchers).toBe(1)
    // Resent as is: valid (a session client's pre-authorized voucher, an idempotent resubmission).
    expect(check(voucher)).toBeUndefined()
    // Anything that differs goes through the full check and fails as it always did.
    expect(check(voucher, other.address)).toBe('signer-mismatch')
    expect(check({ ...voucher, cumulativeAmount: 8n })).toBe('signer-mismatch')
    expect(check(voucher, signer.address, 1)).toBe('signer-mismatch')
    expect(check({ ...voucher, channelId: channels[1]! })).toBe('signer-mismatch')
    const v = Number.parseInt(voucher.signature.slice(-2), 16)
    const flipped = `${voucher.signature.slice(0, -2)}${(v === 27 ? 28 : 27).toString(16)}` as Hex
    expect(check({ ...voucher, signature: flipped })).toBe('signer-mismatch')
    // A failed check does not replace the remembered voucher, and the bound holds (LRU by channel).
    expect(check(voucher)).toBeUndefined()
    for (const id of channels) expect(check(await voucherOn(id, 9n))).toBeUndefined()
    expect(verifier.cachedVouchers).toBe(2)
    // The evicted channel's voucher is recovered again, still valid.
    expect(check(await voucherOn(channels[0]!, 9n))).toBeUndefined()
  })

  it('bounds the signer-key cache (LRU) and still verifies signers it pushed out', async () => {
    const verifier = Voucher.createVerifier({ maxSigners: 2, backend })
    const parameters = { chainId: 4217, escrow, channelId }
    const signers = [0, 1, 2].map(() => privateKeyToAccount(generatePrivateKey()))
    const voucherOf = async (signer: (typeof signers)[number], amount: bigint) => ({
      channelId,
      cumulativeAmount: amount,
      signature: await Voucher.sign(signer, { ...parameters, cumulativeAmount: amount }),
    })
    const check = async (signer: (typeof signers)[number], amount: bigint) =>
      verifier.verify({ ...parameters, voucher: await voucherOf(signer, amount), signer: signer.address })
    expect(await check(signers[0]!, 1n)).toBeUndefined()
    expect(await check(signers[1]!, 1n)).toBeUndefined()
    expect(await check(signers[0]!, 2n)).toBeUndefined() // signer 0 is now the most recent
    expect(await check(signers[2]!, 1n)).toBeUndefined() // evicts signer 1
    expect(verifier.cachedSigners).toBe(2)
    // Evicted or not, valid vouchers verify and forged ones do not.
    for (const signer of signers) {
      expect(await check(signer, 3n)).toBeUndefined()
      const forged = { ...(await voucherOf(signer, 4n)), cumulativeAmount: 5n }
      expect(verifier.verify({ ...parameters, voucher: forged, signer: signer.address })).toBe(
        'signer-mismatch',
      )
    }
    expect(verifier.cachedSigners).toBe(2)
    // On the cached (table) path: the wrong recovery bit and a random signer's valid voucher are refused,
    // and many amounts verify.
    for (let amount = 10n; amount < 40n; amount++) {
      const voucher = await voucherOf(signers[2]!, amount)
      expect(verifier.verify({ ...parameters, voucher, signer: signers[2]!.address })).toBeUndefined()
      const v = Number.parseInt(voucher.signature.slice(-2), 16)
      const flipped = `${voucher.signature.slice(0, -2)}${(v === 27 ? 28 : 27).toString(16)}` as Hex
      expect(
        verifier.verify({
          ...parameters,
          voucher: { ...voucher, signature: flipped },
          signer: signers[2]!.address,
        }),
      ).toBe('signer-mismatch')
      expect(
        verifier.verify({
          ...parameters,
          voucher: await voucherOf(signers[1]!, amount),
          signer: signers[2]!.address,
        }),
      ).toBe('signer-mismatch')
    }
    const uncached = Voucher.createVerifier({ maxSigners: 0, backend })
    expect(
      uncached.verify({
        ...parameters,
        voucher: await voucherOf(signers[0]!, 9n),
        signer: signers[0]!.address,
      }),
    ).toBeUndefined()
    expect(uncached.cachedSigners).toBe(0)
  })
})

describe('Channel', () => {
  const descriptor = {
    payer: '0x1111111111111111111111111111111111111111',
    payee: '0x742d35cc6634c0532925a3b844bc9e7595f8fe00',
    operator: zeroAddress,
    token: '0x20c0000000000000000000000000000000000000',
    salt: `0x${'aa'.repeat(32)}`,
    authorizedSigner: zeroAddress,
    expiringNonceHash: `0x${'bb'.repeat(32)}`,
  }
  const context = { escrow, chainId: 4217 } as const

  it('computes the v2 channel id from the descriptor as the spec writes it', () => {
    const expected = keccak256(
      encodeAbiParameters(
        [
          'address',
          'address',
          'address',
          'address',
          'bytes32',
          'address',
          'bytes32',
          'address',
          'uint256',
        ].map((type) => ({ type })),
        [
          descriptor.payer,
          descriptor.payee,
          descriptor.operator,
          descriptor.token,
          descriptor.salt,
          descriptor.authorizedSigner,
          descriptor.expiringNonceHash,
          escrow,
          4217n,
        ],
      ),
    )
    expect(Channel.computeIdV2(descriptor, context)).toBe(expected)
    expect(
      Channel.computeId({
        payer: descriptor.payer as Hex,
        payee: descriptor.payee as Hex,
        token: descriptor.token as Hex,
        salt: descriptor.salt as Hex,
        authorizedSigner: zeroAddress,
        escrow,
        chainId: 4217,
      }),
    ).not.toBe(expected)
  })

  it('checks a v2 descriptor: id, payee, token, operator, signer and uint96 amounts', () => {
    const channelId = Channel.computeIdV2(descriptor, context)
    const base = {
      descriptor,
      channelId,
      recipient: descriptor.payee,
      currency: descriptor.token,
      ...context,
    } as const
    expect(() => Channel.assertDescriptorV2(base as never)).not.toThrow()
    const reasonOf = (overrides: Record<string, unknown>) => {
      try {
        Channel.assertDescriptorV2({ ...base, ...overrides } as never)
        return undefined
      } catch (error) {
        expect(error).toBeInstanceOf(VerificationFailedError)
        return (error as VerificationFailedError).reason
      }
    }
    expect(reasonOf({ descriptor: undefined })).toBe('descriptor-missing')
    expect(reasonOf({ channelId: `0x${'00'.repeat(32)}` })).toBe('channel-id-mismatch')
    expect(reasonOf({ chainId: 1 })).toBe('channel-id-mismatch')
    expect(reasonOf({ recipient: zeroAddress.replace(/0$/, '1') })).toBe('payee-mismatch')
    expect(reasonOf({ currency: descriptor.payer })).toBe('token-mismatch')
    expect(reasonOf({ operator: descriptor.payer })).toBe('operator-mismatch')
    expect(reasonOf({ authorizedSigner: descriptor.payer })).toBe('signer-mismatch')
    expect(reasonOf({ amounts: [Channel.maxV2Amount] })).toBeUndefined()
    expect(reasonOf({ amounts: [Channel.maxV2Amount + 1n] })).toBe('amount-out-of-range')
  })
})
