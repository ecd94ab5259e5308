import { createSecretKey, randomBytes, timingSafeEqual } from 'node:crypto'
import * as AcceptPayment from '../AcceptPayment.js'
import * as Base64url from '../Base64url.js'
import * as Binding from '../Binding.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import * as Digest from '../Digest.js'
import {
  BaseError,
  ConfigurationError,
  IdempotencyConflictError,
  InvalidChallengeError,
  MalformedCredentialError,
  MethodUnsupportedError,
  MultipleCredentialsError,
  PaymentError,
  PaymentExpiredError,
  PaymentRequiredError,
  ServiceUnavailableError,
  VerificationFailedError,
} from '../Errors.js'
import * as Expires from '../Expires.js'
import * as IdempotencyCache from '../IdempotencyCache.js'
import { deepEqual } from '../internal/deepEqual.js'
import { textResponse } from '../internal/LazyResponse.js'
import { prefixStore } from '../internal/prefixStore.js'
import { MemoryStore } from '../MemoryStore.js'
import type * as Method from '../Method.js'
import type * as Receipt from '../Receipt.js'
import * as Registry from '../Registry.js'
import type { Store } from '../Store.js'

/** Options of {@link create}. */
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
  /** Idempotent responses are kept this many seconds (default 86 400). */
  idempotencyTtl?: number
  /**
   * Seconds a paid request may take to produce its response before an Idempotency-Key retry may take
   * over and serve it again (default 300).
   */
  idempotencyLease?: number
  /** Prefix for every Store key (default `mppkit:`). */
  keyPrefix?: string
  /** Clock (epoch ms), for tests. */
  now?: () => number
  /** Called with unexpected errors (rail or handler failures). Never receives credentials. */
  onError?: (error: unknown, context: { phase: Phase }) => void
}

/** Where an unexpected error happened; `background` is a method's own work reported through setup. */
export type Phase = 'verify' | 'settle' | 'handler' | 'store' | 'challenge' | 'background'

/** One payment option offered on a route. */
export type Offer = {
  method: string
  /** Default `charge`. */
  intent?: string
  /**
   * Pinned request fields (amount, currency, recipient…), or a function of the HTTP request for dynamic
   * prices. A credential's echoed request must still equal these fields when it comes back.
   */
  request?:
    | Record<string, unknown>
    | ((request: Request) => Record<string, unknown> | Promise<Record<string, unknown>>)
  /** Human-readable purpose (display only, never verified). */
  description?: string
  /** Overrides the server's challenge lifetime (seconds). */
  expiresIn?: number
  /** Server correlation data, bound into the id (flat string map). */
  opaque?: Record<string, string>
}

/** A protected route: what it costs, in one or more methods. */
export type Route = { offers: readonly Offer[] }

/** What a route handler learns about the payment. */
export type Payment = {
  receipt: Receipt.Receipt
  credential: Credential.Credential
  challenge: Challenge.Challenge
  /** Method-provided data (e.g. a session meter). */
  context: unknown
}

/** A Fetch-style route handler. */
export type Handler = (request: Request, payment: Payment) => Response | Promise<Response>

/** The outcome of {@link Server.authorize}. */
export type Authorization =
  | { status: 'respond'; response: Response }
  | {
      status: 'paid'
      payment: Payment
      /** A response the method asked for instead of the route handler (session close/top-up). */
      response?: Response | undefined
      /** Adds receipt headers to the handler's response and stores it for Idempotency-Key replays. */
      finalize(response: Response): Promise<Response>
      /** True when an Idempotency-Key record is kept for this payment (finalize then stores the response). */
      idempotent: boolean
      /** Adds the receipt headers only (no idempotency record): what finalize does first. */
      decorate(response: Response): Response
      /** Marks the handler as failed: the payment stays settled and recoverable by Idempotency-Key. */
      fail(error: unknown): Promise<Response>
    }

/** An MPP server. */
export type Server = {
  readonly realm: string
  readonly store: Store
  /** Wraps a Fetch handler: 402 until paid, then the handler, with a receipt. */
  protect(route: Route, handler: Handler): (request: Request) => Promise<Response>
  /** The whole payment pipeline for one request, for framework adapters. */
  authorize(request: Request, route: Route): Promise<Authorization>
  /** A fresh 402 for the route. */
  challenge(request: Request, route: Route, error?: PaymentError): Promise<Response>
  /**
   * Aborts the signal every method received in `setup` and awaits every method's `close()` (timers
   * stopped, settlement batches flushed). Idempotent; errors of a method's close go to onError.
   */
  close(): Promise<void>
}

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

type CompiledOffer = {
  offer: Offer
  method: Method.Server
  intent: string
  staticRequest: Record<string, unknown> | undefined
  /** Precomputed wire pieces when the request is static (no dynamic price, no `prepare`). */
  template?: { bindingPrefix: string; headerTail: string; requestB64: string }
}

// Challenges are issued many times per second: the expiry string is formatted once per second.
let expiresCache = { second: -1, ttl: -1, value: '' }
function expiresAt(nowMs: number, ttlSeconds: number): string {
  const second = Math.floor(nowMs / 1000)
  if (expiresCache.second !== second || expiresCache.ttl !== ttlSeconds)
    expiresCache = { second, ttl: ttlSeconds, value: Expires.format((second + ttlSeconds) * 1000) }
  return expiresCache.value
}

function deepFreeze<value>(value: value): value {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const member of Object.values(value)) deepFreeze(member)
  }
  return value
}

/** The Idempotency-Key record of a paid request: its store key and the request's fingerprint. */
type IdempotencyBinding = { key: string; fingerprint: string }

type PaidInternals = {
  store: Store
  idempotencyTtlMs: number
  report: (error: unknown, phase: Phase) => void
  problem: (error: PaymentError) => Response
}

// One object per paid request (methods on the prototype, not closures per request).
class PaidAuthorization {
  readonly status = 'paid' as const
  readonly payment: Payment
  readonly response: Response | undefined
  readonly idempotent: boolean
  readonly #internals: PaidInternals
  readonly #receipt: Receipt.Receipt
  readonly #receiptHeader: string
  readonly #idem: IdempotencyBinding | undefined

  constructor(
    internals: PaidInternals,
    credential: Credential.Credential,
    receipt: Receipt.Receipt,
    context: unknown,
    methodResponse: Response | undefined,
    idem: IdempotencyBinding | undefined,
  ) {
    this.#internals = internals
    this.#receipt = receipt
    // Built from checked parts, so it is encoded directly.
    this.#receiptHeader = Base64url.encode(JSON.stringify(receipt))
    this.#idem = idem
    this.idempotent = idem !== undefined
    this.payment = { receipt, credential, challenge: credential.challenge, context }
    this.response = methodResponse
  }

  decorate(response: Response): Response {
    let out = response
    let headers = response.headers
    // Native responses built by the handler are mutable: add headers in place (no copy). Anything else
    // (immutable fetch() responses, framework wrappers such as @hono/node-server's) is copied, headers
    // first, since some wrappers rebuild themselves from their original init when the body is read.
    const success = response.status >= 200 && response.status < 300
    let inPlace = response.constructor === NativeResponse
    if (inPlace) {
      try {
        // "Servers MUST NOT return a `Payment-Receipt` header on error responses." (§5.3.1)
        if (success) headers.set('payment-receipt', this.#receiptHeader)
        else headers.delete('payment-receipt')
      } catch {
        inPlace = false
      }
    }
    if (!inPlace) {
      headers = new Headers(response.headers)
      if (success) headers.set('payment-receipt', this.#receiptHeader)
      else headers.delete('payment-receipt')
    }
    if (success) {
      // "Responses containing `Payment-Receipt` headers MUST include `Cache-Control: private`" (§12.9)
      const cacheControl = headers.get('cache-control')
      if (cacheControl === null || !/private|no-store/i.test(cacheControl))
        headers.set('cache-control', 'private')
    }
    if (!inPlace) {
      // Headers are complete now: the Response constructor copies them.
      const { status, statusText } = response
      out = new NativeResponse(response.body, { status, statusText, headers })
    }
    return out
  }

  async finalize(response: Response): Promise<Response> {
    if (!isServable(response))
      return this.fail(new TypeError('the route did not produce a servable Response'))
    let out = this.decorate(response)
    const { store, idempotencyTtlMs, report } = this.#internals
    const idem = this.#idem
    // A 5xx is a failure to deliver what was paid for, not the answer to replay for 24 h: it is recorded
    // as failed, so a retry with the same Idempotency-Key runs the handler again (without charging).
    if (idem && out.status >= 500) await this.#recordFailed()
    else if (idem) {
      const { stored, response: replayable } = await IdempotencyCache.snapshot(out)
      out = replayable
      await IdempotencyCache.put(
        store,
        idem.key,
        { state: 'done', receipt: this.#receipt, response: stored, fingerprint: idem.fingerprint },
        idempotencyTtlMs,
      ).catch((cause) => report(cause, 'store'))
    }
    return out
  }

  /** Records the response as failed: the next retry with the Idempotency-Key may serve it again. */
  async #recordFailed(): Promise<void> {
    const idem = this.#idem
    if (!idem) return
    const { store, idempotencyTtlMs, report } = this.#internals
    const record: IdempotencyCache.IdempotencyRecord = {
      state: 'failed',
      receipt: this.#receipt,
      fingerprint: idem.fingerprint,
    }
    await IdempotencyCache.put(store, idem.key, record, idempotencyTtlMs).catch((cause) =>
      report(cause, 'store'),
    )
  }

  async fail(error: unknown): Promise<Response> {
    const { report, problem } = this.#internals
    report(error, 'handler')
    const idem = this.#idem
    await this.#recordFailed()
    return problem(
      new PaymentError({
        type: 'handler-failed',
        title: 'Resource Delivery Failed',
        status: 500,
        detail: idem
          ? 'The payment was settled but the response failed; retry with the same Idempotency-Key and credential.'
          : 'The payment was settled but the response failed.',
      }),
    )
  }
}

// Captured at load: frameworks may replace the global Response later.
const NativeResponse = globalThis.Response

/**
 * True for a Response that can be sent with a receipt: a final status (200–599) and headers. Frameworks'
 * own Response classes qualify, `Response.error()` (status 0) and non-Response values do not.
 */
function isServable(value: unknown): value is Response {
  if (typeof value !== 'object' || value === null) return false
  const { status, headers } = value as { status?: unknown; headers?: { get?: unknown } }
  return (
    typeof status === 'number' &&
    Number.isInteger(status) &&
    status >= 200 &&
    status <= 599 &&
    typeof headers?.get === 'function'
  )
}

let timestampCache = { second: -1, value: '' }
function timestampAt(nowMs: number): string {
  const second = Math.floor(nowMs / 1000)
  if (timestampCache.second !== second) timestampCache = { second, value: Expires.format(second * 1000) }
  return timestampCache.value
}

const problemBodies = new WeakMap<PaymentError, string>()
const paymentRequired = new PaymentRequiredError({ detail: 'Payment is required.' })

/**
 * Creates a framework-agnostic MPP server over Fetch `Request`/`Response`.
 *
 * @example
 * ```ts
 * const server = Server.create({ realm: 'api.example.com', secrets: [process.env.MPP_SECRET!], methods: [tempoCharge] })
 * const handler = server.protect({ offers: [{ method: 'tempo', request: { amount: '1000' } }] }, () => new Response('ok'))
 * ```
 * @see draft-httpauth-payment-00 §4–§5
 */
export function create(options: Options): Server {
  if (typeof options.realm !== 'string' || options.realm === '')
    throw new ConfigurationError('realm is required')
  if (!Array.isArray(options.secrets) || options.secrets.length === 0)
    throw new ConfigurationError('at least one secret is required')
  // KeyObjects make each HMAC cheaper than raw key bytes.
  const secrets = options.secrets.map((secret) => createSecretKey(Binding.checkSecret(secret)))
  const signingKey = secrets[0]!
  const registry = Registry.from(options.methods)
  const store = options.store ?? new MemoryStore()
  const prefix = options.keyPrefix ?? 'mppkit:'
  const expiresIn = options.expiresIn ?? Expires.defaultTtlSeconds
  const idempotencyTtlMs = (options.idempotencyTtl ?? 86_400) * 1000
  const leaseMs = (options.idempotencyLease ?? 300) * 1000
  const now = options.now ?? Date.now
  const realm = options.realm
  const methodStores = new Map<Method.Server, Store>()
  const report = (error: unknown, phase: Phase) => {
    try {
      options.onError?.(error, { phase })
    } catch {}
  }

  const storeFor = (method: Method.Server) => {
    let scoped = methodStores.get(method)
    if (!scoped) {
      scoped = prefixStore(store, `${prefix}m:${method.definition.name}/${method.definition.intent}:`)
      methodStores.set(method, scoped)
    }
    return scoped
  }

  // Lifecycle: every method is set up once, before any request; close() aborts and awaits them.
  const lifetime = new AbortController()
  for (const method of registry.entries)
    method.setup?.({
      store: storeFor(method),
      report: (error) => report(error, 'background'),
      signal: lifetime.signal,
      realm,
      now,
    })
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    closing ??= (async () => {
      lifetime.abort()
      const results = await Promise.allSettled(registry.entries.map(async (method) => method.close?.()))
      for (const result of results) if (result.status === 'rejected') report(result.reason, 'background')
    })()
    return closing
  }

  const compiled = new WeakMap<Route, CompiledOffer[]>()
  const compile = (route: Route): CompiledOffer[] => {
    let offers = compiled.get(route)
    if (offers) return offers
    if (!route || !Array.isArray(route.offers) || route.offers.length === 0)
      throw new ConfigurationError('a route needs at least one offer')
    offers = route.offers.map((offer) => {
      const intent = offer.intent ?? 'charge'
      const method = registry.get(offer.method, intent)
      if (!method)
        throw new ConfigurationError(`route offers ${offer.method}/${intent}, which is not registered`)
      const staticRequest =
        typeof offer.request === 'function'
          ? undefined
          : { ...(method.defaults ?? {}), ...(offer.request ?? {}) }
      const entry: CompiledOffer = { offer, method, intent, staticRequest }
      if (staticRequest && !method.prepare) {
        const requestB64 = Challenge.encodeRequest(staticRequest)
        // Format once through the checked path (it rejects CR/LF in the description), keep the tail.
        const sample = Challenge.format(
          {
            id: 'x',
            realm,
            method: method.definition.name,
            intent,
            request: staticRequest,
            ...(offer.description !== undefined ? { description: offer.description } : {}),
          },
          requestB64,
        )
        entry.template = {
          bindingPrefix: `${realm}|${method.definition.name}|${intent}|${requestB64}|`,
          headerTail: sample.slice('Payment id="x"'.length),
          requestB64,
        }
      }
      return entry
    })
    compiled.set(route, offers)
    return offers
  }

  const pinnedRequest = async (entry: CompiledOffer, request: Request): Promise<Record<string, unknown>> => {
    if (entry.staticRequest) return entry.staticRequest
    const dynamic = await (
      entry.offer.request as (r: Request) => Record<string, unknown> | Promise<Record<string, unknown>>
    )(request)
    return { ...(entry.method.defaults ?? {}), ...dynamic }
  }

  const readBody = async (request: Request): Promise<Uint8Array | undefined> => {
    if (request.body === null || request.method === 'GET' || request.method === 'HEAD') return undefined
    const bytes = new Uint8Array(await request.clone().arrayBuffer())
    return bytes.byteLength === 0 ? undefined : bytes
  }

  const opaqueFor = (offer: Offer): string =>
    // Every challenge is unique (two identical requests in the same second must not share an id,
    // since ids are consumed once): a random nonce rides in `opaque`, which the id binds.
    offer.opaque === undefined
      ? Buffer.from(`{"nonce":"${nonce()}"}`).toString('base64url')
      : Challenge.encodeOpaque({ ...offer.opaque, nonce: nonce() })

  // A static offer's challenge is its precomputed template plus expiry, nonce and digest.
  const issueTemplated = (entry: CompiledOffer, body: Uint8Array | undefined): string => {
    const template = entry.template!
    const expires = expiresAt(now(), entry.offer.expiresIn ?? expiresIn)
    // "Servers SHOULD include the `digest` parameter when issuing challenges for requests with bodies." (§5.1.4)
    const digest = body ? Digest.compute(body) : undefined
    const opaque = opaqueFor(entry.offer)
    const id = Binding.computeIdRaw(
      `${template.bindingPrefix}${expires}|${digest ?? ''}|${opaque}`,
      signingKey,
    )
    return `Payment id="${id}"${template.headerTail}${digest ? `, digest="${digest}"` : ''}, expires="${expires}", opaque="${opaque}"`
  }

  const issue = async (
    request: Request,
    entry: CompiledOffer,
    body: Uint8Array | undefined,
  ): Promise<string> => {
    if (entry.template) return issueTemplated(entry, body)
    const expires = expiresAt(now(), entry.offer.expiresIn ?? expiresIn)
    // "Servers SHOULD include the `digest` parameter when issuing challenges for requests with bodies." (§5.1.4)
    const digest = body ? Digest.compute(body) : undefined
    const opaque = opaqueFor(entry.offer)
    const pinned = await pinnedRequest(entry, request)
    let fullRequest = pinned
    if (entry.method.prepare)
      fullRequest = await entry.method.prepare({ request: pinned, httpRequest: request, realm, expires })
    const fields: Challenge.ChallengeFields = {
      realm,
      method: entry.method.definition.name,
      intent: entry.intent,
      request: fullRequest,
      expires,
      opaque,
    }
    if (digest) fields.digest = digest
    if (entry.offer.description !== undefined) fields.description = entry.offer.description
    const requestB64 = Challenge.encodeRequest(fullRequest)
    const id = Binding.computeIdRaw(Challenge.bindingInput(fields, requestB64), signingKey)
    return Challenge.format({ id, ...fields }, requestB64)
  }

  const problem = (error: PaymentError, challenges?: readonly string[]): Response => {
    const headers: [string, string][] = [
      ['content-type', 'application/problem+json'],
      // "Servers MUST send `Cache-Control: no-store` with 402 responses" (§12.9)
      ['cache-control', 'no-store'],
    ]
    if (error.retryAfter !== undefined)
      headers.push(['retry-after', String(Math.max(0, Math.ceil(error.retryAfter)))])
    if (challenges) for (const challenge of challenges) headers.push(['www-authenticate', challenge])
    let body = problemBodies.get(error)
    if (body === undefined) {
      body = JSON.stringify(error.toProblem())
      // Errors are immutable: a shared instance (payment-required) serializes once.
      problemBodies.set(error, body)
    }
    return textResponse(body, { status: error.status, headers })
  }

  const challenge = async (
    request: Request,
    route: Route,
    error: PaymentError = paymentRequired,
  ): Promise<Response> => {
    const compiled = compile(route)
    const accept = request.headers.get('accept-payment')
    const offers =
      accept === null
        ? compiled
        : AcceptPayment.select(
            compiled.map((entry) => ({ method: entry.method.definition.name, intent: entry.intent, entry })),
            accept,
          ).map((selected) => selected.entry)
    // Fast path: static offers and no body to digest need no awaits at all.
    if (request.body === null && offers.every((entry) => entry.template !== undefined))
      return problem(
        error,
        offers.map((entry) => issueTemplated(entry, undefined)),
      )
    let body: Uint8Array | undefined
    try {
      body = await readBody(request)
    } catch (cause) {
      report(cause, 'challenge')
      return problem(new ServiceUnavailableError({ detail: 'Could not issue a payment challenge' }))
    }
    // An offer whose price or preparation fails is left out; the others are still offered.
    const headers: string[] = []
    let failure: unknown
    for (const entry of offers) {
      try {
        headers.push(await issue(request, entry, body))
      } catch (cause) {
        failure ??= cause
        if (!PaymentError.is(cause)) report(cause, 'challenge')
      }
    }
    if (headers.length > 0) return problem(error, headers)
    // "Servers MUST NOT return 402 without including a `WWW-Authenticate` header containing at least one
    // Payment challenge." (§4.4)
    if (PaymentError.is(failure) && failure.status !== 402) return problem(failure)
    return problem(new ServiceUnavailableError({ detail: 'Could not issue a payment challenge' }))
  }

  const matches = (input: string, expected: Buffer): boolean => {
    for (const secret of secrets) {
      const candidate = Buffer.from(Binding.computeIdRaw(input, secret), 'utf8')
      if (candidate.byteLength === expected.byteLength && timingSafeEqual(candidate, expected)) return true
    }
    return false
  }
  // The id binds the JCS form of the request. A client that echoed our wire string verbatim (the usual
  // case) is checked without re-canonicalizing; any other encoding is canonicalized and checked again.
  const verifyBinding = (echoed: Challenge.Challenge, wireRequest: string): boolean => {
    const expected = Buffer.from(echoed.id, 'utf8')
    if (matches(Challenge.bindingInput(echoed, wireRequest), expected)) return true
    const canonical = Challenge.encodeRequest(echoed.request)
    return canonical !== wireRequest && matches(Challenge.bindingInput(echoed, canonical), expected)
  }

  // Static offers echo the same request string on every credential. Decoding it and validating it with
  // the method schema are pure functions of that string, so their results are memoized (bounded; the
  // decoded objects are frozen so no caller can alter a shared value).
  const decodedRequests = new Map<string, Record<string, unknown>>()
  const decodeRequestCached = (requestB64: string): Record<string, unknown> => {
    let decoded = decodedRequests.get(requestB64)
    if (decoded === undefined) {
      decoded = deepFreeze(Challenge.decodeRequest(requestB64))
      if (decodedRequests.size >= 256) decodedRequests.clear()
      decodedRequests.set(requestB64, decoded)
    }
    return decoded
  }
  const parsedRequests = new WeakMap<
    CompiledOffer,
    Map<string, ReturnType<Method.Schema<unknown>['safeParse']>>
  >()
  const parseRequestCached = (entry: CompiledOffer, requestB64: string, request: Record<string, unknown>) => {
    let cache = parsedRequests.get(entry)
    if (!cache) {
      cache = new Map()
      parsedRequests.set(entry, cache)
    }
    let result = cache.get(requestB64)
    if (result === undefined) {
      result = entry.method.definition.request.safeParse(request)
      if (result.success) deepFreeze(result.data)
      if (cache.size >= 256) cache.clear()
      cache.set(requestB64, result)
    }
    return result
  }

  // The first pinned field the echoed request does not repeat, or undefined when it matches the offer.
  const mismatchedField = (
    entry: CompiledOffer,
    pinned: Record<string, unknown>,
    wireRequest: string,
    echoed: Record<string, unknown>,
  ): string | undefined => {
    // An echo of a static offer's own request string is equal by construction.
    if (wireRequest === entry.template?.requestB64) return undefined
    return Object.keys(pinned).find((field) => !deepEqual(pinned[field], echoed[field]))
  }

  const consumedKey = (id: string) => `${prefix}consumed:${id}`

  const keyReused = () =>
    // Same answer as for the same challenge without the key: it has been used, by another credential.
    new InvalidChallengeError({
      detail:
        'The challenge has already been used; this Idempotency-Key belongs to another credential or body.',
    })

  // Continues a request whose Idempotency-Key already has a record. One resource delivery per payment
  // (§11.6): a response being produced elsewhere is a 409; a failed or abandoned one is taken over by
  // exactly one retry (compare-and-set), which serves it again without settling again. Only a retry with
  // the same credential and body continues a record: "When a client retries a request with the same
  // `Idempotency-Key` and a valid Payment credential, the server SHOULD return the same response" (§11.5).
  // Resolves to undefined when the caller owns the key and must verify and settle: `takeOver` claims a
  // pending record whose lease ran out (a crashed request), otherwise such a record is only reported.
  const resume = async (
    idem: IdempotencyBinding,
    raw: string,
    credential: Credential.Credential,
    respond: (error: PaymentError) => Promise<Authorization>,
    takeOver: boolean,
  ): Promise<Authorization | undefined> => {
    let record: IdempotencyCache.IdempotencyRecord
    try {
      record = JSON.parse(raw) as IdempotencyCache.IdempotencyRecord
    } catch {
      return respond(keyReused())
    }
    if (record.fingerprint !== idem.fingerprint) return respond(keyReused())
    // A pending record's owner is verifying and settling under a lease; past it, that request crashed
    // (or its store writes failed) before settling, and a retry may take the key over.
    if (record.state === 'pending' && (record.leaseUntil ?? 0) <= now()) {
      if (!takeOver) return undefined
      const next: IdempotencyCache.IdempotencyRecord = {
        state: 'pending',
        leaseUntil: now() + leaseMs,
        fingerprint: idem.fingerprint,
      }
      if (await store.compareAndSet(idem.key, raw, JSON.stringify(next), idempotencyTtlMs)) return undefined
    }
    if (record.state === 'done')
      return { status: 'respond', response: IdempotencyCache.restore(record.response) }
    if (record.state === 'failed' || (record.state === 'serving' && record.leaseUntil <= now())) {
      const next: IdempotencyCache.IdempotencyRecord = {
        state: 'serving',
        receipt: record.receipt,
        leaseUntil: now() + leaseMs,
        fingerprint: idem.fingerprint,
      }
      if (await store.compareAndSet(idem.key, raw, JSON.stringify(next), idempotencyTtlMs))
        return paid(credential, record.receipt, undefined, undefined, idem)
    }
    return respond(
      new IdempotencyConflictError({ detail: 'A request with this Idempotency-Key is in progress.' }),
    )
  }

  const authorize = async (request: Request, route: Route): Promise<Authorization> => {
    const offers = compile(route)
    const respond = async (error: PaymentError): Promise<Authorization> => ({
      status: 'respond',
      // A 402 always carries fresh challenges; other statuses (400, 409, 503) carry none.
      response: error.status === 402 ? await challenge(request, route, error) : problem(error),
    })

    const tokens = Credential.extract(request.headers.get('authorization'))
    if (tokens.length === 0) return respond(paymentRequired)
    // "Servers receiving multiple Payment credentials in a single request SHOULD reject with 400" (§A)
    if (tokens.length > 1)
      return respond(new MultipleCredentialsError({ detail: 'Send exactly one Payment credential.' }))

    let credential: Credential.Credential
    let wireRequest: string
    try {
      ;({ credential, requestB64: wireRequest } = Credential.decodeWithRequest(
        tokens[0]!,
        decodeRequestCached,
      ))
    } catch {
      return respond(new MalformedCredentialError({ detail: 'The Payment credential could not be decoded.' }))
    }
    const echoed = credential.challenge

    // A route may offer one method/intent several times (two currencies, two recipients): each is a candidate.
    const candidates = offers.filter(
      (o) => o.method.definition.name === echoed.method && o.intent === echoed.intent,
    )
    if (candidates.length === 0) {
      return respond(
        new MethodUnsupportedError({ detail: `${echoed.method}/${echoed.intent} is not accepted here.` }),
      )
    }
    // A method may name its own problem for an unknown or expired challenge (see Method.challengeProblem).
    const methodProblem = (kind: Method.ChallengeProblemKind) => {
      for (const candidate of candidates) {
        try {
          const found = candidate.method.challengeProblem?.(credential.payload, kind)
          if (found) return found
        } catch (cause) {
          report(cause, 'challenge')
        }
      }
      return undefined
    }
    // "Servers MUST verify that credentials present an `id` matching the expected binding." (§5.1.3)
    if (echoed.realm !== realm || !verifyBinding(echoed, wireRequest))
      return respond(
        methodProblem('unknown') ??
          new InvalidChallengeError({ detail: 'The challenge id does not match its parameters.' }),
      )

    // The body is checked before anything is served, Idempotency-Key replays included: a replay must not
    // deliver (or re-run the handler on) a body the payment did not bind.
    const body = request.body === null ? undefined : await readBody(request).catch(() => undefined)
    if (echoed.digest !== undefined) {
      if (!Digest.verify(echoed.digest, body ?? new Uint8Array()))
        return respond(
          new VerificationFailedError({
            detail: 'The request body does not match the challenge digest.',
            reason: 'digest-mismatch',
          }),
        )
    } else if (body !== undefined) {
      return respond(
        new VerificationFailedError({
          detail: 'The challenge does not bind this request body.',
          reason: 'digest-missing',
        }),
      )
    }

    // An Idempotency-Key retry of a request that was already paid is answered before expiry checks:
    // the payment happened, so the client must be able to recover its response.
    const idempotencyHeader = request.headers.get('idempotency-key')
    const idem: IdempotencyBinding | undefined =
      idempotencyHeader && idempotencyHeader.length <= 255
        ? {
            key: IdempotencyCache.key(prefix, realm, idempotencyHeader, echoed.id),
            fingerprint: IdempotencyCache.fingerprint(tokens[0]!, body),
          }
        : undefined
    if (idem) {
      try {
        const raw = await store.get(idem.key)
        if (raw !== undefined) {
          const resumed = await resume(idem, raw, credential, respond, false)
          if (resumed) return resumed
        }
      } catch (cause) {
        return respond(storeFailure(cause))
      }
    }

    // This server always issues `expires`; an echo without it was not issued for this route.
    if (echoed.expires === undefined)
      return respond(
        methodProblem('unknown') ?? new InvalidChallengeError({ detail: 'The challenge has no expiry.' }),
      )
    if (Expires.isExpired(echoed.expires, now()))
      return respond(
        methodProblem('expired') ?? new PaymentExpiredError({ detail: 'The challenge has expired.' }),
      )

    // The echoed request must still equal what one of the route's offers pins now (price changes,
    // cross-route replay).
    let entry: CompiledOffer | undefined
    let mismatch: string | undefined
    let priceFailed = false
    for (const candidate of candidates) {
      let pinned: Record<string, unknown>
      try {
        pinned = candidate.staticRequest ?? (await pinnedRequest(candidate, request))
      } catch (cause) {
        report(cause, 'challenge')
        priceFailed = true
        continue
      }
      const field = mismatchedField(candidate, pinned, wireRequest, echoed.request)
      if (field === undefined) {
        entry = candidate
        break
      }
      mismatch ??= field
    }
    if (entry === undefined) {
      if (priceFailed) return respond(new ServiceUnavailableError({ detail: 'Could not price the request' }))
      return respond(
        new InvalidChallengeError({ detail: `The challenge ${mismatch} does not match this resource.` }),
      )
    }

    const definition = entry.method.definition
    const parsedRequest = parseRequestCached(entry, wireRequest, echoed.request)
    if (!parsedRequest.success)
      return respond(
        new InvalidChallengeError({ detail: 'The challenge request is invalid for this method.' }),
      )
    const parsedPayload = definition.payload.safeParse(credential.payload)
    if (!parsedPayload.success)
      return respond(
        methodProblem('malformed') ??
          new MalformedCredentialError({
            detail: `The ${definition.name}/${definition.intent} payload is invalid.`,
          }),
      )

    const consumed = consumedKey(echoed.id)
    const reuses = entry.method.reusesChallenge?.(parsedPayload.data) === true
    const consumeTtl = Math.max(1_000, Expires.parse(echoed.expires) - now() + 60_000)

    try {
      if (idem) {
        const existing = await IdempotencyCache.claim(store, idem.key, idempotencyTtlMs, {
          state: 'pending',
          leaseUntil: now() + leaseMs,
          fingerprint: idem.fingerprint,
        })
        if (existing !== undefined) {
          const resumed = await resume(idem, existing, credential, respond, true)
          if (resumed) return resumed
        }
      }
      // "A credential is consumed exactly once, even when submitted concurrently." (§11.6) A method may
      // waive this for payloads that can only take effect once by themselves (see reusesChallenge).
      if (!reuses && !(await store.putIfAbsent(consumed, '1', consumeTtl))) {
        if (idem) await store.delete(idem.key)
        return respond(
          methodProblem('consumed') ??
            new InvalidChallengeError({ detail: 'The challenge has already been used.' }),
        )
      }
    } catch (cause) {
      // Nothing was consumed or settled: release the key so a retry is not locked out by a store flake.
      if (idem) await store.delete(idem.key).catch(() => {})
      return respond(storeFailure(cause))
    }

    const context: Method.VerifyContext<any, any> = {
      challenge: echoed,
      request: parsedRequest.data,
      payload: parsedPayload.data,
      credential,
      store: storeFor(entry.method),
      httpRequest: request,
    }
    let settlement: Method.Settlement
    try {
      const verified = await entry.method.verify(context)
      settlement = await entry.method.settle(Object.assign(context, { verified }))
    } catch (cause) {
      // Nothing was settled (settle is idempotent per challenge, so a retry is safe): release the
      // challenge so the client can retry the same credential after a transient failure.
      if (!reuses) await store.delete(consumed).catch(() => {})
      if (idem) await store.delete(idem.key).catch(() => {})
      if (PaymentError.is(cause)) return respond(cause)
      report(cause, 'settle')
      return respond(
        new ServiceUnavailableError({
          detail: `The ${definition.name} rail is unavailable.`,
          reason: 'rail-unavailable',
        }),
      )
    }

    const receipt: Receipt.Receipt = {
      ...(settlement.receipt ?? {}),
      status: 'success',
      method: definition.name,
      timestamp: timestampAt(now()),
      reference: settlement.reference,
      // "`challengeId` (REQUIRED): The `id` from the fulfilled challenge." (transport-mcp §Receipt Structure)
      challengeId: echoed.id,
    }
    if (settlement.externalId !== undefined) receipt.externalId = settlement.externalId
    if (idem) {
      try {
        await IdempotencyCache.put(
          store,
          idem.key,
          { state: 'serving', receipt, leaseUntil: now() + leaseMs, fingerprint: idem.fingerprint },
          idempotencyTtlMs,
        )
      } catch (cause) {
        // Paid: serve anyway rather than lose the payment. Replays of this key then fail safe (409/402).
        report(cause, 'store')
      }
    }
    return paid(credential, receipt, settlement.context, settlement.response, idem)
  }

  const storeFailure = (cause: unknown): PaymentError => {
    if (PaymentError.is(cause)) return cause
    report(cause, 'store')
    return new ServiceUnavailableError({ detail: 'Payment store unavailable', reason: 'store-unavailable' })
  }

  const internals: PaidInternals = {
    store,
    idempotencyTtlMs,
    report,
    problem: (error) => problem(error),
  }
  const paid = (
    credential: Credential.Credential,
    receipt: Receipt.Receipt,
    context: unknown,
    methodResponse: Response | undefined,
    idem: IdempotencyBinding | undefined,
  ): Authorization => new PaidAuthorization(internals, credential, receipt, context, methodResponse, idem)

  const protect = (route: Route, handler: Handler) => {
    compile(route)
    return async (request: Request): Promise<Response> => {
      let authorization: Authorization
      try {
        authorization = await authorize(request, route)
      } catch (cause) {
        // Defensive: authorize maps every expected failure itself; anything left is a 503, not a 500.
        report(cause, 'verify')
        return problem(BaseError.is(cause) && PaymentError.is(cause) ? cause : new ServiceUnavailableError())
      }
      if (authorization.status === 'respond') return authorization.response
      let response: Response
      try {
        response = authorization.response ?? (await handler(request, authorization.payment))
      } catch (cause) {
        return authorization.fail(cause)
      }
      // A network error (`Response.error()`, status 0) or a non-Response cannot carry a receipt: the paid
      // request failed to deliver, which fail() records for an Idempotency-Key retry.
      if (!isServable(response))
        return authorization.fail(new TypeError('the route handler did not return a servable Response'))
      // Without an idempotency record to write, the receipt headers are added synchronously.
      return authorization.idempotent ? authorization.finalize(response) : authorization.decorate(response)
    }
  }

  return { realm, store, protect, authorize, challenge, close }
}
