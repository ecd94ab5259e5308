import { describe, expect, it } from 'vitest'
import { MemoryStore } from '../MemoryStore.js'
import { prefixStore } from './prefixStore.js'

describe('prefixStore', () => {
  it('prefixes the key of every operation, atomic steps included, and keeps their fields', async () => {
    const inner = new MemoryStore()
    const view = prefixStore(inner, 'p:')
    expect(await view.putIfAbsent('a', '1', 60_000)).toBe(true)
    await view.set('b', '2', 60_000)
    expect(await view.compareAndSet('b', '2', '3', 60_000)).toBe(true)
    expect(await view.increment('n', 5n, { ttlMs: 60_000, max: 5n })).toEqual({ applied: true, value: 5n })
    expect(await inner.get('p:a')).toBe('1')
    expect(await inner.get('p:b')).toBe('3')
    expect(await inner.get('a')).toBeUndefined()
    const { completed, results } = await view.atomic!([
      { op: 'check', key: 'a', equals: '1' },
      { op: 'compareAndSet', key: 'b', expected: '3', next: '4', ttlMs: 60_000 },
      { op: 'increment', key: 'n', delta: 1n, ttlMs: 60_000, max: 6n },
      { op: 'setIfAtLeast', key: 'ok', value: 'v', ttlMs: 60_000, counter: 'n', atLeast: 6n },
    ])
    expect(completed).toBe(true)
    expect(results.map((r) => r.applied)).toEqual([true, true, true, true])
    // The bounds travel with the step: 6 + 1 > max 6, and 0 - 1 < min 0, are not applied.
    for (const step of [
      { op: 'increment', key: 'n', delta: 1n, ttlMs: 60_000, max: 6n },
      { op: 'increment', key: 'm', delta: -1n, ttlMs: 60_000, min: 0n },
    ] as const) {
      const bounded = await view.atomic!([step])
      expect(bounded.results[0]!.applied).toBe(false)
    }
    expect(await inner.get('p:n')).toBe('6')
    expect(await inner.get('p:b')).toBe('4')
    expect(await inner.get('p:ok')).toBe('v')
    expect(await inner.get('ok')).toBeUndefined()
    // The same key asked again (the memoized prefixed form) reads the same entry; a new one does too.
    expect(await view.get('b')).toBe('4')
    for (let i = 0; i < 5_000; i++) await view.set(`k${i}`, String(i), 60_000)
    expect(await view.get('k0')).toBe('0')
    expect(await inner.get('p:k4999')).toBe('4999')
    await view.delete('a')
    expect(await inner.get('p:a')).toBeUndefined()
  })
})
