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

  it('bills a stream per chunk the reader asks for: a slow reader that stops after 2 of 10 pays for 2', async () => {
    const { sessions, meter } = await setup()
    let produced = 0
    let released = false
    async function* chunks() {
      try {
        for (let i = 0; i < 10; i++) {
          produced++
          yield `chunk ${i}`
        }
      } finally {
        released = true
      }
    }
    const reader = meter.sse(chunks()).body!.getReader()
    const decoder = new TextDecoder()
    const read = async () => decoder.decode((await reader.read()).value)
    expect(await read()).toBe('data: chunk 0\n\n')
    expect(await read()).toBe('data: chunk 1\n\n')
    // A reader that reads no further for a while: nothing more is taken from the source, nor billed.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(produced).toBe(2)
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 6n, spent: 4n })
    // Gone: the source is released, and the 2 chunks delivered are all it paid for.
    await reader.cancel()
    expect(released).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 6n, spent: 4n })
  })
})
