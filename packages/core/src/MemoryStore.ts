import { counter, runAtomicSteps } from './AtomicSteps.js'
import { ConfigurationError, StoreUnavailableError } from './Errors.js'
import type { AtomicResult, AtomicStep, IncrementOptions, IncrementResult, Store } from './Store.js'

type Entry = { value: string; expiresAt: number }

/** Options of {@link MemoryStore}. */
export type MemoryStoreOptions = {
  /**
   * Most live keys held at once (default 250 000, roughly 40 MB). A consumed challenge id is kept until
   * its challenge expires plus 60 s, so with 5-minute challenges the default sustains about 700 paid
   * requests per second in one process; size it for your peak, or use a shared store.
   */
  maxEntries?: number
  /** Clock, for tests. */
  now?: () => number
}

/**
 * A bounded in-process {@link Store}: every key has a TTL, expired keys are evicted, and the number of
 * keys never exceeds `maxEntries`. Single-threaded JavaScript makes each operation atomic.
 *
 * When the store is full of live keys it refuses new ones (`StoreUnavailableError`, a 503) rather than
 * forgetting a consumed credential early: forgetting would allow a replay.
 *
 * @example
 * ```ts
 * const store = new MemoryStore({ maxEntries: 50_000 })
 * await store.putIfAbsent('consumed:abc', '1', 60_000) // true
 * await store.putIfAbsent('consumed:abc', '1', 60_000) // false
 * ```
 */
export class MemoryStore implements Store {
  readonly maxEntries: number
  readonly #entries = new Map<string, Entry>()
  readonly #now: () => number
  #nextSweep = 0
  #closed = false

  constructor(options: MemoryStoreOptions = {}) {
    this.maxEntries = options.maxEntries ?? 250_000
    if (!Number.isSafeInteger(this.maxEntries) || this.maxEntries < 1)
      throw new ConfigurationError('maxEntries must be a positive integer')
    this.#now = options.now ?? Date.now
  }

  /** Number of keys currently held (live or not yet swept). */
  get size(): number {
    return this.#entries.size
  }

  #live(key: string, now = this.#now()): Entry | undefined {
    this.#open()
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      this.#entries.delete(key)
      return undefined
    }
    return entry
  }

  #write(key: string, value: string, ttlMs: number, now: number, existing = this.#entries.has(key)): void {
    this.#open()
    const ms = ttl(ttlMs)
    if (!existing && this.#entries.size >= this.maxEntries) {
      this.sweep(now)
      if (this.#entries.size >= this.maxEntries)
        throw new StoreUnavailableError({ detail: 'Memory store is full', retryAfter: 1 })
    } else if (now >= this.#nextSweep && this.#entries.size > this.maxEntries / 2) {
      this.sweep(now)
    }
    // Delete first so the Map keeps keys in write order (oldest first), which keeps sweeps cheap.
    if (existing) this.#entries.delete(key)
    this.#entries.set(key, { value, expiresAt: now + ms })
  }

  /** Removes every expired key. Runs by itself when the store fills up. */
  sweep(now = this.#now()): void {
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key)
    this.#nextSweep = now + 1_000
  }

  async putIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const now = this.#now()
    if (this.#live(key, now)) return false
    // #live removed an expired entry, so the key is known to be absent.
    this.#write(key, value, ttlMs, now, false)
    return true
  }

  async get(key: string): Promise<string | undefined> {
    return this.#live(key)?.value
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.#write(key, value, ttlMs, this.#now())
  }

  async delete(key: string): Promise<void> {
    this.#open()
    this.#entries.delete(key)
  }

  async compareAndSet(
    key: string,
    expected: string | undefined,
    next: string,
    ttlMs: number,
  ): Promise<boolean> {
    const now = this.#now()
    if (this.#live(key, now)?.value !== expected) return false
    this.#write(key, next, ttlMs, now)
    return true
  }

  async increment(key: string, delta: bigint, options: IncrementOptions): Promise<IncrementResult> {
    const now = this.#now()
    const current = counter(this.#live(key, now)?.value)
    const value = current + delta
    if (
      (options.max !== undefined && value > options.max) ||
      (options.min !== undefined && value < options.min)
    )
      return { applied: false, value: current }
    this.#write(key, value.toString(), options.ttlMs, now)
    return { applied: true, value }
  }

  /** Runs the steps synchronously, so nothing interleaves (see {@link Store.atomic}). */
  async atomic(steps: readonly AtomicStep[]): Promise<AtomicResult> {
    this.#open()
    const now = this.#now()
    // Like the networked stores, a bad TTL refuses the whole batch before anything is written.
    for (const step of steps) if ('ttlMs' in step) ttl(step.ttlMs)
    const { result, writes } = runAtomicSteps(steps, { read: (key) => this.#live(key, now)?.value })
    // All or none of the writes: check the room for new keys before the first one.
    const added = writes.filter((w) => !this.#entries.has(w.key)).length
    if (added > 0 && this.#entries.size + added > this.maxEntries) {
      this.sweep(now)
      if (this.#entries.size + added > this.maxEntries)
        throw new StoreUnavailableError({ detail: 'Memory store is full', retryAfter: 1 })
    }
    for (const w of writes) this.#write(w.key, w.value, w.ttlMs, now)
    return result
  }

  /**
   * Drops every key. Afterwards every operation rejects with `StoreUnavailableError` (a 503), as the
   * networked stores do once their connection is closed: a closed store that answered as an empty one
   * would accept every consumed credential again. Calling it again does nothing.
   */
  async close(): Promise<void> {
    this.#closed = true
    this.#entries.clear()
  }

  /** Throws once the store is closed. */
  #open(): void {
    if (this.#closed) throw new StoreUnavailableError({ detail: 'Memory store is closed', retryAfter: 1 })
  }
}

/**
 * Longest TTL kept, in milliseconds (100 years), the same as the Redis and PostgreSQL stores: longer TTLs
 * are clamped down to it (for a replay-protection key 100 years is as good as forever).
 */
const maxTtlMs = 100 * 365 * 86_400_000

/** TTL in milliseconds, at least 1 and at most {@link maxTtlMs}; NaN and infinities are refused. */
function ttl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs)) throw new ConfigurationError('ttlMs must be a finite number of milliseconds')
  return Math.min(maxTtlMs, Math.max(1, ttlMs))
}
