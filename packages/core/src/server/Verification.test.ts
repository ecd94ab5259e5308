import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import { createTestRail } from '../testing/TestMethod.js'
import { createCore } from './Core.js'
import * as Verification from './Verification.js'

const core = createCore({
  realm: 'api.test',
  secrets: ['verification-test-secret-0123456789abcdef'],
  methods: [createTestRail().server()],
})

describe('ByteBoundedCache', () => {
  it('files long keys by their tail but only ever answers for the exact key', () => {
    const cache = new Verification.ByteBoundedCache<string>()
    const tail = 'T'.repeat(100)
    const a = `a${tail}`
    const b = `b${tail}`
    cache.set(a, 'for a')
    expect(cache.get(a)).toBe('for a')
    // Same last 64 characters, another key: a miss, never a's value.
    expect(cache.get(b)).toBeUndefined()
    // A key equal to a but built anew (another string instance, as each request's header is) hits.
    expect(cache.get(['a', tail].join(''))).toBe('for a')
    // Both kept: keys sharing a tail (two prices of one recipient) do not push each other out.
    cache.set(b, 'for b')
    expect(cache.get(b)).toBe('for b')
    expect(cache.get(a)).toBe('for a')
    expect(cache.get(`c${tail}`)).toBeUndefined()
    // Short keys are filed whole.
    cache.set('short', 'x')
    expect(cache.get('short')).toBe('x')
    expect(cache.get('shorT')).toBeUndefined()
  })
})

describe('Verification.create', () => {
  it('bounds the decoded-request cache by bytes, not by count', () => {
    const verification = Verification.create(core)
    // 200 distinct requests of ~6 KiB each: far more bytes than the budget, far fewer than 256 entries.
    for (let i = 0; i < 200; i++) {
      const requestB64 = Challenge.encodeRequest({ i, pad: 'x'.repeat(6 * 1024) })
      expect(verification.decodeRequest(requestB64)).toMatchObject({ i })
      expect(verification.caches.decoded.bytes).toBeLessThanOrEqual(Verification.cacheBudgetBytes)
    }
    // A request larger than one entry may be is decoded, never kept.
    const before = verification.caches.decoded.bytes
    const huge = Challenge.encodeRequest({ pad: 'y'.repeat(Verification.cacheEntryMaxBytes) })
    expect(verification.decodeRequest(huge)).toMatchObject({ pad: expect.any(String) })
    expect(verification.caches.decoded.bytes).toBe(before)
  })

  it('answers false, never throws, for a request too deep to canonicalize', () => {
    const verification = Verification.create(core)
    let deep: Record<string, unknown> = {}
    for (let i = 0; i < 200_000; i++) deep = { a: deep }
    const echoed = { id: 'x', realm: 'api.test', method: 'test', intent: 'charge', request: deep }
    expect(verification.binds(echoed, 'e30')).toBe(false)
  })
})
