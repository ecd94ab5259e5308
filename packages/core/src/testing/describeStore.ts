import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Store } from '../Store.js'

/** Creates one {@link Store} instance; every instance a factory returns MUST share the same backing data. */
export type StoreFactory = () => Store | Promise<Store>

/** Options of {@link describeStore}. */
export type DescribeStoreOptions = {
  /** When set, the whole suite is skipped and this reason is printed (e.g. "Redis unreachable"). */
  skip?: string | undefined
  /**
   * How many store instances the concurrency tests spread their operations over (default 1). Networked
   * stores pass more than one so that operations race on separate connections, as they do between
   * server processes.
   */
  instances?: number
  /** Whether counters beyond 2^53 are supported (default `true`, as the Store contract requires). */
  bigIntegers?: boolean
  /** TTL used by the expiry tests, in milliseconds (default 150; the suite waits twice as long). */
  shortTtlMs?: number
}

const longTtl = 60_000
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * The one shared contract suite of the {@link Store} interface: every operation, TTL expiry, increment
 * bounds, concurrent put-if-absent / compare-and-set / bounded increments, and arbitrary-precision
 * counters. The memory, Redis and PostgreSQL stores all run it; a third-party store can run it too.
 *
 * The suite namespaces its keys with a random prefix, so a factory may hand out stores that share a
 * database with other runs; the caller still removes its own key prefix or schema afterwards.
 *
 * @example
 * ```ts
 * import { MemoryStore } from '@mppkit/core'
 * import { describeStore } from '@mppkit/core/testing'
 *
 * describeStore('MemoryStore', () => new MemoryStore())
 * ```
 * @see draft-httpauth-payment-00 §11.6 (Concurrent Request Handling): "Servers MUST ensure that
 *   concurrent requests with the same Payment credential result in at most one successful payment
 *   settlement and one resource delivery."
 */
export function describeStore(name: string, factory: StoreFactory, options: DescribeStoreOptions = {}): void {
  const skip = options.skip
  if (skip) console.warn(`[skip] describeStore(${name}): ${skip}`)
  const instanceCount = Math.max(1, options.instances ?? 1)
  const shortTtl = options.shortTtlMs ?? 150
  const bigIntegers = options.bigIntegers ?? true

  describe.skipIf(!!skip)(`describeStore(${name})`, () => {
    const stores: Store[] = []
    // Random per run so that concurrent runs against one shared server never collide.
    const run = `t${Math.random().toString(36).slice(2, 10)}`
    let counter = 0
    const key = (label: string) => `${run}:${label}:${++counter}`
    const store = () => stores[0]!
    /** The store that performs operation `index` of a concurrent batch. */
    const pick = (index: number) => stores[index % stores.length]!

    beforeAll(async () => {
      for (let index = 0; index < instanceCount; index++) stores.push(await factory())
    })

    afterAll(async () => {
      await Promise.all(stores.map((instance) => instance.close?.()))
    })

    describe('putIfAbsent', () => {
      it('creates an absent key once and keeps the first value', async () => {
        const k = key('put')
        expect(await store().putIfAbsent(k, 'first', longTtl)).toBe(true)
        expect(await store().putIfAbsent(k, 'second', longTtl)).toBe(false)
        expect(await store().get(k)).toBe('first')
      })

      it('treats keys independently', async () => {
        const a = key('put-a')
        const b = key('put-b')
        expect(await store().putIfAbsent(a, '1', longTtl)).toBe(true)
        expect(await store().putIfAbsent(b, '2', longTtl)).toBe(true)
        expect(await store().get(a)).toBe('1')
        expect(await store().get(b)).toBe('2')
      })

      it('treats an expired key as absent', async () => {
        const k = key('put-expired')
        expect(await store().putIfAbsent(k, 'old', shortTtl)).toBe(true)
        expect(await store().putIfAbsent(k, 'early', longTtl)).toBe(false)
        await sleep(shortTtl * 2)
        expect(await store().putIfAbsent(k, 'new', longTtl)).toBe(true)
        expect(await store().get(k)).toBe('new')
      })

      it('is visible to every instance sharing the backend', async () => {
        const k = key('put-shared')
        expect(await pick(0).putIfAbsent(k, 'v', longTtl)).toBe(true)
        for (let index = 0; index < stores.length; index++) {
          expect(await pick(index).putIfAbsent(k, 'w', longTtl)).toBe(false)
          expect(await pick(index).get(k)).toBe('v')
        }
      })
    })

    describe('get', () => {
      it('returns undefined for an absent key', async () => {
        expect(await store().get(key('absent'))).toBeUndefined()
      })

      it('round-trips empty, unicode, long and JSON values exactly', async () => {
        const values = [
          '',
          ' spaced value ',
          'ünïcödé ✓ 支付 🚀',
          'x'.repeat(20_000),
          JSON.stringify({ status: 200, headers: { 'content-type': 'application/json' }, body: 'e30' }),
          '-0',
          '00042',
        ]
        for (const value of values) {
          const k = key('value')
          await store().set(k, value, longTtl)
          expect(await store().get(k)).toBe(value)
        }
      })

      it('accepts keys with separators, spaces, unicode and long ids', async () => {
        for (const label of ['a:b:c', 'with space', 'ключ/✓', 'z'.repeat(300), 'quote\'"back\\slash']) {
          const k = key(label)
          expect(await store().putIfAbsent(k, label, longTtl)).toBe(true)
          expect(await store().get(k)).toBe(label)
        }
      })

      it('returns undefined once the TTL has passed', async () => {
        const k = key('get-expired')
        await store().set(k, 'v', shortTtl)
        expect(await store().get(k)).toBe('v')
        await sleep(shortTtl * 2)
        expect(await store().get(k)).toBeUndefined()
      })
    })

    describe('set', () => {
      it('overwrites an existing value', async () => {
        const k = key('set')
        await store().set(k, 'a', longTtl)
        await store().set(k, 'b', longTtl)
        expect(await store().get(k)).toBe('b')
      })

      it('refreshes the TTL on every write', async () => {
        const k = key('set-refresh')
        await store().set(k, 'a', shortTtl)
        await store().set(k, 'b', longTtl)
        await sleep(shortTtl * 2)
        expect(await store().get(k)).toBe('b')
      })

      it('shortens the TTL when written with a shorter one', async () => {
        const k = key('set-shorten')
        await store().set(k, 'a', longTtl)
        await store().set(k, 'b', shortTtl)
        await sleep(shortTtl * 2)
        expect(await store().get(k)).toBeUndefined()
        expect(await store().putIfAbsent(k, 'c', longTtl)).toBe(true)
      })
    })

    describe('delete', () => {
      it('removes a key so that it can be created again', async () => {
        const k = key('delete')
        await store().set(k, 'v', longTtl)
        await store().delete(k)
        expect(await store().get(k)).toBeUndefined()
        expect(await store().putIfAbsent(k, 'again', longTtl)).toBe(true)
      })

      it('does not fail on an absent key', async () => {
        await expect(store().delete(key('delete-absent'))).resolves.toBeUndefined()
      })
    })

    describe('compareAndSet', () => {
      it('with expected undefined, creates an absent key only', async () => {
        const k = key('cas-create')
        expect(await store().compareAndSet(k, undefined, 'a', longTtl)).toBe(true)
        expect(await store().compareAndSet(k, undefined, 'b', longTtl)).toBe(false)
        expect(await store().get(k)).toBe('a')
      })

      it('swaps only when the current value equals expected', async () => {
        const k = key('cas-swap')
        await store().set(k, 'a', longTtl)
        expect(await store().compareAndSet(k, 'x', 'b', longTtl)).toBe(false)
        expect(await store().get(k)).toBe('a')
        expect(await store().compareAndSet(k, 'a', 'b', longTtl)).toBe(true)
        expect(await store().get(k)).toBe('b')
        expect(await store().compareAndSet(k, 'a', 'c', longTtl)).toBe(false)
        expect(await store().get(k)).toBe('b')
      })

      it('does not match an absent key against a value, nor a present key against undefined', async () => {
        const k = key('cas-absent')
        expect(await store().compareAndSet(k, 'a', 'b', longTtl)).toBe(false)
        expect(await store().get(k)).toBeUndefined()
        await store().set(k, '', longTtl)
        // An empty string is a value, not absence.
        expect(await store().compareAndSet(k, undefined, 'b', longTtl)).toBe(false)
        expect(await store().compareAndSet(k, '', 'b', longTtl)).toBe(true)
        expect(await store().get(k)).toBe('b')
      })

      it('treats an expired key as absent', async () => {
        const k = key('cas-expired')
        await store().set(k, 'a', shortTtl)
        await sleep(shortTtl * 2)
        expect(await store().compareAndSet(k, 'a', 'b', longTtl)).toBe(false)
        expect(await store().compareAndSet(k, undefined, 'c', longTtl)).toBe(true)
        expect(await store().get(k)).toBe('c')
      })

      it('applies the TTL given with the swap', async () => {
        const k = key('cas-ttl')
        await store().set(k, 'a', longTtl)
        expect(await store().compareAndSet(k, 'a', 'b', shortTtl)).toBe(true)
        await sleep(shortTtl * 2)
        expect(await store().get(k)).toBeUndefined()
      })
    })

    describe('increment', () => {
      it('counts from 0 on an absent key and stores a decimal string', async () => {
        const k = key('inc')
        expect(await store().increment(k, 5n, { ttlMs: longTtl })).toEqual({ applied: true, value: 5n })
        expect(await store().increment(k, -7n, { ttlMs: longTtl })).toEqual({ applied: true, value: -2n })
        expect(await store().increment(k, 0n, { ttlMs: longTtl })).toEqual({ applied: true, value: -2n })
        expect(await store().get(k)).toBe('-2')
        expect(await store().increment(k, 2n, { ttlMs: longTtl })).toEqual({ applied: true, value: 0n })
        expect(await store().get(k)).toBe('0')
      })

      it('continues from a value written with set', async () => {
        const k = key('inc-set')
        await store().set(k, '40', longTtl)
        expect(await store().increment(k, 2n, { ttlMs: longTtl })).toEqual({ applied: true, value: 42n })
      })

      it('applies a result equal to max and refuses one above it, leaving the value unchanged', async () => {
        const k = key('inc-max')
        expect(await store().increment(k, 7n, { ttlMs: longTtl, max: 10n })).toEqual({
          applied: true,
          value: 7n,
        })
        expect(await store().increment(k, 4n, { ttlMs: longTtl, max: 10n })).toEqual({
          applied: false,
          value: 7n,
        })
        expect(await store().get(k)).toBe('7')
        expect(await store().increment(k, 3n, { ttlMs: longTtl, max: 10n })).toEqual({
          applied: true,
          value: 10n,
        })
        expect(await store().increment(k, 1n, { ttlMs: longTtl, max: 10n })).toEqual({
          applied: false,
          value: 10n,
        })
      })

      it('applies a result equal to min and refuses one below it', async () => {
        const k = key('inc-min')
        await store().set(k, '10', longTtl)
        expect(await store().increment(k, -11n, { ttlMs: longTtl, min: 0n })).toEqual({
          applied: false,
          value: 10n,
        })
        expect(await store().increment(k, -10n, { ttlMs: longTtl, min: 0n })).toEqual({
          applied: true,
          value: 0n,
        })
        expect(await store().increment(k, -1n, { ttlMs: longTtl, min: 0n })).toEqual({
          applied: false,
          value: 0n,
        })
        expect(await store().get(k)).toBe('0')
      })

      it('checks both bounds together, including negative bounds', async () => {
        const k = key('inc-both')
        const bounds = { ttlMs: longTtl, min: -5n, max: 5n }
        expect(await store().increment(k, -5n, bounds)).toEqual({ applied: true, value: -5n })
        expect(await store().increment(k, -1n, bounds)).toEqual({ applied: false, value: -5n })
        expect(await store().increment(k, 11n, bounds)).toEqual({ applied: false, value: -5n })
        expect(await store().increment(k, 10n, bounds)).toEqual({ applied: true, value: 5n })
      })

      it('leaves an absent key absent when the first increment is out of bounds', async () => {
        const k = key('inc-absent')
        expect(await store().increment(k, 5n, { ttlMs: longTtl, max: 4n })).toEqual({
          applied: false,
          value: 0n,
        })
        expect(await store().increment(k, -1n, { ttlMs: longTtl, min: 0n })).toEqual({
          applied: false,
          value: 0n,
        })
        expect(await store().get(k)).toBeUndefined()
      })

      it('refreshes the TTL when applied and counts from 0 after expiry', async () => {
        const k = key('inc-ttl')
        await store().increment(k, 1n, { ttlMs: shortTtl })
        await store().increment(k, 1n, { ttlMs: longTtl })
        await sleep(shortTtl * 2)
        expect(await store().get(k)).toBe('2')

        const e = key('inc-expire')
        await store().increment(e, 9n, { ttlMs: shortTtl })
        await sleep(shortTtl * 2)
        expect(await store().get(e)).toBeUndefined()
        expect(await store().increment(e, 1n, { ttlMs: longTtl, max: 1n })).toEqual({
          applied: true,
          value: 1n,
        })
      })

      it.skipIf(!bigIntegers)('is exact beyond 2^53 and beyond 2^64', async () => {
        const k = key('inc-big')
        const big = 2n ** 64n + 1n
        expect(await store().increment(k, big, { ttlMs: longTtl })).toEqual({ applied: true, value: big })
        expect(await store().increment(k, 1n, { ttlMs: longTtl })).toEqual({ applied: true, value: big + 1n })
        expect(await store().get(k)).toBe((big + 1n).toString())
        const huge = 10n ** 40n + 123_456_789n
        expect(await store().increment(k, -huge, { ttlMs: longTtl })).toEqual({
          applied: true,
          value: big + 1n - huge,
        })
        // 2^53 + 1 is the first integer a double cannot hold: the bound must still be exact.
        const edge = key('inc-edge')
        const max = 2n ** 53n + 1n
        expect(await store().increment(edge, 2n ** 53n, { ttlMs: longTtl, max })).toEqual({
          applied: true,
          value: 2n ** 53n,
        })
        expect(await store().increment(edge, 1n, { ttlMs: longTtl, max })).toEqual({
          applied: true,
          value: max,
        })
        expect(await store().increment(edge, 1n, { ttlMs: longTtl, max })).toEqual({
          applied: false,
          value: max,
        })
        const wei = 10n ** 30n
        const balance = key('inc-wei')
        await store().set(balance, wei.toString(), longTtl)
        expect(await store().increment(balance, -(wei - 1n), { ttlMs: longTtl, min: 0n })).toEqual({
          applied: true,
          value: 1n,
        })
        expect(await store().increment(balance, -2n, { ttlMs: longTtl, min: 0n })).toEqual({
          applied: false,
          value: 1n,
        })
      })

      it('rejects with store_invalid_counter when the key holds anything but a decimal integer', async () => {
        // Each of these parses with JavaScript's BigInt or Number ('' → 0, ' 7 ' → 7, '0x10' → 16…);
        // a counter is only ever written as a decimal integer, so every store refuses them alike.
        const values = [
          'not a number',
          '',
          ' 7 ',
          '7\n',
          '+7',
          '0x10',
          '0b11',
          '0o7',
          '1e3',
          '1.5',
          '1_000',
          '--1',
          '-',
          '١٢',
          '７',
        ]
        for (const value of values) {
          const k = key('inc-text')
          await store().set(k, value, longTtl)
          const error = await store()
            .increment(k, 1n, { ttlMs: longTtl })
            .then(
              (result) => ({ value, result }),
              (caught: unknown) => caught,
            )
          expect(error, JSON.stringify(value)).toMatchObject({ code: 'store_invalid_counter' })
          expect(await store().get(k)).toBe(value)
        }
      })

      it('reads leading zeros and negative zero as decimal integers', async () => {
        for (const [value, next] of [
          ['00042', 43n],
          ['-0', 1n],
          ['-007', -6n],
        ] as const) {
          const k = key('inc-zeros')
          await store().set(k, value, longTtl)
          expect(await store().increment(k, 1n, { ttlMs: longTtl })).toEqual({ applied: true, value: next })
        }
      })
    })

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
          Array.from({ length: 500 }, (_, index) =>
            pick(index).increment(k, -3n, { ttlMs: longTtl, min: 0n }),
          ),
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
  })
}
