import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SolanaChargePayload, SolanaChargeRequest } from './Methods.js'

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
  it('parses the three credential types and refuses others', () => {
    expect(SolanaChargePayload.safeParse({ type: 'transaction', transaction: 'AQID' }).success).toBe(true)
    expect(SolanaChargePayload.safeParse({ type: 'signature', signature: '5'.repeat(88) }).success).toBe(true)
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
