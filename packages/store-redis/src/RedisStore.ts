import { createHash } from 'node:crypto'
import {
  BaseError,
  ConfigurationError,
  type IncrementOptions,
  type IncrementResult,
  type Store,
  StoreUnavailableError,
} from '@mppkit/core'
import { Redis, type RedisOptions } from 'ioredis'
import { compareAndSetScript, incrementScript, notIntegerMarker } from './scripts.js'

/**
 * The ioredis options a {@link RedisStore} uses for the client it creates from a URL. Pass the same
 * options when you hand in your own client, for the same guarantees:
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

/** Options of {@link RedisStore}. */
export type RedisStoreOptions = {
  /** An ioredis client to use (the store does not close it). Prefer {@link redisClientOptions} for it. */
  client?: Redis
  /** A `redis://` URL to connect to when no client is given (default `redis://127.0.0.1:6379`). */
  url?: string
  /** Prepended to every key, e.g. `mppkit:`; lets several services or tenants share one Redis. */
  keyPrefix: string
  /** Seconds a client should wait before retrying when Redis is unavailable (default 1). */
  retryAfter?: number
  /** Receives connection errors of the client (they are otherwise swallowed: operations already throw). */
  onError?: (error: Error) => void
}

type Script = { source: string; sha: string }
const script = (source: string): Script => ({ source, sha: createHash('sha1').update(source).digest('hex') })
const compareAndSet = script(compareAndSetScript)
const increment = script(incrementScript)

/**
 * A {@link Store} on Redis: every instance of a payment server sharing one Redis consumes each
 * credential exactly once.
 *
 * `putIfAbsent` is `SET key value NX PX ttl`; `compareAndSet` and bounded `increment` are Lua scripts
 * (atomic on the server), run by `EVALSHA` with an `EVAL` fallback; every write sets `PX`. Counters are
 * decimal strings with exact arbitrary-precision arithmetic inside the script. Each key is
 * `keyPrefix + key` and each script touches one key, so the layout also works on Redis Cluster.
 *
 * When Redis cannot be reached, or the connection drops during an operation, the operation throws
 * `StoreUnavailableError` (the server answers 503 + Retry-After) and the client reconnects by itself.
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
  readonly #owned: boolean
  readonly #retryAfter: number
  readonly #onError: (error: Error) => void

  constructor(options: RedisStoreOptions) {
    if (typeof options.keyPrefix !== 'string') throw new ConfigurationError('RedisStore needs a keyPrefix')
    this.keyPrefix = options.keyPrefix
    this.#retryAfter = options.retryAfter ?? 1
    const onError = options.onError
    this.#onError = (error) => onError?.(error)
    if (options.client) {
      this.client = options.client
      this.#owned = false
    } else {
      this.client = new Redis(options.url ?? 'redis://127.0.0.1:6379', redisClientOptions)
      this.#owned = true
    }
    // An 'error' event must never become an unhandled error; the failing operation reports it instead.
    this.client.on('error', this.#onError)
  }

  async putIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const px = ttl(ttlMs)
    return this.#run(
      async () => (await this.client.set(this.keyPrefix + key, value, 'PX', px, 'NX')) === 'OK',
    )
  }

  async get(key: string): Promise<string | undefined> {
    return this.#run(async () => (await this.client.get(this.keyPrefix + key)) ?? undefined)
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    const px = ttl(ttlMs)
    await this.#run(() => this.client.set(this.keyPrefix + key, value, 'PX', px))
  }

  async delete(key: string): Promise<void> {
    await this.#run(() => this.client.del(this.keyPrefix + key))
  }

  async compareAndSet(
    key: string,
    expected: string | undefined,
    next: string,
    ttlMs: number,
  ): Promise<boolean> {
    if (expected === undefined) return this.putIfAbsent(key, next, ttlMs)
    const px = ttl(ttlMs)
    return this.#run(
      async () => (await this.#eval(compareAndSet, this.keyPrefix + key, [expected, next, px])) === 1,
    )
  }

  async increment(key: string, delta: bigint, options: IncrementOptions): Promise<IncrementResult> {
    const px = ttl(options.ttlMs)
    const args = [delta.toString(), px, options.min?.toString() ?? '', options.max?.toString() ?? '']
    return this.#run(async () => {
      const reply = await this.#eval(increment, this.keyPrefix + key, args)
      if (!Array.isArray(reply) || typeof reply[1] !== 'string')
        throw new StoreUnavailableError({
          detail: 'Unexpected reply from Redis',
          retryAfter: this.#retryAfter,
        })
      return { applied: reply[0] === 1, value: BigInt(reply[1]) }
    })
  }

  /** Closes the connection the store opened (a client passed in is left open for its owner). */
  async close(): Promise<void> {
    if (!this.#owned) {
      this.client.off('error', this.#onError)
      return
    }
    try {
      await this.client.quit()
    } catch {
      this.client.disconnect()
    }
  }

  async #eval(script: Script, key: string, args: (string | number)[]): Promise<unknown> {
    try {
      return await this.client.evalsha(script.sha, 1, key, ...args)
    } catch (error) {
      // The script cache is empty after a restart or SCRIPT FLUSH: send the source once, Redis caches it.
      if (error instanceof Error && error.message.startsWith('NOSCRIPT'))
        return await this.client.eval(script.source, 1, key, ...args)
      throw error
    }
  }

  async #run<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (error) {
      if (BaseError.is(error)) throw error
      if (error instanceof Error && error.message.includes(notIntegerMarker))
        throw new BaseError('The counter key holds a value that is not a decimal integer', {
          code: 'store_invalid_counter',
          cause: error,
        })
      // Connection refused or dropped, timeouts, and server-side refusals (LOADING, OOM, READONLY…).
      // Whether a dropped command ran is unknown; the server answers 503 and the client retries (with
      // the same Idempotency-Key, which recovers a settlement whose response was lost).
      throw new StoreUnavailableError({ cause: error, retryAfter: this.#retryAfter })
    }
  }
}

/** Redis `PX` takes a positive integer number of milliseconds. */
function ttl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs)) throw new ConfigurationError('ttlMs must be a finite number of milliseconds')
  return Math.max(1, Math.ceil(ttlMs))
}
