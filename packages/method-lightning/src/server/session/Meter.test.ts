import { MemoryStore } from '@mppkit/core'
import { describe, expect, it } from 'vitest'
import { createMeter } from './Meter.js'
import { Sessions } from './Sessions.js'

const id = 'ab'.repeat(32)
const record = { paymentHash: id, returnInvoice: 'lnbcrt1…', status: 'open' as const, openedBy: 'c1' }

/** A meter at 2 sat a unit on a session holding a 10 sat deposit. */
async function setup() {
  const sessions = new Sessions(new MemoryStore(), { ttlMs: 60_000, idleMs: 60_000 })
  await sessions.open(record, 10n)
  const meter = createMeter({
    sessions,
    sessionId: id,
    price: 2n,
    prepaid: 0,
    topUpTimeoutMs: 1_000,
    signal: new AbortController().signal,
    now: Date.now,
  })
  return { sessions, meter }
}

describe('createMeter', () => {
  it('charges whole units against the balance, never past it', async () => {
    const { sessions, meter } = await setup()
    expect(await meter.charge()).toBe(true)
    expect(await meter.charge(3)).toBe(true)
    expect(await meter.charge(2)).toBe(false)
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 2n, spent: 8n })
  })

  it('refuses a negative or fractional number of units: a charge never adds to the balance the close refunds', async () => {
    const { sessions, meter } = await setup()
    for (const units of [-5, 1.5, Number.NaN, Number.POSITIVE_INFINITY])
      await expect(meter.charge(units)).rejects.toThrowErrorMatchingInlineSnapshot(
        `[ConfigurationError: lightning session: charge(units) takes a whole number of units, 0 or more]`,
      )
    expect(await meter.charge(0)).toBe(true)
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 10n, spent: 0n })
  })
})
