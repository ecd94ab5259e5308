// Redis store benchmark: consume (putIfAbsent) ops/s and verify + consume through the core Server on a
// RedisStore, against the Redis at MPPKIT_REDIS_URL (default redis://127.0.0.1:6379). Skipped with a
// printed line when Redis is unreachable. Writes only under a random `mppkit-bench:<run>:` prefix and
// deletes those keys afterwards.
import { Redis } from 'ioredis'
import { RedisStore } from '../dist/index.js'
import { benchStore } from './storeBench.mjs'

const url = process.env.MPPKIT_REDIS_URL ?? 'redis://127.0.0.1:6379'

async function reachable() {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return undefined
  } catch (error) {
    return error.message
  } finally {
    client.disconnect()
  }
}

export async function run() {
  const failure = await reachable()
  if (failure)
    return [
      {
        name: 'redis',
        text: `skipped: Redis unreachable at ${url} (${failure}); start it or set MPPKIT_REDIS_URL`,
      },
    ]
  const keyPrefix = `mppkit-bench:${Math.random().toString(36).slice(2, 10)}:`
  const store = new RedisStore({ url, keyPrefix })
  try {
    return await benchStore('redis', store)
  } finally {
    await store.close()
    const admin = new Redis(url)
    let cursor = '0'
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1_000)
      if (keys.length > 0) await admin.del(...keys)
      cursor = next
    } while (cursor !== '0')
    await admin.quit()
  }
}
