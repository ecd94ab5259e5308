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
  it.each([1.5, Number.NaN, '10'])('refuses depositSats %j', (depositSats) =>
    refusesSession({ depositSats }, 'depositSats'),
  )
  it.each([Number.NaN, 0, -1, Number.POSITIVE_INFINITY])(
    'refuses idleTimeoutSeconds %j',
    (idleTimeoutSeconds) => refusesSession({ idleTimeoutSeconds }, 'idleTimeoutSeconds'),
  )
  it('accepts the documented values', () => {
    for (const extra of [
      {},
      { retentionSeconds: 1 },
      { retentionSeconds: 30 * 86_400 },
      { maxRefundFeeSats: 0 },
      { maxRefundFeeSats: 25 },
      { maxRefundFeeSats: () => -1 }, // a function is checked at each refund (session.test.ts)
      { topUpTimeoutMs: 1, idleCheckIntervalMs: 2 ** 31 - 1 },
      { idleTimeoutSeconds: 0.5 },
    ])
      expect(() => sessionServer({ lnd, ...extra } as SessionOptions)).not.toThrow()
  })
})
