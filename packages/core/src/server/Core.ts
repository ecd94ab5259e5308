import { createSecretKey, type KeyObject } from 'node:crypto'
import * as Binding from '../Binding.js'
import { ConfigurationError } from '../Errors.js'
import * as Expires from '../Expires.js'
import { prefixStore } from '../internal/prefixStore.js'
import { MemoryStore } from '../MemoryStore.js'
import type * as Method from '../Method.js'
import * as Registry from '../Registry.js'
import type { Store } from '../Store.js'
import type { Logger } from './Logger.js'
import * as Log from './Logger.js'

/**
 * Where an unexpected error happened; `background` is a method's own work reported through setup,
 * `configuration` a mistake in how the server is mounted that an adapter can only see on a request (e.g.
 * a body parser that consumed the body before the payment middleware could digest it).
 */
export type Phase = 'verify' | 'settle' | 'handler' | 'store' | 'challenge' | 'background' | 'configuration'

/** Options of `Server.create`. */
export type Options = {
  /** Protection space; every challenge carries it and every credential must echo it. */
  realm: string
  /**
   * HMAC secrets (≥ 32 bytes each). New challenges are signed with the first; every listed secret
   * verifies until its challenges expire, which is how rotation works.
   */
  secrets: readonly (string | Uint8Array)[]
  /** The methods this server accepts: an explicit list, duplicates are an error. */
  methods: readonly Method.Server[]
  /** Shared state (consumed ids, idempotent responses, sessions). Default: a bounded MemoryStore. */
  store?: Store
  /** Challenge lifetime in seconds (default 300). */
  expiresIn?: number
  /**
   * Idempotent responses are kept this many seconds (default 86 400); at least `expiresIn`, so a paid
   * request retried with its `Idempotency-Key` while its challenge lives gets its response back.
   */
  idempotencyTtl?: number
  /**
   * Seconds a paid request may take to produce its response before an Idempotency-Key retry may take
   * over and serve it again (default 300).
   */
  idempotencyLease?: number
  /** Largest request body read for the digest binding, in bytes (default 1 MiB); larger is a 413. */
  maxBodyBytes?: number
  /** Prefix for every Store key (default `mppkit:`). */
  keyPrefix?: string
  /** Clock (epoch ms), for tests. */
  now?: () => number
  /** Called with unexpected errors (rail or handler failures). Never receives credentials. */
  onError?: (error: unknown, context: { phase: Phase }) => void
  /**
   * Where unexpected errors are logged, one concise line per distinct failure, repeats held back for a
   * minute (default: stderr; `false`: nothing). Lines carry the phase and the error's name and first
   * message line, never a credential.
   */
  logger?: Logger
}

/** What every step of the server shares: configuration, keys, clock and store, built once. */
export type Core = {
  readonly realm: string
  readonly store: Store
  readonly prefix: string
  readonly expiresIn: number
  readonly idempotencyTtlMs: number
  readonly leaseMs: number
  readonly maxBodyBytes: number
  readonly signingKey: KeyObject
  readonly secrets: readonly KeyObject[]
  readonly registry: Registry.Registry<Method.Server>
  now(): number
  report(error: unknown, phase: Phase): void
  /** The method's store: the server store with keys prefixed by method and intent. */
  storeFor(method: Method.Server): Store
}

/** Default of {@link Options.maxBodyBytes}: 1 MiB. */
export const defaultMaxBodyBytes = 1 << 20

/**
 * The longest lifetime or retention any option may ask for, in seconds (about 31 years): far past any
 * real one, and it keeps every `expires` a four-digit-year RFC 3339 date and every TTL a safe integer
 * of milliseconds.
 */
export const maxSeconds = 1e9

/**
 * Checks a duration option in seconds: a number above 0, from `min` to {@link maxSeconds} (so finite).
 * A string (an environment variable passed as is) would be concatenated into `expires`, a negative or
 * NaN lifetime issues challenges that are already expired or cannot be formatted, and a NaN TTL never
 * expires: each is refused when the server is created rather than failing request after request.
 *
 * @example
 * ```ts
 * checkSeconds('expiresIn', options.expiresIn, 1) // throws ConfigurationError for '300'
 * ```
 */
export function checkSeconds(name: string, value: unknown, min: number): void {
  if (typeof value === 'number' && value > 0 && value >= min && value <= maxSeconds) return
  const got = typeof value === 'number' ? String(value) : `a ${typeof value}`
  const from = min > 0 ? `at least ${min}` : 'more than 0'
  throw new ConfigurationError(
    `${name} must be a number of seconds, ${from} and at most ${maxSeconds} (got ${got})`,
  )
}

/** Validates the options and builds the shared core. */
export function createCore(options: Options): Core {
  if (typeof options.realm !== 'string' || options.realm === '')
    throw new ConfigurationError('realm is required')
  if (!Array.isArray(options.secrets) || options.secrets.length === 0)
    throw new ConfigurationError('at least one secret is required')
  const maxBodyBytes = options.maxBodyBytes ?? defaultMaxBodyBytes
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0)
    throw new ConfigurationError('maxBodyBytes must be a non-negative integer')
  const expiresIn = options.expiresIn ?? Expires.defaultTtlSeconds
  // `expires` has whole seconds: a lifetime under one second issues challenges already expired.
  checkSeconds('expiresIn', expiresIn, 1)
  const idempotencyTtl = options.idempotencyTtl ?? 86_400
  checkSeconds('idempotencyTtl', idempotencyTtl, 0)
  // Both in seconds. A record gone before its challenge expires turns a paid retry with the same
  // Idempotency-Key into a 402: the challenge is consumed, and the response is no longer kept.
  if (idempotencyTtl < expiresIn)
    throw new ConfigurationError(
      `idempotencyTtl (${idempotencyTtl} s) must be at least expiresIn (${expiresIn} s): a paid retry with the same Idempotency-Key would be refused once the response is dropped`,
    )
  const idempotencyLease = options.idempotencyLease ?? 300
  checkSeconds('idempotencyLease', idempotencyLease, 0)
  // KeyObjects make each HMAC cheaper than raw key bytes.
  const secrets = options.secrets.map((secret) => createSecretKey(Binding.checkSecret(secret)))
  const store = options.store ?? new MemoryStore()
  const prefix = options.keyPrefix ?? 'mppkit:'
  const onError = options.onError
  const now = options.now ?? Date.now
  const log = Log.create(options.logger, now)
  const methodStores = new Map<Method.Server, Store>()
  return {
    realm: options.realm,
    store,
    prefix,
    expiresIn,
    idempotencyTtlMs: idempotencyTtl * 1000,
    leaseMs: idempotencyLease * 1000,
    maxBodyBytes,
    signingKey: secrets[0]!,
    secrets,
    registry: Registry.from(options.methods),
    now,
    report(error, phase) {
      log(error, phase)
      try {
        onError?.(error, { phase })
      } catch {}
    },
    storeFor(method) {
      let scoped = methodStores.get(method)
      if (!scoped) {
        scoped = prefixStore(store, `${prefix}m:${method.definition.name}/${method.definition.intent}:`)
        methodStores.set(method, scoped)
      }
      return scoped
    },
  }
}
