import { createHash } from 'node:crypto'
import type { Receipt } from './Receipt.js'
import type { Store } from './Store.js'

/**
 * The idempotent-response cache, built on the Store contract so it works on every store.
 *
 * A record moves `pending` → `serving` (paid, handler running under a lease) → `done` (response
 * stored), or → `streamed` (delivered as a stream, never replayed), or → `failed` (handler failed; one
 * retry at a time may serve it again, never settle again). The key binds the client's `Idempotency-Key`
 * to the challenge id, so a key alone never unlocks someone else's response.
 *
 * @see draft-httpauth-payment-00 §11.5: "When a client retries a request with the same `Idempotency-Key`
 *   and a valid Payment credential, the server SHOULD return the same response as the original successful
 *   request without re-executing the operation."
 */
export type IdempotencyRecord =
  /**
   * Claimed; verification and settlement are running until `leaseUntil` (epoch ms), after which a
   * retry may take the key over (the claimant crashed). A record without a lease has expired.
   */
  (
    | { state: 'pending'; leaseUntil?: number }
    /** Settled; a handler is producing the response until `leaseUntil` (epoch ms). */
    | { state: 'serving'; receipt: Receipt; leaseUntil: number }
    /** Settled, but the handler failed: the next retry may serve it (without settling again). */
    | { state: 'failed'; receipt: Receipt }
    /** Settled and answered: retries get this response. */
    | { state: 'done'; receipt: Receipt; response: StoredResponse }
    /** Settled and answered with a stream (see {@link isStreamed}): delivered once, never replayed. */
    | { state: 'streamed'; receipt: Receipt }
  ) & {
    /**
     * {@link fingerprint} of the request that created the record: only a retry that presents the same
     * credential and the same body may continue it. Records without one are never continued.
     */
    fingerprint?: string
  }

/**
 * What an Idempotency-Key retry must repeat exactly: the credential token and the request body.
 *
 * @example
 * ```ts
 * IdempotencyCache.fingerprint(token, body) // 'q1w2…' (base64url SHA-256)
 * ```
 */
export function fingerprint(token: string, body: Uint8Array | undefined): string {
  const hash = createHash('sha256').update(token).update('\n')
  if (body) hash.update(body)
  return hash.digest('base64url')
}

/** A response as stored for replay. */
export type StoredResponse = { status: number; headers: [string, string][]; body: string }

/** Store key of an idempotency record. */
export function key(prefix: string, realm: string, idempotencyKey: string, challengeId: string): string {
  const digest = createHash('sha256')
    .update(`${realm}\n${idempotencyKey}\n${challengeId}`)
    .digest('base64url')
  return `${prefix}idem:${digest}`
}

/**
 * Claims a key for a new request: `undefined` when this caller owns it, or the existing record as stored
 * (the raw string, so a caller can take it over with compare-and-set).
 *
 * @example
 * ```ts
 * const existing = await IdempotencyCache.claim(store, key, ttlMs)
 * ```
 */
export async function claim(
  store: Store,
  key: string,
  ttlMs: number,
  record: IdempotencyRecord = { state: 'pending' },
): Promise<string | undefined> {
  const pending = JSON.stringify(record)
  if (await store.putIfAbsent(key, pending, ttlMs)) return undefined
  const raw = await store.get(key)
  // Expired between the two calls: claim again once.
  if (raw === undefined) return (await store.putIfAbsent(key, pending, ttlMs)) ? undefined : pending
  return raw
}

/** Writes a record (after settlement, then after the response). */
export async function put(
  store: Store,
  key: string,
  record: IdempotencyRecord,
  ttlMs: number,
): Promise<void> {
  await store.set(key, JSON.stringify(record), ttlMs)
}

const streamedTypes = /^\s*(text\/event-stream|application\/x-ndjson)\s*(;|$)/i

/**
 * True for a response that is delivered as it is produced: its `Content-Type` is `text/event-stream`
 * (server-sent events) or `application/x-ndjson`. Such a response is never buffered for an
 * Idempotency-Key record (its first event must reach the client before the stream ends) and is
 * recorded as `streamed`, which a retry cannot replay. Any other response is buffered and replayable.
 *
 * @example
 * ```ts
 * IdempotencyCache.isStreamed(new Response(stream, { headers: { 'content-type': 'text/event-stream' } })) // true
 * ```
 */
export function isStreamed(response: Response): boolean {
  if (response.body === null) return false
  const type = response.headers.get('content-type')
  return type !== null && streamedTypes.test(type)
}

/** Buffers a response for storage; returns the stored form and a fresh equivalent response. */
export async function snapshot(response: Response): Promise<{ stored: StoredResponse; response: Response }> {
  const body = Buffer.from(await response.arrayBuffer())
  const headers = [...response.headers]
  const stored = { status: response.status, headers, body: body.toString('base64') }
  return { stored, response: restore(stored) }
}

// The Response constructor throws when given a body, even an empty one, with one of these statuses.
const nullBodyStatuses = new Set([101, 103, 204, 205, 304])

/**
 * True for a status whose response has no body (101, 103, 204, 205, 304): a Response rebuilt from
 * stored or captured parts must then be given a null body.
 *
 * @example
 * ```ts
 * IdempotencyCache.isNullBodyStatus(205) // true
 * ```
 * @see https://fetch.spec.whatwg.org/#null-body-status
 */
export function isNullBodyStatus(status: number): boolean {
  return nullBodyStatuses.has(status)
}

/** Rebuilds a stored response. */
export function restore(stored: StoredResponse): Response {
  const body = isNullBodyStatus(stored.status) ? null : Buffer.from(stored.body, 'base64')
  return new Response(body, { status: stored.status, headers: stored.headers })
}
