// Found in review (2026-12-06): a request whose claim of an Idempotency-Key failed must not release
// (delete) the key's record, which may be another request's, paid and delivered: the retry of that
// paid request must still get its response replayed.
import { expect, it } from 'vitest'
import { StoreUnavailableError } from '../../src/Errors.js'
import { MemoryStore } from '../../src/MemoryStore.js'
import type { Store } from '../../src/Store.js'
import { setup, sleep } from './harness.js'

it("a failed claim leaves another request's delivered record alone: its retry is replayed", async () => {
  const inner = new MemoryStore()
  let holdPut: Promise<void> | undefined
  let flakeGet = false
  const isRecord = (key: string) => !key.includes('consumed:')
  const store: Store = {
    putIfAbsent: async (key, value, ttl) => {
      if (holdPut && isRecord(key)) {
        const held = holdPut
        holdPut = undefined
        await held
      }
      return inner.putIfAbsent(key, value, ttl)
    },
    compareAndSet: (key, expected, next, ttl) => inner.compareAndSet(key, expected, next, ttl),
    get: async (key) => {
      if (flakeGet && isRecord(key)) {
        flakeGet = false
        throw new StoreUnavailableError({ detail: 'get flake' })
      }
      return inner.get(key)
    },
    set: (key, value, ttl) => inner.set(key, value, ttl),
    delete: (key) => inner.delete(key),
    increment: (key, delta, options) => inner.increment(key, delta, options),
  }
  const { send, credential, rail } = setup(store)
  const { authorization } = await credential()
  const key = { 'idempotency-key': 'order-7' }
  let go!: () => void
  holdPut = new Promise<void>((resolve) => {
    go = resolve
  })
  // B: its lookup finds nothing, its claim's write is slow.
  const b = send(authorization, key)
  await sleep(20)
  // A, a duplicate of B, settles and is delivered.
  expect(await send(authorization, key)).toBe('200 the paid report')
  // B's write answers false and its read fails: its claim throws (503).
  flakeGet = true
  go()
  expect(await b).toMatch(/^503/)
  // The retry of the paid request: A's response replayed, nothing settled again.
  expect(await send(authorization, key)).toBe('200 the paid report')
  expect(rail.settlements()).toBe(1)
})
