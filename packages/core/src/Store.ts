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
  /**
   * Optional capability: runs `steps` in order as ONE atomic operation (no other operation on these keys
   * interleaves), stopping at the first `check`, `compareAndSet` or `increment` that does not apply; the
   * steps before it stay applied. Lets a hot path that would take several calls take one round trip.
   * Callers MUST keep a path for stores without it (the same steps as separate calls, with their own
   * retry logic); `MemoryStore`, `RedisStore` and `PostgresStore` implement it.
   */
  atomic?(steps: readonly AtomicStep[]): Promise<AtomicResult>
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

/**
 * One step of {@link Store.atomic}. Each mirrors a single-key operation of the Store:
 * - `check`: applies when the key's value equals `equals` (`undefined` = absent); writes nothing.
 * - `compareAndSet`: as {@link Store.compareAndSet}.
 * - `increment`: as {@link Store.increment} (bounds included).
 * - `setIfAtLeast`: stores `value` when the counter at `counter` is at least `atLeast` (absent = 0);
 *   never stops the batch (`applied` says whether it wrote).
 */
export type AtomicStep =
  | { op: 'check'; key: string; equals: string | undefined }
  | { op: 'compareAndSet'; key: string; expected: string | undefined; next: string; ttlMs: number }
  | { op: 'increment'; key: string; delta: bigint; ttlMs: number; min?: bigint; max?: bigint }
  | { op: 'setIfAtLeast'; key: string; value: string; ttlMs: number; counter: string; atLeast: bigint }

/**
 * What one step of {@link Store.atomic} did: `value` is the key's value after the step (a `check` or a
 * failed `compareAndSet` reports the current value, read atomically with the rest of the batch; an
 * `increment` reports its counter as `IncrementResult.value` does).
 */
export type AtomicStepResult =
  | { op: 'check' | 'compareAndSet'; applied: boolean; value: string | undefined }
  | { op: 'increment'; applied: boolean; value: bigint }
  | { op: 'setIfAtLeast'; applied: boolean }

/** Result of {@link Store.atomic}: one entry per step that ran; `completed` is false when a step stopped the batch (the last entry). */
export type AtomicResult = { completed: boolean; results: AtomicStepResult[] }
