import { describe, expect, it } from 'vitest'
import { StoreUnavailableError } from '../Errors.js'
import { MemoryStore } from '../MemoryStore.js'
import type { Store } from '../Store.js'
import { createTestRail, testCharge } from '../testing/TestMethod.js'
import { create as createServer } from './Server.js'

const secret = 'health-test-secret-0123456789abcdefghijklm'

describe('Server.check', () => {
  it('reports ok after a store round trip and every method check, and leaves nothing behind', async () => {
    const store = new MemoryStore()
    let checked = 0
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [{ ...createTestRail().server(), check: () => void checked++ }],
      store,
    })
    expect(await server.check()).toEqual({ ok: true, store: 'ok', methods: { 'test/charge': 'ok' } })
    expect(checked).toBe(1)
    expect(store.size).toBe(0)
  })

  it('reports a store outage and a failing rail, without throwing', async () => {
    const inner = new MemoryStore()
    const down: Store = {
      putIfAbsent: (key, value, ttl) => inner.putIfAbsent(key, value, ttl),
      get: (key) => inner.get(key),
      set: async () => {
        throw new StoreUnavailableError()
      },
      delete: (key) => inner.delete(key),
      compareAndSet: (key, expected, next, ttl) => inner.compareAndSet(key, expected, next, ttl),
      increment: (key, delta, options) => inner.increment(key, delta, options),
    }
    const rail = createTestRail()
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [
        rail.server(),
        {
          ...rail.server(),
          definition: { ...testCharge, intent: 'session' } as unknown as typeof testCharge,
          check: async () => {
            throw new Error('RPC unreachable: connect ECONNREFUSED 127.0.0.1:8545')
          },
        },
      ],
      store: down,
      logger: false,
    })
    expect(await server.check()).toMatchInlineSnapshot(`
      {
        "methods": {
          "test/session": "mppkit verify: Error: RPC unreachable: connect ECONNREFUSED 127.0.0.1:8545",
        },
        "ok": false,
        "store": "mppkit store: StoreUnavailableError: Payment store unavailable",
      }
    `)
  })
})
