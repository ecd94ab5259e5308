import { timingSafeEqual } from 'node:crypto'
import * as Base64url from '../Base64url.js'
import * as Binding from '../Binding.js'
import * as Challenge from '../Challenge.js'
import { deepEqual } from '../internal/deepEqual.js'
import type * as Method from '../Method.js'
import type { Core } from './Core.js'
import type { CompiledOffer } from './Offers.js'

/** Bytes of request strings each decoding cache may hold (keys; the values are of the same order). */
export const cacheBudgetBytes = 256 * 1024
/** A request string longer than this is decoded every time, never cached. */
export const cacheEntryMaxBytes = 8 * 1024

/** Freezes a decoded value and everything in it, so that a memoized result cannot be altered. */
export function deepFreeze<value>(value: value): value {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const member of Object.values(value)) deepFreeze(member)
  }
  return value
}

/** Keys longer than this are looked up by their last {@link fingerprintLength} characters first. */
const fingerprintFrom = 96
const fingerprintLength = 64

/**
 * A map bounded by the total length of its keys (request strings): past the budget it starts over.
 * Bounding by count alone let a few huge echoed requests pin megabytes.
 *
 * A long key (a ~1 KB credential token) is filed under its last 64 characters and then compared in full:
 * a hit hashes 64 characters instead of the whole key, which a header value received anew for every
 * request would otherwise cost each time. A key whose tail is already taken by another key (request
 * strings of one recipient share theirs) is filed whole beside it, so neither pushes the other out.
 */
export class ByteBoundedCache<value> {
  #byTail = new Map<string, { key: string; value: value }>()
  #whole = new Map<string, value>()
  #bytes = 0
  readonly #budget: number
  constructor(budget = cacheBudgetBytes) {
    this.#budget = budget
  }
  get(key: string): value | undefined {
    if (key.length <= fingerprintFrom) return this.#whole.get(key)
    const entry = this.#byTail.get(key.slice(-fingerprintLength))
    if (entry === undefined) return undefined
    return entry.key === key ? entry.value : this.#whole.get(key)
  }
  set(key: string, value: value): void {
    if (key.length > cacheEntryMaxBytes) return
    if (this.#bytes + key.length > this.#budget) {
      this.#byTail.clear()
      this.#whole.clear()
      this.#bytes = 0
    }
    this.#bytes += key.length
    if (key.length <= fingerprintFrom) {
      this.#whole.set(key, value)
      return
    }
    const tail = key.slice(-fingerprintLength)
    const entry = this.#byTail.get(tail)
    if (entry === undefined || entry.key === key) this.#byTail.set(tail, { key, value })
    else this.#whole.set(key, value)
  }
  get bytes(): number {
    return this.#bytes
  }
}

// The server's nonce member in an issued opaque (JCS: no whitespace; a quote inside a value is escaped).
const nonceMember = /"nonce":"[A-Za-z0-9_-]*"/

type ParseResult = ReturnType<Method.Schema<unknown>['safeParse']>

/**
 * Returns the checks of an echoed challenge against what this server issued: the HMAC binding (every
 * secret of the rotation list), the pinned request fields, opaque map and credential header of an offer,
 * and the decoding and schema validation of the echoed request (memoized per request string, bounded
 * by bytes). Nothing here throws: a value that cannot be decoded, canonicalized or compared (nesting too
 * deep for the stack, say) is a mismatch, which the pipeline answers with a 402.
 *
 * @example
 * ```ts
 * const verification = Verification.create(core)
 * verification.binds(credential.challenge, requestB64)
 * ```
 * @see draft-httpauth-payment-00 §5.1.3
 */
export function create(core: Core) {
  const matches = (input: string, expected: Buffer): boolean => {
    for (const secret of core.secrets) {
      const candidate = Buffer.from(Binding.computeIdRaw(input, secret), 'utf8')
      if (candidate.byteLength === expected.byteLength && timingSafeEqual(candidate, expected)) return true
    }
    return false
  }

  // "Servers MUST verify that credentials present an `id` matching the expected binding." (§5.1.3)
  // The id binds the JCS form of the request. A client that echoed our wire string verbatim (the usual
  // case) is checked without re-canonicalizing; any other encoding is canonicalized and checked again.
  const binds = (echoed: Challenge.Challenge, wireRequest: string): boolean => {
    try {
      const expected = Buffer.from(echoed.id, 'utf8')
      if (matches(Challenge.bindingInput(echoed, wireRequest), expected)) return true
      const canonical = Challenge.encodeRequest(echoed.request)
      return canonical !== wireRequest && matches(Challenge.bindingInput(echoed, canonical), expected)
    } catch {
      // A request the codec cannot re-canonicalize (too deep, unpaired surrogate) was not issued here.
      return false
    }
  }

  // Static offers echo the same request string on every credential. Decoding it and validating it with
  // the method schema are pure functions of that string, so their results are memoized (the decoded
  // objects are frozen so no caller can alter a shared value).
  const decoded = new ByteBoundedCache<Record<string, unknown>>()
  const decodeRequest = (requestB64: string): Record<string, unknown> => {
    let value = decoded.get(requestB64)
    if (value === undefined) {
      value = deepFreeze(Challenge.decodeRequest(requestB64))
      decoded.set(requestB64, value)
    }
    return value
  }

  const parsed = new WeakMap<CompiledOffer, ByteBoundedCache<ParseResult>>()
  const parseRequest = (entry: CompiledOffer, requestB64: string, request: Record<string, unknown>) => {
    let cache = parsed.get(entry)
    if (!cache) {
      cache = new ByteBoundedCache()
      parsed.set(entry, cache)
    }
    let result = cache.get(requestB64)
    if (result === undefined) {
      try {
        result = entry.method.definition.request.safeParse(request)
      } catch (error) {
        // A schema that overflows the stack on a hostile value: invalid, not a 5xx.
        result = { success: false, error }
      }
      if (result.success) deepFreeze(result.data)
      cache.set(requestB64, result)
    }
    return result
  }

  /**
   * The first pinned part the echoed challenge does not repeat (a request field name, `opaque` or
   * `header`), or undefined when it matches the offer.
   */
  const mismatch = (
    entry: CompiledOffer,
    pinned: Record<string, unknown>,
    wireRequest: string,
    echoed: Challenge.Challenge,
  ): string | undefined => {
    try {
      // An echo of a static offer's own request string is equal by construction.
      if (wireRequest !== entry.template?.requestB64) {
        const field = Object.keys(pinned).find((name) => !deepEqual(pinned[name], echoed.request[name]))
        if (field !== undefined) return field
      }
      const header = echoed.header?.toLowerCase() === 'authorization' ? undefined : echoed.header
      if ((header ?? '').toLowerCase() !== (entry.header ?? '').toLowerCase()) return 'header'
      // The echoed opaque minus the server's nonce must equal the offer's: opaque is bound into the id,
      // so without this check a challenge of one route would pay another route with the same price.
      // The binding held, so the opaque is one this server issued: the JCS of an offer's map plus a
      // nonce. Blanking the nonce must give this offer's template (no JSON parse on the hot path).
      if (echoed.opaque === undefined) return 'opaque'
      const text = Base64url.decodeText(echoed.opaque).replace(nonceMember, '"nonce":""')
      return text === entry.opaqueTemplate ? undefined : 'opaque'
    } catch {
      return 'request'
    }
  }

  return { binds, decodeRequest, parseRequest, mismatch, caches: { decoded } }
}

/** The checks {@link create} returns. */
export type Verification = ReturnType<typeof create>
