import { describe, expect, it } from 'vitest'
import { StoreUnavailableError } from './Errors.js'
import { MemoryStore } from './MemoryStore.js'
import { describeStore } from './testing/describeStore.js'

describeStore('MemoryStore', () => new MemoryStore())

describe('MemoryStore', () => {
  const clock = () => {
    let now = 1_000_000
    return {
      now: () => now,
      advance: (ms: number) => {
        now += ms
      },
    }
  }

  it('rejects a maxEntries that is not a positive integer', () => {
    expect(() => new MemoryStore({ maxEntries: 0 })).toThrow(/maxEntries/)
    expect(() => new MemoryStore({ maxEntries: 1.5 })).toThrow(/maxEntries/)
  })

  it('never holds more than maxEntries keys and refuses new keys with StoreUnavailableError when full', async () => {
    const time = clock()
    const store = new MemoryStore({ maxEntries: 3, now: time.now })
    for (const key of ['a', 'b', 'c']) expect(await store.putIfAbsent(key, '1', 10_000)).toBe(true)
    const error = await store.putIfAbsent('d', '1', 10_000).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(StoreUnavailableError)
    expect((error as StoreUnavailableError).status).toBe(503)
    expect((error as StoreUnavailableError).retryAfter).toBe(1)
    await expect(store.set('e', '1', 10_000)).rejects.toBeInstanceOf(StoreUnavailableError)
    await expect(store.increment('f', 1n, { ttlMs: 10_000 })).rejects.toBeInstanceOf(StoreUnavailableError)
    expect(store.size).toBe(3)
    // A consumed key is never forgotten early to make room: that would allow a replay.
    expect(await store.putIfAbsent('a', '1', 10_000)).toBe(false)
    // Existing keys can still be rewritten while full.
    await store.set('a', '2', 10_000)
    expect(await store.get('a')).toBe('2')
  })

  it('makes room by evicting expired keys when full', async () => {
    const time = clock()
    const store = new MemoryStore({ maxEntries: 3, now: time.now })
    await store.set('short', '1', 100)
    await store.set('long-1', '1', 10_000)
    await store.set('long-2', '1', 10_000)
    time.advance(101)
    expect(await store.putIfAbsent('new', '1', 10_000)).toBe(true)
    expect(store.size).toBe(3)
    expect(await store.get('short')).toBeUndefined()
    expect(await store.get('long-1')).toBe('1')
  })

  it('sweep removes exactly the expired keys', async () => {
    const time = clock()
    const store = new MemoryStore({ now: time.now })
    for (let index = 0; index < 10; index++) await store.set(`k${index}`, '1', index < 6 ? 50 : 5_000)
    expect(store.size).toBe(10)
    time.advance(50)
    store.sweep()
    expect(store.size).toBe(4)
    expect(await store.get('k6')).toBe('1')
  })

  it('stays bounded when far more keys are written than maxEntries, given TTLs', async () => {
    const time = clock()
    const store = new MemoryStore({ maxEntries: 1_000, now: time.now })
    for (let index = 0; index < 20_000; index++) {
      expect(await store.putIfAbsent(`challenge:${index}`, '1', 100)).toBe(true)
      time.advance(1)
      expect(store.size).toBeLessThanOrEqual(1_000)
    }
  })

  it('close() drops every key', async () => {
    const store = new MemoryStore()
    await store.set('a', '1', 10_000)
    await store.close()
    expect(store.size).toBe(0)
  })
})
