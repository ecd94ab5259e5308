import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { tokenProgramIds } from './internal/programs.js'
import {
  acceptsPayload,
  acceptsRequest,
  charge,
  SolanaChargePayload,
  SolanaChargeRequest,
} from './Methods.js'

const mint = 'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v'
const recipient = '7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU'
const issues = (value: unknown) => {
  const result = SolanaChargeRequest.safeParse(value)
  return result.success ? [] : result.error.issues.map((issue) => issue.message)
}

describe('SolanaChargeRequest', () => {
  it('accepts the spec examples (SOL, SPL, splits)', () => {
    expect(
      issues({ amount: '10000000', currency: 'sol', recipient, methodDetails: { network: 'mainnet' } }),
    ).toEqual([])
    expect(
      issues({
        amount: '1050000',
        currency: mint,
        recipient,
        methodDetails: {
          network: 'mainnet',
          decimals: 6,
          splits: [
            {
              recipient: '3pF8Kg2aHbNvJkLMwEqR7YtDxZ5sGhJn4UV6mWcXrT9A',
              amount: '50000',
              memo: 'platform fee',
            },
          ],
        },
      }),
    ).toEqual([])
  })

  it('enforces the cross-field rules', () => {
    expect(
      issues({ amount: '1', currency: 'sol', recipient, methodDetails: { decimals: 9 } }),
    ).toMatchInlineSnapshot(`
      [
        "decimals must be absent for sol",
      ]
    `)
    expect(issues({ amount: '1', currency: mint, recipient })).toMatchInlineSnapshot(`
      [
        "decimals is required for a mint",
      ]
    `)
    expect(
      issues({ amount: '1', currency: 'sol', recipient, methodDetails: { feePayer: true } }),
    ).toMatchInlineSnapshot(`
      [
        "feePayerKey goes with feePayer: true",
      ]
    `)
    expect(
      issues({
        amount: '100',
        currency: 'sol',
        recipient,
        methodDetails: { splits: [{ recipient, amount: '100' }] },
      }),
    ).toMatchInlineSnapshot(`
      [
        "splits must sum to less than amount",
      ]
    `)
    expect(issues({ amount: '18446744073709551616', currency: 'sol', recipient })).toMatchInlineSnapshot(`
      [
        "at most 2^64 - 1",
      ]
    `)
    // Base58 mints are case-sensitive: a case-changed mint is another (here invalid) key.
    expect(issues({ amount: '1', currency: 'SOL', recipient })).not.toEqual([])
  })

  it('never throws on arbitrary input (property)', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        SolanaChargeRequest.safeParse(value)
        SolanaChargeRequest.safeParse({ amount: '5', currency: 'sol', recipient, methodDetails: value })
      }),
    )
  })
})

describe('SolanaChargePayload', () => {
  // base58 of 64 bytes of 0x01: a well-formed ed25519 signature
  const signature = '2AXDGYSE4f2sz7tvMMzyHvUfcoJmxudvdhBcmiUSo6ijwfYmfZYsKRxboQMPh3R4kUhXRVdtSXFXMheka4Rc4P2'
  it('parses the three credential types and refuses others', () => {
    expect(SolanaChargePayload.safeParse({ type: 'transaction', transaction: 'AQID' }).success).toBe(true)
    expect(SolanaChargePayload.safeParse({ type: 'signature', signature }).success).toBe(true)
    // Base58 of the right length that is not 64 bytes (65 and 47 bytes): a node would refuse it as malformed.
    for (const wrongSize of ['z'.repeat(88), '2'.repeat(64)]) {
      expect(SolanaChargePayload.safeParse({ type: 'signature', signature: wrongSize }).success).toBe(false)
      expect(acceptsPayload({ type: 'signature', signature: wrongSize })).toBe(false)
    }
    expect(SolanaChargePayload.safeParse({ type: 'bundle', transactions: ['AQID'] }).success).toBe(true)
    expect(SolanaChargePayload.safeParse({ type: 'signature', signature: '0'.repeat(88) }).success).toBe(
      false,
    )
    expect(
      SolanaChargePayload.safeParse({ type: 'transaction', transaction: 'A'.repeat(1645) }).success,
    ).toBe(false)
    expect(SolanaChargePayload.safeParse({ type: 'hash', hash: '0x' }).success).toBe(false)
  })

  it('never throws on arbitrary input (property)', () => {
    fc.assert(fc.property(fc.anything(), (value) => void SolanaChargePayload.safeParse(value)))
  })
})

// The method definition accepts through a hand-written check and leaves everything else to zod: the
// check must never accept what zod refuses, and must accept the valid requests a server sees.
describe('the fast acceptance check', () => {
  const payee = '3pF8Kg2aHbNvJkLMwEqR7YtDxZ5sGhJn4UV6mWcXrT9A'
  const blockhash = 'EkSnNWid2cvwEVnVx9aBqawnmiCNiDgp3gUdkDPTKN1N'
  const amount = fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map(String)
  const split = fc.record(
    {
      recipient: fc.constantFrom(recipient, payee),
      amount: fc.bigInt({ min: 1n, max: 1000n }).map(String),
      memo: fc.string({ maxLength: 40 }),
      ataCreationRequired: fc.boolean(),
    },
    { requiredKeys: ['recipient', 'amount'] },
  )
  const valid = fc
    .record({
      sol: fc.boolean(),
      amount,
      description: fc.option(fc.string({ maxLength: 256 }), { nil: undefined }),
      externalId: fc.option(fc.string({ maxLength: 100 }), { nil: undefined }),
      network: fc.option(fc.constantFrom('mainnet', 'mainnet-beta', 'devnet', 'localnet'), {
        nil: undefined,
      }),
      decimals: fc.integer({ min: 0, max: 9 }),
      tokenProgram: fc.option(fc.constantFrom(...tokenProgramIds), { nil: undefined }),
      feePayer: fc.boolean(),
      splits: fc.option(fc.array(split, { maxLength: 8 }), { nil: undefined }),
      recentBlockhash: fc.option(fc.constant(blockhash), { nil: undefined }),
      extra: fc.option(fc.jsonValue(), { nil: undefined }),
    })
    .map((r) => {
      const splits = r.splits?.map((s) => (r.sol ? { ...s, ataCreationRequired: undefined } : s))
      const total = (splits ?? []).reduce((sum, s) => sum + BigInt(s.amount), 0n)
      const details: Record<string, unknown> = {
        network: r.network,
        decimals: r.sol ? undefined : r.decimals,
        tokenProgram: r.sol ? undefined : r.tokenProgram,
        feePayer: r.feePayer,
        feePayerKey: r.feePayer ? payee : undefined,
        splits: splits?.map((s) => JSON.parse(JSON.stringify(s))),
        recentBlockhash: r.recentBlockhash,
        futureField: r.extra,
      }
      return JSON.parse(
        JSON.stringify({
          amount: String(BigInt(r.amount) + total),
          currency: r.sol ? 'sol' : mint,
          recipient,
          description: r.description,
          externalId: r.externalId,
          methodDetails: details,
        }),
      ) as Record<string, unknown>
    })
    .filter((request) => BigInt(request.amount as string) <= 2n ** 64n - 1n)
  const constants = [
    undefined,
    null,
    '',
    'sol',
    'SOL',
    0,
    -1,
    1.5,
    9,
    10,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    true,
    false,
    [],
    {},
    '0',
    '01',
    '18446744073709551615',
    '18446744073709551616',
    '99999999999999999999',
    'x'.repeat(257),
    '€'.repeat(189),
    mint,
    recipient,
    mint.toLowerCase(),
    '1'.repeat(44),
    tokenProgramIds[1],
    'testnet',
    blockhash,
    `${blockhash}!`,
    [{ recipient, amount: '1' }],
    Array.from({ length: 9 }, () => ({ recipient, amount: '1' })),
    'x'.repeat(256),
    'A'.repeat(1644),
    'A'.repeat(1645),
    'A'.repeat(1648),
    '5'.repeat(88),
    '5'.repeat(89),
  ]
  const tricky = fc.oneof(fc.constantFrom(...constants), fc.anything())
  const paths = [
    ['amount'],
    ['currency'],
    ['recipient'],
    ['description'],
    ['externalId'],
    ['methodDetails'],
    ...[
      'network',
      'decimals',
      'tokenProgram',
      'feePayer',
      'feePayerKey',
      'splits',
      'recentBlockhash',
      'confidential',
      'auditorElgamalPubkey',
      'recipientElgamalPubkey',
    ].map((field) => ['methodDetails', field]),
    ...['recipient', 'amount', 'memo', 'ataCreationRequired'].map((field) => [
      'methodDetails',
      'splits',
      '0',
      field,
    ]),
  ]
  const edit = (request: Record<string, unknown>, path: string[], value: unknown) => {
    let at: Record<string, unknown> = request
    for (const key of path.slice(0, -1)) {
      if (typeof at[key] !== 'object' || at[key] === null) return request
      at = at[key] as Record<string, unknown>
    }
    // A copy: the edge values are shared between runs and a later edit may write into this one.
    at[path[path.length - 1]!] = value === undefined ? value : structuredClone(value)
    return request
  }

  it('accepts the valid requests it is built for (and zod agrees)', () => {
    fc.assert(
      fc.property(valid, (request) => {
        expect(SolanaChargeRequest.safeParse(request).success).toBe(true)
        expect(acceptsRequest(request)).toBe(true)
      }),
    )
  })

  it('never accepts a request zod refuses (every field set to every edge value)', () => {
    for (const base of fc.sample(valid, { numRuns: 40, seed: 7 }))
      for (const path of paths)
        for (const value of constants) {
          const request = edit(structuredClone(base), path, value)
          if (acceptsRequest(request))
            expect(SolanaChargeRequest.safeParse(request).success, JSON.stringify({ path, value })).toBe(true)
        }
  })

  it('never accepts a request zod refuses (property, edited valid requests)', () => {
    fc.assert(
      fc.property(
        valid,
        fc.array(fc.tuple(fc.constantFrom(...paths), tricky), { minLength: 1, maxLength: 3 }),
        (request, edits) => {
          for (const [path, value] of edits) edit(request, path, value)
          if (acceptsRequest(request)) expect(SolanaChargeRequest.safeParse(request).success).toBe(true)
        },
      ),
      { numRuns: 2000 },
    )
    fc.assert(
      fc.property(fc.anything(), (value) => {
        if (acceptsRequest(value)) expect(SolanaChargeRequest.safeParse(value).success).toBe(true)
      }),
    )
  })

  it('never accepts a payload zod refuses (edge values, then property)', () => {
    for (const type of ['signature', 'transaction', 'bundle', 'hash'])
      for (const value of constants)
        for (const value2 of [value, 'AQID'])
          for (const candidate of [
            { type, signature: value, transaction: value2 },
            { type, transaction: value },
          ])
            if (acceptsPayload(candidate))
              expect(SolanaChargePayload.safeParse(candidate).success, JSON.stringify(candidate)).toBe(true)
    const payload = fc.record({
      type: fc.constantFrom('signature', 'transaction', 'bundle', 'hash'),
      signature: fc.oneof(fc.string(), fc.stringMatching(/^[1-9A-HJ-NP-Za-km-z]{60,90}$/), tricky),
      transaction: fc.oneof(fc.base64String({ maxLength: 1700 }), fc.string(), tricky),
    })
    fc.assert(
      fc.property(fc.oneof(payload, fc.anything()), (value) => {
        if (acceptsPayload(value)) expect(SolanaChargePayload.safeParse(value).success).toBe(true)
      }),
      { numRuns: 2000 },
    )
  })

  it('the method definition: a frozen valid request as it is, anything else through zod', () => {
    const request = Object.freeze({ amount: '5', currency: 'sol', recipient })
    const fast = charge.request.safeParse(request)
    expect(fast.success && fast.data).toBe(request)
    const copy = charge.request.safeParse({ ...request })
    expect(copy.success && copy.data).toEqual(request)
    const refused = charge.request.safeParse(Object.freeze({ amount: '5', currency: mint, recipient }))
    expect(refused.success).toBe(false)
    expect(!refused.success && (refused.error as { issues: { message: string }[] }).issues[0]?.message).toBe(
      'decimals is required for a mint',
    )
    const payload = { type: 'signature', signature: '5'.repeat(88) }
    const parsed = charge.payload.safeParse(payload)
    expect(parsed.success && parsed.data).toEqual(payload)
    expect(parsed.success && parsed.data).not.toBe(payload)
    expect(charge.payload.safeParse({ type: 'bundle', transactions: ['AQID'] }).success).toBe(true)
    expect(charge.payload.safeParse({ type: 'signature', signature: '0'.repeat(88) }).success).toBe(false)
  })
})
