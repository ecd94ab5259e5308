import { createHash } from 'node:crypto'
import {
  type AtomicResult,
  type AtomicStep,
  BaseError,
  ConfigurationError,
  type IncrementOptions,
  type IncrementResult,
  InvalidCounterError,
  runAtomicSteps,
  type Store,
  StoreError,
  StoreUnavailableError,
} from '@mppkit/core'
import pg from 'pg'

/**
 * The `pg.Pool` options a {@link PostgresStore} uses for the pool it creates from a connection string.
 * Pass the same options when you hand in your own pool. A pool without `connectionTimeoutMillis` is
 * refused (`ConfigurationError`): pg would wait forever for a connection that never completes, and each
 * such attempt would hold one of the pool's slots for good.
 *
 * @example
 * ```ts
 * const pool = new pg.Pool({ ...postgresPoolOptions, connectionString, max: 20 })
 * const store = new PostgresStore({ pool, schema: 'mppkit' })
 * ```
 */
export const postgresPoolOptions = {
  max: 10,
  connectionTimeoutMillis: 2_000,
  idleTimeoutMillis: 30_000,
  query_timeout: 10_000,
} satisfies pg.PoolConfig

/** How long one statement (or taking a connection) may take unless `timeoutMs` says otherwise (ms). */
const defaultTimeoutMs = 15_000

/** Options of {@link PostgresStore}. */
export type PostgresStoreOptions = {
  /**
   * A `pg.Pool` to use (the store does not end it). Prefer {@link postgresPoolOptions} for it. Its
   * `connectionTimeoutMillis` must be set (a `ConfigurationError` otherwise; at most `timeoutMs` is best):
   * pg's default waits forever, and a connection attempt that never completes would hold a pool slot.
   */
  pool?: pg.Pool
  /** A `postgres://` connection string, used when no pool is given (pg's `PG*` environment variables otherwise). */
  connectionString?: string
  /** The schema holding the table, created by {@link PostgresStore.migrate} (e.g. `mppkit`). */
  schema: string
  /** The table name (default `store`). */
  table?: string
  /**
   * Whether the first operation creates the schema and table when the table does not exist yet (default
   * `true`). A table that exists is used as is, so a least-privilege role (USAGE on the schema and
   * SELECT, INSERT, UPDATE, DELETE on the table) works either way. With `false` the store never runs
   * DDL by itself: create the table beforehand with {@link PostgresStore.migrate} as a privileged role.
   */
  autoMigrate?: boolean
  /**
   * Expired rows are deleted every `cleanupIntervalMs` (default 300,000: five minutes; the timer does
   * not keep the process alive). `false`: never by itself (call `cleanup()` on your own schedule). Expired
   * rows are already treated as absent: this keeps the table from growing with every consumed challenge.
   */
  cleanupIntervalMs?: number | false
  /**
   * Whole seconds, 1 or more, a client should wait before retrying when PostgreSQL is unavailable (default 1):
   * the `Retry-After` of those answers. Anything else is a `ConfigurationError`.
   */
  retryAfter?: number
  /**
   * Longest time, in milliseconds, the store waits for a connection from the pool and for each statement
   * (default 15,000). When it passes, the operation fails with `StoreUnavailableError` (503 +
   * Retry-After) whatever the pool's own options are, so a server that accepts connections and never
   * answers cannot hold a request. A connection the pool hands over after that goes back to it unused:
   * no statement is sent after its operation failed. A statement that timed out has an unknown outcome;
   * its connection is dropped, not reused. A pool without `query_timeout` gets this one for the store's
   * statements.
   */
  timeoutMs?: number
  /**
   * Receives pool errors (idle connections lost), periodic cleanup failures and every
   * {@link PostgresStoreError} (permission denied, missing table…) with the PostgreSQL error as its
   * `cause`; otherwise swallowed. Log them: the HTTP client only sees a generic 500.
   */
  onError?: (error: Error) => void
}

/** How often expired rows are deleted unless `cleanupIntervalMs` says otherwise (ms). */
const defaultCleanupIntervalMs = 300_000

/** Largest delay `setTimeout` honours (ms); pg's timers use it too. */
const maxDelayMs = 2_147_483_647

/**
 * Refuses a connection string that can never connect (not a URL, a port outside 1 to 65535, another
 * scheme, a `#` fragment) with a `ConfigurationError`, as the store is created. pg parses it only when it
 * connects, and the failure would be a `StoreUnavailableError` on every operation: a 503 with
 * Retry-After, retried for ever, and seen by health checks as an outage. The error says what is wrong
 * but never quotes the string, has no cause and no `input` (a mistyped URL often puts the password where
 * the host, port or fragment should be). A socket directory (`/var/run/postgresql`) is left to pg.
 */
function checkConnectionString(connectionString: unknown): void {
  if (typeof connectionString !== 'string')
    throw new ConfigurationError('PostgresStore: connectionString must be a string')
  if (connectionString.startsWith('/')) return
  const invalid = (why: string) =>
    new ConfigurationError(
      `PostgresStore: connectionString is not a valid postgres:// URL (${why}; percent-encode special characters in the password)`,
    )
  let url: URL
  try {
    // As pg-connection-string reads it: relative to postgres://base, spaces and stray `%` encoded.
    const encoded = /[ %]/.test(connectionString)
      ? encodeURI(connectionString).replace(/%25([0-9a-f]{2})/gi, '%$1')
      : connectionString
    url = new URL(encoded.replace('@/', '@x/'), 'postgres://base')
  } catch {
    // Neither the URL nor the TypeError (whose `input` is the whole string) is kept.
    throw invalid('it does not parse')
  }
  if (!['postgres:', 'postgresql:', 'socket:'].includes(url.protocol))
    throw invalid('the scheme is not postgres://')
  if (url.port === '0') throw invalid('the port must be 1 to 65535')
  if (url.hash !== '') throw invalid("it has a '#' fragment")
}

/**
 * Refuses values that UTF-8 cannot encode (an unpaired surrogate) with a {@link StoreError} (500):
 * pg would send U+FFFD in its place, so `'a\ud800'` would be stored as `'a\ufffd'`, and a `compareAndSet`
 * or `check` expecting one would match the other. The MemoryStore keeps them apart; no JSON value (what
 * mppkit stores) holds one, since JSON escapes lone surrogates.
 */
function refuseUnencodable(values: readonly (string | undefined)[]): void {
  for (const value of values)
    if (value !== undefined && /\p{Cs}/u.test(value)) {
      const error = new StoreError()
      error.message =
        'PostgresStore: a value with an unpaired surrogate cannot be stored (UTF-8 cannot encode it)'
      throw error
    }
}

/** The values an atomic step writes or compares against. */
const stepValues = (step: AtomicStep): (string | undefined)[] =>
  step.op === 'check'
    ? [step.equals]
    : step.op === 'compareAndSet'
      ? [step.expected, step.next]
      : step.op === 'setIfAtLeast'
        ? [step.value]
        : []

/**
 * Refuses pool options whose `connectionTimeoutMillis` is missing or 0 (pg's default: no limit). The
 * store's `timeoutMs` answers the request anyway, but a connection attempt that never completes (a
 * server that accepts TCP connections and never answers) then holds one of the pool's slots for as long
 * as the process lives: pg only gives the slot back when the attempt ends, and without this option
 * nothing ends it. A pool of 10 is gone after 10 such attempts, and every request after them is a 503.
 */
function checkConnectionTimeout(options: pg.PoolConfig | undefined, timeoutMs: number): void {
  const connectionTimeoutMillis = options?.connectionTimeoutMillis
  if (
    typeof connectionTimeoutMillis === 'number' &&
    connectionTimeoutMillis > 0 &&
    connectionTimeoutMillis <= maxDelayMs
  )
    return
  throw new ConfigurationError(
    `pool.options.connectionTimeoutMillis must be a positive number of milliseconds (it is ${String(connectionTimeoutMillis)}): ` +
      "without it pg never gives up on a connection attempt that does not complete, and each one holds one of the pool's slots for good. " +
      `Create the pool with connectionTimeoutMillis at most the store's timeoutMs (${timeoutMs} here), ` +
      `e.g. new pg.Pool({ ...postgresPoolOptions, connectionString }) (${postgresPoolOptions.connectionTimeoutMillis} ms)`,
  )
}

/**
 * PostgreSQL refused an operation for a reason a retry does not fix: permission denied (`42501`), the
 * table does not exist (`42P01`, e.g. with `autoMigrate: false` before `migrate()`), a value it cannot
 * store (`22021`, a NUL character), a failed login… An HTTP 500 problem without `Retry-After`; the
 * problem body names no table, role or SQL (those are in `cause` and {@link PostgresStoreError.sqlState}).
 *
 * @example
 * ```ts
 * if (error instanceof PostgresStoreError && error.sqlState === '42501') grantPrivileges()
 * ```
 */
export class PostgresStoreError extends StoreError {
  /** The SQLSTATE PostgreSQL reported (e.g. `42501`). */
  readonly sqlState: string
  constructor(options: { sqlState: string; cause?: unknown }) {
    super({ cause: options.cause })
    this.name = 'PostgresStoreError'
    this.sqlState = options.sqlState
    // The message (for logs) leads with PostgreSQL's own words; the problem `detail` stays generic.
    const reported = firstLine(options.cause)
    if (reported) this.message = `PostgreSQL: ${reported} (SQLSTATE ${options.sqlState})`
  }
}

function firstLine(error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : undefined
  return message ? message.split('\n')[0] : undefined
}

/**
 * Why PostgreSQL could not be used, for the message of a `StoreUnavailableError` (its problem `detail`
 * stays generic): `PostgreSQL unreachable at 127.0.0.1:5433: ECONNREFUSED`, or what the server or the
 * driver said.
 */
function unavailableMessage(error: unknown): string {
  for (let e: unknown = error, depth = 0; e && depth < 8; depth++) {
    const { code, address, port, errors } = e as {
      code?: unknown
      address?: unknown
      port?: unknown
      errors?: unknown
    }
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code))
      return `PostgreSQL unreachable${typeof address === 'string' ? ` at ${address}${port ? `:${port}` : ''}` : ''}: ${code}`
    e = Array.isArray(errors) && errors.length ? errors[0] : (e as { cause?: unknown }).cause
  }
  const state = sqlStateOf(error)
  return `PostgreSQL unavailable: ${firstLine(error) ?? String(error)}${state ? ` (SQLSTATE ${state})` : ''}`
}

/**
 * SQLSTATEs after which the same operation can succeed on a retry: classes `08` (connection exception),
 * `53` (insufficient resources: too many connections, out of memory, disk full), `57` (operator
 * intervention: terminated by an administrator, shutting down, statement timeout), and
 * serialization failure, deadlock, lock timeout, idle-session timeouts.
 */
const transientClasses = new Set(['08', '53', '57'])
const transientStates = new Set(['40001', '40P01', '55P03', '25P03'])
const sqlStatePattern = /^[0-9A-Z]{5}$/

/** The SQLSTATE of an error PostgreSQL reported, or `undefined` for any other error. */
function sqlStateOf(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined
  const { code, severity } = error as { code?: unknown; severity?: unknown }
  // Node's socket errors have codes too (EPIPE is five letters): only server errors carry a severity.
  if (typeof code !== 'string' || typeof severity !== 'string' || !sqlStatePattern.test(code))
    return undefined
  return code
}

/** Whether a failure came from the connection (timeout, socket) rather than from PostgreSQL's reply. */
function connectionLost(error: unknown): boolean {
  return !BaseError.is(error) && sqlStateOf(error) === undefined
}

/** Whether an error reported by PostgreSQL can go away on a retry (see {@link transientClasses}). */
function isTransient(sqlState: string): boolean {
  return transientClasses.has(sqlState.slice(0, 2)) || transientStates.has(sqlState)
}

/** A checked-out connection's `error` listener when its statement reports the failure anyway. */
const ignore = () => {}

/** The errors of waits that outlived `timeoutMs` (their connection is dropped, never reused). */
const expired = new WeakSet<object>()

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/
const maxAttempts = 20

/**
 * Longest key, in UTF-8 bytes, that a row holds as it is. The primary key's btree refuses an index row
 * over 2,704 bytes (a third of an 8 kB page); its 8-byte tuple header and 4-byte length header leave
 * 2,692 for the key. The previous versions stored every key as it is, so their rows keep being found.
 */
const maxStoredKeyBytes = 2_692
/** How many UTF-8 bytes of a long key its row keeps readable in front of the digest. */
const headBytes = 256
/** How every stand-in ends: a control character, then the SHA-256 of the key's UTF-16 code units. */
const standInTail = /\u0001sha256:[0-9a-f]{64}$/
/** What a `text` column cannot hold (NUL), or UTF-8 cannot encode (an unpaired surrogate: pg sends U+FFFD). */
const unstorable = /[\u0000\p{Cs}]/u

/**
 * The `key` column of a key's row: the key itself when the column can hold it and its index can take
 * it, else a stand-in of at most 328 bytes (see {@link standIn}). The mapping is one-to-one: a key is
 * only stored as it is when it does not end like a stand-in, and every stand-in does. Computed in the
 * process, so it adds no statement (and no round trip) to any operation.
 *
 * Two keys sharing a row, or one key with two rows, would let a consumed credential be accepted again;
 * draft-httpauth-payment-00 §11.6: "Servers MUST ensure that concurrent requests with the same Payment
 * credential result in at most one successful payment settlement and one resource delivery."
 */
function storedKey(key: string): string {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: most keys are measured without encoding them.
  if (key.length * 3 > maxStoredKeyBytes && Buffer.byteLength(key) > maxStoredKeyBytes) return standIn(key)
  if (unstorable.test(key) || standInTail.test(key)) return standIn(key)
  return key
}

/**
 * A long (or unstorable) key's row key: its first {@link headBytes} bytes (up to any character a row
 * cannot hold), so that the table stays readable and a search by prefix still finds it, then `\x01sha256:`
 * and the SHA-256 of its UTF-16 code units, which tell every JavaScript string apart (UTF-8 would merge
 * unpaired surrogates).
 */
function standIn(key: string): string {
  let end = 0
  let bytes = 0
  for (const char of key) {
    const code = char.codePointAt(0) ?? 0
    if (code === 0 || (code >= 0xd800 && code <= 0xdfff)) break
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4
    if (bytes > headBytes) break
    end += char.length
  }
  const digest = createHash('sha256').update(key, 'utf16le').digest('hex')
  return `${key.slice(0, end)}\u0001sha256:${digest}`
}

/**
 * A {@link Store} on PostgreSQL: every instance of a payment server sharing one database consumes each
 * credential exactly once.
 *
 * One table `(key text primary key, value text, expires_at timestamptz)`. A key of any length is
 * accepted: one too long for the primary key's index (over 2,692 bytes) is stored as its readable head
 * and SHA-256 digest instead (as is a key with a NUL or an unpaired surrogate). `putIfAbsent` is
 * `INSERT … ON CONFLICT (key) DO UPDATE … WHERE expires_at <= clock_timestamp()` (an expired row counts as
 * absent); `compareAndSet` locks the row and then does one conditional `UPDATE`; `increment` locks the row (`SELECT … FOR UPDATE` inside
 * the `UPDATE … RETURNING` statement) and does `numeric` arithmetic, so counters have arbitrary
 * precision. All times come from the database clock, so every server process agrees on expiry.
 *
 * `migrate()` creates the schema and table unless the table exists (idempotent, safe to run from many
 * processes at once); it also runs by itself on first use unless `autoMigrate` is `false`. `cleanup()`
 * deletes expired rows. When PostgreSQL cannot be reached or a connection fails during an operation, the
 * operation throws `StoreUnavailableError` (503 + Retry-After) and the pool opens a fresh connection for
 * the next one; an error a retry cannot fix (permission denied, missing table) throws
 * {@link PostgresStoreError} (500).
 *
 * @example
 * ```ts
 * import { PostgresStore } from '@mppkit/store-postgres'
 * const store = new PostgresStore({ connectionString: process.env.DATABASE_URL, schema: 'mppkit' })
 * await store.migrate()
 * const server = Server.create({ realm, secrets, methods, store })
 * ```
 * @see draft-httpauth-payment-00 §11.6 (Concurrent Request Handling)
 */
export class PostgresStore implements Store {
  /** The pool in use. */
  readonly pool: pg.Pool
  /** The schema name. */
  readonly schema: string
  /** The table name. */
  readonly table: string
  readonly #qualified: string
  readonly #owned: boolean
  readonly #retryAfter: number
  readonly #timeoutMs: number
  readonly #onError: (error: Error) => void
  readonly #timer: ReturnType<typeof setInterval> | undefined
  readonly #autoMigrate: boolean
  #ready: Promise<void> | undefined
  #closing: Promise<void> | undefined
  /** Statements and batches under way: {@link PostgresStore.close} lets them finish before ending the pool. */
  readonly #inFlight = new Set<Promise<unknown>>()

  constructor(options: PostgresStoreOptions) {
    const table = options.table ?? 'store'
    // Identifiers are interpolated into SQL (they cannot be bind parameters), so only plain names pass.
    // 63 bytes is PostgreSQL's identifier limit; the table also names its index (`<table>_expires_at`).
    if (!identifier.test(options.schema) || options.schema.length > 63)
      throw new ConfigurationError(
        'schema must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63)',
      )
    if (!identifier.test(table) || table.length > 52)
      throw new ConfigurationError(
        'table must be a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 52)',
      )
    this.schema = options.schema
    this.table = table
    this.#qualified = `"${options.schema}"."${table}"`
    const retryAfter = options.retryAfter ?? 1
    // It becomes the `Retry-After` header of every outage answer (RFC 9110 §10.2.3: "a non-negative
    // decimal integer, representing time in seconds"): NaN or 1.5 there tells a client nothing it can use.
    if (typeof retryAfter !== 'number' || !Number.isSafeInteger(retryAfter) || retryAfter < 1)
      throw new ConfigurationError('retryAfter must be a positive whole number of seconds')
    this.#retryAfter = retryAfter
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= maxDelayMs))
      throw new ConfigurationError('timeoutMs must be a positive number of milliseconds (at most 2147483647)')
    this.#timeoutMs = timeoutMs
    this.#autoMigrate = options.autoMigrate ?? true
    const onError = options.onError
    this.#onError = (error) => onError?.(error)
    // Every option is checked before the store touches a pool: a refused store leaves no listener on the
    // caller's pool, no pool of its own and no timer behind.
    const cleanupIntervalMs = options.cleanupIntervalMs ?? defaultCleanupIntervalMs
    if (cleanupIntervalMs !== false && (!(cleanupIntervalMs > 0) || cleanupIntervalMs > maxDelayMs))
      throw new ConfigurationError(
        'cleanupIntervalMs must be a positive number of milliseconds (at most 2147483647), or false',
      )
    if (options.pool) {
      checkConnectionTimeout(options.pool.options, timeoutMs)
      this.pool = options.pool
      this.#owned = false
    } else {
      if (options.connectionString !== undefined) checkConnectionString(options.connectionString)
      const poolOptions: pg.PoolConfig = {
        ...postgresPoolOptions,
        ...(options.connectionString === undefined ? {} : { connectionString: options.connectionString }),
      }
      // Holds for postgresPoolOptions (2,000 ms), unless someone changed that exported object.
      checkConnectionTimeout(poolOptions, timeoutMs)
      this.pool = new pg.Pool(poolOptions)
      this.#owned = true
    }
    // pg emits 'error' on the pool when an idle connection dies (server restart, pg_terminate_backend);
    // without a listener that would crash the process. The pool drops the connection and opens a new one.
    this.pool.on('error', this.#onError)
    if (cleanupIntervalMs !== false) {
      this.#timer = setInterval(() => {
        this.cleanup().catch((error: Error) => {
          // A PostgresStoreError was reported when it was raised.
          if (!(error instanceof PostgresStoreError)) this.#onError(error)
        })
      }, cleanupIntervalMs)
      this.#timer.unref()
    }
  }

  /**
   * Creates the schema, the table and its expiry index unless the table exists (then nothing is done, so
   * a role without CREATE privilege can call it). Idempotent, and safe to run from several processes at
   * once (serialized by an advisory lock). Runs by itself before the first operation unless
   * `autoMigrate` is `false`; call it at startup to fail early.
   *
   * @example
   * ```ts
   * await store.migrate()
   * ```
   */
  async migrate(): Promise<void> {
    const run = this.#tracked(this.#migrate())
    this.#ready = run
    try {
      await run
    } catch (error) {
      // A failed migration (database down) is retried by the next operation.
      if (this.#ready === run) this.#ready = undefined
      throw error
    }
  }

  async #migrate(): Promise<void> {
    this.#open()
    const client = await this.#connect()
    // While checked out the pool's idle listener is detached: a connection lost mid-migration must not
    // raise an unhandled 'error'.
    client.on('error', this.#onError)
    let failed: unknown
    try {
      // PostgreSQL checks the CREATE privilege before it looks at IF NOT EXISTS, so an app role without
      // it could never run an operation: a table that already exists is used as is, without any DDL.
      const existing = await this.#on<{ present: boolean }>(
        client,
        'SELECT to_regclass($1) IS NOT NULL AS present',
        [this.#qualified],
      )
      if (existing.rows[0]?.present) return
      await this.#on(client, 'BEGIN')
      // Concurrent `CREATE … IF NOT EXISTS` can still collide on the catalog's unique index; the locks
      // (released at COMMIT) make processes migrate one after the other: the schema's first, since stores
      // of other tables create the same schema, then the table's (always in this order: no deadlock).
      await this.#on(client, 'SELECT pg_advisory_xact_lock(hashtext($1))', [`mppkit-schema:"${this.schema}"`])
      await this.#on(client, 'SELECT pg_advisory_xact_lock(hashtext($1))', [`mppkit:${this.#qualified}`])
      // Another process may have created the table while this one waited for the locks: use it as is, as
      // above (a role without CREATE privilege would be refused the `CREATE SCHEMA` below, 42501). Read
      // from pg_class with this statement's snapshot: `to_regclass` goes through the catalog cache,
      // which here still misses a table committed while the lock was awaited.
      const created = await this.#on<{ present: boolean }>(
        client,
        `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relname = $2) AS present`,
        [this.schema, this.table],
      )
      if (!created.rows[0]?.present) {
        await this.#on(client, `CREATE SCHEMA IF NOT EXISTS "${this.schema}"`)
        await this.#on(
          client,
          `CREATE TABLE IF NOT EXISTS ${this.#qualified} (
            key text PRIMARY KEY,
            value text NOT NULL,
            expires_at timestamptz NOT NULL
          )`,
        )
        await this.#on(
          client,
          `CREATE INDEX IF NOT EXISTS "${this.table}_expires_at" ON ${this.#qualified} (expires_at)`,
        )
      }
      await this.#on(client, 'COMMIT')
    } catch (error) {
      failed = error
      // A statement that timed out leaves the connection wedged: it is destroyed below, no ROLLBACK.
      if (!expired.has(error as object)) await this.#on(client, 'ROLLBACK').catch(() => {})
      throw this.#failure(error)
    } finally {
      client.off('error', this.#onError)
      // A connection that failed is destroyed rather than returned to the pool.
      client.release(failed instanceof Error ? failed : undefined)
    }
  }

  /**
   * A connection from the pool, within {@link PostgresStoreOptions.timeoutMs} (after `before`, the
   * migration an operation waits for); one the pool hands over too late goes back to it unused, so no
   * statement runs after its operation was answered 503. (An attempt that never completes is ended by
   * the pool's `connectionTimeoutMillis`, which the constructor requires: that gives its slot back.)
   */
  async #connect(before?: Promise<void>): Promise<pg.PoolClient> {
    const connecting = (async () => {
      await before
      return this.pool.connect()
    })()
    try {
      return await this.#bounded(connecting)
    } catch (error) {
      if (expired.has(error as object))
        connecting.then(
          (late) => late.release(),
          () => {},
        )
      throw this.#failure(error)
    }
  }

  /** Runs a statement on a checked-out connection within {@link PostgresStoreOptions.timeoutMs}. */
  #on<Row extends pg.QueryResultRow = pg.QueryResultRow>(
    client: pg.PoolClient,
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<Row>> {
    return this.#bounded(client.query<Row>(this.#statement(text, values)))
  }

  /**
   * A statement with the pool's `query_timeout`, or `timeoutMs` when the pool has none: pg then fails the
   * statement itself and drops its connection, so a black-holed one does not hold a pool slot forever.
   */
  #statement(text: string, values?: unknown[]): pg.QueryConfig {
    const statement: pg.QueryConfig & { query_timeout?: number } =
      values === undefined ? { text } : { text, values }
    if (!this.pool.options?.query_timeout) statement.query_timeout = this.#timeoutMs
    return statement
  }

  /**
   * `pending`, or a `StoreUnavailableError` once {@link PostgresStoreOptions.timeoutMs} has passed: the
   * bound holds whatever the pool's options are.
   */
  #bounded<T>(pending: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const unavailable = new StoreUnavailableError({ retryAfter: this.#retryAfter })
        // The message (for logs) says why; the problem `detail` stays generic.
        unavailable.message = `PostgreSQL did not answer within ${this.#timeoutMs} ms`
        expired.add(unavailable)
        reject(unavailable)
      }, this.#timeoutMs)
    })
    return Promise.race([pending, late]).finally(() => clearTimeout(timer))
  }

  /**
   * Deletes expired rows and returns how many were deleted. Expired rows are already invisible to every
   * operation; this only reclaims space. Run it periodically (or set `cleanupIntervalMs`).
   *
   * @example
   * ```ts
   * const deleted = await store.cleanup()
   * ```
   */
  async cleanup(): Promise<number> {
    // A row some operation holds is skipped (the next cleanup gets it), so cleanup never waits for a
    // lock. A plain `DELETE … WHERE expires_at <= now()` locks the expired rows in scan order while an
    // atomic batch locks its rows in key order: each could hold a row the other waits for, a deadlock
    // PostgreSQL breaks after `deadlock_timeout` by aborting one of them (a 503 for the batch).
    const result = await this.#query(
      `DELETE FROM ${this.#qualified} WHERE key IN (
         SELECT key FROM ${this.#qualified} WHERE expires_at <= now() FOR UPDATE SKIP LOCKED
       ) AND expires_at <= now()`,
      [],
    )
    return result.rowCount ?? 0
  }

  async putIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    refuseUnencodable([value])
    // An expired row is overwritten as if absent. Under READ COMMITTED, ON CONFLICT DO UPDATE locks the
    // conflicting row and re-checks the WHERE on its newest version, so exactly one caller wins. Times are
    // `clock_timestamp()`, read after that lock (`now()` is the transaction's start, from before any wait).
    const result = await this.#query(
      `INSERT INTO ${this.#qualified} AS existing (key, value, expires_at)
       VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE
       SET value = excluded.value, expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond'
       WHERE existing.expires_at <= clock_timestamp()`,
      [storedKey(key), value, ttl(ttlMs)],
    )
    return result.rowCount === 1
  }

  async get(key: string): Promise<string | undefined> {
    const result = await this.#query<{ value: string }>(
      `SELECT value FROM ${this.#qualified} WHERE key = $1 AND expires_at > clock_timestamp()`,
      [storedKey(key)],
    )
    return result.rows[0]?.value
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    refuseUnencodable([value])
    await this.#query(
      `INSERT INTO ${this.#qualified} (key, value, expires_at)
       VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE
       SET value = excluded.value, expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond'`,
      [storedKey(key), value, ttl(ttlMs)],
    )
  }

  async delete(key: string): Promise<void> {
    await this.#query(`DELETE FROM ${this.#qualified} WHERE key = $1`, [storedKey(key)])
  }

  async compareAndSet(
    key: string,
    expected: string | undefined,
    next: string,
    ttlMs: number,
  ): Promise<boolean> {
    if (expected === undefined) return this.putIfAbsent(key, next, ttlMs)
    refuseUnencodable([expected, next])
    // The row is locked first (FOR UPDATE waits for a concurrent writer and then reads its newest
    // version), so only one of several swaps from the same expected value succeeds. Expiry is checked on
    // the locked row against `clock_timestamp()`, after the wait: a plain `UPDATE … WHERE expires_at >
    // …` evaluates its WHERE (and `now()` is the transaction's start) before it waits for the row lock,
    // so a value that expired during the wait still matched and the TTL was shortened by the wait.
    const result = await this.#query(
      `WITH locked AS (
         SELECT key, value, expires_at FROM ${this.#qualified} WHERE key = $1 FOR UPDATE
       )
       UPDATE ${this.#qualified} AS target
       SET value = $3, expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond'
       FROM locked
       WHERE target.key = locked.key AND locked.value = $2 AND locked.expires_at > clock_timestamp()`,
      [storedKey(key), expected, next, ttl(ttlMs)],
    )
    return result.rowCount === 1
  }

  async increment(key: string, delta: bigint, options: IncrementOptions): Promise<IncrementResult> {
    const ms = ttl(options.ttlMs)
    this.#open()
    // Tracked as one operation: close() must not end the pool between its statements.
    return this.#tracked(this.#increment(key, delta, options, ms))
  }

  async #increment(
    key: string,
    delta: bigint,
    options: IncrementOptions,
    ms: number,
  ): Promise<IncrementResult> {
    const stored = storedKey(key)
    const min = options.min?.toString() ?? null
    const max = options.max?.toString() ?? null
    const inBounds = (value: bigint) =>
      (options.min === undefined || value >= options.min) &&
      (options.max === undefined || value <= options.max)
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      // One statement: lock the row (FOR UPDATE waits for a concurrent writer and then reads its newest
      // version), compute with `numeric` (arbitrary precision), update only within bounds. An expired row
      // counts as 0; a live non-integer yields a NULL amount and is reported below. Expiry is computed in
      // a second CTE, from the locked row, against `clock_timestamp()`: an expression in the locking
      // SELECT itself is evaluated before the lock wait (and `now()` is the transaction's start).
      const existing = await this.#statementOnPool<{ amount: string | null; next: string | null }>(
        `WITH held AS (
           SELECT key, value, expires_at FROM ${this.#qualified} WHERE key = $1 FOR UPDATE
         ), locked AS (
           SELECT key,
             CASE WHEN expires_at <= clock_timestamp() THEN 0::numeric
                  WHEN value ~ '^-?[0-9]+$' THEN value::numeric END AS amount
           FROM held
         ), updated AS (
           UPDATE ${this.#qualified} AS target
           SET value = (locked.amount + $2::numeric)::text,
               expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond'
           FROM locked
           WHERE target.key = locked.key AND locked.amount IS NOT NULL
             AND ($4::numeric IS NULL OR locked.amount + $2::numeric >= $4::numeric)
             AND ($5::numeric IS NULL OR locked.amount + $2::numeric <= $5::numeric)
           RETURNING target.value
         )
         SELECT locked.amount::text AS amount, (SELECT value FROM updated) AS next FROM locked`,
        [stored, delta.toString(), ms, min, max],
      )
      const row = existing.rows[0]
      if (row) {
        if (row.amount === null) throw new InvalidCounterError()
        if (row.next !== null) return { applied: true, value: BigInt(row.next) }
        return { applied: false, value: BigInt(row.amount) }
      }
      // No row: the counter is 0. Nothing is written when 0 + delta is out of bounds.
      if (!inBounds(delta)) return { applied: false, value: 0n }
      const inserted = await this.#statementOnPool(
        `INSERT INTO ${this.#qualified} (key, value, expires_at)
         VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond')
         ON CONFLICT (key) DO NOTHING`,
        [stored, delta.toString(), ms],
      )
      if (inserted.rowCount === 1) return { applied: true, value: delta }
      // Another process created the row in between: take the locking path again.
    }
    throw new StoreUnavailableError({
      detail: 'Counter under heavy contention',
      retryAfter: this.#retryAfter,
    })
  }

  /**
   * Runs the steps in one transaction (see {@link Store.atomic}): every key of the batch gets a row (an
   * absent one an already-expired placeholder, which every operation reads as absent), all rows are
   * locked in key order (`SELECT … FOR UPDATE`), the steps are evaluated on the locked values, and the
   * writes are applied before `COMMIT`. Nothing else can change these keys meanwhile, and locking in one
   * order keeps concurrent batches from deadlocking.
   */
  async atomic(steps: readonly AtomicStep[]): Promise<AtomicResult> {
    refuseUnencodable(steps.flatMap(stepValues))
    for (const step of steps) if ('ttlMs' in step) ttl(step.ttlMs)
    this.#open()
    return this.#tracked(this.#atomic(steps))
  }

  async #atomic(steps: readonly AtomicStep[]): Promise<AtomicResult> {
    // Each key of the batch and its row's key (one-to-one, see storedKey), and back.
    const stored = new Map<string, string>()
    for (const step of steps)
      for (const key of step.op === 'setIfAtLeast' ? [step.key, step.counter] : [step.key])
        if (!stored.has(key)) stored.set(key, storedKey(key))
    const keyOf = new Map([...stored].map(([key, row]) => [row, key]))
    const keys = [...keyOf.keys()].sort()
    if (this.#autoMigrate && this.#ready === undefined) this.migrate().catch(() => {})
    const client = await this.#connect(this.#ready)
    client.on('error', this.#onError)
    let broken: Error | undefined
    try {
      await this.#on(client, 'BEGIN')
      // One statement creates or locks every row: `DO UPDATE … WHERE false` updates nothing but locks the
      // existing row, and retries as an insert when that row is deleted meanwhile. (With `DO NOTHING` and
      // a separate `SELECT … FOR UPDATE`, a row deleted in between by `delete()` or `cleanup()` was
      // skipped by the lock, and the batch's write to it silently went nowhere.)
      await this.#on(
        client,
        `INSERT INTO ${this.#qualified} AS existing (key, value, expires_at)
         SELECT key, '', '-infinity' FROM unnest($1::text[]) AS key ORDER BY key
         ON CONFLICT (key) DO UPDATE SET expires_at = existing.expires_at WHERE false`,
        [keys],
      )
      const locked = await this.#on<{ key: string; value: string; live: boolean }>(
        client,
        `SELECT key, value, expires_at > clock_timestamp() AS live FROM ${this.#qualified}
         WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE`,
        [keys],
      )
      // Cannot happen once every row is locked above; if it ever did, a 503 beats a lost write.
      if (locked.rows.length !== keys.length) throw this.#lockLost()
      const live = new Map<string, string>()
      for (const row of locked.rows) if (row.live) live.set(keyOf.get(row.key) ?? row.key, row.value)
      const { result, writes } = runAtomicSteps(steps, { read: (key) => live.get(key) })
      if (writes.length > 0) {
        const written = await this.#on(
          client,
          `UPDATE ${this.#qualified} AS target
           SET value = w.value, expires_at = clock_timestamp() + w.ms * interval '1 millisecond'
           FROM unnest($1::text[], $2::text[], $3::bigint[]) AS w(key, value, ms)
           WHERE target.key = w.key`,
          [
            writes.map((w) => stored.get(w.key) ?? storedKey(w.key)),
            writes.map((w) => w.value),
            writes.map((w) => ttl(w.ttlMs)),
          ],
        )
        // Never report a write that did not happen: roll back and answer 503 instead.
        if (written.rowCount !== writes.length) throw this.#lockLost()
      }
      await this.#on(client, 'COMMIT')
      return result
    } catch (error) {
      const stalled = expired.has(error as object)
      // A store error (a non-integer counter) leaves the connection usable; anything else drops it.
      if (!BaseError.is(error) || stalled) broken = error instanceof Error ? error : new Error(String(error))
      // A failure PostgreSQL did not report (a query timeout, a lost or stalled connection) leaves the
      // connection dead or wedged: a ROLLBACK on it would only stall for another query timeout before the
      // 503. The connection is destroyed instead, and the server rolls the transaction back when it goes.
      if (!connectionLost(error) && !stalled)
        await this.#on(client, 'ROLLBACK').catch((failed: unknown) => {
          broken ??= failed instanceof Error ? failed : new Error(String(failed))
        })
      throw this.#failure(error)
    } finally {
      client.off('error', this.#onError)
      client.release(broken)
    }
  }

  /** A batch that lost one of its rows: rolled back and answered 503 (nothing it reported was written). */
  #lockLost(): StoreUnavailableError {
    return new StoreUnavailableError({
      detail: 'Payment store row changed during an atomic batch',
      retryAfter: this.#retryAfter,
    })
  }

  /**
   * Stops the cleanup timer and ends the pool the store created (a pool passed in is left open), once the
   * statements already under way have finished (each within `timeoutMs`). Afterwards every operation
   * rejects with `StoreUnavailableError`; calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    // An operation started before close() (one waiting for the first migration or for a free connection)
    // would otherwise find the pool ended and fail with a 503, e.g. a graceful shutdown would refuse the
    // requests it means to drain. New operations are refused from now on (see #open).
    await Promise.allSettled([...this.#inFlight])
    if (this.#owned) {
      await this.pool.end()
      return
    }
    this.pool.off('error', this.#onError)
  }

  /** Throws once {@link PostgresStore.close} was called. */
  #open(): void {
    if (this.#closing)
      throw new StoreUnavailableError({ detail: 'Payment store closed', retryAfter: this.#retryAfter })
  }

  /** `pending`, counted among the operations {@link PostgresStore.close} waits for until it settles. */
  #tracked<T>(pending: Promise<T>): Promise<T> {
    this.#inFlight.add(pending)
    const settled = () => this.#inFlight.delete(pending)
    pending.then(settled, settled)
    return pending
  }

  #query<Row extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<Row>> {
    this.#open()
    return this.#tracked(this.#statementOnPool<Row>(text, values))
  }

  async #statementOnPool<Row extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<Row>> {
    if (this.#autoMigrate && this.#ready === undefined) this.migrate().catch(() => {})
    // Not `pool.query`: a connection it obtains after `timeoutMs` (the pool was full, or slow to connect)
    // would still run the statement, after the caller was answered 503, e.g. consume a credential whose
    // request was refused. `#connect` gives such a late connection back unused.
    const client = await this.#connect(this.#ready)
    // While checked out the pool's idle listener is detached; a connection lost meanwhile also fails the
    // statement, which reports it (as `pool.query` does).
    client.on('error', ignore)
    let failed: Error | undefined
    try {
      return await this.#on<Row>(client, text, values)
    } catch (error) {
      failed = error instanceof Error ? error : new StoreError({ cause: error })
      throw this.#failure(error)
    } finally {
      client.off('error', ignore)
      // As `pool.query` does: a connection whose statement failed is destroyed rather than reused (a
      // timed-out one may still be running it).
      client.release(failed)
    }
  }

  /**
   * Maps a failure to what the payment server answers. Connection refused or lost, pool and query
   * timeouts (errors PostgreSQL did not report) and transient SQLSTATEs ({@link isTransient}) are a
   * `StoreUnavailableError`, 503 + Retry-After: whether a statement that failed mid-flight committed is
   * unknown, and the client retries (with the same Idempotency-Key, which recovers a settlement whose
   * response was lost). Anything else PostgreSQL reports is permanent until someone fixes it, so it is a
   * {@link PostgresStoreError} (500, no Retry-After), also given to `onError`.
   */
  #failure(error: unknown): BaseError {
    if (BaseError.is(error)) return error
    const sqlState = sqlStateOf(error)
    if (sqlState === undefined || isTransient(sqlState)) {
      const unavailable = new StoreUnavailableError({ cause: error, retryAfter: this.#retryAfter })
      unavailable.message = unavailableMessage(error)
      return unavailable
    }
    const permanent = new PostgresStoreError({ sqlState, cause: error })
    this.#onError(permanent)
    return permanent
  }
}

/**
 * Longest TTL a store keeps, in milliseconds (100 years). Longer TTLs are clamped down to it rather than
 * refused: every store represents it (a PostgreSQL interval, a Redis `PX`, a JavaScript timestamp), and
 * for a replay-protection key 100 years is as good as forever, whereas a TTL the backend cannot represent
 * would make every such write fail.
 */
const maxTtlMs = 100 * 365 * 86_400_000

/** TTL in whole milliseconds, at least 1 and at most {@link maxTtlMs}. */
function ttl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs)) throw new ConfigurationError('ttlMs must be a finite number of milliseconds')
  return Math.min(maxTtlMs, Math.max(1, Math.ceil(ttlMs)))
}
