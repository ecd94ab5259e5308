// Expiry after a row-lock wait. Another connection (another server process's atomic batch, increment or
// compareAndSet) holds the row lock on a key while an operation on that key waits for it. The operation
// must judge expiry, and date what it writes, at the time it gets the row, not at the time its
// transaction or statement started (`now()`): a key that expired during the wait is absent (an expired
// counter is 0), and a write with a TTL shorter than the wait is still there once it is reported.
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { PostgresStore, postgresPoolOptions } from '../src/PostgresStore.js'

const candidates = process.env.MPPKIT_POSTGRES_URL
  ? [process.env.MPPKIT_POSTGRES_URL]
  : ['postgres://postgres@127.0.0.1:5432/test', 'postgres://root@127.0.0.1:5432/test']
const schema = `mppkit_test_wait_${Math.random().toString(36).slice(2, 10)}`

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
  return { reason: `PostgreSQL unreachable (${failures.join('; ')}); set MPPKIT_POSTGRES_URL` }
}

const { url = '', reason } = await probe()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** How long the other connection holds the row lock, and the (shorter) TTL of the value under it. */
const holdMs = 1_500
const shortTtlMs = 400

describe.skipIf(reason)('PostgresStore: expiry is judged after a row-lock wait', () => {
  const pool = new pg.Pool({ ...postgresPoolOptions, connectionString: url, max: 4 })
  const store = new PostgresStore({ pool, schema, cleanupIntervalMs: false })

  afterAll(async () => {
    await store.close()
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await pool.end()
  })

  /**
   * Locks `key`'s row in a second connection (`SELECT … FOR UPDATE`, as another process's operation
   * does) and releases it after {@link holdMs}; resolves once the lock is held.
   */
  async function holdLock(key: string): Promise<{ released: Promise<void> }> {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query('BEGIN')
    const locked = await client.query(`SELECT 1 FROM "${schema}"."store" WHERE key = $1 FOR UPDATE`, [key])
    expect(locked.rowCount).toBe(1)
    const released = (async () => {
      await sleep(holdMs)
      await client.query('COMMIT')
      await client.end()
    })()
    return { released }
  }

  /** Runs `operation` on `key` while another connection holds its row lock; checks that it waited. */
  async function afterWait<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const { released } = await holdLock(key)
    const started = Date.now()
    const result = await operation()
    expect(Date.now() - started).toBeGreaterThanOrEqual(holdMs - 300)
    await released
    return result
  }

  it('atomic check: a value that expired during the wait is absent', async () => {
    await store.migrate()
    await store.set('check', 'v', shortTtlMs)
    const result = await afterWait('check', () => store.atomic([{ op: 'check', key: 'check', equals: 'v' }]))
    expect(result).toEqual({ completed: false, results: [{ op: 'check', applied: false, value: undefined }] })
  })

  it('compareAndSet: a value that expired during the wait does not match', async () => {
    await store.set('cas', 'v', shortTtlMs)
    expect(await afterWait('cas', () => store.compareAndSet('cas', 'v', 'w', 60_000))).toBe(false)
    expect(await store.get('cas')).toBeUndefined()
  })

  it('increment: a counter that expired during the wait counts as 0 (max is not judged on the old value)', async () => {
    await store.set('counter', '90', shortTtlMs)
    const result = await afterWait('counter', () =>
      store.increment('counter', 20n, { ttlMs: 60_000, max: 100n }),
    )
    expect(result).toEqual({ applied: true, value: 20n })
    expect(await store.get('counter')).toBe('20')
  })

  it('atomic increment: a balance that expired during the wait is 0, so spending from it crosses min', async () => {
    await store.set('balance', '90', shortTtlMs)
    const result = await afterWait('balance', () =>
      store.atomic([{ op: 'increment', key: 'balance', delta: -5n, ttlMs: 60_000, min: 0n }]),
    )
    expect(result).toEqual({ completed: false, results: [{ op: 'increment', applied: false, value: 0n }] })
    expect(await store.get('balance')).toBeUndefined()
  })

  it('putIfAbsent: a value that expired during the wait is absent, and the new one gets its full TTL', async () => {
    await store.set('mark', 'old', shortTtlMs)
    expect(await afterWait('mark', () => store.putIfAbsent('mark', 'new', 1_000))).toBe(true)
    expect(await store.get('mark')).toBe('new')
  })

  it('writes reported done keep their whole TTL, counted from after the wait', async () => {
    for (const key of ['batch', 'swap', 'plain', 'count']) await store.set(key, '1', 60_000)
    const ttlMs = 1_000 // shorter than the wait: dated from the transaction's start, it lands expired
    const batch = await afterWait('batch', () =>
      store.atomic([{ op: 'compareAndSet', key: 'batch', expected: '1', next: 'consumed', ttlMs }]),
    )
    expect(batch.completed).toBe(true)
    expect(await store.get('batch')).toBe('consumed')
    expect(await afterWait('swap', () => store.compareAndSet('swap', '1', 'consumed', ttlMs))).toBe(true)
    expect(await store.get('swap')).toBe('consumed')
    await afterWait('plain', () => store.set('plain', 'consumed', ttlMs))
    expect(await store.get('plain')).toBe('consumed')
    expect(await afterWait('count', () => store.increment('count', 1n, { ttlMs }))).toEqual({
      applied: true,
      value: 2n,
    })
    expect(await store.get('count')).toBe('2')
  })
})
