import { describe, expect, it } from 'vitest'
import type { Store } from '../Store.js'
import { longTtl, type StoreSuite, sleep } from './describeStore.js'

/**
 * Registers the concurrency cases of the Store contract: racing put-if-absent, compare-and-set and
 * bounded increments across store instances.
 *
 * @example
 * ```ts
 * storeConcurrencyCases(suite)
 * ```
 * @see draft-httpauth-payment-00 §11.6 (Concurrent Request Handling)
 */
export function storeConcurrencyCases(suite: StoreSuite): void {
  const { store, key, pick, shortTtl } = suite
  describe('concurrency', () => {
    it('200 concurrent putIfAbsent on one key: exactly one succeeds', async () => {
      const k = key('race-put')
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, index) => pick(index).putIfAbsent(k, String(index), longTtl)),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
      expect(await store().get(k)).toBe(String(results.indexOf(true)))
    })

    it('200 concurrent putIfAbsent on one expired key: exactly one succeeds', async () => {
      const k = key('race-put-expired')
      await store().set(k, 'old', shortTtl)
      await sleep(shortTtl * 2)
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, index) => pick(index).putIfAbsent(k, String(index), longTtl)),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
    })

    it('100 concurrent compareAndSet from one value: exactly one succeeds', async () => {
      const k = key('race-cas')
      await store().set(k, 'start', longTtl)
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, index) =>
          pick(index).compareAndSet(k, 'start', String(index), longTtl),
        ),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
      expect(await store().get(k)).toBe(String(results.indexOf(true)))
    })

    it('compareAndSet retry loops lose no update', async () => {
      const k = key('race-cas-loop')
      const workers = 20
      const add = async (instance: Store) => {
        for (;;) {
          const current = await instance.get(k)
          const next = String(Number(current ?? '0') + 1)
          if (await instance.compareAndSet(k, current, next, longTtl)) return
        }
      }
      await Promise.all(Array.from({ length: workers }, (_, index) => add(pick(index))))
      expect(await store().get(k)).toBe(String(workers))
    })

    it('500 concurrent bounded increments never exceed max', async () => {
      const k = key('race-inc-max')
      const results = await Promise.all(
        Array.from({ length: 500 }, (_, index) =>
          pick(index).increment(k, 1n, { ttlMs: longTtl, max: 100n }),
        ),
      )
      const applied = results.filter((result) => result.applied)
      expect(applied).toHaveLength(100)
      // Every applied increment observed a distinct value: no two writers shared a read.
      expect(new Set(applied.map((result) => result.value)).size).toBe(100)
      for (const result of results) expect(result.value <= 100n).toBe(true)
      expect(await store().get(k)).toBe('100')
    })

    it('500 concurrent spends against a balance never go below min', async () => {
      const k = key('race-inc-min')
      await store().set(k, '1000', longTtl)
      const results = await Promise.all(
        Array.from({ length: 500 }, (_, index) => pick(index).increment(k, -3n, { ttlMs: longTtl, min: 0n })),
      )
      expect(results.filter((result) => result.applied)).toHaveLength(333)
      for (const result of results) expect(result.value >= 0n).toBe(true)
      expect(await store().get(k)).toBe('1')
    })

    it('300 concurrent unbounded increments lose no update', async () => {
      const k = key('race-inc')
      await Promise.all(
        Array.from({ length: 300 }, (_, index) =>
          pick(index).increment(k, index % 2 === 0 ? 3n : -1n, { ttlMs: longTtl }),
        ),
      )
      expect(await store().get(k)).toBe(String(150 * 3 - 150))
    })
  })
}
