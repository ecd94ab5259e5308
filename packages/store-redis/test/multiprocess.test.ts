import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll } from 'vitest'
import { describeMultiprocess } from './multiprocess/harness.js'

const url = process.env.MPPKIT_REDIS_URL ?? 'redis://127.0.0.1:6379'
const keyPrefix = `mppkit-test-mp:${Math.random().toString(36).slice(2, 10)}:`

async function probe(): Promise<string | undefined> {
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
    return `Redis unreachable at ${url} (${(error as Error).message}); start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no, or set MPPKIT_REDIS_URL`
  } finally {
    client.disconnect()
  }
}

const skip = await probe()
const backend = new URL(url)

describeMultiprocess({
  name: 'RedisStore',
  skip,
  storeModule: fileURLToPath(new URL('./childStore.ts', import.meta.url)),
  backend: { host: backend.hostname, port: Number(backend.port || 6379) },
  storeConfig: (proxyPort) => {
    const proxied = new URL(url)
    proxied.hostname = '127.0.0.1'
    proxied.port = String(proxyPort)
    return { url: proxied.toString(), keyPrefix }
  },
})

afterAll(async () => {
  if (skip) return
  const admin = new Redis(url)
  let cursor = '0'
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1_000)
    if (keys.length > 0) await admin.del(...keys)
    cursor = next
  } while (cursor !== '0')
  await admin.quit()
})
