import { createHash } from 'node:crypto'
import {
  type AtomicResult,
  type AtomicStep,
  type AtomicStepResult,
  BaseError,
  ConfigurationError,
  type IncrementOptions,
  type IncrementResult,
  InvalidCounterError,
  type Store,
  StoreError,
  StoreUnavailableError,
} from '@mppkit/core'
import { Redis, type RedisOptions } from 'ioredis'
import { atomicScript, compareAndSetScript, incrementScript, notIntegerMarker } from './scripts.js'

/**
 * The ioredis options a {@link RedisStore} uses for the client it creates from a URL. Pass the same
 * options when you hand in your own client, for the same guarantees (a client with
 * `autoResendUnfulfilledCommands` left on is refused with a `ConfigurationError`):
 *
 * - `maxRetriesPerRequest: 0` rejects queued and in-flight commands as soon as the connection drops, so
 *   a request fails fast with a 503 instead of waiting for a reconnect.
 * - `autoResendUnfulfilledCommands: false`: ioredis would otherwise resend a command whose reply was lost
 *   with the connection. A resent `SET NX` that had in fact run would answer "already consumed" to the
 *   payer who consumed it; a resent increment would spend twice. An unknown outcome is a 503 instead.
 * - bounded `connectTimeout` / `commandTimeout`, so an unreachable or black-holed server never hangs a
 *   request, and a `retryStrategy` that keeps reconnecting forever (at most once a second).
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis'
 * const client = new Redis('redis://127.0.0.1:6379', { ...redisClientOptions, db: 2 })
 * const store = new RedisStore({ client, keyPrefix: 'mppkit:' })
 * ```
 */
export const redisClientOptions = {
  connectTimeout: 2_000,
  commandTimeout: 5_000,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  enableOfflineQueue: true,
  retryStrategy: (attempt: number) => Math.min(attempt * 100, 1_000),
} satisfies RedisOptions

/**
 * The connection options of a `redis://` or `rediss://` URL
 * (`redis://[[username]:password@]host[:port][/db][?family=4|6]`), parsed with the WHATWG URL parser and handed to ioredis as separate options. Given the string, ioredis
 * parses it with Node's legacy `url.parse`: a password with an unescaped `/`, `#`, `?` or `[` then made
 * Node print the whole URL, password included, in a DEP0170 warning, threw a `TypeError` whose `input`
 * is the URL, or was read as the port and shown in every error message. A URL that can never connect
 * (a port outside 1 to 65535) was a 503 with Retry-After on every operation, for ever. Any of these is
 * a `ConfigurationError` here, which says what is wrong but never quotes the URL, the host or the port,
 * and has no cause. A path starting with `/` is a Unix socket.
 */
function redisUrlOptions(url: unknown): Partial<RedisOptions> {
  if (typeof url !== 'string') throw new ConfigurationError('RedisStore: url must be a string')
  if (url.startsWith('/')) return { path: url }
  const invalid = (why: string) =>
    new ConfigurationError(
      `RedisStore: url is not a valid redis:// URL (${why}; percent-encode special characters in the password)`,
    )
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    // Neither the URL nor the TypeError (whose `input` is the whole URL) is kept.
    throw invalid('it does not parse')
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    throw invalid('the scheme is not redis:// or rediss://')
  // A fragment or an unknown query parameter is the rest of a password cut at an unescaped `#` or `?`.
  if (parsed.hash !== '') throw invalid("it has a '#' fragment")
  const family = parsed.searchParams.get('family')
  if (
    [...parsed.searchParams.keys()].some((key) => key !== 'family') ||
    (family !== null && !['0', '4', '6'].includes(family))
  )
    throw invalid('the only query parameter it takes is family=4 or family=6')
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1')
  if (host === '') throw invalid('it has no host')
  const port = parsed.port === '' ? 6379 : Number(parsed.port)
  if (!(port >= 1 && port <= 65_535)) throw invalid('the port must be 1 to 65535')
  const db = /^\/?$|^\/(\d{1,9})$/.exec(parsed.pathname)
  if (!db) throw invalid('the path must be a database number such as /2')
  let username: string
  let password: string
  try {
    username = decodeURIComponent(parsed.username)
    password = decodeURIComponent(parsed.password)
  } catch {
    throw invalid('its username or password is not correctly percent-encoded')
  }
  return {
    host,
    port,
    ...(username === '' ? {} : { username }),
    ...(password === '' ? {} : { password }),
    ...(db[1] === undefined ? {} : { db: Number(db[1]) }),
    ...(family === null ? {} : { family: Number(family) }),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
  }
}

/**
 * Refuses values that UTF-8 cannot encode (an unpaired surrogate) with a {@link StoreError} (500):
 * ioredis (Node's UTF-8 encoder) would send U+FFFD in its place, so `'a\ud800'` would be stored as `'a\ufffd'`, and a `compareAndSet`
 * or `check` expecting one would match the other. The MemoryStore keeps them apart; no JSON value (what
 * mppkit stores) holds one, since JSON escapes lone surrogates.
 */
function refuseUnencodable(values: readonly (string | undefined)[]): void {
  for (const value of values)
    if (value !== undefined && /\p{Cs}/u.test(value)) {
      const error = new StoreError()
      error.message =
        'RedisStore: a value with an unpaired surrogate cannot be stored (UTF-8 cannot encode it)'
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

/** How long one store operation may take unless `timeoutMs` says otherwise (ms). */
const defaultTimeoutMs = 10_000

/** Options of {@link RedisStore}. */
export type RedisStoreOptions = {
  /**
   * An ioredis client to use (the store does not close it). Prefer {@link redisClientOptions} for it; it
   * must be created with `autoResendUnfulfilledCommands: false` (else `ConfigurationError`).
   */
  client?: Redis
  /**
   * A `redis://` or `rediss://` URL to connect to when no client is given (default
   * `redis://127.0.0.1:6379`): `redis://[[username]:password@]host[:port][/db][?family=4|6]`, with special
   * characters of the password percent-encoded. One that does not parse, or can never connect, is a
   * `ConfigurationError` (which never quotes it).
   */
  url?: string
  /** Prepended to every key, e.g. `mppkit:`; lets several services or tenants share one Redis. */
  keyPrefix: string
  /**
   * Whole seconds, 1 or more, a client should wait before retrying when Redis is unavailable (default 1):
   * the `Retry-After` of those answers. Anything else is a `ConfigurationError`.
   */
  retryAfter?: number
  /**
   * Longest time, in milliseconds, one operation may take (default 10,000). When it passes, the operation
   * fails with `StoreUnavailableError` (503 + Retry-After) whatever the client's own timeouts are, so a
   * server that accepts connections and never answers cannot hold a request (a client without
   * `commandTimeout` would wait forever). The command may still run later: its outcome is unknown.
   */
  timeoutMs?: number
  /**
   * Receives connection errors of the client (they are otherwise swallowed: operations already throw)
   * and every {@link RedisStoreError} (NOPERM, WRONGTYPE, WRONGPASS…) with the Redis reply as its
   * `cause`. Log them: the HTTP client only sees a generic 500.
   */
  onError?: (error: Error) => void
}

/**
 * Redis refused an operation for a reason a retry does not fix: an ACL that denies a command or key
 * (`NOPERM`), a key holding another type (`WRONGTYPE`), an unknown command (`ERR`), a missing or wrong
 * password (`NOAUTH`, `WRONGPASS`)… An HTTP 500 problem without `Retry-After`; the problem body names no
 * key, user or command (those are in `cause` and {@link RedisStoreError.replyCode}).
 *
 * @example
 * ```ts
 * if (error instanceof RedisStoreError && error.replyCode === 'NOPERM') fixAcl()
 * ```
 */
export class RedisStoreError extends StoreError {
  /** The error code Redis replied with: the first word of its error reply (e.g. `NOPERM`, `ERR`). */
  readonly replyCode: string
  constructor(options: { replyCode: string; cause?: unknown; where?: string }) {
    super({ cause: options.cause })
    this.name = 'RedisStoreError'
    this.replyCode = options.replyCode
    // The message (for logs) leads with Redis's own reply; the problem `detail` stays generic.
    const reply = options.cause instanceof Error ? options.cause.message.split('\n')[0] : undefined
    if (reply)
      this.message = `Redis${options.where ? ` at ${options.where}` : ''} refused the operation: ${reply}`
  }
}

/**
 * Refuses a client that resends unanswered commands after a reconnect (ioredis's default
 * `autoResendUnfulfilledCommands: true`). A resent `SET NX` that had in fact run answers "already
 * consumed" to the payer who consumed it, and a resent increment or batch applies twice: the store would
 * report a definite, wrong outcome instead of a 503. ioredis keeps the options it was given on
 * `client.options`.
 */
function refuseResend(client: Redis): void {
  const options = (client as { options?: Partial<RedisOptions> }).options
  if (options?.autoResendUnfulfilledCommands === false) return
  throw new ConfigurationError(
    'RedisStore: the ioredis client passed in resends unanswered commands after a reconnect ' +
      '(autoResendUnfulfilledCommands is not false), which can apply a write twice. Create it with ' +
      "redisClientOptions from '@mppkit/store-redis' (or at least autoResendUnfulfilledCommands: false, " +
      'and maxRetriesPerRequest: 0 with a connectTimeout and commandTimeout), or pass url instead',
  )
}

/** The system error code (`ECONNREFUSED`, `ETIMEDOUT`…) in an error's cause chain, if any. */
function systemCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code
  }
  return undefined
}

/** Commands whose arguments carry credentials (`AUTH [user] password`, `HELLO … AUTH user password`). */
const credentialCommands = new Set(['auth', 'hello'])

/**
 * Removes the credentials ioredis attaches to the reply error of a refused login: it sets
 * `error.command = { name: 'auth', args: [user, password] }` on every error reply, and a logger that
 * prints an error with its cause (pino, `util.inspect`) would print the password. Returns `error`.
 */
function redacted<T>(error: T): T {
  for (let e: unknown = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const command = (e as { command?: unknown }).command as { name?: unknown; args?: unknown } | undefined
    if (
      command &&
      typeof command.name === 'string' &&
      credentialCommands.has(command.name.toLowerCase()) &&
      Array.isArray(command.args)
    )
      (e as { command: unknown }).command = { name: command.name, args: command.args.map(() => '[redacted]') }
  }
  return error
}

/**
 * Error replies after which the same command can succeed on a retry: the dataset is loading, a script
 * or module is busy, a replica lost its master, a cluster is resharding or down, a read-only replica
 * (failover in progress), `maxmemory` reached (`OOM`: keys expire and get evicted, so memory frees up
 * by itself), too few replicas for `min-replicas-to-write`, and a failing RDB save (`MISCONF`).
 */
const transientReplies = new Set([
  'LOADING',
  'BUSY',
  'MASTERDOWN',
  'TRYAGAIN',
  'CLUSTERDOWN',
  'READONLY',
  'OOM',
  'NOREPLICAS',
  'MISCONF',
])

/**
 * The code of a permanent Redis error reply (see {@link transientReplies}), or `undefined` for a
 * transient reply and for any error Redis did not send (connection lost or refused, timeouts).
 */
function permanentReplyCode(error: unknown): string | undefined {
  // ioredis raises every error reply as a `ReplyError` (from redis-errors); match the name so that a
  // client from another copy of ioredis is recognised too.
  if (!(error instanceof Error) || error.name !== 'ReplyError') return undefined
  const code = /^[A-Z]+(?=\s|$)/.exec(error.message)?.[0] ?? 'ERR'
  // Too many connections is an `ERR` reply, yet it goes away when other clients disconnect.
  if (transientReplies.has(code) || error.message.startsWith('ERR max number of clients reached'))
    return undefined
  return code
}

/**
 * An unpaired surrogate: a UTF-16 code unit (U+D800–U+DFFF) not part of a pair. UTF-8 cannot encode it:
 * ioredis (Node's UTF-8 encoder) sends U+FFFD in its place, so `'\ud800'`, `'\udc00'` and `'\ufffd'`
 * would all reach Redis as the same bytes.
 */
const unpairedSurrogate = /\p{Cs}/u
const unpairedSurrogates = /\p{Cs}/gu

/**
 * `key` as WTF-8 (https://simonsapin.github.io/wtf-8/): UTF-8, except that an unpaired surrogate is
 * encoded like any other code point below U+10000, in 3 bytes (`\ud800` is `ED A0 80`). Every string
 * gets its own bytes, and those of a string with an unpaired surrogate contain `ED A0`–`ED BF`, which
 * UTF-8 never produces: they are the bytes of no well-formed string.
 */
function wtf8(key: string): Buffer {
  const parts: Buffer[] = []
  let from = 0
  for (const match of key.matchAll(unpairedSurrogates)) {
    // Between two unpaired surrogates the text is well-formed: Node encodes it as UTF-8.
    parts.push(Buffer.from(key.slice(from, match.index)))
    const unit = key.charCodeAt(match.index)
    parts.push(Buffer.from([0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)]))
    from = match.index + 1
  }
  parts.push(Buffer.from(key.slice(from)))
  return Buffer.concat(parts)
}

type Script = { source: string; sha: string }
const script = (source: string): Script => ({ source, sha: createHash('sha1').update(source).digest('hex') })
const compareAndSet = script(compareAndSetScript)
const increment = script(incrementScript)
const atomicBatch = script(atomicScript)

/**
 * A {@link Store} on Redis: every instance of a payment server sharing one Redis consumes each
 * credential exactly once.
 *
 * `putIfAbsent` is `SET key value NX PX ttl`; `compareAndSet` and bounded `increment` are Lua scripts
 * (atomic on the server), run by `EVALSHA` with an `EVAL` fallback; every write sets `PX`. Counters are
 * decimal strings with exact arbitrary-precision arithmetic inside the script. Each key is
 * `keyPrefix + key` in UTF-8 (a key with an unpaired surrogate, which UTF-8 cannot encode, in WTF-8:
 * see {@link RedisStore.redisKey}) and each script touches one key, so the layout also works on Redis
 * Cluster.
 *
 * When Redis cannot be reached, or the connection drops during an operation, the operation throws
 * `StoreUnavailableError` (the server answers 503 + Retry-After) and the client reconnects by itself;
 * so do error replies a retry can fix (`LOADING`, `BUSY`, `OOM`, `READONLY`…). An error reply a retry
 * cannot fix (`NOPERM`, `WRONGTYPE`, `WRONGPASS`…) throws {@link RedisStoreError} (500).
 *
 * @example
 * ```ts
 * import { RedisStore } from '@mppkit/store-redis'
 * const store = new RedisStore({ url: process.env.REDIS_URL, keyPrefix: 'mppkit:' })
 * const server = Server.create({ realm, secrets, methods, store })
 * ```
 * @see draft-httpauth-payment-00 §11.6 (Concurrent Request Handling)
 */
export class RedisStore implements Store {
  /** The ioredis client in use. */
  readonly client: Redis
  /** The prefix of every key this store writes. */
  readonly keyPrefix: string
  /** {@link keyPrefix} as ioredis sends it (UTF-8), in front of the keys sent as bytes. */
  readonly #prefixBytes: Buffer
  readonly #owned: boolean
  readonly #retryAfter: number
  readonly #timeoutMs: number
  readonly #onError: (error: Error) => void
  /** The permanent error reply the last connection attempt failed with (a wrong password), if any. */
  #refusal: Error | undefined
  /** The last connection error (ECONNREFUSED…), the cause behind a later "Connection is closed". */
  #connectionError: Error | undefined
  #closing: Promise<void> | undefined

  constructor(options: RedisStoreOptions) {
    if (typeof options.keyPrefix !== 'string') throw new ConfigurationError('RedisStore needs a keyPrefix')
    // UTF-8 cannot encode an unpaired surrogate: it would be sent as U+FFFD, so the prefixes 't\ud800:'
    // and 't\ufffd:' would be one namespace, and a credential consumed through one store already
    // consumed through the other (draft-httpauth-payment-00 §11.6: "Servers MUST ensure that concurrent
    // requests with the same Payment credential result in at most one successful payment settlement").
    if (unpairedSurrogate.test(options.keyPrefix))
      throw new ConfigurationError(
        'RedisStore: keyPrefix must not contain an unpaired surrogate (it is sent as UTF-8)',
      )
    this.keyPrefix = options.keyPrefix
    this.#prefixBytes = Buffer.from(options.keyPrefix)
    const retryAfter = options.retryAfter ?? 1
    // It becomes the `Retry-After` header of every outage answer (RFC 9110 §10.2.3: "a non-negative
    // decimal integer, representing time in seconds"): NaN or 1.5 there tells a client nothing it can use.
    if (typeof retryAfter !== 'number' || !Number.isSafeInteger(retryAfter) || retryAfter < 1)
      throw new ConfigurationError('retryAfter must be a positive whole number of seconds')
    this.#retryAfter = retryAfter
    const timeoutMs = options.timeoutMs ?? defaultTimeoutMs
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= 2_147_483_647))
      throw new ConfigurationError('timeoutMs must be a positive number of milliseconds (at most 2147483647)')
    this.#timeoutMs = timeoutMs
    const onError = options.onError
    this.#onError = (error) => onError?.(error)
    if (options.client) {
      refuseResend(options.client)
      this.client = options.client
      this.#owned = false
    } else {
      this.client = new Redis({
        ...redisClientOptions,
        ...redisUrlOptions(options.url ?? 'redis://127.0.0.1:6379'),
      })
      this.#owned = true
    }
    // An 'error' event must never become an unhandled error; the failing operation reports it instead.
    this.client.on('error', this.#onClientError)
    this.client.on('ready', this.#onReady)
  }

  /** Reports a connection error and remembers whether it was a permanent refusal (WRONGPASS…). */
  readonly #onClientError = (error: Error): void => {
    redacted(error)
    this.#refusal = permanentReplyCode(error) === undefined ? undefined : error
    this.#connectionError = error
    this.#onError(error)
  }

  /** A successful login: earlier refusals no longer apply. */
  readonly #onReady = (): void => {
    this.#refusal = undefined
    this.#connectionError = undefined
  }

  /** `host:port` (or the socket path) of the Redis server, for messages. */
  get #where(): string {
    const { host, port, path } = this.client.options
    return path ? String(path) : `${host ?? '127.0.0.1'}:${port ?? 6379}`
  }

  /**
   * The Redis key of a store key: `keyPrefix + key`, as earlier versions of this store sent it (ioredis
   * encodes it as UTF-8). A key with an unpaired surrogate, which UTF-8 cannot encode (ioredis would send
   * U+FFFD for it, so `'\ud800'`, `'\udc00'` and `'\ufffd'` would share one Redis key), is sent as the
   * bytes of `keyPrefix` then the key in WTF-8, where each unpaired surrogate takes the 3 bytes of its
   * code point: bytes no well-formed key produces, so the mapping is one-to-one and every well-formed
   * key keeps the Redis key it always had. Computed in the process: it adds no command and no round trip.
   *
   * Two keys sharing one Redis key could let a consumed credential be accepted again;
   * draft-httpauth-payment-00 §11.6: "Servers MUST ensure that concurrent requests with the same Payment
   * credential result in at most one successful payment settlement and one resource delivery."
   *
   * @example
   * ```ts
   * store.redisKey('consumed:abc') // 'mppkit:consumed:abc'
   * store.redisKey('\ud800') // <Buffer 6d 70 70 6b 69 74 3a ed a0 80>
   * ```
   */
  redisKey(key: string): string | Buffer {
    if (!unpairedSurrogate.test(key)) return this.keyPrefix + key
    return Buffer.concat([this.#prefixBytes, wtf8(key)])
  }

  async putIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    refuseUnencodable([value])
    const px = ttl(ttlMs)
    return this.#run(async () => (await this.client.set(this.redisKey(key), value, 'PX', px, 'NX')) === 'OK')
  }

  async get(key: string): Promise<string | undefined> {
    return this.#run(async () => (await this.client.get(this.redisKey(key))) ?? undefined)
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    refuseUnencodable([value])
    const px = ttl(ttlMs)
    await this.#run(() => this.client.set(this.redisKey(key), value, 'PX', px))
  }

  async delete(key: string): Promise<void> {
    await this.#run(() => this.client.del(this.redisKey(key)))
  }

  async compareAndSet(
    key: string,
    expected: string | undefined,
    next: string,
    ttlMs: number,
  ): Promise<boolean> {
    if (expected === undefined) return this.putIfAbsent(key, next, ttlMs)
    refuseUnencodable([expected, next])
    const px = ttl(ttlMs)
    return this.#run(
      async () => (await this.#eval(compareAndSet, this.redisKey(key), [expected, next, px])) === 1,
    )
  }

  async increment(key: string, delta: bigint, options: IncrementOptions): Promise<IncrementResult> {
    const px = ttl(options.ttlMs)
    const args = [delta.toString(), px, options.min?.toString() ?? '', options.max?.toString() ?? '']
    return this.#run(async () => {
      const reply = await this.#eval(increment, this.redisKey(key), args)
      if (!Array.isArray(reply) || typeof reply[1] !== 'string')
        throw new StoreUnavailableError({
          detail: 'Unexpected reply from Redis',
          retryAfter: this.#retryAfter,
        })
      return { applied: reply[0] === 1, value: BigInt(reply[1]) }
    })
  }

  /**
   * Runs the steps in one Lua script: one round trip, atomic on the server (see {@link Store.atomic}).
   * The keys of one batch are passed as the script's KEYS; on Redis Cluster they must share a hash slot.
   */
  async atomic(steps: readonly AtomicStep[]): Promise<AtomicResult> {
    refuseUnencodable(steps.flatMap(stepValues))
    // Distinct store keys have distinct Redis keys (see redisKey), so one slot per store key is one per
    // Redis key: the script's pending writes (a table by Redis key) never merge two store keys.
    const keys: (string | Buffer)[] = []
    const slots = new Map<string, number>()
    const slot = (key: string) => {
      let index = slots.get(key)
      if (index === undefined) {
        keys.push(this.redisKey(key))
        index = keys.length
        slots.set(key, index)
      }
      return index
    }
    const args: (string | number)[] = [steps.length]
    for (const step of steps) {
      switch (step.op) {
        case 'check':
          args.push('k', slot(step.key), step.equals === undefined ? '0' : '1', step.equals ?? '', '', '')
          break
        case 'compareAndSet':
          args.push(
            'c',
            slot(step.key),
            step.expected === undefined ? '0' : '1',
            step.expected ?? '',
            step.next,
            ttl(step.ttlMs),
          )
          break
        case 'increment':
          args.push(
            'i',
            slot(step.key),
            step.delta.toString(),
            ttl(step.ttlMs),
            step.min?.toString() ?? '',
            step.max?.toString() ?? '',
          )
          break
        case 'setIfAtLeast':
          args.push(
            's',
            slot(step.key),
            step.value,
            ttl(step.ttlMs),
            slot(step.counter),
            step.atLeast.toString(),
          )
          break
        default:
          throw new ConfigurationError('Unknown atomic step')
      }
    }
    return this.#run(async () => {
      const reply = await this.#evalKeys(atomicBatch, keys, args)
      if (!Array.isArray(reply) || reply.length % 4 !== 1 || (reply.length - 1) / 4 > steps.length)
        throw new StoreUnavailableError({
          detail: 'Unexpected reply from Redis',
          retryAfter: this.#retryAfter,
        })
      const results: AtomicStepResult[] = []
      for (let index = 0; index * 4 + 1 < reply.length; index++) {
        const step = steps[index]!
        const applied = reply[index * 4 + 1] === 1
        const present = reply[index * 4 + 2] === 1
        const value = reply[index * 4 + 3] as string
        if (step.op === 'increment') results.push({ op: 'increment', applied, value: BigInt(value) })
        else if (step.op === 'setIfAtLeast') results.push({ op: 'setIfAtLeast', applied })
        else results.push({ op: step.op, applied, value: present ? value : undefined })
      }
      return { completed: reply[0] === 1, results }
    })
  }

  /**
   * Closes the connection the store opened (a client passed in is left open for its owner). Afterwards
   * every operation rejects with `StoreUnavailableError`; calling it again returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    if (!this.#owned) {
      this.client.off('error', this.#onClientError)
      this.client.off('ready', this.#onReady)
      return
    }
    try {
      // Bounded like every operation: a server that never answers QUIT gets its connection dropped.
      await this.#bounded(this.client.quit())
    } catch {
      this.client.disconnect()
    }
  }

  #eval(script: Script, key: string | Buffer, args: (string | number)[]): Promise<unknown> {
    return this.#evalKeys(script, [key], args)
  }

  async #evalKeys(script: Script, keys: (string | Buffer)[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.client.evalsha(script.sha, keys.length, ...keys, ...args)
    } catch (error) {
      // The script cache is empty after a restart or SCRIPT FLUSH: send the source once, Redis caches it.
      if (error instanceof Error && error.message.startsWith('NOSCRIPT'))
        return await this.client.eval(script.source, keys.length, ...keys, ...args)
      throw error
    }
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#closing)
      throw new StoreUnavailableError({ detail: 'Payment store closed', retryAfter: this.#retryAfter })
    try {
      return await this.#bounded(operation())
    } catch (error) {
      if (BaseError.is(error)) throw error
      if (error instanceof Error && error.message.includes(notIntegerMarker))
        throw new InvalidCounterError({ cause: error })
      throw this.#failure(error)
    }
  }

  /**
   * `pending`, or a `StoreUnavailableError` once {@link RedisStoreOptions.timeoutMs} has passed: the bound
   * holds whatever the client's options are (a client without `commandTimeout`, or with
   * `maxRetriesPerRequest: null`, would otherwise wait for an answer that never comes).
   */
  #bounded<T>(pending: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const unavailable = new StoreUnavailableError({ retryAfter: this.#retryAfter })
        // The message (for logs) says why; the problem `detail` stays generic.
        unavailable.message = `Redis at ${this.#where} did not answer within ${this.#timeoutMs} ms`
        reject(unavailable)
      }, this.#timeoutMs)
    })
    return Promise.race([pending, expired]).finally(() => clearTimeout(timer))
  }

  /**
   * Maps a failure to what the payment server answers. Connection refused or dropped, timeouts and
   * transient error replies ({@link transientReplies}) are a `StoreUnavailableError`, 503 + Retry-After:
   * whether a dropped command ran is unknown, and the client retries (with the same Idempotency-Key,
   * which recovers a settlement whose response was lost). Any other error reply is permanent until
   * someone fixes it, so it is a {@link RedisStoreError} (500, no Retry-After), also given to `onError`.
   * So is a command that failed while the client cannot connect because Redis refused its login.
   */
  #failure(error: unknown): BaseError {
    redacted(error)
    let replyCode = permanentReplyCode(error)
    let cause = error
    if (replyCode === undefined && this.#refusal && this.client.status !== 'ready') {
      // Between reconnects the command fails with a bare "connection closed": the refusal is the cause.
      cause = this.#refusal
      replyCode = permanentReplyCode(cause)
    }
    if (replyCode === undefined) {
      const unavailable = new StoreUnavailableError({ cause: error, retryAfter: this.#retryAfter })
      // The message (for logs) leads with the cause; the problem `detail` stays generic.
      const code =
        systemCode(error) ?? (this.client.status !== 'ready' ? systemCode(this.#connectionError) : undefined)
      const reply =
        error instanceof Error && error.name === 'ReplyError' ? error.message.split('\n')[0] : undefined
      unavailable.message = code
        ? `Redis unreachable at ${this.#where}: ${code}`
        : `Redis unavailable at ${this.#where}: ${reply ?? (error instanceof Error ? error.message.split('\n')[0] : String(error))}`
      return unavailable
    }
    const permanent = new RedisStoreError({ replyCode, cause, where: this.#where })
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

/** Redis `PX` takes a positive integer number of milliseconds (at most {@link maxTtlMs}). */
function ttl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs)) throw new ConfigurationError('ttlMs must be a finite number of milliseconds')
  return Math.min(maxTtlMs, Math.max(1, Math.ceil(ttlMs)))
}
