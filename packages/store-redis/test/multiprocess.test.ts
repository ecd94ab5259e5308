import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { afterAll } from 'vitest'
import { describeMultiprocess } from './multiprocess/harness.js'
import { redisUnavailableReason, redisUrl } from './redis.js'

const url = redisUrl
const keyPrefix = `mppkit-test-mp:${Math.random().toString(36).slice(2, 10)}:`

const skip = await redisUnavailableReason()
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
