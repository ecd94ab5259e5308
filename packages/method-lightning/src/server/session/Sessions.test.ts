import { MemoryStore } from '@mppkit/core'
import { describe, expect, it } from 'vitest'
import { Sessions } from './Sessions.js'

const id = 'ab'.repeat(32)
const record = { paymentHash: id, returnInvoice: 'lnbcrt1…', status: 'open' as const, openedBy: 'c1' }
const fresh = () => new Sessions(new MemoryStore(), { ttlMs: 60_000, idleMs: 1_000 })

describe('Sessions', () => {
  it('opens once per payment hash', async () => {
    const sessions = fresh()
    expect(await sessions.open(record, 10n)).toBe(true)
    expect(await sessions.open({ ...record, openedBy: 'c2' }, 10n)).toBe(false)
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 10n, spent: 0n })
    expect((await sessions.get(id))?.openedBy).toBe('c1')
  })

  it('never overdraws under concurrent charges, and credits top-ups', async () => {
    const sessions = fresh()
    await sessions.open(record, 10n)
    const results = await Promise.all(Array.from({ length: 50 }, () => sessions.charge(id, 3n)))
    expect(results.filter(Boolean)).toHaveLength(3)
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 1n, spent: 9n })
    await sessions.credit(id, 5n)
    expect(await sessions.balance(id)).toEqual({ deposit: 15n, available: 6n, spent: 9n })
  })

  it('closes exactly once among concurrent closers, sweeping the balance as the refund', async () => {
    const sessions = fresh()
    await sessions.open(record, 10n)
    await sessions.charge(id, 4n)
    const closes = await Promise.all(Array.from({ length: 10 }, () => sessions.close(id)))
    const winners = closes.filter((c) => c !== undefined)
    expect(winners).toHaveLength(1)
    expect(winners[0]!.refundSats).toBe(6n)
    expect(await sessions.charge(id, 1n)).toBe(false)
    expect((await sessions.get(id))?.status).toBe('closed')
    await sessions.recordRefund(id, 6n, 'failed')
    expect(await sessions.get(id)).toMatchObject({
      status: 'closed',
      refundSats: '6',
      refundStatus: 'failed',
    })
    expect(await sessions.close(id)).toBeUndefined()
  })

  it('tracks activity with the idle timeout as TTL', async () => {
    const store = new MemoryStore()
    const sessions = new Sessions(store, { ttlMs: 60_000, idleMs: 50 })
    await sessions.open(record, 1n)
    expect(await sessions.active(id)).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 80))
    expect(await sessions.active(id)).toBe(false)
    await sessions.touch(id)
    expect(await sessions.active(id)).toBe(true)
  })

  it('does not credit a top-up to a closed session', async () => {
    const sessions = fresh()
    await sessions.open(record, 10n)
    await sessions.close(id)
    expect(await sessions.credit(id, 5n)).toBe('closed')
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 0n, spent: 10n })
    const open = fresh()
    await open.open(record, 10n)
    expect(await open.credit(id, 5n)).toBe('credited')
    expect(await open.balance(id)).toEqual({ deposit: 15n, available: 15n, spent: 0n })
  })
})
