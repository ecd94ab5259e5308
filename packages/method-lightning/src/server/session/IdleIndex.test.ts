import { MemoryStore } from '@mppkit/core'
import { describe, expect, it } from 'vitest'
import { IdleIndex } from './IdleIndex.js'

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `s${from + i}`)

/** Sweeps once, recording the visits; `open` decides which sessions stay indexed. */
async function sweep(index: IdleIndex, open: Set<string>) {
  const visited: string[] = []
  const swept = await index.sweep(async (id) => {
    visited.push(id)
    return open.has(id) ? 'keep' : 'drop'
  })
  return { swept, visited: visited.sort() }
}

describe('IdleIndex', () => {
  it('finds every session added through any instance on the same store, and forgets dropped ones', async () => {
    const store = new MemoryStore()
    const [a, b] = [new IdleIndex(store, { ttlMs: 60_000 }), new IdleIndex(store, { ttlMs: 60_000 })]
    for (const id of ids(5)) await a!.add(id)
    for (const id of ids(5, 5)) await b!.add(id)
    const open = new Set(['s1', 's7'])
    expect(await sweep(b!, open)).toEqual({ swept: true, visited: ids(10).sort() })
    expect((await sweep(a!, open)).visited).toEqual(['s1', 's7'])
  })

  it('moves sparse kept sessions to the end, so a sweep reads about the open sessions only', async () => {
    const store = new MemoryStore()
    const index = new IdleIndex(store, { ttlMs: 60_000 })
    for (const id of ids(200)) await index.add(id)
    const open = new Set(['s0'])
    await sweep(index, open)
    const reads: string[] = []
    const get = store.get.bind(store)
    store.get = (key: string) => {
      if (key.startsWith('idle:slot:')) reads.push(key)
      return get(key)
    }
    expect((await sweep(index, open)).visited).toEqual(['s0'])
    expect(reads.length).toBeLessThan(5)
  })

  it('lets one sweep run at a time among processes', async () => {
    const store = new MemoryStore()
    const [a, b] = [new IdleIndex(store, { ttlMs: 60_000 }), new IdleIndex(store, { ttlMs: 60_000 })]
    await a!.add('s0')
    let release!: () => void
    const held = a!.sweep(async () => {
      await new Promise<void>((resolve) => {
        release = resolve
      })
      return 'keep'
    })
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(await b!.sweep(async () => 'drop')).toBe(false)
    release()
    expect(await held).toBe(true)
    expect((await sweep(b!, new Set(['s0']))).visited).toEqual(['s0'])
  })

  it('renews its lease batch by batch: a sweep longer than the lease still keeps the others out', async () => {
    let now = 1_000_000
    const store = new MemoryStore({ now: () => now })
    const options = { ttlMs: 3_600_000, leaseMs: 80 }
    const [a, b] = [new IdleIndex(store, options), new IdleIndex(store, options)]
    for (const id of ids(96)) await a!.add(id)
    // Three batches of 32; each batch takes 60 ms of the clock, so the sweep lasts over twice the lease.
    // Mid-batch, another process tries to sweep.
    let visits = 0
    const others: boolean[] = []
    const swept = await a!.sweep(async () => {
      if (visits++ % 32 === 0) {
        now += 60
        others.push(await b!.sweep(async () => 'keep'))
      }
      return 'keep'
    })
    expect(swept).toBe(true)
    expect(visits).toBe(96)
    expect(others).toEqual([false, false, false])
  })

  it('does not lose a session whose slot was allocated but not yet written when a sweep passed', async () => {
    const store = new MemoryStore()
    const index = new IdleIndex(store, { ttlMs: 60_000 })
    await index.add('s0')
    // An open in progress in another process: its slot is allocated, its name not written yet.
    const { value: slot } = await store.increment('idle:next', 1n, { ttlMs: 60_000 })
    expect((await sweep(index, new Set())).visited).toEqual(['s0'])
    await store.set(`idle:slot:${slot}`, 's1', 60_000)
    await store.set('idle:at:s1', String(slot), 60_000)
    expect((await sweep(index, new Set())).visited).toEqual(['s1'])
  })

  it('waits for a slot whose name is written after many sweeps (a slow writer), and finds its session then', async () => {
    const store = new MemoryStore()
    const index = new IdleIndex(store, { ttlMs: 60_000 })
    await index.add('s0')
    const { value: slot } = await store.increment('idle:next', 1n, { ttlMs: 60_000 })
    await store.set('idle:at:s1', String(slot), 60_000)
    // Sweeps pass while the name is not written yet (a paused process, a slow Store round trip); the
    // first drops s0, so nothing before the empty slot holds the next sweep's start back.
    expect((await sweep(index, new Set())).visited).toEqual(['s0'])
    for (let i = 0; i < 5; i++) expect((await sweep(index, new Set())).visited).toEqual([])
    await store.set(`idle:slot:${slot}`, 's1', 60_000)
    expect((await sweep(index, new Set())).visited).toEqual(['s1'])
  })

  it('gives up a slot still without its name after pendingSlotMs (its writer died), and never waits on dropped slots', async () => {
    const store = new MemoryStore()
    const index = new IdleIndex(store, { ttlMs: 3_600_000, pendingSlotMs: 1_000 })
    for (const id of ids(100)) await index.add(id)
    const { value: dead } = await store.increment('idle:next', 1n, { ttlMs: 3_600_000 })
    const reads: string[] = []
    const get = store.get.bind(store)
    store.get = (key: string) => {
      if (key.startsWith('idle:slot:')) reads.push(key)
      return get(key)
    }
    const sweepAt = async (now: number) => {
      reads.length = 0
      await index.sweep(async () => 'drop', undefined, now)
      return reads.length
    }
    // All 100 dropped; the empty slot is waited for: the next sweep starts there, reading only it.
    expect(await sweepAt(0)).toBe(101)
    expect(await sweepAt(500)).toBe(1)
    expect(await store.get('idle:low')).toBe(`${dead}:${dead}:${dead}@0`)
    // Past pendingSlotMs, its writer is taken for dead: the sweep after reads nothing.
    expect(await sweepAt(1_000)).toBe(1)
    expect(await sweepAt(1_001)).toBe(0)
    expect(await store.get('idle:low')).toBe(`${dead + 1n}:${dead}`)
  })

  it('does not lose a session whose open is between its two index writes when another process sweeps', async () => {
    const store = new MemoryStore()
    const [opener, sweeper] = [
      new IdleIndex(store, { ttlMs: 60_000 }),
      new IdleIndex(store, { ttlMs: 60_000 }),
    ]
    // Hold the opener's second write until a sweep has run (a slow store round trip in another process).
    let writes = 0
    let held!: () => void
    const set = store.set.bind(store)
    store.set = async (...args: Parameters<typeof set>) => {
      if (args[0].startsWith('idle:') && ++writes === 2)
        await new Promise<void>((resolve) => (held = resolve))
      return set(...args)
    }
    const adding = opener!.add('s0')
    while (!held) await new Promise((resolve) => setTimeout(resolve, 1))
    expect((await sweep(sweeper!, new Set(['s0']))).swept).toBe(true)
    held()
    await adding
    // Found by the next sweep of any process, and kept while open.
    expect((await sweep(sweeper!, new Set(['s0']))).visited).toEqual(['s0'])
    expect((await sweep(opener!, new Set())).visited).toEqual(['s0'])
  })

  it('stops an aborted sweep after its batch and frees the lease; the next sweep, anywhere, visits the rest', async () => {
    const store = new MemoryStore()
    const [a, b] = [new IdleIndex(store, { ttlMs: 60_000 }), new IdleIndex(store, { ttlMs: 60_000 })]
    for (const id of ids(100)) await a!.add(id)
    const closing = new AbortController()
    const first: string[] = []
    expect(
      await a!.sweep(async (id) => {
        first.push(id)
        closing.abort()
        return 'drop'
      }, closing.signal),
    ).toBe(true)
    // One batch of 32 visited (and dropped); the lease is free at once, not after its 60 s.
    expect(first).toHaveLength(32)
    expect(await store.get('idle:lock')).toBe('free')
    const { swept, visited } = await sweep(b!, new Set())
    expect(swept).toBe(true)
    expect(visited).toEqual(
      ids(100)
        .filter((id) => !first.includes(id))
        .sort(),
    )
  })
})
