import { describe, expect, it } from 'vitest'
import type { AtomicStep, Store } from '../Store.js'
import { atomicOf as atomic, longTtl, type StoreSuite, sleep } from './describeStore.js'

/**
 * Registers the cases of the optional {@link Store.atomic} capability: each step's semantics, stopping
 * at the first step that does not apply (earlier steps stay applied), TTLs, and concurrent batches that
 * advance a high-water mark and spend against it without ever spending beyond it. A store without the
 * capability skips them with a printed reason.
 *
 * @example
 * ```ts
 * storeAtomicCases(suite)
 * ```
 */
export function storeAtomicCases(suite: StoreSuite): void {
  const { store, key, pick, shortTtl } = suite
  describe('atomic (optional capability)', () => {
    it('runs check, compareAndSet, increment and setIfAtLeast in order, later steps seeing earlier writes', async (context) => {
      if (!store().atomic) {
        console.warn('[skip] this store does not implement the optional atomic() capability')
        context.skip()
      }
      const [mark, spent, ok, guard] = [key('mark'), key('spent'), key('ok'), key('guard')]
      await store().set(guard, 'g1', longTtl)
      const first = await atomic(store(), [
        { op: 'check', key: guard, equals: 'g1' },
        { op: 'compareAndSet', key: mark, expected: undefined, next: '10', ttlMs: longTtl },
        { op: 'increment', key: spent, delta: 10n, ttlMs: longTtl, max: 10n },
        { op: 'setIfAtLeast', key: ok, value: 'mark=10', ttlMs: longTtl, counter: spent, atLeast: 10n },
      ])
      expect(first).toEqual({
        completed: true,
        results: [
          { op: 'check', applied: true, value: 'g1' },
          { op: 'compareAndSet', applied: true, value: '10' },
          { op: 'increment', applied: true, value: 10n },
          { op: 'setIfAtLeast', applied: true },
        ],
      })
      expect(await store().get(mark)).toBe('10')
      expect(await store().get(spent)).toBe('10')
      expect(await store().get(ok)).toBe('mark=10')
      // setIfAtLeast below its threshold writes nothing and does not stop the batch.
      const below = await atomic(store(), [
        { op: 'setIfAtLeast', key: ok, value: 'mark=11', ttlMs: longTtl, counter: spent, atLeast: 11n },
        { op: 'increment', key: spent, delta: 0n, ttlMs: longTtl },
      ])
      expect(below).toEqual({
        completed: true,
        results: [
          { op: 'setIfAtLeast', applied: false },
          { op: 'increment', applied: true, value: 10n },
        ],
      })
      expect(await store().get(ok)).toBe('mark=10')
    })

    it('stops at the first step that does not apply, keeps earlier writes, reports the current value', async (context) => {
      if (!store().atomic) context.skip()
      const [a, b, c] = [key('stop-a'), key('stop-b'), key('stop-c')]
      await store().set(b, 'actual', longTtl)
      const stopped = await atomic(store(), [
        { op: 'compareAndSet', key: a, expected: undefined, next: 'written', ttlMs: longTtl },
        { op: 'check', key: b, equals: 'expected' },
        { op: 'compareAndSet', key: c, expected: undefined, next: 'never', ttlMs: longTtl },
      ])
      expect(stopped).toEqual({
        completed: false,
        results: [
          { op: 'compareAndSet', applied: true, value: 'written' },
          { op: 'check', applied: false, value: 'actual' },
        ],
      })
      expect(await store().get(a)).toBe('written')
      expect(await store().get(c)).toBeUndefined()
      // A compareAndSet against a stale value reports the current one; a check of absence sees an absent key.
      const cas = await atomic(store(), [
        { op: 'check', key: key('absent'), equals: undefined },
        { op: 'compareAndSet', key: b, expected: 'stale', next: 'x', ttlMs: longTtl },
      ])
      expect(cas).toEqual({
        completed: false,
        results: [
          { op: 'check', applied: true, value: undefined },
          { op: 'compareAndSet', applied: false, value: 'actual' },
        ],
      })
      // An increment out of bounds stops the batch and leaves the counter as it was.
      const counter = key('stop-counter')
      const bounded = await atomic(store(), [
        { op: 'increment', key: counter, delta: 5n, ttlMs: longTtl, max: 7n },
        { op: 'increment', key: counter, delta: 5n, ttlMs: longTtl, max: 7n },
        { op: 'compareAndSet', key: c, expected: undefined, next: 'never', ttlMs: longTtl },
      ])
      expect(bounded).toEqual({
        completed: false,
        results: [
          { op: 'increment', applied: true, value: 5n },
          { op: 'increment', applied: false, value: 5n },
        ],
      })
      expect(await store().get(counter)).toBe('5')
      expect(await store().get(c)).toBeUndefined()
      const low = await atomic(store(), [
        { op: 'increment', key: counter, delta: -6n, ttlMs: longTtl, min: 0n },
      ])
      expect(low).toEqual({ completed: false, results: [{ op: 'increment', applied: false, value: 5n }] })
    })

    it('keeps counters exact beyond 2^53 and refuses a non-integer counter', async (context) => {
      if (!store().atomic) context.skip()
      const counter = key('big')
      const big = 10n ** 30n + 7n
      const result = await atomic(store(), [
        { op: 'increment', key: counter, delta: big, ttlMs: longTtl, max: big },
        { op: 'setIfAtLeast', key: key('big-ok'), value: 'v', ttlMs: longTtl, counter, atLeast: big },
      ])
      expect(result.results).toEqual([
        { op: 'increment', applied: true, value: big },
        { op: 'setIfAtLeast', applied: true },
      ])
      const text = key('text')
      await store().set(text, 'not a number', longTtl)
      await expect(
        atomic(store(), [{ op: 'increment', key: text, delta: 1n, ttlMs: longTtl }]),
      ).rejects.toMatchObject({ code: 'store_invalid_counter' })
    })

    it('treats expired keys as absent and applies each write its own TTL', async (context) => {
      if (!store().atomic) context.skip()
      const [a, b] = [key('ttl-a'), key('ttl-b')]
      await store().set(a, 'old', shortTtl)
      await sleep(shortTtl * 2)
      const result = await atomic(store(), [
        { op: 'check', key: a, equals: undefined },
        { op: 'compareAndSet', key: a, expected: undefined, next: 'short', ttlMs: shortTtl },
        { op: 'increment', key: b, delta: 1n, ttlMs: longTtl },
      ])
      expect(result.completed).toBe(true)
      await sleep(shortTtl * 2)
      expect(await store().get(a)).toBeUndefined()
      expect(await store().get(b)).toBe('1')
    })

    it('60 concurrent batches advancing a mark and spending against it never spend beyond it', async (context) => {
      if (!store().atomic) context.skip()
      // A cumulative authorization: each batch raises the mark (compare-and-set against the value it
      // last saw, retried on conflict) and spends 1 bounded by the mark it wrote or found.
      const [mark, spent] = [key('race-mark'), key('race-spent')]
      const run = async (index: number) => {
        let seen: string | undefined
        for (let attempt = 0; attempt < 200; attempt++) {
          const current = seen === undefined ? 0 : Number(seen)
          const next = String(Math.max(current, index % 20))
          const steps: AtomicStep[] =
            next === seen
              ? [{ op: 'check', key: mark, equals: seen }]
              : [{ op: 'compareAndSet', key: mark, expected: seen, next, ttlMs: longTtl }]
          steps.push({ op: 'increment', key: spent, delta: 1n, ttlMs: longTtl, max: BigInt(next) })
          const result = await atomic(pick(index), steps)
          const head = result.results[0]!
          if (head.applied) return result.results[1]!.applied
          seen = (head as { value: string | undefined }).value
        }
        throw new Error('no progress')
      }
      const outcomes = await Promise.all(Array.from({ length: 60 }, (_, index) => run(index)))
      const finalMark = BigInt((await store().get(mark)) ?? '0')
      const finalSpent = BigInt((await store().get(spent)) ?? '0')
      expect(finalMark).toBe(19n)
      expect(finalSpent).toBeLessThanOrEqual(finalMark)
      expect(BigInt(outcomes.filter(Boolean).length)).toBe(finalSpent)
    })
  })
}
