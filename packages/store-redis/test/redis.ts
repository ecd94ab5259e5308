import { Redis } from 'ioredis'

/** The shared Redis the tests use (`MPPKIT_REDIS_URL`, default the local one). */
export const redisUrl = process.env.MPPKIT_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** Why the Redis at `target` cannot be used (printed as a skip reason), or `undefined` when it answers PING. */
export async function redisUnavailableReason(target = redisUrl): Promise<string | undefined> {
  const client = new Redis(target, {
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
    return `Redis unreachable at ${target} (${(error as Error).message}); start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no, or set MPPKIT_REDIS_URL`
  } finally {
    client.disconnect()
  }
}
