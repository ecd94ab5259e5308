import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import { ConfigurationError, StoreUnavailableError } from '@mppkit/core'
import { describeStore, payThroughServer } from '@mppkit/core/testing'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresStore, PostgresStoreError, postgresPoolOptions } from './PostgresStore.js'

const candidates = process.env.MPPKIT_POSTGRES_URL
  ? [process.env.MPPKIT_POSTGRES_URL]
  : ['postgres://postgres@127.0.0.1:5432/test', 'postgres://root@127.0.0.1:5432/test']
// A random schema per run, dropped afterwards: parallel runs never share rows.
const schema = `mppkit_test_${Math.random().toString(36).slice(2, 10)}`

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

const { url = '', reason } = await probe()
const pools: pg.Pool[] = []
/** A small pool per store: the suite opens several stores, and the server is shared with other runs. */
const pool = (max = 4) => {
  const created = new pg.Pool({ ...postgresPoolOptions, connectionString: url, max })
  pools.push(created)
  return created
}

describeStore('PostgresStore', () => new PostgresStore({ pool: pool(), schema }), {
  skip: reason,
  instances: 3,
})

/** A TCP port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

describe('PostgresStore (configuration and outage)', () => {
  it('accepts only plain identifiers for schema and table', () => {
    expect(
      () => new PostgresStore({ connectionString: 'postgres://x@127.0.0.1:1/x', schema: 'a"; DROP' }),
    ).toThrow(ConfigurationError)
    expect(
      () => new PostgresStore({ connectionString: 'postgres://x@127.0.0.1:1/x', schema: 'ok', table: 'a.b' }),
    ).toThrow(ConfigurationError)
  })

  it('throws StoreUnavailableError quickly when nothing listens, without an unhandled error event', async () => {
    const port = await closedPort()
    const store = new PostgresStore({
      connectionString: `postgres://postgres@127.0.0.1:${port}/test`,
      schema,
    })
    try {
      await expect(store.migrate()).rejects.toBeInstanceOf(StoreUnavailableError)
      for (const operation of [
        () => store.putIfAbsent('a', '1', 1_000),
        () => store.get('a'),
        () => store.set('a', '1', 1_000),
        () => store.delete('a'),
        () => store.compareAndSet('a', 'x', 'y', 1_000),
        () => store.increment('a', 1n, { ttlMs: 1_000, max: 5n }),
        () => store.cleanup(),
      ]) {
        const started = Date.now()
        const error = await operation().catch((caught: unknown) => caught)
        expect(error).toBeInstanceOf(StoreUnavailableError)
        expect((error as StoreUnavailableError).status).toBe(503)
        expect((error as StoreUnavailableError).retryAfter).toBe(1)
        // The message (for logs) leads with the cause; the problem stays generic.
        expect((error as Error).message).toBe(`PostgreSQL unreachable at 127.0.0.1:${port}: ECONNREFUSED`)
        expect((error as StoreUnavailableError).toProblem().detail).toBe('Payment store unavailable')
        expect(Date.now() - started).toBeLessThan(3_000)
      }
    } finally {
      await store.close()
    }
  })

  it.skipIf(!!reason)('names a database that does not exist in the first line of its error', async () => {
    const missing = new URL(url)
    missing.pathname = '/mppkit_no_such_database'
    const errors: Error[] = []
    const store = new PostgresStore({
      connectionString: missing.href,
      schema,
      onError: (e) => errors.push(e),
    })
    try {
      const error = await store.get('a').catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(PostgresStoreError)
      expect((error as Error).message).toMatchInlineSnapshot(
        `"PostgreSQL: database "mppkit_no_such_database" does not exist (SQLSTATE 3D000)"`,
      )
      expect(JSON.stringify((error as PostgresStoreError).toProblem())).not.toMatch(/mppkit_no_such_database/)
      expect(errors.map((e) => e.message)).toContain((error as Error).message)
    } finally {
      await store.close()
    }
  })
})

describe.skipIf(!!reason)('PostgresStore', () => {
  let admin: pg.Pool

  beforeAll(() => {
    admin = new pg.Pool({ ...postgresPoolOptions, connectionString: url, max: 3 })
    admin.on('error', () => {})
  })

  afterAll(async () => {
    await Promise.all(pools.map((created) => created.end()))
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}_fresh" CASCADE`)
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}_legacy" CASCADE`)
    const left = await admin.query('SELECT 1 FROM pg_namespace WHERE nspname LIKE $1', [`${schema}%`])
    expect(left.rowCount).toBe(0)
    await admin.end()
  })

  const rows = async (where = 'true') =>
    (await admin.query<{ key: string }>(`SELECT key FROM "${schema}"."store" WHERE ${where}`)).rows.map(
      (row) => row.key,
    )

  it('migrate() is idempotent and safe to run from several processes at once; operations migrate lazily', async () => {
    const fresh = `${schema}_fresh`
    const stores = Array.from(
      { length: 5 },
      () => new PostgresStore({ pool: pool(2), schema: fresh, table: 'kv' }),
    )
    // Lazily, on first use, from five stores at once (each has its own pool, like separate processes).
    expect(
      await Promise.all(stores.map((store, index) => store.putIfAbsent('k', String(index), 10_000))),
    ).toEqual(expect.arrayContaining([true, false]))
    await Promise.all(stores.map((store) => store.migrate()))
    await stores[0]!.migrate()
    const columns = await admin.query<{ column_name: string; data_type: string; is_nullable: string }>(
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = 'kv' ORDER BY ordinal_position`,
      [fresh],
    )
    expect(columns.rows).toEqual([
      { column_name: 'key', data_type: 'text', is_nullable: 'NO' },
      { column_name: 'value', data_type: 'text', is_nullable: 'NO' },
      { column_name: 'expires_at', data_type: 'timestamp with time zone', is_nullable: 'NO' },
    ])
    const indexes = await admin.query<{ indexname: string }>(
      'SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname',
      [fresh],
    )
    expect(indexes.rows.map((row) => row.indexname)).toEqual(['kv_expires_at', 'kv_pkey'])
    await Promise.all(stores.map((store) => store.close()))
  })

  it('first migrations of several tables in one new schema at once all succeed (the schema is created once)', async () => {
    // Stores of different tables (one per rail, say) starting together: `CREATE SCHEMA IF NOT EXISTS` from
    // two transactions can collide on the catalog's unique index, so the schema is locked too.
    for (let round = 0; round < 5; round++) {
      const shared = `${schema}_shared${round}`
      const stores = ['a', 'b', 'c', 'd'].map(
        (table) => new PostgresStore({ pool: pool(1), schema: shared, table }),
      )
      try {
        const results = await Promise.allSettled(stores.map((store) => store.migrate()))
        expect(results.filter((result) => result.status === 'rejected')).toEqual([])
        const tables = await admin.query<{ tablename: string }>(
          'SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename',
          [shared],
        )
        expect(tables.rows.map((row) => row.tablename)).toEqual(['a', 'b', 'c', 'd'])
      } finally {
        await Promise.all(stores.map((store) => store.close()))
        await admin.query(`DROP SCHEMA IF EXISTS "${shared}" CASCADE`)
      }
    }
  })

  it('stores TTLs as expires_at from the database clock', async () => {
    const store = new PostgresStore({ pool: pool(1), schema })
    await store.putIfAbsent('layout', 'v', 10_000)
    const row = await admin.query<{ value: string; ms: number }>(
      `SELECT value, extract(epoch FROM expires_at - now()) * 1000 AS ms FROM "${schema}"."store" WHERE key = 'layout'`,
    )
    expect(row.rows[0]?.value).toBe('v')
    expect(Number(row.rows[0]?.ms)).toBeGreaterThan(5_000)
    expect(Number(row.rows[0]?.ms)).toBeLessThanOrEqual(10_000)
    await store.close()
  })

  it('cleanup() deletes exactly the expired rows', async () => {
    const store = new PostgresStore({ pool: pool(1), schema })
    await store.migrate()
    await store.cleanup()
    for (let index = 0; index < 5; index++) await store.set(`cleanup:short:${index}`, '1', 100)
    await store.set('cleanup:long', '1', 60_000)
    await sleep(250)
    expect((await rows(`key LIKE 'cleanup:%'`)).length).toBe(6)
    expect(await store.cleanup()).toBeGreaterThanOrEqual(5)
    expect(await rows(`key LIKE 'cleanup:%'`)).toEqual(['cleanup:long'])
    await store.close()
  })

  it('cleans up periodically when cleanupIntervalMs is set, and close() stops the timer', async () => {
    const errors: Error[] = []
    const store = new PostgresStore({
      pool: pool(1),
      schema,
      cleanupIntervalMs: 100,
      onError: (e) => errors.push(e),
    })
    await store.set('periodic:short', '1', 50)
    await store.set('periodic:long', '1', 60_000)
    const deadline = Date.now() + 3_000
    while ((await rows(`key = 'periodic:short'`)).length > 0 && Date.now() < deadline) await sleep(50)
    expect(await rows(`key LIKE 'periodic:%'`)).toEqual(['periodic:long'])
    await store.close()
    await admin.query(
      `INSERT INTO "${schema}"."store" (key, value, expires_at) VALUES ('periodic:after-close', '1', now())`,
    )
    await sleep(300)
    // The timer is gone: the expired row stays until someone cleans up.
    expect(await rows(`key = 'periodic:after-close'`)).toEqual(['periodic:after-close'])
    expect(errors).toEqual([])
  })

  it('cleans up by itself every five minutes unless told not to; bad intervals are refused', () => {
    const intervals: number[] = []
    const original = globalThis.setInterval
    globalThis.setInterval = ((fn: () => void, ms: number) => {
      intervals.push(ms)
      return original(fn, ms)
    }) as typeof setInterval
    try {
      const stores = [
        new PostgresStore({ pool: pool(1), schema }),
        new PostgresStore({ pool: pool(1), schema, cleanupIntervalMs: false }),
      ]
      expect(intervals).toEqual([300_000])
      for (const store of stores) void store.close()
    } finally {
      globalThis.setInterval = original
    }
    for (const cleanupIntervalMs of [0, -1, Number.NaN, 2 ** 31])
      expect(() => new PostgresStore({ pool: pool(1), schema, cleanupIntervalMs })).toThrow(
        /cleanupIntervalMs must be a positive number/,
      )
  })

  it('close() lets the operations already started finish (first migration, waiting for a connection), then refuses new ones', async () => {
    // close() used to end its pool at once: every operation still waiting for the first migration or for a
    // free connection failed with a 503 (`Cannot use a pool after calling end on the pool`), so a
    // graceful shutdown refused the very requests it was draining.
    // Closed during the first migration, then (migrated beforehand) during the operations' statements:
    // an increment of an absent counter takes two, and close() must not come between them.
    const rounds = [
      { migrated: false, delayMs: 0 },
      { migrated: false, delayMs: 5 },
      { migrated: true, delayMs: 0 },
      { migrated: true, delayMs: 0 },
      { migrated: true, delayMs: 2 },
    ]
    for (const [round, { migrated, delayMs }] of rounds.entries()) {
      const table = `close_drain_${round}`
      const store = new PostgresStore({ connectionString: url, schema, table })
      if (migrated) await store.migrate()
      const started = Array.from({ length: 30 }, (_, index) =>
        index % 3 === 0
          ? store.atomic([{ op: 'increment', key: 'count', delta: 1n, ttlMs: 60_000 }])
          : index % 3 === 1
            ? store.putIfAbsent(`drain:${index}`, String(index), 60_000)
            : store.increment(`spent:${index}`, 2n, { ttlMs: 60_000 }),
      )
      await sleep(delayMs)
      const closing = store.close()
      const results = await Promise.allSettled(started)
      await closing
      expect(results.filter((result) => result.status === 'rejected')).toEqual([])
      expect(
        results
          .filter((_, index) => index % 3 === 1)
          .map((result) => result.status === 'fulfilled' && result.value),
      ).toEqual(Array(10).fill(true))
      expect(
        results
          .filter((_, index) => index % 3 === 2)
          .map((result) => result.status === 'fulfilled' && result.value),
      ).toEqual(Array(10).fill({ applied: true, value: 2n }))
      const stored = await admin.query<{ key: string; value: string }>(
        `SELECT key, value FROM "${schema}"."${table}" ORDER BY key`,
      )
      expect(stored.rowCount).toBe(21)
      expect(stored.rows.find((row) => row.key === 'count')?.value).toBe('10')
      await expect(store.get('drain:1')).rejects.toMatchObject({ name: 'StoreUnavailableError', status: 503 })
      expect(store.pool.totalCount).toBe(0)
    }
  })

  it('uses a pool passed in and leaves it open on close', async () => {
    const own = pool(1)
    const store = new PostgresStore({ pool: own, schema })
    expect(await store.putIfAbsent('own-pool', '1', 10_000)).toBe(true)
    await store.close()
    expect((await own.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }])
    expect(own.listenerCount('error')).toBe(0)
  })

  it('survives pg_terminate_backend of an idle connection: the pool reconnects, the process does not crash', async () => {
    const errors: Error[] = []
    const own = pool(1)
    const store = new PostgresStore({ pool: own, schema, onError: (e) => errors.push(e) })
    expect(await store.putIfAbsent('terminate:before', '1', 10_000)).toBe(true)
    const { rows: before } = await own.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
    const pid = before[0]!.pid
    const poolError = once(own, 'error')
    await admin.query('SELECT pg_terminate_backend($1)', [pid])
    // pg reports the dead idle connection as a pool 'error' event: handled, not a crash.
    await poolError
    expect(errors[0]?.message).toMatch(/terminat/i)
    expect(await store.putIfAbsent('terminate:after', '1', 10_000)).toBe(true)
    const { rows: after } = await own.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
    expect(after[0]!.pid).not.toBe(pid)
    await store.close()
  })

  it('fails an operation whose backend is terminated mid-statement with StoreUnavailableError, then recovers', async () => {
    const own = pool(1)
    const store = new PostgresStore({ pool: own, schema, onError: () => {} })
    await store.set('inflight', '10', 60_000)
    const { rows: pids } = await own.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
    const pid = pids[0]!.pid
    // Hold the row lock from another connection so that the increment is blocked inside its statement.
    const blocker = await admin.connect()
    try {
      await blocker.query('BEGIN')
      await blocker.query(`SELECT 1 FROM "${schema}"."store" WHERE key = 'inflight' FOR UPDATE`)
      const pending = store.increment('inflight', 1n, { ttlMs: 60_000 }).catch((caught: unknown) => caught)
      const deadline = Date.now() + 3_000
      for (;;) {
        const waiting = await admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`,
          [pid],
        )
        if (waiting.rowCount === 1 || Date.now() > deadline) break
        await sleep(20)
      }
      await admin.query('SELECT pg_terminate_backend($1)', [pid])
      expect(await pending).toBeInstanceOf(StoreUnavailableError)
    } finally {
      await blocker.query('ROLLBACK')
      blocker.release()
    }
    // The terminated statement did not apply, and the next operation runs on a new connection.
    expect(await store.get('inflight')).toBe('10')
    expect(await store.increment('inflight', 1n, { ttlMs: 60_000 })).toEqual({ applied: true, value: 11n })
    await store.close()
  })

  it('answers an atomic batch stalled by the network after one query timeout, not two', async () => {
    // A TCP relay to PostgreSQL that can stop forwarding (a network partition, not a refused port).
    const { port: target } = new URL(url)
    let paused = false
    const sockets = new Set<Socket>()
    const relay = createServer((inbound) => {
      const outbound = connect(Number(target || 5432), '127.0.0.1')
      for (const socket of [inbound, outbound]) {
        sockets.add(socket)
        socket.on('error', () => {})
        socket.on('close', () => {
          inbound.destroy()
          outbound.destroy()
        })
      }
      inbound.on('data', (data) => paused || outbound.write(data))
      outbound.on('data', (data) => paused || inbound.write(data))
    })
    relay.listen(0, '127.0.0.1')
    await once(relay, 'listening')
    const relayed = new URL(url)
    relayed.host = `127.0.0.1:${(relay.address() as { port: number }).port}`
    const timeout = 400
    const relayPool = new pg.Pool({
      ...postgresPoolOptions,
      connectionString: relayed.href,
      max: 1,
      query_timeout: timeout,
    })
    relayPool.on('error', () => {})
    const store = new PostgresStore({ pool: relayPool, schema })
    try {
      await store.get('warm')
      paused = true
      const started = Date.now()
      const error = await store
        .atomic([{ op: 'increment', key: 'stalled', delta: 1n, ttlMs: 60_000 }])
        .catch((caught: unknown) => caught)
      const elapsed = Date.now() - started
      expect(error).toBeInstanceOf(StoreUnavailableError)
      // Without it a ROLLBACK on the stalled connection waits for a second query timeout.
      expect(elapsed).toBeLessThan(timeout * 1.75)
      // The stalled connection was destroyed, not returned to the pool.
      expect(relayPool.totalCount).toBe(0)
    } finally {
      paused = false
      await store.close()
      await relayPool.end().catch(() => {})
      for (const socket of sockets) socket.destroy()
      relay.close()
    }
  })

  it('never loses an atomic write to a row deleted while the batch waits for its lock (delete, cleanup)', async () => {
    const own = pool(1)
    const store = new PostgresStore({ pool: own, schema })
    const { rows: pids } = await own.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
    const pid = pids[0]!.pid
    // A consumed marker and a session's spent counter, live, then expired (what cleanup() deletes).
    for (const ttlMs of [60_000, 1]) {
      const [marker, spent] = [`race-delete:marker:${ttlMs}`, `race-delete:spent:${ttlMs}`]
      await store.set(marker, 'old', ttlMs)
      await store.set(spent, '5', ttlMs)
      await sleep(5)
      // Another connection holds the rows and deletes them while the batch waits (a concurrent
      // delete(), or cleanup() of the expired rows), committing once the batch is blocked on them.
      const blocker = await admin.connect()
      try {
        await blocker.query('BEGIN')
        await blocker.query(`SELECT 1 FROM "${schema}"."store" WHERE key = ANY($1) FOR UPDATE`, [
          [marker, spent],
        ])
        const pending = store.atomic([
          { op: 'compareAndSet', key: marker, expected: undefined, next: 'new', ttlMs: 60_000 },
          { op: 'increment', key: spent, delta: 1n, ttlMs: 60_000 },
        ])
        const deadline = Date.now() + 3_000
        for (;;) {
          const waiting = await admin.query(
            `SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'`,
            [pid],
          )
          if (waiting.rowCount === 1 || Date.now() > deadline) break
          await sleep(10)
        }
        await blocker.query(`DELETE FROM "${schema}"."store" WHERE key = ANY($1)`, [[marker, spent]])
        await blocker.query('COMMIT')
        const result = await pending
        // The batch ran after the delete: it saw both keys absent, and what it reports is what is stored.
        expect(result).toEqual({
          completed: true,
          results: [
            { op: 'compareAndSet', applied: true, value: 'new' },
            { op: 'increment', applied: true, value: 1n },
          ],
        })
        expect(await store.get(marker)).toBe('new')
        expect(await store.get(spent)).toBe('1')
      } finally {
        await blocker.query('ROLLBACK').catch(() => {})
        blocker.release()
      }
    }
    await store.close()
  })

  it('cleanup() never deadlocks with an atomic batch on the expired rows it is deleting (no 40P01, no wait)', async () => {
    // cleanup() used to delete every expired row in one statement, locking them in scan order, while a
    // batch locks its rows in key order: a batch holding row `a` and waiting for `b`, and a cleanup holding
    // `b` (scanned first) and waiting for `a`, deadlocked until PostgreSQL aborted one of them after
    // `deadlock_timeout` (1 s): a 503 for the payment request, or a failed cleanup.
    const table = 'cleanup_race'
    const qualified = `"${schema}"."${table}"`
    const own = pool(2)
    const errors: Error[] = []
    const store = new PostgresStore({ pool: own, schema, table, onError: (e) => errors.push(e) })
    await store.migrate()
    const waiting = async () =>
      (
        await admin.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`, [
          `%${qualified}%`,
        ])
      ).rowCount ?? 0
    /** Resolves once `pending` settled or at least `count` statements on the table wait for a lock. */
    const settledOrWaiting = async (pending: Promise<unknown>, count: number) => {
      let settled = false
      void pending.finally(() => {
        settled = true
      })
      const deadline = Date.now() + 3_000
      while (!settled && (await waiting()) < count && Date.now() < deadline) await sleep(10)
    }
    for (let round = 0; round < 3; round++) {
      const [a, b] = [`race-cleanup:${round}:a`, `race-cleanup:${round}:b`]
      // Two expired rows; `b` comes first in both the heap and the expires_at index, so cleanup reaches
      // it before `a`, while a batch locks `a` (the smaller key) first.
      await admin.query(`INSERT INTO ${qualified} VALUES ($1, '5', now() - interval '2 hours')`, [b])
      await admin.query(`INSERT INTO ${qualified} VALUES ($1, 'old', now() - interval '1 hour')`, [a])
      const blocker = await admin.connect()
      try {
        // Another transaction holds `b` for a moment (any operation writing it), so that cleanup and the
        // batch both queue on it: cleanup first, then the batch, which already holds `a`.
        await blocker.query('BEGIN')
        await blocker.query(`SELECT 1 FROM ${qualified} WHERE key = $1 FOR UPDATE`, [b])
        const cleaning = store.cleanup().then(
          (deleted) => ({ deleted }),
          (error: unknown) => ({ error }),
        )
        // Without the fix cleanup waits on `b`; with it, it skips `b` and finishes.
        await settledOrWaiting(cleaning, 1)
        const waitingBefore = await waiting()
        const started = Date.now()
        const batch = store
          .atomic([
            { op: 'compareAndSet', key: a, expected: undefined, next: 'new', ttlMs: 60_000 },
            { op: 'increment', key: b, delta: 1n, ttlMs: 60_000 },
          ])
          .then(
            (result) => ({ result }),
            (error: unknown) => ({ error }),
          )
        await settledOrWaiting(batch, waitingBefore + 1)
        await blocker.query('COMMIT')
        const [cleaned, batched] = await Promise.all([cleaning, batch])
        expect(cleaned).not.toHaveProperty('error')
        expect(batched).toEqual({
          result: {
            completed: true,
            results: [
              { op: 'compareAndSet', applied: true, value: 'new' },
              { op: 'increment', applied: true, value: 1n },
            ],
          },
        })
        // Neither waited for a deadlock to be detected.
        expect(Date.now() - started).toBeLessThan(800)
        expect(await store.get(a)).toBe('new')
        expect(await store.get(b)).toBe('1')
      } finally {
        await blocker.query('ROLLBACK').catch(() => {})
        blocker.release()
      }
    }
    expect(errors).toEqual([])
    await store.close()
  })

  it('reports a counter holding a non-integer as a typed error, not as an outage', async () => {
    const store = new PostgresStore({ pool: pool(1), schema })
    await store.set('text', '1.5', 10_000)
    const error = await store.increment('text', 1n, { ttlMs: 10_000 }).catch((caught: unknown) => caught)
    expect(error).not.toBeInstanceOf(StoreUnavailableError)
    expect((error as { code?: string }).code).toBe('store_invalid_counter')
    await store.close()
  })

  /** A key of exactly `bytes` UTF-8 bytes: `label:` then random base64, which PostgreSQL cannot compress. */
  const incompressible = (label: string, bytes: number) =>
    `${label}:${randomBytes(bytes).toString('base64')}`.slice(0, bytes)
  /** The `key` column of the rows whose stored key starts with `prefix` (a long key keeps a readable head). */
  const storedKeys = async (prefix: string) =>
    (
      await admin.query<{ key: string; bytes: number }>(
        `SELECT key, octet_length(key) AS bytes FROM "${schema}"."store" WHERE starts_with(key, $1) ORDER BY key`,
        [prefix],
      )
    ).rows

  it('takes keys of 3 KB, 10 KB and 100 KB through every operation, on several pools at once', async () => {
    const stores = [1, 2, 3].map(() => new PostgresStore({ pool: pool(3), schema }))
    const [store] = stores as [PostgresStore]
    const run = `long-${Math.random().toString(36).slice(2, 8)}`
    for (const size of [3_000, 10_000, 100_000]) {
      const label = `${run}:${size}`
      const k = incompressible(`${label}:put`, size)
      // The same key but for its last character: only the whole key tells them apart.
      const twin = `${k.slice(0, -1)}${k.endsWith('A') ? 'B' : 'A'}`
      expect(await store.putIfAbsent(k, 'first', 60_000)).toBe(true)
      for (const other of stores) expect(await other.putIfAbsent(k, 'second', 60_000)).toBe(false)
      expect(await stores[2]!.get(k)).toBe('first')
      expect(await store.get(twin)).toBeUndefined()
      expect(await store.putIfAbsent(twin, 'twin', 60_000)).toBe(true)
      expect(await store.get(twin)).toBe('twin')
      expect(await store.get(k)).toBe('first')

      await store.set(k, 'a', 60_000)
      expect(await stores[1]!.get(k)).toBe('a')
      expect(await store.compareAndSet(k, 'x', 'b', 60_000)).toBe(false)
      expect(await store.compareAndSet(k, 'a', 'b', 60_000)).toBe(true)
      expect(await store.compareAndSet(twin, undefined, 'c', 60_000)).toBe(false)
      expect(await store.get(k)).toBe('b')
      expect(await store.get(twin)).toBe('twin')

      const counter = incompressible(`${label}:counter`, size)
      expect(await store.increment(counter, 5n, { ttlMs: 60_000, max: 7n })).toEqual({
        applied: true,
        value: 5n,
      })
      expect(await store.increment(counter, 5n, { ttlMs: 60_000, max: 7n })).toEqual({
        applied: false,
        value: 5n,
      })
      // Concurrent bounded increments of one long counter on three pools: exactly the room is used.
      const raced = await Promise.all(
        Array.from({ length: 12 }, (_, index) =>
          stores[index % 3]!.increment(counter, 1n, { ttlMs: 60_000, max: 10n }),
        ),
      )
      expect(
        raced
          .filter((r) => r.applied)
          .map((r) => Number(r.value))
          .sort((x, y) => x - y),
      ).toEqual([6, 7, 8, 9, 10])
      expect(await store.get(counter)).toBe('10')

      const marker = incompressible(`${label}:marker`, size)
      const ok = incompressible(`${label}:ok`, size)
      expect(
        await store.atomic([
          { op: 'check', key: k, equals: 'b' },
          { op: 'compareAndSet', key: marker, expected: undefined, next: 'm', ttlMs: 60_000 },
          { op: 'increment', key: counter, delta: -4n, ttlMs: 60_000, min: 0n },
          { op: 'setIfAtLeast', key: ok, value: 'yes', ttlMs: 60_000, counter, atLeast: 6n },
        ]),
      ).toEqual({
        completed: true,
        results: [
          { op: 'check', applied: true, value: 'b' },
          { op: 'compareAndSet', applied: true, value: 'm' },
          { op: 'increment', applied: true, value: 6n },
          { op: 'setIfAtLeast', applied: true },
        ],
      })
      expect(
        await stores[1]!.atomic([
          { op: 'check', key: twin, equals: 'twin' },
          { op: 'compareAndSet', key: marker, expected: undefined, next: 'again', ttlMs: 60_000 },
        ]),
      ).toEqual({
        completed: false,
        results: [
          { op: 'check', applied: true, value: 'twin' },
          { op: 'compareAndSet', applied: false, value: 'm' },
        ],
      })
      expect([await store.get(marker), await store.get(counter), await store.get(ok)]).toEqual([
        'm',
        '6',
        'yes',
      ])

      // Concurrent first writes of one long key on three pools: one winner.
      const consumed = incompressible(`${label}:consumed`, size)
      const winners = await Promise.all(
        Array.from({ length: 15 }, (_, index) =>
          stores[index % 3]!.putIfAbsent(consumed, String(index), 60_000),
        ),
      )
      expect(winners.filter(Boolean)).toHaveLength(1)

      await store.delete(k)
      expect(await store.get(k)).toBeUndefined()
      expect(await store.get(twin)).toBe('twin')
      expect(await store.putIfAbsent(k, 'reborn', 60_000)).toBe(true)

      // TTL expiry, then cleanup() removes the expired long-key row (and only it).
      const brief = incompressible(`${label}:brief`, size)
      await store.set(brief, 'v', 100)
      expect(await store.get(brief)).toBe('v')
      await sleep(250)
      expect(await store.get(brief)).toBeUndefined()
      expect(await store.compareAndSet(brief, 'v', 'w', 60_000)).toBe(false)
      expect((await storedKeys(`${label}:brief`)).length).toBe(1)
      await store.cleanup()
      expect(await storedKeys(`${label}:brief`)).toEqual([])
      expect(await store.putIfAbsent(brief, 'new', 60_000)).toBe(true)

      // Every row fits PostgreSQL's index, and a scan by prefix still finds the long keys.
      const rowsOfSize = await storedKeys(`${label}:`)
      expect(rowsOfSize.length).toBe(7)
      for (const row of rowsOfSize) expect(row.bytes).toBeLessThanOrEqual(2_692)
    }
    await Promise.all(stores.map((s) => s.close()))
  })

  it('keeps keys with NUL or unpaired surrogates apart from each other and from U+FFFD', async () => {
    const store = new PostgresStore({ pool: pool(1), schema })
    const run = `odd-${Math.random().toString(36).slice(2, 8)}`
    // UTF-8 cannot encode an unpaired surrogate: the driver would send U+FFFD for each of them.
    const keys = [
      'a\u0000b',
      'a\u0000c',
      '\u0000',
      '\ud800',
      '\udc00',
      '\ufffd',
      'x\ud83d',
      'x\ude80',
      'x\ud83d\ude80',
    ].map((k) => `${run}:${k}`)
    for (const [index, k] of keys.entries())
      expect(await store.putIfAbsent(k, String(index), 60_000), k).toBe(true)
    for (const [index, k] of keys.entries()) expect(await store.get(k)).toBe(String(index))
    expect(await store.increment(keys[0]!, 1n, { ttlMs: 60_000 })).toEqual({
      applied: true,
      value: 1n,
    })
    expect(
      await store.atomic([
        { op: 'check', key: keys[3]!, equals: '3' },
        { op: 'compareAndSet', key: keys[4]!, expected: '4', next: 'four', ttlMs: 60_000 },
      ]),
    ).toMatchObject({ completed: true })
    expect(await store.get(keys[4]!)).toBe('four')
    expect(await store.get(keys[3]!)).toBe('3')
    await store.delete(keys[1]!)
    expect(await store.get(keys[1]!)).toBeUndefined()
    expect(await store.get(keys[0]!)).toBe('1')
    await store.close()
  })

  it('stores keys up to 2,692 bytes as they are, and a key spelled like a long key’s row as another key', async () => {
    const store = new PostgresStore({ pool: pool(1), schema })
    const run = `edge-${Math.random().toString(36).slice(2, 8)}`
    // 2,692 bytes is the longest key PostgreSQL's btree takes uncompressed: it keeps the row it had.
    const fits = incompressible(`${run}:fits`, 2_692)
    // Random CJK characters (3 bytes each in UTF-8), which PostgreSQL cannot compress either.
    const cjk = (count: number) =>
      String.fromCodePoint(
        ...Array.from(
          randomBytes(count * 2)
            .toString('hex')
            .match(/.{4}/g)!,
          (hex) => 0x4e00 + (Number.parseInt(hex, 16) % 0x5000),
        ),
      )
    const wide = `${run}:wide:${cjk(Math.floor((2_692 - run.length - 6) / 3))}`
    for (const k of [fits, wide]) {
      expect(Buffer.byteLength(k)).toBeGreaterThan(2_689)
      expect(await store.putIfAbsent(k, 'v', 60_000)).toBe(true)
    }
    expect((await storedKeys(`${run}:fits`)).map((row) => row.key)).toEqual([fits])
    expect((await storedKeys(`${run}:wide`)).map((row) => row.key)).toEqual([wide])
    // One byte more (or one more 3-byte character) and the row holds a shorter stand-in.
    for (const k of [incompressible(`${run}:over`, 2_693), `${wide}${cjk(1)}`]) {
      expect(await store.putIfAbsent(k, 'w', 60_000)).toBe(true)
      expect(await store.get(k)).toBe('w')
    }
    expect((await storedKeys(`${run}:over`))[0]?.bytes).toBeLessThan(2_692)
    // A key equal to what a long key's row holds is a key of its own: neither sees the other.
    const long = incompressible(`${run}:long`, 5_000)
    expect(await store.putIfAbsent(long, 'long', 60_000)).toBe(true)
    const [row] = await storedKeys(`${run}:long`)
    expect(row!.key).not.toBe(long)
    expect(await store.get(row!.key)).toBeUndefined()
    expect(await store.putIfAbsent(row!.key, 'impostor', 60_000)).toBe(true)
    expect(await store.get(long)).toBe('long')
    expect(await store.get(row!.key)).toBe('impostor')
    expect(await store.increment(row!.key, 1n, { ttlMs: 60_000 }).catch((e: Error) => e.name)).toBe(
      'InvalidCounterError',
    )
    expect((await storedKeys(`${run}:long`)).length).toBe(2)
    await store.delete(row!.key)
    expect(await store.get(long)).toBe('long')
    expect(await storedKeys(`${run}:long`)).toEqual([row])
    await store.close()
  })

  it('reads and updates the rows of a table created and written by the previous version', async () => {
    const legacy = `${schema}_legacy`
    const table = `"${legacy}"."store"`
    // The table exactly as the previous version created it, and rows as its statements wrote them.
    await admin.query(`CREATE SCHEMA "${legacy}"`)
    await admin.query(
      `CREATE TABLE ${table} (key text PRIMARY KEY, value text NOT NULL, expires_at timestamptz NOT NULL)`,
    )
    await admin.query(`CREATE INDEX "store_expires_at" ON ${table} (expires_at)`)
    const longest = incompressible('legacy:longest', 2_692)
    const old: [string, string, number][] = [
      ['mppkit:consumed:abc', '1', 60_000],
      ['mppkit:m:tempo/session:0xchannel:spent', '41', 60_000],
      [
        'mppkit:idem:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
        '{"state":"done"}',
        60_000,
      ],
      ['legacy:ключ/✓ 🚀', 'unicode', 60_000],
      [longest, 'longest', 60_000],
      ['legacy:expired', 'gone', 1],
    ]
    for (const [k, value, ms] of old)
      await admin.query(
        `INSERT INTO ${table} (key, value, expires_at) VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond')`,
        [k, value, ms],
      )
    await sleep(5)
    const store = new PostgresStore({ pool: pool(2), schema: legacy })
    await store.migrate()
    for (const [k, value, ms] of old) expect(await store.get(k), k).toBe(ms > 1 ? value : undefined)
    expect(await store.putIfAbsent('mppkit:consumed:abc', 'replay', 60_000)).toBe(false)
    expect(await store.putIfAbsent(longest, 'replay', 60_000)).toBe(false)
    expect(await store.putIfAbsent('legacy:expired', 'fresh', 60_000)).toBe(true)
    expect(await store.increment('mppkit:m:tempo/session:0xchannel:spent', 1n, { ttlMs: 60_000 })).toEqual({
      applied: true,
      value: 42n,
    })
    expect(await store.compareAndSet('legacy:ключ/✓ 🚀', 'unicode', 'swapped', 60_000)).toBe(true)
    expect(
      await store.atomic([
        { op: 'check', key: 'mppkit:consumed:abc', equals: '1' },
        { op: 'increment', key: 'mppkit:m:tempo/session:0xchannel:spent', delta: 1n, ttlMs: 60_000 },
        { op: 'compareAndSet', key: longest, expected: 'longest', next: 'longer', ttlMs: 60_000 },
      ]),
    ).toMatchObject({ completed: true })
    await store.delete('mppkit:idem:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08')
    // A long key, which the previous version refused, goes into the same table.
    const long = incompressible('legacy:new', 10_000)
    expect(await store.putIfAbsent(long, 'new', 60_000)).toBe(true)
    expect(await store.get(long)).toBe('new')
    // The old rows were updated in place (no second row per key), and the layout is unchanged.
    const { rows: after } = await admin.query<{ key: string; value: string }>(
      `SELECT key, value FROM ${table} WHERE NOT starts_with(key, 'legacy:new') ORDER BY key`,
    )
    expect(after).toEqual(
      [
        { key: 'legacy:expired', value: 'fresh' },
        { key: 'legacy:ключ/✓ 🚀', value: 'swapped' },
        { key: longest, value: 'longer' },
        { key: 'mppkit:consumed:abc', value: '1' },
        { key: 'mppkit:m:tempo/session:0xchannel:spent', value: '43' },
      ].sort((a, b) => (a.key < b.key ? -1 : 1)),
    )
    const columns = await admin.query(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'store'`,
      [legacy],
    )
    expect(columns.rowCount).toBe(3)
    await store.close()
  })
})

describe.skipIf(!!reason)('PostgresStore (least privilege and permanent errors)', () => {
  // Roles are global to the cluster: a random name per run, dropped afterwards with everything it owns.
  const role = `${schema}_app`
  const appSchema = `${schema}_app`
  const manualSchema = `${schema}_manual`
  let admin: pg.Pool
  const rolePools: pg.Pool[] = []

  /** A pool that logs in as the least-privilege role (trust auth), optionally with server settings. */
  const asRole = (options?: string) => {
    const address = new URL(url)
    address.username = role
    const created = new pg.Pool({
      ...postgresPoolOptions,
      connectionString: address.toString(),
      max: 2,
      ...(options ? { options } : {}),
    })
    rolePools.push(created)
    return created
  }

  beforeAll(async () => {
    admin = new pg.Pool({ ...postgresPoolOptions, connectionString: url, max: 3 })
    admin.on('error', () => {})
    await admin.query(`CREATE ROLE "${role}" LOGIN`)
    // Migrated by the owner: `store` is granted to the app role, `locked` is not.
    for (const table of ['store', 'locked'])
      await new PostgresStore({ pool: admin, schema: appSchema, table }).migrate()
    await admin.query(`GRANT USAGE ON SCHEMA "${appSchema}" TO "${role}"`)
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${appSchema}"."store" TO "${role}"`)
  })

  afterAll(async () => {
    await Promise.all(rolePools.map((created) => created.end()))
    await admin.query(`DROP SCHEMA IF EXISTS "${appSchema}" CASCADE`)
    await admin.query(`DROP SCHEMA IF EXISTS "${manualSchema}" CASCADE`)
    await admin.query(`DROP OWNED BY "${role}"`)
    await admin.query(`DROP ROLE "${role}"`)
    const left = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])
    expect(left.rowCount).toBe(0)
    await admin.end()
  })

  it('a role with only USAGE on the schema and DML on the table runs every operation, and migrate() too', async () => {
    const own = asRole()
    // The role really cannot run the setup DDL: PostgreSQL checks CREATE before IF NOT EXISTS.
    await expect(own.query(`CREATE SCHEMA IF NOT EXISTS "${appSchema}"`)).rejects.toMatchObject({
      code: '42501',
    })
    const errors: Error[] = []
    const store = new PostgresStore({ pool: own, schema: appSchema, onError: (e) => errors.push(e) })
    expect(await store.putIfAbsent('lp:put', 'a', 10_000)).toBe(true)
    expect(await store.putIfAbsent('lp:put', 'b', 10_000)).toBe(false)
    expect(await store.get('lp:put')).toBe('a')
    await store.set('lp:set', 'x', 10_000)
    expect(await store.compareAndSet('lp:set', 'x', 'y', 10_000)).toBe(true)
    expect(await store.increment('lp:count', 2n, { ttlMs: 10_000, max: 5n })).toEqual({
      applied: true,
      value: 2n,
    })
    expect(
      await store.atomic([
        { op: 'check', key: 'lp:absent', equals: undefined },
        { op: 'increment', key: 'lp:count', delta: 1n, ttlMs: 10_000, max: 5n },
      ]),
    ).toMatchObject({ completed: true })
    await store.delete('lp:put')
    expect(await store.get('lp:put')).toBeUndefined()
    expect(await store.cleanup()).toBeGreaterThanOrEqual(0)
    await store.migrate()
    expect(errors).toEqual([])
    await store.close()
  })

  it('a store of a role without CREATE privilege starting while the owner migrates uses the table the owner created', async () => {
    // The store checked for the table, then waited for the migration locks while the owner created it:
    // it used to run `CREATE SCHEMA IF NOT EXISTS` anyway once it got them, which PostgreSQL refuses to a
    // role without CREATE (42501) before it looks at IF NOT EXISTS: a 500 on the first request of a
    // least-privilege instance that started during a deploy's migration.
    const table = 'migrating'
    const owner = await admin.connect()
    const store = new PostgresStore({ pool: asRole(), schema: appSchema, table })
    try {
      // The owner's migrate(), caught between its locks and its COMMIT (same locks, same DDL).
      await owner.query('BEGIN')
      await owner.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mppkit-schema:"${appSchema}"`])
      await owner.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mppkit:"${appSchema}"."${table}"`])
      await owner.query(
        `CREATE TABLE "${appSchema}"."${table}" (key text PRIMARY KEY, value text NOT NULL, expires_at timestamptz NOT NULL)`,
      )
      await owner.query(`CREATE INDEX "${table}_expires_at" ON "${appSchema}"."${table}" (expires_at)`)
      await owner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${appSchema}"."${table}" TO "${role}"`)
      const first = store.putIfAbsent('first', 'v', 60_000).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      )
      // The store saw no table (the owner has not committed) and now waits for the migration lock.
      const deadline = Date.now() + 3_000
      for (;;) {
        const waiting = await admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory'`,
          [role],
        )
        if (waiting.rowCount === 1 || Date.now() > deadline) break
        await sleep(10)
      }
      await owner.query('COMMIT')
      expect(await first).toEqual({ value: true })
      expect(await store.get('first')).toBe('v')
    } finally {
      await owner.query('ROLLBACK').catch(() => {})
      owner.release()
      await store.close()
    }
  })

  it('autoMigrate: false runs no DDL: a missing table is a PostgresStoreError (42P01), then migrate() creates it', async () => {
    const errors: Error[] = []
    const store = new PostgresStore({
      pool: admin,
      schema: manualSchema,
      autoMigrate: false,
      onError: (e) => errors.push(e),
    })
    for (const operation of [() => store.get('k'), () => store.increment('k', 1n, { ttlMs: 10_000 })]) {
      const error = await operation().catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(PostgresStoreError)
      expect(error).toMatchObject({ sqlState: '42P01', status: 500, retryAfter: undefined })
    }
    expect(errors).toHaveLength(2)
    // Even as a superuser, nothing was created behind the operator's back.
    const schemas = await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [manualSchema])
    expect(schemas.rowCount).toBe(0)
    await store.migrate()
    await store.migrate()
    expect(await store.putIfAbsent('k', 'v', 10_000)).toBe(true)
    await store.close()
  })

  it('answers permanent errors (permission denied, NUL) with PostgresStoreError, reported to onError', async () => {
    const errors: Error[] = []
    const denied = new PostgresStore({
      pool: asRole(),
      schema: appSchema,
      table: 'locked',
      onError: (e) => errors.push(e),
    })
    // The table exists, so migrate() has nothing to do; every operation on it is refused.
    await denied.migrate()
    for (const operation of [
      () => denied.putIfAbsent('a', '1', 1_000),
      () => denied.get('a'),
      () => denied.set('a', '1', 1_000),
      () => denied.delete('a'),
      () => denied.compareAndSet('a', 'x', 'y', 1_000),
      () => denied.increment('a', 1n, { ttlMs: 1_000, max: 5n }),
      () => denied.cleanup(),
    ]) {
      const error = await operation().catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(PostgresStoreError)
      expect(error).not.toBeInstanceOf(StoreUnavailableError)
      expect(error).toMatchObject({ sqlState: '42501', status: 500, retryAfter: undefined })
      // The SQL error (naming the table) stays in `cause`, out of the problem body.
      expect(((error as PostgresStoreError).cause as Error).message).toMatch(/permission denied/)
      expect(JSON.stringify((error as PostgresStoreError).toProblem())).not.toMatch(/permission|locked/)
    }
    expect(errors).toHaveLength(7)
    await denied.close()

    const store = new PostgresStore({ pool: asRole(), schema: appSchema })
    // PostgreSQL text cannot hold NUL: a value a retry cannot store either.
    const error = await store.set('nul', 'a\u0000b', 1_000).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PostgresStoreError)
    expect(error).toMatchObject({ sqlState: '22021' })
    await store.close()
  })

  it('keeps a lock timeout (55P03) a transient StoreUnavailableError', async () => {
    const store = new PostgresStore({ pool: asRole('-c lock_timeout=100'), schema: appSchema })
    await store.set('busy', '1', 60_000)
    const blocker = await admin.connect()
    try {
      await blocker.query('BEGIN')
      await blocker.query(`SELECT 1 FROM "${appSchema}"."store" WHERE key = 'busy' FOR UPDATE`)
      const error = await store.increment('busy', 1n, { ttlMs: 60_000 }).catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect((error as StoreUnavailableError).cause).toMatchObject({ code: '55P03' })
    } finally {
      await blocker.query('ROLLBACK')
      blocker.release()
    }
    expect(await store.increment('busy', 1n, { ttlMs: 60_000 })).toEqual({ applied: true, value: 2n })
    await store.close()
  })

  it('through a payment server: a permanent store error is a 500 problem without Retry-After or internals', async () => {
    const store = new PostgresStore({ pool: asRole(), schema: appSchema, table: 'locked', onError: () => {} })
    const { response, runs } = await payThroughServer(store)
    expect(response.status).toBe(500)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
    expect(response.headers.get('retry-after')).toBeNull()
    const text = await response.text()
    expect(JSON.parse(text)).toMatchObject({
      type: 'https://paymentauth.org/problems/store-error',
      status: 500,
      reason: 'store-error',
    })
    expect(text).not.toMatch(/permission|locked|42501|\bat\b.*\(|PostgresStore\.ts/)
    expect(runs).toBe(0)
    await store.close()
  })

  it('through a payment server: an unreachable store is still a 503 with Retry-After', async () => {
    const store = new PostgresStore({
      connectionString: `postgres://postgres@127.0.0.1:${await closedPort()}/test`,
      schema: appSchema,
    })
    const { response, runs } = await payThroughServer(store)
    expect(response.status).toBe(503)
    expect(response.headers.get('retry-after')).toBe('1')
    expect(runs).toBe(0)
    await store.close()
  })
})

/** A TCP server that accepts connections and never answers (a hung or black-holed PostgreSQL). */
async function blackHole(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets: Socket[] = []
  const server = createServer((socket) => {
    sockets.push(socket)
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  return {
    url: `postgres://u@127.0.0.1:${port}/db`,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}

/** What `pending` came to within `ms`: its error, its value, or `'still pending'`. */
async function within(pending: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve('still pending'), ms)
  })
  try {
    return await Promise.race([pending.catch((error: unknown) => error), late])
  } finally {
    clearTimeout(timer)
  }
}

describe('PostgresStore (timeoutMs)', () => {
  it('refuses a timeoutMs that is not a positive number of milliseconds', () => {
    for (const timeoutMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2_147_483_648])
      expect(
        () => new PostgresStore({ connectionString: 'postgres://x@127.0.0.1:1/x', schema: 'ok', timeoutMs }),
      ).toThrow(ConfigurationError)
  })

  it('fails every operation with StoreUnavailableError within timeoutMs when PostgreSQL never answers, whatever the pool', async () => {
    const hole = await blackHole()
    // No query_timeout, and a connection timeout far beyond the test's: on its own this pool would wait a
    // minute for each connection (none at all is refused, see below).
    const given = new pg.Pool({ connectionString: hole.url, connectionTimeoutMillis: 60_000 })
    given.on('error', () => {})
    const stores = [
      new PostgresStore({ pool: given, schema: 'held', timeoutMs: 300, onError: () => {} }),
      new PostgresStore({ connectionString: hole.url, schema: 'held', timeoutMs: 300, onError: () => {} }),
    ]
    try {
      for (const store of stores) {
        const operations = [
          () => store.migrate(),
          () => store.putIfAbsent('k', '1', 1_000),
          () => store.get('k'),
          () => store.set('k', '1', 1_000),
          () => store.delete('k'),
          () => store.compareAndSet('k', '1', '2', 1_000),
          () => store.increment('n', 1n, { ttlMs: 1_000 }),
          () => store.atomic([{ op: 'increment', key: 'n', delta: 1n, ttlMs: 1_000 }]),
          () => store.cleanup(),
        ]
        const started = Date.now()
        const outcomes = await Promise.all(operations.map((operation) => within(operation(), 3_000)))
        expect(Date.now() - started).toBeLessThan(1_500)
        for (const outcome of outcomes) {
          expect(outcome).toBeInstanceOf(StoreUnavailableError)
          expect(outcome).toMatchObject({ status: 503, retryAfter: 1 })
          expect((outcome as Error).message).toBe('PostgreSQL did not answer within 300 ms')
        }
      }
    } finally {
      for (const store of stores) await within(store.close(), 1_000)
      await hole.close()
      await within(given.end(), 1_000)
    }
  })
})

/**
 * A TCP relay to PostgreSQL whose new connections can be held: a held one is accepted and then gets no
 * answer (what pg's startup message meets on a hung server) until `release()` forwards it after all.
 */
async function gate(target: URL): Promise<{
  url: string
  hold: () => void
  release: () => void
  accepted: () => number
  close: () => Promise<void>
}> {
  let holding = false
  let accepted = 0
  const held: (() => void)[] = []
  const sockets = new Set<Socket>()
  const server = createServer((inbound) => {
    accepted++
    sockets.add(inbound)
    inbound.on('error', () => {})
    const buffered: Buffer[] = []
    let outbound: Socket | undefined
    inbound.on('data', (data: Buffer) => (outbound ? outbound.write(data) : buffered.push(data)))
    inbound.on('close', () => outbound?.destroy())
    const forward = () => {
      if (inbound.destroyed) return
      const relayed = connect(Number(target.port || 5432), target.hostname)
      outbound = relayed
      sockets.add(relayed)
      relayed.on('error', () => {})
      for (const data of buffered.splice(0)) relayed.write(data)
      relayed.on('data', (data: Buffer) => inbound.write(data))
      relayed.on('close', () => inbound.destroy())
    }
    if (holding) held.push(forward)
    else forward()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = new URL(target.href)
  address.host = `127.0.0.1:${(server.address() as { port: number }).port}`
  return {
    url: address.href,
    hold: () => {
      holding = true
    },
    release: () => {
      holding = false
      for (const forward of held.splice(0)) forward()
    },
    accepted: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}

/** Waits until `condition()` holds, at most `ms`; returns whether it held. */
async function until(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) return false
    await sleep(10)
  }
  return true
}

describe.skipIf(!!reason)('PostgresStore (connectionTimeoutMillis of the pool)', () => {
  const poolSchema = `${schema}_pool`
  let admin: pg.Pool
  const created: pg.Pool[] = []
  /** A pool of the test's own (ended afterwards), on PostgreSQL unless `connectionString` says otherwise. */
  const ownPool = (config: pg.PoolConfig) => {
    const given = new pg.Pool({ connectionString: url, ...config })
    given.on('error', () => {})
    created.push(given)
    return given
  }

  beforeAll(async () => {
    admin = new pg.Pool({ ...postgresPoolOptions, connectionString: url, max: 2 })
    admin.on('error', () => {})
    const migrating = new PostgresStore({ pool: admin, schema: poolSchema })
    await migrating.migrate()
    await migrating.close()
  })

  afterAll(async () => {
    await Promise.all(created.map((given) => within(given.end(), 2_000)))
    await admin.query(`DROP SCHEMA IF EXISTS "${poolSchema}" CASCADE`)
    await admin.end()
  })

  it('refuses a pool passed in without connectionTimeoutMillis (missing or 0) before connecting anything', async () => {
    const applicationName = `mppkit_refused_${Math.random().toString(36).slice(2, 10)}`
    for (const connectionTimeoutMillis of [undefined, 0, -1, Number.NaN]) {
      const given = ownPool({
        max: 1,
        application_name: applicationName,
        ...(connectionTimeoutMillis === undefined ? {} : { connectionTimeoutMillis }),
      })
      const error = (() => {
        try {
          // A cleanup timer this short would connect at once, were it started.
          return new PostgresStore({ pool: given, schema: poolSchema, timeoutMs: 250, cleanupIntervalMs: 10 })
        } catch (caught) {
          return caught
        }
      })()
      expect(error).toBeInstanceOf(ConfigurationError)
      expect((error as Error).message).toMatch(
        /^pool\.options\.connectionTimeoutMillis must be a positive number of milliseconds/,
      )
      expect((error as Error).message).toContain(
        "connectionTimeoutMillis at most the store's timeoutMs (250 here)",
      )
      // Nothing was attached to the caller's pool, and nothing connected through it.
      expect(given.listenerCount('error')).toBe(1)
      expect(given.totalCount).toBe(0)
    }
    await sleep(100)
    const sessions = await admin.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [
      applicationName,
    ])
    expect(sessions.rowCount).toBe(0)
  })

  it('works with a pool passed in that sets connectionTimeoutMillis, and builds its own pool with one', async () => {
    const given = ownPool({ max: 1, connectionTimeoutMillis: 1_000 })
    const store = new PostgresStore({ pool: given, schema: poolSchema })
    const key = `timeout-set:${Math.random()}`
    expect(await store.putIfAbsent(key, '1', 60_000)).toBe(true)
    expect(await store.putIfAbsent(key, '1', 60_000)).toBe(false)
    expect(await store.get(key)).toBe('1')
    await store.close()
    const owned = new PostgresStore({ connectionString: url, schema: poolSchema })
    expect(owned.pool.options.connectionTimeoutMillis).toBe(postgresPoolOptions.connectionTimeoutMillis)
    expect(postgresPoolOptions.connectionTimeoutMillis).toBeGreaterThan(0)
    expect(await owned.get(key)).toBe('1')
    await owned.close()
  })

  /** A store answering within 200 ms, on a one-connection pool through a relay whose connects can be held. */
  const relayed = async (connectionTimeoutMillis: number) => {
    const relay = await gate(new URL(url))
    const given = ownPool({ connectionString: relay.url, max: 1, connectionTimeoutMillis })
    const store = new PostgresStore({
      pool: given,
      schema: poolSchema,
      autoMigrate: false,
      cleanupIntervalMs: false,
      timeoutMs: 200,
      onError: () => {},
    })
    return { relay, given, store }
  }

  it("answers a connection attempt that never completes within timeoutMs; the pool's connectionTimeoutMillis gives its slot back", async () => {
    const { relay, given, store } = await relayed(1_500)
    try {
      relay.hold()
      const started = Date.now()
      const error = await store.putIfAbsent('never-connected', '1', 60_000).catch((caught: unknown) => caught)
      expect(Date.now() - started).toBeLessThan(900)
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect(error).toMatchObject({ status: 503, message: 'PostgreSQL did not answer within 200 ms' })
      // Meanwhile the stalled attempt holds the pool's only slot…
      expect(given.totalCount).toBe(1)
      // …until pg's own connectionTimeoutMillis ends it (without it, nothing would).
      expect(await until(() => given.totalCount === 0, 4_000)).toBe(true)
      relay.release()
      // The pool serves again with its one slot, on a new connection.
      expect(await store.putIfAbsent('never-connected', '1', 60_000)).toBe(true)
      expect(relay.accepted()).toBe(2)
    } finally {
      await store.close()
      await relay.close()
    }
  })

  it('gives a connection that completes after timeoutMs back to the pool unused: its statement never runs', async () => {
    const { relay, given, store } = await relayed(10_000)
    const key = `late:${Math.random()}`
    try {
      relay.hold()
      const started = Date.now()
      const error = await store.putIfAbsent(key, '1', 60_000).catch((caught: unknown) => caught)
      expect(Date.now() - started).toBeLessThan(900)
      expect(error).toMatchObject({ status: 503, message: 'PostgreSQL did not answer within 200 ms' })
      // The stall ends: pg completes the connection, after the caller was answered 503.
      relay.release()
      expect(await until(() => given.idleCount === 1, 3_000)).toBe(true)
      // The insert was never sent (a credential consumed by a refused request, otherwise).
      const row = await admin.query(`SELECT 1 FROM "${poolSchema}"."store" WHERE key = $1`, [key])
      expect(row.rowCount).toBe(0)
      // The late connection went back healthy and serves the next operation on the pool's one slot.
      expect(await store.putIfAbsent(key, '1', 60_000)).toBe(true)
      expect(relay.accepted()).toBe(1)
    } finally {
      await store.close()
      await relay.close()
    }
  })
})
