// Property tests (fast-check) for every parser of untrusted input in method-tempo: whatever bytes a
// client sends, a parser returns its documented failure value or throws a typed @mppkit/core error,
// never a bare Error/TypeError/viem error (which the core server would turn into a 503 and a report).
import { BaseError, VerificationFailedError } from '@mppkit/core'
import fc from 'fast-check'
import { type Address, type Hex, keccak256, stringToBytes } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { Transaction } from 'viem/tempo'
import { describe, expect, it } from 'vitest'
import {
  Attribution,
  Channel,
  ChannelDescriptor,
  Proof,
  TempoChargePayload,
  TempoChargeRequest,
  TempoSessionPayload,
  TempoSessionRequest,
  Voucher,
} from '../src/index.js'
import { callEffects, logEffects } from '../src/internal/transfers.js'
import { internal } from '../src/server/Charge.js'
import { backends } from './voucher-backends.js'

const numRuns = 300

/** Runs `fn`; passes when it returns, or throws an mppkit typed error. Returns the thrown error, if any. */
function typedOrValue<T>(fn: () => T): { value?: T; error?: unknown } {
  try {
    return { value: fn() }
  } catch (error) {
    if (!BaseError.is(error)) throw error
    return { error }
  }
}

const hexOf = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((b) => `0x${Buffer.from(b).toString('hex')}` as Hex)
// A 40-hex address in random letter case: the schemas' regex accepts it whether or not the EIP-55
// checksum holds, so consumers must too.
const anyCaseHex = (bytes: number) =>
  fc
    .tuple(
      fc.uint8Array({ minLength: bytes, maxLength: bytes }),
      fc.array(fc.boolean(), { minLength: bytes * 2, maxLength: bytes * 2 }),
    )
    .map(
      ([b, upper]) =>
        `0x${[...Buffer.from(b).toString('hex')].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('')}` as Hex,
    )
const address = anyCaseHex(20) as fc.Arbitrary<Address>
const bytes32 = anyCaseHex(32)
// Strings that look almost right: hex-ish alphabets and lengths near the valid ones.
const hexish = fc.oneof(
  fc.string(),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEFxX '.split('')), maxLength: 140 }),
  fc
    .string({ unit: fc.constantFrom(...'0123456789abcdefABCDEFg'.split('')), minLength: 60, maxLength: 134 })
    .map((s) => `0x${s}`),
  hexOf(0, 70),
)

describe('Attribution.decode / isBound', () => {
  const tagged = (rest: Hex) =>
    `${Attribution.encode({ challengeId: 'x', realm: 'y' }).slice(0, 12)}${rest.slice(2)}`
  it('returns an attribution or undefined for any string, never throws', () => {
    fc.assert(
      fc.property(fc.oneof(hexish, hexOf(26, 26).map(tagged)), (memo) => {
        const decoded = Attribution.decode(memo)
        if (decoded === undefined) return
        expect(memo).toMatch(/^0x[0-9a-fA-F]{64}$/)
        expect(decoded.server).toMatch(/^0x[0-9a-f]{20}$/)
        expect(decoded.nonce).toMatch(/^0x[0-9a-f]{14}$/)
        if (decoded.client !== undefined) expect(decoded.client).toMatch(/^0x[0-9a-f]{20}$/)
      }),
      { numRuns },
    )
  })
  it('isBound is true exactly for the encoded realm and challenge, false for any mutation', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.option(fc.string(), { nil: undefined }),
        fc.nat({ max: 63 }),
        (challengeId, realm, clientId, flip) => {
          const memo = Attribution.encode({ challengeId, realm, clientId })
          expect(Attribution.isBound(memo, { challengeId, realm })).toBe(true)
          expect(Attribution.isBound(memo.toUpperCase().replace('0X', '0x'), { challengeId, realm })).toBe(
            true,
          )
          expect(Attribution.decode(memo)?.client).toBe(
            clientId ? keccak256(stringToBytes(clientId)).slice(0, 22) : undefined,
          )
          const nibble = memo[2 + flip]!
          const mutated = `${memo.slice(0, 2 + flip)}${nibble === '0' ? '1' : '0'}${memo.slice(3 + flip)}`
          // Bytes 15..24 (nibbles 30..49) are the client fingerprint, which the binding ignores.
          if (flip < 30 || flip >= 50)
            expect(Attribution.isBound(mutated, { challengeId, realm })).toBe(false)
        },
      ),
      { numRuns },
    )
  })
  it('isBound never throws on arbitrary memos', () => {
    fc.assert(
      fc.property(hexish, fc.string(), fc.string(), (memo, challengeId, realm) => {
        expect(typeof Attribution.isBound(memo, { challengeId, realm })).toBe('boolean')
      }),
      { numRuns },
    )
  })
})

describe.each(backends)('Voucher.parseSignature / createVerifier on %s', (backend) => {
  const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
  it('returns r, s in [1, n) and a parity bit, or undefined', () => {
    fc.assert(
      fc.property(fc.oneof(hexish, hexOf(63, 66)), (signature) => {
        const parsed = Voucher.parseSignature(signature)
        if (parsed === undefined) return
        expect([130, 132]).toContain(signature.length)
        expect(parsed.r > 0n && parsed.r < N).toBe(true)
        expect(parsed.s > 0n && parsed.s < N).toBe(true)
        expect([0, 1]).toContain(parsed.yParity)
      }),
      { numRuns },
    )
  })

  it('verify returns a Failure or undefined for random signatures, amounts and channels', () => {
    const account = privateKeyToAccount(`0x${'11'.repeat(32)}`)
    const escrow = '0x00000000000000000000000000000000000e5c40' as Address
    const verifier = Voucher.createVerifier({ backend })
    const failures = new Set(['malformed-signature', 'high-s', 'amount-out-of-range', 'signer-mismatch'])
    fc.assert(
      fc.property(
        fc.oneof(hexish, hexOf(64, 65)),
        fc.bigInt({ min: -(1n << 130n), max: 1n << 130n }),
        hexOf(32, 32),
        fc.constantFrom<Voucher.Protocol>('v1', 'v2'),
        fc.boolean(),
        (signature, cumulativeAmount, channelId, protocol, asPayer) => {
          const failure = verifier.verify({
            chainId: 31337,
            escrow,
            voucher: { channelId, cumulativeAmount, signature: signature as Hex },
            signer: asPayer ? account.address : escrow,
            protocol,
          })
          // A random signature is never valid for a fixed signer.
          expect(failures.has(failure as string)).toBe(true)
        },
      ),
      { numRuns },
    )
  })

  it('accepts a real signature and refuses every single-nibble mutation of it', async () => {
    const account = privateKeyToAccount(`0x${'22'.repeat(32)}`)
    const parameters = {
      chainId: 31337,
      escrow: '0x00000000000000000000000000000000000e5c40' as Address,
      channelId: `0x${'ab'.repeat(32)}` as Hex,
      cumulativeAmount: 1_000n,
    }
    const signature = await Voucher.sign(account, parameters)
    const verifier = Voucher.createVerifier({ backend })
    const check = (sig: Hex, amount = parameters.cumulativeAmount) =>
      verifier.verify({
        chainId: parameters.chainId,
        escrow: parameters.escrow,
        voucher: { channelId: parameters.channelId, cumulativeAmount: amount, signature: sig },
        signer: account.address,
      })
    expect(check(signature)).toBeUndefined()
    fc.assert(
      fc.property(
        fc.nat({ max: 129 }),
        fc.nat({ max: 15 }),
        fc.bigInt({ min: 0n, max: 5_000n }),
        (at, digit, amount) => {
          const replacement = digit.toString(16)
          const old = signature[2 + at]!.toLowerCase()
          const mutated = `${signature.slice(0, 2 + at)}${replacement}${signature.slice(3 + at)}` as Hex
          const unchanged = replacement === old
          // The cached-key path and the recovery path agree: only the signed amount with the signed bytes.
          // (Edits of the v byte are not asserted here: voucher-backend.test.ts pins which v values pass.)
          const result = check(mutated, amount)
          if (unchanged) expect(result === undefined).toBe(amount === parameters.cumulativeAmount)
          else if (at < 128) expect(result).not.toBeUndefined()
        },
      ),
      { numRuns },
    )
  })
})

describe('Proof.parseSource', () => {
  it('returns a safe chain id and an address, or undefined', () => {
    const pkh = fc
      .tuple(
        fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 10n ** 20n }), fc.string()),
        fc.oneof(address, hexish),
      )
      .map(([chain, addr]) => `did:pkh:eip155:${chain}:${addr}`)
    fc.assert(
      fc.property(fc.oneof(fc.string(), pkh, fc.constant(undefined)), (value) => {
        const parsed = Proof.parseSource(value)
        if (parsed === undefined) return
        expect(Number.isSafeInteger(parsed.chainId) && parsed.chainId >= 0).toBe(true)
        expect(parsed.address).toMatch(/^0x[0-9a-fA-F]{40}$/)
        expect(Proof.source(parsed)).toBe(value)
      }),
      { numRuns },
    )
  })
})

const descriptorArbitrary = fc.record({
  payer: address,
  payee: address,
  operator: fc.oneof(address, fc.constant('0x0000000000000000000000000000000000000000' as Address)),
  token: address,
  salt: bytes32,
  authorizedSigner: address,
  expiringNonceHash: bytes32,
})

describe('Channel descriptor (v2)', () => {
  const escrow = '0x4d50500000000000000000000000000000000000' as Address
  it('ChannelDescriptor parses or fails without throwing', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          descriptorArbitrary,
          fc.dictionary(fc.string(), fc.oneof(hexish, fc.integer(), fc.constant(null))),
          fc.anything(),
        ),
        (value) => {
          const parsed = ChannelDescriptor.safeParse(value)
          expect(typeof parsed.success).toBe('boolean')
        },
      ),
      { numRuns },
    )
  })

  it('assertDescriptorV2 on any schema-valid descriptor only throws VerificationFailedError', () => {
    fc.assert(
      fc.property(
        descriptorArbitrary,
        fc.boolean(),
        fc.array(fc.bigInt({ min: -10n, max: 1n << 100n }), { maxLength: 3 }),
        fc.option(address, { nil: undefined }),
        (descriptor, matchingId, amounts, authorizedSigner) => {
          expect(ChannelDescriptor.safeParse(descriptor).success).toBe(true)
          const result = typedOrValue(() => {
            const channelId = matchingId
              ? Channel.computeIdV2(descriptor, { escrow, chainId: 4217 })
              : (`0x${'00'.repeat(32)}` as Hex)
            Channel.assertDescriptorV2({
              descriptor,
              channelId,
              recipient: descriptor.payee as Address,
              currency: descriptor.token as Address,
              escrow,
              chainId: 4217,
              amounts,
              authorizedSigner,
            })
          })
          if (result.error) expect(result.error).toBeInstanceOf(VerificationFailedError)
        },
      ),
      { numRuns },
    )
  })

  it('computeIdV2 does not depend on the letter case of the descriptor', () => {
    fc.assert(
      fc.property(descriptorArbitrary, (descriptor) => {
        const lower = Object.fromEntries(
          Object.entries(descriptor).map(([k, v]) => [k, v.toLowerCase()]),
        ) as typeof descriptor
        expect(Channel.computeIdV2(descriptor, { escrow, chainId: 1 })).toBe(
          Channel.computeIdV2(lower, { escrow, chainId: 1 }),
        )
      }),
      { numRuns: 100 },
    )
  })
})

describe('request and payload schemas', () => {
  const amountish = fc.oneof(
    fc.bigInt({ min: 0n, max: 10n ** 80n }).map(String),
    fc.string({ unit: fc.constantFrom(...'0123456789-+.e '.split('')), maxLength: 12 }),
    fc.integer(),
  )
  const chargeRequest = fc.record(
    {
      amount: amountish,
      currency: fc.oneof(address, hexish),
      recipient: fc.oneof(address, hexish),
      description: fc.oneof(fc.string(), fc.integer()),
      methodDetails: fc.record(
        {
          chainId: fc.oneof(fc.integer(), fc.double(), fc.string()),
          feePayer: fc.oneof(fc.boolean(), fc.string()),
          memo: fc.oneof(bytes32, hexish),
          splits: fc.array(fc.record({ amount: amountish, recipient: fc.oneof(address, hexish) }), {
            maxLength: 12,
          }),
          supportedModes: fc.array(fc.oneof(fc.constantFrom('pull', 'push'), fc.string()), { maxLength: 3 }),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: [] },
  )
  it('TempoChargeRequest: safeParse never throws; accepted splits sum below amount', () => {
    fc.assert(
      fc.property(fc.oneof(chargeRequest, fc.anything()), (value) => {
        const parsed = TempoChargeRequest.safeParse(value)
        if (!parsed.success) return
        const splits = parsed.data.methodDetails?.splits ?? []
        expect(splits.reduce((sum, s) => sum + BigInt(s.amount), 0n) < BigInt(parsed.data.amount)).toBe(true)
        expect(parsed.data.amount).toMatch(/^(0|[1-9]\d*)$/)
      }),
      { numRuns },
    )
  })
  it('TempoChargePayload: safeParse never throws and keeps only well-formed hex', () => {
    const payload = fc.record(
      {
        type: fc.oneof(fc.constantFrom('transaction', 'hash', 'proof'), fc.string()),
        hash: hexish,
        signature: hexish,
      },
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(fc.oneof(payload, fc.anything()), (value) => {
        const parsed = TempoChargePayload.safeParse(value)
        if (!parsed.success) return
        if (parsed.data.type === 'hash') expect(parsed.data.hash).toMatch(/^0x[0-9a-fA-F]{64}$/)
        else expect(parsed.data.signature).toMatch(/^0x([0-9a-fA-F]{2})+$/)
      }),
      { numRuns },
    )
  })
  it('TempoSessionRequest and TempoSessionPayload: safeParse never throws', () => {
    const sessionPayload = fc.record(
      {
        action: fc.oneof(fc.constantFrom('open', 'topUp', 'voucher', 'close'), fc.string()),
        type: fc.constantFrom('transaction', 'hash'),
        channelId: fc.oneof(bytes32, hexish),
        transaction: hexish,
        signature: hexish,
        cumulativeAmount: amountish,
        additionalDeposit: amountish,
        authorizedSigner: fc.oneof(address, hexish),
        descriptor: fc.oneof(descriptorArbitrary, fc.anything()),
      },
      { requiredKeys: [] },
    )
    const sessionRequest = fc.record(
      {
        amount: amountish,
        currency: address,
        recipient: address,
        suggestedDeposit: amountish,
        methodDetails: fc.record(
          {
            escrowContract: fc.oneof(address, hexish),
            minVoucherDelta: amountish,
            chainId: fc.oneof(fc.integer(), fc.string()),
            sessionProtocol: fc.oneof(fc.constantFrom('v1', 'v2'), fc.string()),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(
        fc.oneof(sessionPayload, fc.anything()),
        fc.oneof(sessionRequest, fc.anything()),
        (p, r) => {
          const payload = TempoSessionPayload.safeParse(p)
          if (payload.success) {
            expect(payload.data.channelId).toMatch(/^0x[0-9a-fA-F]{64}$/)
            if ('cumulativeAmount' in payload.data)
              expect(() => BigInt(payload.data.cumulativeAmount as string)).not.toThrow()
          }
          const request = TempoSessionRequest.safeParse(r)
          if (request.success) expect(BigInt(request.data.amount) > 0n).toBe(true)
        },
      ),
      { numRuns },
    )
  })
})

describe('serialized transaction parsing (pull path) and transfer decoding', () => {
  const payer = privateKeyToAccount(`0x${'33'.repeat(32)}`)
  let signed: Hex
  const real = async () => {
    signed ??= (await payer.signTransaction(
      {
        type: 'tempo',
        chainId: 31337,
        nonce: 0,
        nonceKey: 0n,
        gas: 100_000n,
        maxFeePerGas: 1_000_000_000n,
        maxPriorityFeePerGas: 1n,
        calls: [
          {
            to: '0x20c0000000000000000000000000000000000000',
            data: '0xa9059cbb000000000000000000000000000000000000000000000000000000000000dead00000000000000000000000000000000000000000000000000000000000003e8',
          },
        ],
      } as never,
      { serializer: Transaction.serialize as never },
    )) as Hex
    return signed
  }

  it('decodeTransaction: any bytes yield a decoded transaction or VerificationFailedError', async () => {
    const base = await real()
    const decoded = internal.decodeTransaction(base)
    expect(decoded.chainId).toBe(31337)
    // One signed transaction, one encoding: bytes after the RLP list are refused.
    expect(() => internal.decodeTransaction(`${base}00`)).toThrow(VerificationFailedError)
    const mutation = fc.oneof(
      hexOf(0, 200).map((h) => `0x76${h.slice(2)}` as Hex),
      hexOf(0, 200),
      fc.nat({ max: (base.length - 2) / 2 }).map((n) => base.slice(0, 2 + 2 * n) as Hex),
      fc
        .tuple(fc.nat({ max: base.length - 3 }), fc.nat({ max: 15 }))
        .map(([at, d]) => `${base.slice(0, 2 + at)}${d.toString(16)}${base.slice(3 + at)}` as Hex),
      fc
        .tuple(fc.nat({ max: (base.length - 2) / 2 }), hexOf(1, 8))
        .map(([at, h]) => `${base.slice(0, 2 + 2 * at)}${h.slice(2)}${base.slice(2 + 2 * at)}` as Hex),
    )
    fc.assert(
      fc.property(mutation, (serialized) => {
        const result = typedOrValue(() => internal.decodeTransaction(serialized))
        if (result.error) {
          expect(result.error).toBeInstanceOf(VerificationFailedError)
          return
        }
        // Whatever decodes feeds the call decoder, which must not throw either.
        const effects = callEffects((result.value!.calls ?? []) as never)
        if (effects) for (const e of effects) expect(typeof e.amount).toBe('bigint')
      }),
      { numRuns },
    )
  })

  it('callEffects and logEffects never throw on random calls and logs', () => {
    const call = fc.record(
      {
        to: fc.oneof(address, fc.constant(null), fc.constant(undefined)),
        data: hexOf(0, 120),
        value: fc.bigInt({ min: 0n, max: 2n }),
      },
      { requiredKeys: [] },
    )
    const log = fc.record({
      address,
      topics: fc.array(fc.oneof(bytes32, hexOf(0, 40)), { maxLength: 5 }),
      data: hexOf(0, 130),
    })
    fc.assert(
      fc.property(fc.array(call, { maxLength: 4 }), fc.array(log, { maxLength: 5 }), (calls, logs) => {
        callEffects(calls)
        for (const effect of logEffects(logs)) expect(typeof effect.amount).toBe('bigint')
      }),
      { numRuns },
    )
  })
})
