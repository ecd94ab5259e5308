// Values UTF-8 cannot encode (an unpaired surrogate) are refused: sent as they are, ioredis would store
// U+FFFD in place of each, and a compareAndSet or check expecting 'a\ufffd' would match 'a\ud800'.
import { StoreError } from '@mppkit/core'
import { RedisStore } from '@mppkit/store-redis'
import { afterAll, describe, expect, it } from 'vitest'
import { redisUnavailableReason, redisUrl } from './redis.js'

const reason = await redisUnavailableReason()

describe.skipIf(!!reason)('RedisStore values with an unpaired surrogate', () => {
  const store = new RedisStore({
    url: redisUrl,
    keyPrefix: `mppkit-test-values:${Math.random().toString(36).slice(2, 10)}:`,
  })
  afterAll(async () => {
    for (const key of ['v:set', 'v:put', 'v:batch', 'v:fffd']) await store.delete(key)
    await store.close()
  })

  it('refuses a value with an unpaired surrogate, writes nothing, and never matches U+FFFD with it', async () => {
    const lone = 'a\ud800'
    const refused = async (operation: () => Promise<unknown>) => {
      const error = await operation().then(
        () => expect.fail('the operation succeeded'),
        (caught: unknown) => caught,
      )
      expect(error).toBeInstanceOf(StoreError)
      expect((error as Error).message).toMatch(/unpaired surrogate/)
    }
    await refused(() => store.set('v:set', lone, 60_000))
    await refused(() => store.putIfAbsent('v:put', 'b\udc00', 60_000))
    await refused(() => store.compareAndSet('v:put', undefined, lone, 60_000))
    await refused(() =>
      store.atomic([{ op: 'compareAndSet', key: 'v:batch', expected: undefined, next: lone, ttlMs: 60_000 }]),
    )
    await refused(() =>
      store.atomic([
        { op: 'setIfAtLeast', key: 'v:batch', value: lone, ttlMs: 60_000, counter: 'v:n', atLeast: 0n },
      ]),
    )
    for (const key of ['v:set', 'v:put', 'v:batch']) expect(await store.get(key)).toBeUndefined()
    // A real U+FFFD is stored as is, and an expected value with a lone surrogate never matches it.
    await store.set('v:fffd', 'a\ufffd', 60_000)
    await refused(() => store.compareAndSet('v:fffd', lone, 'taken', 60_000))
    await refused(() => store.atomic([{ op: 'check', key: 'v:fffd', equals: lone }]))
    await refused(() =>
      store.atomic([{ op: 'compareAndSet', key: 'v:fffd', expected: lone, next: 'taken', ttlMs: 60_000 }]),
    )
    expect(await store.get('v:fffd')).toBe('a\ufffd')
    expect(await store.compareAndSet('v:fffd', 'a\ufffd', 'b\u{1f600}', 60_000)).toBe(true)
    expect(await store.get('v:fffd')).toBe('b\u{1f600}')
  })
})
