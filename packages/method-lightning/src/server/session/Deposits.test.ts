import { MemoryStore, type Store, StoreUnavailableError } from '@mppkit/core'
import type { AuthenticatedLnd } from 'lightning'
import { describe, expect, it } from 'vitest'
import { defaultNodeTimeouts } from '../../internal/node.js'
import { type DepositClaim, Deposits } from './Deposits.js'
import { Sessions } from './Sessions.js'

const id = 'ab'.repeat(32)
const hash = 'cd'.repeat(32)
const record = { paymentHash: id, returnInvoice: 'lnbcrt1…', status: 'open' as const, openedBy: 'c1' }
const topUp: DepositClaim = { action: 'topUp', challengeId: 'c2', sessionId: id, sats: '5', state: 'claimed' }
/** The same deposit presented as an open (same challenge). */
const open: DepositClaim = { action: 'open', challengeId: 'c2', sessionId: id, sats: '5' }

/** Deposits over `store`; the node is never reached by these cases (no refund payment). */
const depositsOn = (store: Store) => {
  const failures: unknown[] = []
  const sessions = new Sessions(store, { ttlMs: 60_000, idleMs: 60_000 })
  const deposits = new Deposits(sessions, {
    ttlMs: 60_000,
    lnd: {} as AuthenticatedLnd,
    timeouts: defaultNodeTimeouts,
    maxFeeSats: () => 10,
    onRefundFailure: (failure) => failures.push(failure),
    recoveryMs: 60_000,
  })
  return { sessions, deposits, failures }
}

/** What runs around the next credit of a balance: `before` it lands, and `after`. */
type Around = { before?: () => Promise<void>; after?: () => Promise<void> }

/**
 * A MemoryStore without `atomic` (a custom Store), whose next credit of a balance fails, or has other
 * requests run around it (`aroundNextCredit`).
 */
const plainStore = () => {
  const memory = new MemoryStore()
  let failNext = false
  let around: Around | undefined
  const store: Store & { failNextCredit: () => void; aroundNextCredit: (next: Around) => void } = {
    putIfAbsent: (...args) => memory.putIfAbsent(...args),
    get: (...args) => memory.get(...args),
    set: (...args) => memory.set(...args),
    delete: (...args) => memory.delete(...args),
    compareAndSet: (...args) => memory.compareAndSet(...args),
    increment: async (key, delta, options) => {
      if (failNext && key.startsWith('available:') && delta > 0n) {
        failNext = false
        throw new StoreUnavailableError({ detail: 'store down', retryAfter: 1 })
      }
      const hooks = key.startsWith('available:') && delta > 0n ? around : undefined
      if (!hooks) return memory.increment(key, delta, options)
      around = undefined
      await hooks.before?.()
      const result = await memory.increment(key, delta, options)
      await hooks.after?.()
      return result
    },
    failNextCredit: () => {
      failNext = true
    },
    aroundNextCredit: (next) => {
      around = next
    },
  }
  return store
}

describe('Deposits', () => {
  it('claims a deposit for one action only: a retry of the same credential goes on, anything else is refused', async () => {
    const { deposits } = depositsOn(new MemoryStore())
    const claimed = await deposits.claim(hash, topUp)
    expect(claimed?.claim).toEqual(topUp)
    expect((await deposits.claim(hash, topUp))?.raw).toBe(claimed?.raw)
    // The same deposit as an open, for another session, or under another challenge: refused.
    expect(await deposits.claim(hash, open)).toBeUndefined()
    expect(await deposits.claim(hash, { ...topUp, sessionId: 'ef'.repeat(32) })).toBeUndefined()
    expect(await deposits.claim(hash, { ...topUp, challengeId: 'c3' })).toBeUndefined()
  })

  it('credits a claimed top-up once, and a retry after it answers credited without crediting again', async () => {
    const { sessions, deposits } = depositsOn(new MemoryStore())
    await sessions.open(record, 10n)
    expect(await deposits.topUp(hash, (await deposits.claim(hash, topUp))!)).toEqual({ status: 'credited' })
    expect(await deposits.topUp(hash, (await deposits.claim(hash, topUp))!)).toEqual({ status: 'credited' })
    expect(await sessions.balance(id)).toEqual({ deposit: 15n, available: 15n, spent: 0n })
  })

  it('on a Store without atomic(), a credit cut short is never redone (it may have landed), and its deposit stays claimed', async () => {
    const store = plainStore()
    const { sessions, deposits } = depositsOn(store)
    await sessions.open(record, 10n)
    store.failNextCredit()
    await expect(deposits.topUp(hash, (await deposits.claim(hash, topUp))!)).rejects.toThrow(
      StoreUnavailableError,
    )
    expect(await deposits.get(hash)).toMatchObject({ state: 'crediting' })
    // The retry cannot tell whether the credit landed: it is left (and reported by the caller).
    expect(await deposits.topUp(hash, (await deposits.claim(hash, topUp))!)).toEqual({
      status: 'interrupted',
    })
    expect(await sessions.balance(id)).toEqual({ deposit: 10n, available: 10n, spent: 0n })
    // Nor can the deposit open a session.
    expect(await deposits.claim(hash, open)).toBeUndefined()
    // Without a failure the same path credits once.
    const other = { ...topUp, challengeId: 'c4' }
    expect(await deposits.topUp('ef'.repeat(32), (await deposits.claim('ef'.repeat(32), other))!)).toEqual({
      status: 'credited',
    })
    expect(await deposits.get('ef'.repeat(32))).toMatchObject({ state: 'credited' })
    expect(await sessions.balance(id)).toEqual({ deposit: 15n, available: 15n, spent: 0n })
  })

  it('a top-up whose session closed before its credit is refused: carried by the pending refund, recorded for a retry', async () => {
    const { sessions, deposits, failures } = depositsOn(new MemoryStore())
    await sessions.open(record, 10n)
    await sessions.charge(id, 3n)
    await sessions.close(id)
    const refused = { status: 'refused', refundSats: 5, refundStatus: 'pending' }
    expect(await deposits.topUp(hash, (await deposits.claim(hash, topUp))!)).toEqual(refused)
    expect(await deposits.get(hash)).toMatchObject({ state: 'refused', refundStatus: 'pending' })
    expect(await deposits.topUp(hash, (await deposits.claim(hash, topUp))!)).toEqual(refused)
    expect(await sessions.claimRefund(id)).toMatchObject({ refundSats: 12n })
    expect(failures).toEqual([])
  })

  it('a top-up whose session closed and paid its return invoice is refused, reported and recorded as not refunded', async () => {
    const { sessions, deposits, failures } = depositsOn(new MemoryStore())
    await sessions.open(record, 10n)
    await sessions.close(id)
    await sessions.claimRefund(id)
    await sessions.recordRefund(id, 10n, { succeeded: { sentSats: 10n, feeSats: 0n } })
    const refused = { status: 'refused', refundSats: 5, refundStatus: 'failed' }
    expect(await deposits.topUp(hash, (await deposits.claim(hash, topUp))!)).toEqual(refused)
    expect(failures).toEqual([
      { sessionId: id, refundSats: 5, error: 'ReturnInvoiceUsed', topUpPaymentHash: hash },
    ])
    expect(await deposits.get(hash)).toMatchObject({ state: 'refused', refundStatus: 'failed', sats: '5' })
    // A retry is answered from the record: not reported (nor paid) twice.
    expect(await deposits.topUp(hash, (await deposits.claim(hash, topUp))!)).toEqual(refused)
    expect(failures).toHaveLength(1)
  })

  describe('on a Store without atomic(), a close that lands during the credit (custom stores)', () => {
    const closeAndRefundNothing = async (sessions: Sessions) => {
      await sessions.close(id)
      const claimed = await sessions.claimRefund(id)
      await sessions.recordRefund(id, claimed!.refundSats, claimed!.refundSats > 0n ? 'failed' : 'skipped')
    }

    it('after the close refunded nothing, with a request charged from the credit: never credited, the rest taken back and given back (reported when it cannot be paid)', async () => {
      const store = plainStore()
      const { sessions, deposits, failures } = depositsOn(store)
      await sessions.open(record, 10n)
      expect(await sessions.charge(id, 10n)).toBe(true)
      const claimed = (await deposits.claim(hash, { ...topUp, sats: '10' }))!
      store.aroundNextCredit({
        // The close lands between the credit's status check and its increment: it refunds 0 (skipped).
        before: () => closeAndRefundNothing(sessions),
        // A bearer verified before the close is charged right after the increment.
        after: async () => {
          expect(await sessions.charge(id, 1n)).toBe(true)
        },
      })
      const outcome = await deposits.topUp(hash, claimed)
      // The return invoice ('lnbcrt1…', no node here) cannot be paid: the 9 sat left are reported.
      expect(outcome).toEqual({ status: 'refused', refundSats: 9, refundStatus: 'failed' })
      expect(failures).toEqual([
        { sessionId: id, refundSats: 9, error: expect.any(String), topUpPaymentHash: hash },
      ])
      expect(await deposits.get(hash)).toMatchObject({
        state: 'refused',
        refundStatus: 'failed',
        backSats: '9',
      })
      // Nothing stranded in the closed session; the 1 sat spent counts in its deposit total.
      expect(await sessions.balance(id)).toEqual({ deposit: 11n, available: 0n, spent: 11n })
      expect(await sessions.get(id)).toMatchObject({ status: 'closed', refundStatus: 'skipped' })
    })

    it('before the close claimed its refund: what is taken back goes with that refund', async () => {
      const store = plainStore()
      const { sessions, deposits, failures } = depositsOn(store)
      await sessions.open(record, 10n)
      await sessions.charge(id, 3n)
      const claimed = (await deposits.claim(hash, topUp))!
      // Closed (its balance swept) before the credit lands, its refund not claimed yet.
      store.aroundNextCredit({ before: async () => void (await sessions.close(id)) })
      expect(await deposits.topUp(hash, claimed)).toEqual({
        status: 'refused',
        refundSats: 5,
        refundStatus: 'pending',
      })
      expect(await sessions.claimRefund(id)).toMatchObject({ refundSats: 12n })
      expect(await sessions.balance(id)).toMatchObject({ available: 0n })
      expect(failures).toEqual([])
    })

    it('a close whose sweep took the credit into its refund: nothing left to give back, never credited', async () => {
      const store = plainStore()
      const { sessions, deposits, failures } = depositsOn(store)
      await sessions.open(record, 10n)
      const claimed = (await deposits.claim(hash, topUp))!
      // The close runs right after the increment: its sweep takes the credit with the rest.
      store.aroundNextCredit({ after: async () => void (await sessions.close(id)) })
      expect(await deposits.topUp(hash, claimed)).toEqual({
        status: 'refused',
        refundSats: 0,
        refundStatus: 'skipped',
      })
      expect(await deposits.get(hash)).toMatchObject({
        state: 'refused',
        refundStatus: 'skipped',
        backSats: '0',
      })
      expect(await sessions.claimRefund(id)).toMatchObject({ refundSats: 15n })
      expect(await sessions.balance(id)).toEqual({ deposit: 15n, available: 0n, spent: 15n })
      expect(failures).toEqual([])
    })
  })
})
