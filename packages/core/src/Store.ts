/**
 * The Store is the only state a payment server keeps: consumed challenge ids and proofs, idempotent
 * responses, and session balances. Every operation is atomic and every key carries a TTL, so one Store
 * shared by many server processes gives exactly-once consumption.
 *
 * Implementations: {@link MemoryStore} (here), `@mppkit/store-redis`, `@mppkit/store-postgres`. All
 * pass the same contract suite (`@mppkit/core/testing` → `describeStore`).
 *
 * Implementations MUST throw `StoreUnavailableError` (from `@mppkit/core`) when the backing service
 * cannot be reached, so the server answers 503 + Retry-After instead of 500.
 *
 * @see draft-httpauth-payment-00 §11.6 (Concurrent Request Handling): "Servers MUST ensure that
 *   concurrent requests with the same Payment credential result in at most one successful payment
 *   settlement and one resource delivery."
 */
export interface Store {
  /**
   * Atomically stores `value` under `key` only if the key is absent (or expired).
   * Returns `true` when this call created the key.
   */
  putIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>
  /** Reads a live key. */
  get(key: string): Promise<string | undefined>
  /** Unconditionally stores `value` with a TTL. */
  set(key: string, value: string, ttlMs: number): Promise<void>
  /** Removes a key (no error when absent). */
  delete(key: string): Promise<void>
  /**
   * Atomically replaces the value of `key` with `next` only if its current value equals `expected`
   * (`undefined` = the key is absent). Returns `true` when the swap happened.
   */
  compareAndSet(key: string, expected: string | undefined, next: string, ttlMs: number): Promise<boolean>
  /**
   * Atomically adds `delta` (may be negative) to the integer counter at `key` (absent = 0). When the
   * result would leave `[min, max]` nothing changes and `applied` is `false`. Returns the value after the
   * operation (or the unchanged current value). Counters are arbitrary-precision decimal integers.
   */
  increment(key: string, delta: bigint, options: IncrementOptions): Promise<IncrementResult>
  /** Releases connections. */
  close?(): Promise<void>
}

/** Options of {@link Store.increment}. */
export type IncrementOptions = {
  /** TTL of the counter, refreshed on every applied increment. */
  ttlMs: number
  /** Inclusive upper bound for the result. */
  max?: bigint
  /** Inclusive lower bound for the result. */
  min?: bigint
}

/** Result of {@link Store.increment}. */
export type IncrementResult = { applied: boolean; value: bigint }
