import { MemoryStore, StoreUnavailableError } from '@mppkit/core'
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

  it('an open that failed after writing the session is finished by its retry: whole deposit, idle timer, index', async () => {
    const store = new MemoryStore()
    const sessions = new Sessions(store, { ttlMs: 60_000, idleMs: 60_000 })
    // The Store fails once, right after the session and its balance were written (the idle timer).
    const set = store.set.bind(store)
    let failures = 1
    store.set = async (...args: Parameters<typeof set>) => {
      if (args[0].startsWith('active:') && failures-- > 0)
        throw new StoreUnavailableError({ detail: 'store down', retryAfter: 1 })
      return set(...args)
    }
    await expect(sessions.open(record, 50n)).rejects.toThrow(StoreUnavailableError)
    // The retry (same challenge) finds the session and finishes the open; the deposit counts once.
    expect(await sessions.open(record, 50n)).toBe(false)
    await sessions.reopened(id)
    expect(await sessions.balance(id)).toEqual({ deposit: 50n, available: 50n, spent: 0n })
    expect(await sessions.active(id)).toBe(true)
    const visited: string[] = []
    await sessions.index.sweep(async (found) => {
      visited.push(found)
      return 'keep'
    })
    expect(visited).toEqual([id])
  })

  it('writes a session and its balance in one store operation where the store has atomic()', async () => {
    const store = new MemoryStore()
    const increments: string[] = []
    const increment = store.increment.bind(store)
    store.increment = (...args: Parameters<typeof increment>) => {
      increments.push(args[0])
      return increment(...args)
    }
    const sessions = new Sessions(store, { ttlMs: 60_000, idleMs: 60_000 })
    expect(await sessions.open(record, 10n)).toBe(true)
    // Only the index's slot counter is a separate increment; deposit and balance went with the record.
    expect(increments.filter((key) => !key.startsWith('idle:'))).toEqual([])
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 10n, spent: 0n })
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
    const closes = await Promise.all(Array.from({ length: 10 }, () => sessions.close(id, 1_000)))
    const winners = closes.filter((c) => c !== undefined)
    expect(winners).toHaveLength(1)
    expect(winners[0]).toMatchObject({ status: 'closed', refundStatus: 'pending', closedAt: 1_000 })
    expect(await sessions.charge(id, 1n)).toBe(false)
    expect((await sessions.get(id))?.status).toBe('closed')
    // One of any number of claimers fixes the refund (the swept balance) and pays it.
    const claims = await Promise.all(Array.from({ length: 10 }, () => sessions.claimRefund(id)))
    const claimed = claims.filter((c) => c !== undefined)
    expect(claimed).toHaveLength(1)
    expect(claimed[0]!.refundSats).toBe(6n)
    expect(claimed[0]!.record).toMatchObject({ refundStatus: 'attempting', refundSats: '6' })
    expect(await sessions.claimRefund(id)).toBeUndefined()
    await sessions.recordRefund(id, 6n, 'failed')
    expect(await sessions.get(id)).toMatchObject({
      status: 'closed',
      refundSats: '6',
      refundStatus: 'failed',
    })
    // An outcome, once recorded, is not overwritten (an overlapping recovery's answer is dropped).
    await sessions.recordRefund(id, 6n, { succeeded: { sentSats: 6n, feeSats: 0n } })
    expect(await sessions.get(id)).toMatchObject({ refundStatus: 'failed' })
    expect(await sessions.close(id)).toBeUndefined()
  })

  it('a close stopped part-way (a Store failure mid-sweep) loses nothing: sweeping again completes the refund total', async () => {
    const store = new MemoryStore()
    const sessions = new Sessions(store, { ttlMs: 60_000, idleMs: 60_000 })
    await sessions.open(record, 10n)
    await sessions.charge(id, 3n)
    // The Store fails at the first move of the balance to the refund total (the process "stops" there).
    const atomic = store.atomic.bind(store)
    let failures = 1
    store.atomic = async (...args: Parameters<typeof atomic>) => {
      if (failures-- > 0) throw new StoreUnavailableError({ detail: 'store down', retryAfter: 1 })
      return atomic(...args)
    }
    await expect(sessions.close(id)).rejects.toThrow(StoreUnavailableError)
    expect(await sessions.get(id)).toMatchObject({ status: 'closed', refundStatus: 'pending' })
    expect(await sessions.close(id)).toBeUndefined()
    // What a recovery does: sweep again, then claim.
    await sessions.sweepBalance(id)
    expect(await sessions.claimRefund(id)).toMatchObject({ refundSats: 7n })
    expect(await sessions.balance(id)).toMatchObject({ available: 0n })
  })

  it('the balance moves to the refund total in one operation each time: concurrent sweeps never count it twice', async () => {
    const sessions = fresh()
    await sessions.open(record, 100n)
    await sessions.charge(id, 1n)
    await sessions.close(id)
    // A late credit (a top-up racing the close) and concurrent sweeps: the total is exactly what was there.
    await sessions.store.increment(`available:${id}`, 40n, { ttlMs: 60_000 })
    await Promise.all(Array.from({ length: 8 }, () => sessions.sweepBalance(id)))
    expect(await sessions.claimRefund(id)).toMatchObject({ refundSats: 139n })
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

  it('a top-up reaching a closed session before its refund is claimed is paid with the refund, once; after the claim, not', async () => {
    const sessions = fresh()
    await sessions.open(record, 10n)
    await sessions.charge(id, 4n)
    await sessions.close(id)
    const topUp = 'cd'.repeat(32)
    expect(await sessions.refundWithClose(id, topUp, 7n)).toBe(true)
    // The same top-up again (a retry) is carried once.
    expect(await sessions.refundWithClose(id, topUp, 7n)).toBe(true)
    const claimed = await sessions.claimRefund(id)
    expect(claimed?.refundSats).toBe(13n)
    expect(claimed?.record).toMatchObject({ refundStatus: 'attempting', refundSats: '13' })
    // Claimed: the refund is fixed, so a later top-up is not carried (nor counted) any more.
    expect(await sessions.refundWithClose(id, 'ef'.repeat(32), 5n)).toBe(false)
    expect(await sessions.refundWithClose(id, topUp, 7n)).toBe(true)
    expect((await sessions.get(id))?.refundSats).toBe('13')
    // An open session's refund is not pending: nothing is carried.
    const open = fresh()
    await open.open(record, 10n)
    expect(await open.refundWithClose(id, topUp, 7n)).toBe(false)
  })

  it('credits a top-up in one store operation with its claim, only on an open session', async () => {
    const sessions = fresh()
    await sessions.open(record, 10n)
    const claim = { key: 'funds:x', expected: 'claimed', next: 'credited' }
    await sessions.store.set('funds:x', 'claimed', 60_000)
    expect(await sessions.creditWith(id, 5n, claim)).toBe('credited')
    expect(await sessions.store.get('funds:x')).toBe('credited')
    expect(await sessions.balance(id)).toEqual({ deposit: 15n, available: 15n, spent: 0n })
    // The claim moved on (another request): nothing credited.
    expect(await sessions.creditWith(id, 5n, claim)).toBe('claimed')
    expect(await sessions.balance(id)).toEqual({ deposit: 15n, available: 15n, spent: 0n })
    await sessions.store.set('funds:x', 'claimed', 60_000)
    await sessions.close(id)
    expect(await sessions.creditWith(id, 5n, claim)).toBe('closed')
    expect(await sessions.store.get('funds:x')).toBe('claimed')
    expect(await sessions.claimRefund(id)).toMatchObject({ refundSats: 15n })
  })

  it('does not credit a top-up to a closed session', async () => {
    const sessions = fresh()
    await sessions.open(record, 10n)
    await sessions.close(id)
    expect(await sessions.credit(id, 5n)).toEqual({ status: 'closed', back: 5n })
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 0n, spent: 10n })
    const open = fresh()
    await open.open(record, 10n)
    expect(await open.credit(id, 5n)).toEqual({ status: 'credited' })
    expect(await open.balance(id)).toEqual({ deposit: 15n, available: 15n, spent: 0n })
  })
})
