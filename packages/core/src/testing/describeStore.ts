import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AtomicStep, Store } from '../Store.js'
import { storeAtomicCases } from './storeAtomicCases.js'
import { storeConcurrencyCases } from './storeConcurrencyCases.js'
import { storeIncrementCases } from './storeIncrementCases.js'
import { storeKeyCases } from './storeKeyCases.js'

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

/** What the Store contract cases share: the store under test, a fresh-key maker, the instance of a concurrent operation. */
export type StoreSuite = {
  store: () => Store
  key: (label: string) => string
  pick: (index: number) => Store
  shortTtl: number
  bigIntegers: boolean
}

/** TTL of keys that must not expire during a case (ms). */
export const longTtl = 60_000
/** Waits `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Runs `steps` through a store's optional `atomic()` (the cases that call it skip stores without it). */
export function atomicOf(store: Store, steps: AtomicStep[]) {
  expect(store.atomic, 'the store implements atomic()').toBeTypeOf('function')
  return store.atomic!(steps)
}

/**
 * The one shared contract suite of the {@link Store} interface: every operation, TTL expiry, increment
 * bounds, concurrent put-if-absent / compare-and-set / bounded increments, arbitrary-precision
 * counters, and keys of any length or content (100 KB, NUL, unpaired surrogates) kept apart. The
 * memory, Redis and PostgreSQL stores all run it; a third-party store can run it too.
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

    describe('TTL bounds', () => {
      const invalid = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]
      // Beyond what PostgreSQL intervals (~1e16 ms) and Redis `PX` (~1e19 ms) represent.
      const huge = [1e16, 1e19, 1e21, Number.MAX_VALUE]

      it('refuses a NaN or infinite TTL with a ConfigurationError and writes nothing', async () => {
        for (const ttlMs of invalid) {
          const k = key('ttl-invalid')
          const refused = { name: 'ConfigurationError' }
          await expect(store().putIfAbsent(k, 'v', ttlMs)).rejects.toMatchObject(refused)
          await expect(store().set(k, 'v', ttlMs)).rejects.toMatchObject(refused)
          await expect(store().compareAndSet(k, undefined, 'v', ttlMs)).rejects.toMatchObject(refused)
          await expect(store().increment(k, 1n, { ttlMs })).rejects.toMatchObject(refused)
          // atomic() is optional in the Store contract.
          if (store().atomic)
            await expect(
              store().atomic!([
                { op: 'increment', key: k, delta: 1n, ttlMs: longTtl },
                { op: 'compareAndSet', key: `${k}:b`, expected: undefined, next: 'v', ttlMs },
              ]),
            ).rejects.toMatchObject(refused)
          expect(await store().get(k)).toBeUndefined()
          expect(await store().get(`${k}:b`)).toBeUndefined()
        }
      })

      it('takes a TTL of 0, negative or fractional as the shortest one (about 1 ms) on every write, never as no expiry', async () => {
        for (const ttlMs of [0, -1, -1e9, 0.4, 1.5]) {
          const [put, value, cas, counter] = [
            key('ttl-0'),
            key('ttl-0-set'),
            key('ttl-0-cas'),
            key('ttl-0-n'),
          ]
          expect(await store().putIfAbsent(put, 'v', ttlMs)).toBe(true)
          await store().set(value, 'v', ttlMs)
          expect(await store().compareAndSet(cas, undefined, 'v', ttlMs)).toBe(true)
          expect(await store().increment(counter, 1n, { ttlMs })).toEqual({ applied: true, value: 1n })
          await sleep(50)
          for (const k of [put, value, cas, counter])
            expect(await store().get(k), `${k} ${ttlMs}`).toBeUndefined()
          expect(await store().putIfAbsent(put, 'again', longTtl)).toBe(true)
          expect(await store().increment(counter, 1n, { ttlMs: longTtl })).toEqual({
            applied: true,
            value: 1n,
          })
        }
      })

      it('keeps a key written with a TTL too large for the backend instead of failing', async () => {
        for (const ttlMs of huge) {
          const k = key('ttl-huge')
          expect(await store().putIfAbsent(k, 'v', ttlMs)).toBe(true)
          expect(await store().putIfAbsent(k, 'w', longTtl)).toBe(false)
          expect(await store().get(k)).toBe('v')
          await store().set(k, 'x', ttlMs)
          expect(await store().compareAndSet(k, 'x', 'y', ttlMs)).toBe(true)
          expect(await store().get(k)).toBe('y')
          const n = key('ttl-huge-counter')
          expect(await store().increment(n, 2n, { ttlMs })).toEqual({ applied: true, value: 2n })
          expect(await store().increment(n, 1n, { ttlMs, max: 10n })).toEqual({ applied: true, value: 3n })
          if (store().atomic) {
            await store().atomic!([{ op: 'increment', key: n, delta: 1n, ttlMs }])
            expect(await store().get(n)).toBe('4')
          }
        }
      })
    })

    describe('close', () => {
      it('can be called twice; afterwards every operation rejects with StoreUnavailableError, none succeeds', async () => {
        // An instance of its own: the shared ones stay open for the other cases.
        const closing = await factory()
        const k = key('closed')
        expect(await closing.putIfAbsent(k, 'consumed', longTtl)).toBe(true)
        await closing.close?.()
        await expect(closing.close?.()).resolves.toBeUndefined()
        // A closed store that answered as an empty one would accept a consumed credential again.
        const unavailable = { name: 'StoreUnavailableError', status: 503 }
        for (const operation of [
          () => closing.putIfAbsent(k, 'replayed', longTtl),
          () => closing.get(k),
          () => closing.set(k, 'v', longTtl),
          () => closing.delete(k),
          () => closing.compareAndSet(k, undefined, 'v', longTtl),
          () => closing.increment(key('closed-counter'), 1n, { ttlMs: longTtl }),
          ...(closing.atomic ? [() => closing.atomic!([{ op: 'check', key: k, equals: undefined }])] : []),
        ])
          await expect(operation()).rejects.toMatchObject(unavailable)
        // The shared backend (if any) kept the key; closing one instance changes nothing for the others.
        if (stores.length > 1) expect(await store().get(k)).toBe('consumed')
      })

      it('lets the operations started before close() finish (a graceful shutdown drains them), then refuses new ones', async () => {
        // An instance of its own, closed while its first operations (connection, migration) are under way.
        const closing = await factory()
        const keys = Array.from({ length: 20 }, () => key('closing-in-flight'))
        const started = keys.map((k) => closing.putIfAbsent(k, 'drained', longTtl))
        const closed = closing.close?.()
        const settled = await Promise.allSettled(started)
        await closed
        expect(
          settled.map((result) => (result.status === 'fulfilled' ? result.value : result.reason)),
        ).toEqual(keys.map(() => true))
        await expect(closing.get(keys[0]!)).rejects.toMatchObject({ name: 'StoreUnavailableError' })
        if (stores.length > 1) for (const k of keys) expect(await store().get(k)).toBe('drained')
      })
    })

    const suite: StoreSuite = { store, key, pick, shortTtl, bigIntegers }
    storeIncrementCases(suite)
    storeConcurrencyCases(suite)
    storeAtomicCases(suite)
    storeKeyCases(suite)
  })
}
