import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll } from 'vitest'
// The harness is shared with @mppkit/store-redis (same scenarios, another store).
import { describeMultiprocess } from '../../store-redis/test/multiprocess/harness.js'

const candidates = process.env.MPPKIT_POSTGRES_URL
  ? [process.env.MPPKIT_POSTGRES_URL]
  : ['postgres://postgres@127.0.0.1:5432/test', 'postgres://root@127.0.0.1:5432/test']
const schema = `mppkit_test_mp_${Math.random().toString(36).slice(2, 10)}`

async function probe(): Promise<{ url?: string; reason?: string }> {
  const failures: string[] = []
  for (const url of candidates) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.query('SELECT 1')
      return { url }
    } catch (error) {
      failures.push(`${url.replace(/\/\/[^@]*@/, '//…@')}: ${(error as Error).message}`)
    } finally {
      await client.end().catch(() => {})
    }
  }
  return {
    reason: `PostgreSQL unreachable (${failures.join('; ')}); start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, or set MPPKIT_POSTGRES_URL`,
  }
}

const { url = 'postgres://127.0.0.1:5432/test', reason } = await probe()
const backend = new URL(url)

describeMultiprocess({
  name: 'PostgresStore',
  skip: reason,
  storeModule: fileURLToPath(new URL('./childStore.ts', import.meta.url)),
  backend: { host: backend.hostname, port: Number(backend.port || 5432) },
  storeConfig: (proxyPort) => {
    const proxied = new URL(url)
    proxied.hostname = '127.0.0.1'
    proxied.port = String(proxyPort)
    return { connectionString: proxied.toString(), schema }
  },
})

afterAll(async () => {
  if (reason) return
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await admin.end()
})
