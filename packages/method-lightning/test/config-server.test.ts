import { ConfigurationError } from '@mppkit/core'
import type { AuthenticatedLnd } from 'lightning'
import { describe, expect, it } from 'vitest'
import { type ChargeOptions, chargeServer, type SessionOptions, sessionServer } from '../src/server/index.js'

// Options the servers would accept and then fail on after the payer paid (audit: an invoice paid and a
// 503, or a close answered 503 with the refund not paid) are refused when the method is created. The
// factories make no node call, so any object stands in for the node connection.
const lnd = {} as AuthenticatedLnd

const refusal = (create: () => unknown) => {
  try {
    create()
  } catch (error) {
    return error
  }
  return undefined
}
const refusesCharge = (extra: Record<string, unknown>, option: string) => {
  const error = refusal(() => chargeServer({ lnd, ...extra } as ChargeOptions))
  expect(error).toBeInstanceOf(ConfigurationError)
  expect((error as Error).message).toContain(option)
}
const refusesSession = (extra: Record<string, unknown>, option: string) => {
  const error = refusal(() => sessionServer({ lnd, ...extra } as SessionOptions))
  expect(error).toBeInstanceOf(ConfigurationError)
  expect((error as Error).message).toContain(option)
}

const badSeconds = [Number.NaN, 0, -1, 0.5, Number.POSITIVE_INFINITY, '60']
const badMs = [Number.NaN, 0, -1, 1.5, 2 ** 31, Number.POSITIVE_INFINITY, '1000']

describe('lightning charge server options', () => {
  it.each(badSeconds)('refuses replayTtlSeconds %j', (replayTtlSeconds) =>
    refusesCharge({ replayTtlSeconds }, 'replayTtlSeconds'),
  )
  it('accepts whole seconds', () => {
    expect(() => chargeServer({ lnd })).not.toThrow()
    for (const replayTtlSeconds of [1, 7 * 86_400])
      expect(() => chargeServer({ lnd, replayTtlSeconds })).not.toThrow()
  })
})

describe('lightning session server options', () => {
  it.each(badSeconds)('refuses retentionSeconds %j', (retentionSeconds) =>
    refusesSession({ retentionSeconds }, 'retentionSeconds'),
  )
  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '10'])(
    'refuses maxRefundFeeSats %j before any refund',
    (maxRefundFeeSats) => refusesSession({ maxRefundFeeSats }, 'maxRefundFeeSats'),
  )
  it.each(badMs)('refuses topUpTimeoutMs and idleCheckIntervalMs %j', (value) => {
    refusesSession({ topUpTimeoutMs: value }, 'topUpTimeoutMs')
    refusesSession({ idleCheckIntervalMs: value }, 'idleCheckIntervalMs')
  })
  // Advertised as the challenge's `depositAmount` and asked of the node as an invoice amount.
  it.each([1.5, Number.NaN, '10', 0, -1, 0n, 2_100_000_000_000_001n, 2.2e15])(
    'refuses depositSats %s',
    (depositSats) => refusesSession({ depositSats }, 'depositSats'),
  )
  // Advertised as the challenge's `idleTimeout`, "in seconds, as a decimal string" of 1–9 digits: 1.5
  // or 1e9 there made every paid open a 402 after the deposit was paid.
  it.each([Number.NaN, 0, -1, 0.5, 1.5, 1e9, Number.POSITIVE_INFINITY, '300'])(
    'refuses idleTimeoutSeconds %j',
    (idleTimeoutSeconds) => refusesSession({ idleTimeoutSeconds }, 'idleTimeoutSeconds'),
  )
  // Infinity left an interrupted close unrefunded for good.
  it.each(badSeconds)('refuses refundRecoverySeconds %j', (refundRecoverySeconds) =>
    refusesSession({ refundRecoverySeconds }, 'refundRecoverySeconds'),
  )
  it.each(['false', 0, 1])('refuses billPerRequest %j', (billPerRequest) =>
    refusesSession({ billPerRequest }, 'billPerRequest'),
  )
  it('refuses an onRefundFailure that is not a function', () =>
    refusesSession({ onRefundFailure: 'log' }, 'onRefundFailure'))
  it('accepts the documented values', () => {
    for (const extra of [
      {},
      { retentionSeconds: 1 },
      { retentionSeconds: 30 * 86_400 },
      { maxRefundFeeSats: 0 },
      { maxRefundFeeSats: 25 },
      { maxRefundFeeSats: () => -1 }, // a function is checked at each refund (session.test.ts)
      { topUpTimeoutMs: 1, idleCheckIntervalMs: 2 ** 31 - 1 },
      { idleTimeoutSeconds: 1 },
      { idleTimeoutSeconds: 999_999_999 },
      { refundRecoverySeconds: 1 },
      { depositSats: 1 },
      { depositSats: 2_100_000_000_000_000n },
      { billPerRequest: false },
      { onRefundFailure: () => {} },
    ])
      expect(() => sessionServer({ lnd, ...extra } as SessionOptions)).not.toThrow()
  })
})
