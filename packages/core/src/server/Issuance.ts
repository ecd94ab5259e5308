import { randomBytes } from 'node:crypto'
import * as AcceptPayment from '../AcceptPayment.js'
import * as Binding from '../Binding.js'
import * as Challenge from '../Challenge.js'
import * as Digest from '../Digest.js'
import { PaymentError, PaymentRequiredError, ServiceUnavailableError } from '../Errors.js'
import * as Expires from '../Expires.js'
import type { Core } from './Core.js'
import {
  type CompiledOffer,
  type CompiledRoute,
  checkIssuedRequest,
  formatChallenge,
  pinnedRequest,
} from './Offers.js'

/** One issued challenge: as data (for JSON transports) and as its `WWW-Authenticate` value. */
export type IssuedChallenge = {
  /** The challenge with its `request` as a JSON object (what a JSON-RPC transport sends). */
  challenge: Challenge.Challenge
  /** The `WWW-Authenticate` field value (what the HTTP transport sends). */
  header: string
}

/** A refusal: the problem, and the fresh challenges to offer with it (none unless it is a 402). */
export type Problem = {
  status: 'problem'
  error: PaymentError
  challenges: readonly IssuedChallenge[]
}

/** What issuing needs to know about the request: its transport request, body and preferences. */
export type ChallengeInput = {
  /** Given to dynamic prices and `prepare` (HTTP: the request itself). */
  request: Request
  /** The request body, bound into challenges with an RFC 9530 digest. */
  body?: Uint8Array | undefined
  /** A digest the transport computed itself (`sha-256=:…:`), used when `body` is absent. */
  digest?: string | undefined
  /** The `Accept-Payment` preferences, which filter and order the offers. */
  acceptPayment?: string | null | undefined
}

/**
 * The request to give a price function or a method's `prepare`: a clone of one whose body can still be
 * read, else the request itself (no body: nothing to consume). The request is the one `protect` hands
 * the route handler once paid, so a price function that read its body (`await request.json()`, a price
 * per item) left the handler a spent body: the payment settled, then the handler failed ("Body is
 * unusable"), and every Idempotency-Key retry failed the same way. Static offers never get here, so
 * their routes clone nothing.
 *
 * @example
 * ```ts
 * const fields = await offer.request(ownCopy(input.request))
 * ```
 */
export function ownCopy(request: Request): Request {
  if (request.body === null || request.bodyUsed) return request
  try {
    return request.clone()
  } catch {
    // A body locked by a reader of the caller's cannot be cloned: what the caller handed over is given.
    return request
  }
}

/** The default problem of an unpaid request. */
export const paymentRequired = new PaymentRequiredError({ detail: 'Payment is required.' })

// Random nonces from a pooled buffer: one syscall per 4096 challenges.
let pool = Buffer.alloc(0)
let poolOffset = 0
function nonce(): string {
  if (poolOffset + 12 > pool.length) {
    pool = randomBytes(12 * 4096)
    poolOffset = 0
  }
  poolOffset += 12
  return pool.toString('base64url', poolOffset - 12, poolOffset)
}

// Challenges are issued many times per second: the expiry string is formatted once per second.
let expiresCache = { second: -1, ttl: -1, value: '' }
function expiresAt(nowMs: number, ttlSeconds: number): string {
  const second = Math.floor(nowMs / 1000)
  if (expiresCache.second !== second || expiresCache.ttl !== ttlSeconds)
    expiresCache = { second, ttl: ttlSeconds, value: Expires.format((second + ttlSeconds) * 1000) }
  return expiresCache.value
}

// Every challenge is unique (two identical requests in the same second must not share an id, since ids
// are consumed once): a random nonce rides in `opaque`, which the id binds.
function opaqueFor(entry: CompiledOffer): string {
  return entry.offer.opaque === undefined
    ? Buffer.from(`{"nonce":"${nonce()}"}`).toString('base64url')
    : Challenge.encodeOpaque({ ...entry.opaque, nonce: nonce() })
}

/**
 * Returns the challenge issuer of a server. `issue` builds fresh challenges for a compiled route
 * (concurrently: each offer's price function and `prepare` run at the same time, so slow rails do not
 * add up); an offer that fails, or whose request the method's request schema refuses, is left out and
 * reported (`onError`, phase `challenge`). `refuse` turns a problem into the data a transport renders:
 * a 402 with at least one challenge, or a problem without challenges.
 *
 * @example
 * ```ts
 * const { refuse } = Issuance.issuer(core)
 * const problem = await refuse(compiled, { request }, Issuance.paymentRequired)
 * ```
 * @see draft-httpauth-payment-00 §5.1
 */
export function issuer(core: Core) {
  const { realm, signingKey } = core

  // A static offer's challenge is its precomputed template plus expiry, nonce and digest.
  const issueTemplated = (entry: CompiledOffer, digest: string | undefined): IssuedChallenge => {
    const template = entry.template!
    const expires = expiresAt(core.now(), entry.offer.expiresIn ?? core.expiresIn)
    const opaque = opaqueFor(entry)
    const headerSlot = entry.header === undefined ? '' : `${entry.header}|`
    const id = Binding.computeIdRaw(
      `${template.bindingPrefix}${expires}|${digest ?? ''}|${headerSlot}${opaque}`,
      signingKey,
    )
    const challenge: Challenge.Challenge = {
      id,
      realm,
      method: entry.method.definition.name,
      intent: entry.intent,
      request: entry.staticRequest!,
      expires,
      opaque,
    }
    if (entry.offer.description !== undefined) challenge.description = entry.offer.description
    if (digest) challenge.digest = digest
    if (entry.header !== undefined) challenge.header = entry.header
    const header = `Payment id="${id}"${template.headerTail}${digest ? `, digest="${digest}"` : ''}, expires="${expires}", opaque="${opaque}"${entry.header === undefined ? '' : `, header="${entry.header}"`}`
    return { challenge, header }
  }

  const issueOne = async (
    entry: CompiledOffer,
    input: ChallengeInput,
    digest: string | undefined,
  ): Promise<IssuedChallenge> => {
    if (entry.template) return issueTemplated(entry, digest)
    const expires = expiresAt(core.now(), entry.offer.expiresIn ?? core.expiresIn)
    const opaque = opaqueFor(entry)
    // A price function and `prepare` each get their own copy of a request with a body (see ownCopy).
    const pinned = await pinnedRequest(entry, entry.staticRequest ? input.request : ownCopy(input.request))
    let request = pinned
    if (entry.method.prepare)
      request = await entry.method.prepare({
        request: pinned,
        httpRequest: ownCopy(input.request),
        realm,
        expires,
      })
    // A request the method's schema refuses is refused when its credential comes back, after the payer
    // paid: the offer is left out of this 402 and reported, as a failing price function is.
    checkIssuedRequest(entry, request)
    const fields: Challenge.ChallengeFields = {
      realm,
      method: entry.method.definition.name,
      intent: entry.intent,
      request,
      expires,
      opaque,
    }
    if (digest) fields.digest = digest
    if (entry.offer.description !== undefined) fields.description = entry.offer.description
    if (entry.header !== undefined) fields.header = entry.header
    const requestB64 = Challenge.encodeRequest(request)
    const id = Binding.computeIdRaw(Challenge.bindingInput(fields, requestB64), signingKey)
    const challenge = { id, ...fields }
    return { challenge, header: formatChallenge(challenge, requestB64) }
  }

  const select = (compiled: CompiledRoute, accept: string | null | undefined): readonly CompiledOffer[] =>
    accept === null || accept === undefined
      ? compiled.offers
      : AcceptPayment.select(
          compiled.offers.map((entry) => ({
            method: entry.method.definition.name,
            intent: entry.intent,
            entry,
          })),
          accept,
        ).map((selected) => selected.entry)

  const unavailable = () => new ServiceUnavailableError({ detail: 'Could not issue a payment challenge' })

  /** Fresh challenges for a route, or the problem to answer when none could be issued. */
  const refuse = (
    compiled: CompiledRoute,
    input: ChallengeInput,
    error: PaymentError = paymentRequired,
  ): Problem | Promise<Problem> => {
    // A 402 always carries fresh challenges; other statuses (400, 409, 413, 503) carry none.
    if (error.status !== 402) return { status: 'problem', error, challenges: [] }
    const offers = select(compiled, input.acceptPayment)
    // "Servers SHOULD include the `digest` parameter when issuing challenges for requests with bodies." (§5.1.4)
    const digest = input.body ? Digest.compute(input.body) : input.digest
    // Fast path: static offers need no awaits at all.
    if (offers.every((entry) => entry.template !== undefined))
      return { status: 'problem', error, challenges: offers.map((entry) => issueTemplated(entry, digest)) }
    return (async () => {
      // An offer whose price or preparation fails is left out; the others are still offered.
      const settled = await Promise.allSettled(offers.map((entry) => issueOne(entry, input, digest)))
      const challenges: IssuedChallenge[] = []
      let failure: unknown
      for (const result of settled) {
        if (result.status === 'fulfilled') challenges.push(result.value)
        else {
          failure ??= result.reason
          if (!PaymentError.is(result.reason)) core.report(result.reason, 'challenge')
        }
      }
      if (challenges.length > 0) return { status: 'problem', error, challenges }
      // "Servers MUST NOT return 402 without including a `WWW-Authenticate` header containing at least
      // one Payment challenge." (§4.4)
      if (PaymentError.is(failure) && failure.status !== 402)
        return { status: 'problem', error: failure, challenges: [] }
      return { status: 'problem', error: unavailable(), challenges: [] }
    })()
  }

  return { refuse, unavailable }
}
