import { describeMethod } from '@mppkit/core/testing'
import { RedisStore } from '@mppkit/store-redis'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { tempoChargeKit, tempoSessionKit } from '../../method-tempo/test/kitFixtures.js'
import { redisUnavailableReason, redisUrl } from './redis.js'

// The conformance kit for Tempo charge and session with the server's Store on Redis: consumed
// challenges, idempotency records and session accounting all live there.

const skip = tempoUnavailableReason() ?? (await redisUnavailableReason())
const prefixes: string[] = []
const store = () => {
  const keyPrefix = `mppkit-test-kit:${Math.random().toString(36).slice(2, 10)}:`
  prefixes.push(keyPrefix)
  return new RedisStore({ url: redisUrl, keyPrefix })
}

describeMethod(tempoChargeKit('tempo/charge on Redis (anvil, pull)', { skip, store }))
describeMethod(tempoSessionKit('tempo/session on Redis (anvil, v1 escrow)', { skip, store }))

describe.skipIf(!!skip)('the kit on Redis', () => {
  it('kept the consumed challenges and session state in the injected Redis stores', async () => {
    expect(prefixes).toHaveLength(2)
    const redis = new Redis(redisUrl)
    try {
      for (const prefix of prefixes) {
        const keys = await redis.keys(`${prefix}*`)
        expect(keys.some((k) => k.includes('consumed:'))).toBe(true)
        if (keys.length) await redis.del(...keys)
      }
    } finally {
      redis.disconnect()
    }
  })
})
