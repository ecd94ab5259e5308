// Two RedisStores with different key prefixes never share a key. UTF-8 cannot encode an unpaired
// surrogate (it would be sent as U+FFFD), so a prefix holding one is refused: 't\ud800:' and 't\ufffd:'
// would otherwise be one namespace, and a credential consumed under one read as consumed under the other.
import { ConfigurationError } from '@mppkit/core'
import { RedisStore } from '@mppkit/store-redis'
import { afterAll, describe, expect, it } from 'vitest'
import { redisUnavailableReason, redisUrl } from './redis.js'

const reason = await redisUnavailableReason()
const tag = `mppkit-test-prefix:${Math.random().toString(36).slice(2, 10)}`

describe('RedisStore keyPrefix', () => {
  it('refuses an unpaired surrogate (high, low, at either end)', () => {
    for (const keyPrefix of [`${tag}\ud800:`, `${tag}\udc00:`, '\udfff', `${tag}:\ud83d`])
      expect(() => new RedisStore({ url: redisUrl, keyPrefix })).toThrow(ConfigurationError)
  })

  describe.skipIf(!!reason)('on Redis', () => {
    const stores = [`${tag}\ufffd:`, `${tag}\u{1f600}:`, `${tag}:`].map(
      (keyPrefix) => new RedisStore({ url: redisUrl, keyPrefix }),
    )
    afterAll(async () => {
      for (const store of stores) {
        await store.delete('consumed:x')
        await store.close()
      }
    })

    it('accepts U+FFFD and a paired surrogate, each its own namespace', async () => {
      for (const store of stores) expect(await store.putIfAbsent('consumed:x', '1', 60_000)).toBe(true)
    })
  })
})
