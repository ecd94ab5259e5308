import { createHash } from 'node:crypto'
import {
  IdempotencyConflictError,
  InvalidChallengeError,
  PaymentError,
  ResponseNotReplayableError,
  ServiceUnavailableError,
} from '../Errors.js'
import * as IdempotencyCache from '../IdempotencyCache.js'
import type * as Receipt from '../Receipt.js'
import type { Core } from './Core.js'

/**
 * The record of a paid request that a retry may continue: its store key and the request's fingerprint
 * (credential and body). Kept for an `Idempotency-Key`, and for every payment of a method that
 * `replaysConsumed` (keyed by challenge id).
 */
export type Binding = { key: string; fingerprint: string }

/** How a retry continues an existing record. */
export type Resumed =
  | { status: 'replay'; response: IdempotencyCache.StoredResponse; receipt: Receipt.Receipt }
  /** Settled earlier and taken over by this retry: serve it again without settling. */
  | { status: 'serve'; receipt: Receipt.Receipt }
  | { status: 'refuse'; error: PaymentError }
  /** No record to continue: this request owns the key and must verify and settle. */
  | undefined

/**
 * Returns the Idempotency-Key machinery of a server. One resource delivery per payment (§11.6): a
 * response being produced elsewhere is a 409; a failed or abandoned one is taken over by exactly one
 * retry (compare-and-set), which serves it again without settling again; a streamed one is not
 * replayable. Only a retry with the same credential and body continues a record: "When a client retries
 * a request with the same `Idempotency-Key` and a valid Payment credential, the server SHOULD return the
 * same response as the original successful request without re-executing the operation." (§11.5)
 *
 * @example
 * ```ts
 * const idempotency = Idempotency.create(core)
 * const binding = idempotency.bind({ idempotencyKey: 'order-1', challengeId, token, body })
 * ```
 * @see draft-httpauth-payment-00 §11.5, §11.6
 */
export function create(core: Core) {
  const { store, prefix, realm, idempotencyTtlMs, leaseMs } = core
  // The pending record each binding of this process wrote (what a release or a take-back compares).
  const written = new WeakMap<Binding, string>()
  // Pending records of this process's ended, unsettled requests whose release did not reach the store
  // (by key): a retry reaching this process with the same fingerprint takes its record back at once,
  // instead of a 409 until the lease ends (after which its challenge has often expired).
  const unreleased = new Map<string, { raw: string; fingerprint: string }>()
  const maxUnreleased = 10_000
  const releasedRecord = 'released'

  const bind = (parameters: {
    idempotencyKey: string | undefined
    challengeId: string
    token: string
    body: Uint8Array | undefined
    digest: string | undefined
    replaysConsumed: boolean
  }): Binding | undefined => {
    const { idempotencyKey, challengeId } = parameters
    let key: string | undefined
    // A method that `replaysConsumed` keys its record by the challenge alone, with or without an
    // Idempotency-Key: an identical resubmission of its credential is replayed whatever key (if any) it
    // carries, as the key-less one would be (the paying client adds a key to every paid charge).
    if (parameters.replaysConsumed)
      key = `${prefix}replay:${createHash('sha256').update(`${realm}\n${challengeId}`).digest('base64url')}`
    else if (idempotencyKey && idempotencyKey.length <= 255)
      key = IdempotencyCache.key(prefix, realm, idempotencyKey, challengeId)
    if (key === undefined) return undefined
    const body = parameters.body ?? (parameters.digest ? Buffer.from(parameters.digest) : undefined)
    return { key, fingerprint: IdempotencyCache.fingerprint(parameters.token, body) }
  }

  // Same answer as for the same challenge without the key: it has been used, by another credential.
  const keyReused = () =>
    new InvalidChallengeError({
      detail:
        'The challenge has already been used; this Idempotency-Key belongs to another credential or body.',
    })

  const conflict = () =>
    new IdempotencyConflictError({ detail: 'A request with this Idempotency-Key is in progress.' })

  /**
   * Continues a request whose key already has a record (`raw`, as stored). `takeOver` claims a pending
   * record whose lease ran out (a crashed request); otherwise such a record is left to its owner.
   */
  const resume = async (binding: Binding, raw: string, takeOver: boolean): Promise<Resumed> => {
    // A record its request released (nothing settled under it): the key is free.
    if (raw === releasedRecord) {
      if (!takeOver) return undefined
      const next = JSON.stringify({
        state: 'pending',
        leaseUntil: core.now() + leaseMs,
        fingerprint: binding.fingerprint,
      } satisfies IdempotencyCache.IdempotencyRecord)
      if (await store.compareAndSet(binding.key, releasedRecord, next, idempotencyTtlMs)) {
        written.set(binding, next)
        return undefined
      }
      return { status: 'refuse', error: conflict() }
    }
    let record: IdempotencyCache.IdempotencyRecord
    try {
      record = JSON.parse(raw) as IdempotencyCache.IdempotencyRecord
    } catch {
      return { status: 'refuse', error: keyReused() }
    }
    if (record.fingerprint !== binding.fingerprint) return { status: 'refuse', error: keyReused() }
    const now = core.now()
    // A pending record's owner is verifying and settling under a lease; past it, that request crashed
    // (or its store writes failed) before settling, and a retry may take the key over.
    if (record.state === 'pending' && (record.leaseUntil ?? 0) <= now) {
      if (!takeOver) return undefined
      const next = JSON.stringify({
        state: 'pending',
        leaseUntil: now + leaseMs,
        fingerprint: binding.fingerprint,
      } satisfies IdempotencyCache.IdempotencyRecord)
      if (await store.compareAndSet(binding.key, raw, next, idempotencyTtlMs)) {
        written.set(binding, next)
        return undefined
      }
    }
    if (record.state === 'done')
      return { status: 'replay', response: record.response, receipt: record.receipt }
    if (record.state === 'streamed') return { status: 'refuse', error: new ResponseNotReplayableError() }
    if (record.state === 'failed' || (record.state === 'serving' && record.leaseUntil <= now)) {
      const next: IdempotencyCache.IdempotencyRecord = {
        state: 'serving',
        receipt: record.receipt,
        leaseUntil: now + leaseMs,
        fingerprint: binding.fingerprint,
      }
      if (await store.compareAndSet(binding.key, raw, JSON.stringify(next), idempotencyTtlMs))
        return { status: 'serve', receipt: record.receipt }
    }
    return { status: 'refuse', error: conflict() }
  }

  /** Looks a key up before anything is checked that a paid retry may no longer pass (expiry). */
  const lookup = async (binding: Binding): Promise<Resumed> => {
    const raw = await store.get(binding.key)
    if (raw === undefined) return undefined
    // This process's own record of a request that ended without settling: `claim` takes it back.
    const own = unreleased.get(binding.key)
    if (own !== undefined && own.raw === raw && own.fingerprint === binding.fingerprint) return undefined
    return resume(binding, raw, false)
  }

  /** Claims the key for this request (pending, under a lease), or continues the record found. */
  const claim = async (binding: Binding): Promise<Resumed> => {
    const record: IdempotencyCache.IdempotencyRecord = {
      state: 'pending',
      leaseUntil: core.now() + leaseMs,
      fingerprint: binding.fingerprint,
    }
    const raw = JSON.stringify(record)
    const own = unreleased.get(binding.key)
    if (own !== undefined && own.fingerprint === binding.fingerprint) {
      // A request of this process ended without settling and its release never landed: take it back.
      if (await store.compareAndSet(binding.key, own.raw, raw, idempotencyTtlMs)) {
        if (unreleased.get(binding.key) === own) unreleased.delete(binding.key)
        written.set(binding, raw)
        return undefined
      }
    }
    let existing: string | undefined
    try {
      existing = await IdempotencyCache.claim(store, binding.key, idempotencyTtlMs, record)
    } catch (cause) {
      // The write may have landed though its answer did not: this request's record, if there.
      keepUnreleased(binding, raw)
      throw cause
    }
    if (existing === undefined) {
      written.set(binding, raw)
      return undefined
    }
    return resume(binding, existing, true)
  }

  const keepUnreleased = (binding: Binding, raw: string) => {
    if (!unreleased.has(binding.key) && unreleased.size >= maxUnreleased) return
    unreleased.set(binding.key, { raw, fingerprint: binding.fingerprint })
  }

  /** Writes a record; a store failure is reported, never thrown (the payment already happened). */
  const record = async (
    binding: Binding,
    next:
      | { state: 'serving'; receipt: Receipt.Receipt }
      | { state: 'failed'; receipt: Receipt.Receipt }
      | { state: 'streamed'; receipt: Receipt.Receipt }
      | { state: 'done'; receipt: Receipt.Receipt; response: IdempotencyCache.StoredResponse },
  ): Promise<void> => {
    const full: IdempotencyCache.IdempotencyRecord =
      next.state === 'serving'
        ? { ...next, leaseUntil: core.now() + leaseMs, fingerprint: binding.fingerprint }
        : { ...next, fingerprint: binding.fingerprint }
    await IdempotencyCache.put(store, binding.key, full, idempotencyTtlMs).catch((cause) =>
      core.report(cause, 'store'),
    )
  }

  /**
   * Releases a key no payment was recorded under (nothing settled, or a settlement that failed and
   * consumed its challenge), so a retry is not locked out: it gets the answer a retry without the key
   * gets.
   */
  const release = async (binding: Binding | undefined): Promise<void> => {
    // Only the record this request wrote: a key it never held (its claim failed or was refused) may hold
    // another request's record, paid and delivered, which a retry must still be able to replay.
    const raw = binding ? written.get(binding) : undefined
    if (binding === undefined || raw === undefined) return
    try {
      // A conditional delete: the record becomes `released`, which a claim takes as absent.
      await store.compareAndSet(binding.key, raw, releasedRecord, idempotencyTtlMs)
      if (unreleased.get(binding.key)?.raw === raw) unreleased.delete(binding.key)
    } catch (cause) {
      // The record stays pending: a retry reaching this process takes it back (see `claim`), others
      // take it over once its lease ends.
      core.report(cause, 'store')
      keepUnreleased(binding, raw)
    }
  }

  return { bind, lookup, claim, record, release, keyReused }
}

/** The machinery {@link create} returns. */
export type Idempotency = ReturnType<typeof create>

/** A store failure as a problem: a PaymentError as it is (503/500 from the store), anything else a 503. */
export function storeFailure(core: Core, cause: unknown): PaymentError {
  if (PaymentError.is(cause)) return cause
  core.report(cause, 'store')
  return new ServiceUnavailableError({ detail: 'Payment store unavailable', reason: 'store-unavailable' })
}
