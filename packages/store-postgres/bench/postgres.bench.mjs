// PostgreSQL store benchmark: consume (putIfAbsent) ops/s and verify + consume through the core Server
// on a PostgresStore, against MPPKIT_POSTGRES_URL (default: database `test` on 127.0.0.1:5432 as
// `postgres`, then as `root`). Skipped with a printed line when PostgreSQL is unreachable. Uses a random
// `mppkit_bench_<run>` schema and drops it afterwards.
import pg from 'pg'
import { benchStore } from '../../store-redis/bench/storeBench.mjs'
import { PostgresStore } from '../dist/index.js'

const candidates = process.env.MPPKIT_POSTGRES_URL
  ? [process.env.MPPKIT_POSTGRES_URL]
  : ['postgres://postgres@127.0.0.1:5432/test', 'postgres://root@127.0.0.1:5432/test']

async function probe() {
  const failures = []
  for (const url of candidates) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.query('SELECT 1')
      return { url }
    } catch (error) {
      failures.push(error.message)
    } finally {
      await client.end().catch(() => {})
    }
  }
  return { failure: failures.join('; ') }
}

export async function run() {
  const { url, failure } = await probe()
  if (failure)
    return [
      {
        name: 'postgres',
        text: `skipped: PostgreSQL unreachable (${failure}); start it or set MPPKIT_POSTGRES_URL`,
      },
    ]
  const schema = `mppkit_bench_${Math.random().toString(36).slice(2, 10)}`
  const store = new PostgresStore({ connectionString: url, schema })
  try {
    await store.migrate()
    // Each commit waits for the WAL flush (synchronous_commit), so sequential rounds are short.
    return await benchStore('postgres', store, { sequential: 500, concurrent: 4_000 })
  } finally {
    await store.close()
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await admin.end()
  }
}
