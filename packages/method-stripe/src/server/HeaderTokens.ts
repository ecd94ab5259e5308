import { createHash } from 'node:crypto'
import {
  Challenge,
  Credential,
  IdempotencyConflictError,
  MalformedCredentialError,
  PaymentError,
  type Store,
  StoreUnavailableError,
} from '@mppkit/core'
import type { Handler, Route, Server } from '@mppkit/core/server'
import { sptProblem } from '../internal/stripeErrors.js'
import { SptId } from '../Methods.js'

/** Options of {@link withHeaderTokens}. */
export type HeaderTokensOptions = {
  /** The MPP server whose `stripe` method settles the tokens (its Store makes each SPT single-use). */
  server: Server.Server
  /** The protected route; its `stripe` offer sets the price charged to a header token. */
  route: Route
  handler: Handler
  /** Store key prefix of the per-token records (default `mppkit:stripe-header:`). */
  keyPrefix?: string
  /** How long a settled token is remembered, in seconds (default 7 days). */
  tokenTtlSeconds?: number
  /** How long one request may hold a token before a retry may take it over, in seconds (default 120). */
  leaseSeconds?: number
}

/** The state of one header token in the Store. */
type TokenRecord =
  | { state: 'inflight'; challenge: Challenge.Challenge; leaseUntil: number }
  | { state: 'released'; challenge: Challenge.Challenge }
  | { state: 'settled'; reference: string }

const protocol = /^MPP\/1(\.\d+)?$/i

/**
 * The SPT of a request that uses a header form (`X-Payment-Token: spt_…`, or `Authorization: Bearer spt_…`
 * with `X-Payment-Protocol: MPP/1.0`); `malformed` for an `X-Payment-Token` that is not an SPT id;
 * undefined when the request uses neither form (or sends a `Payment` credential, which wins).
 *
 * @example
 * ```ts
 * readHeaderToken(new Request(url, { headers: { 'x-payment-token': 'spt_123' } })) // 'spt_123'
 * ```
 */
export function readHeaderToken(request: Request): string | 'malformed' | undefined {
  const authorization = request.headers.get('authorization') ?? ''
  if (/^\s*payment\s/i.test(authorization)) return undefined
  const header = request.headers.get('x-payment-token')
  if (header !== null) return SptId.safeParse(header.trim()).success ? header.trim() : 'malformed'
  const bearer = /^\s*bearer\s+(spt_\S+)\s*$/i.exec(authorization)?.[1]
  if (bearer === undefined || !protocol.test(request.headers.get('x-payment-protocol')?.trim() ?? ''))
    return undefined
  return SptId.safeParse(bearer).success ? bearer : 'malformed'
}

/** True for a 402 `payment-expired` problem (its body is read from a clone). */
async function isExpired(response: Response): Promise<boolean> {
  if (response.status !== 402) return false
  const problem = (await response
    .clone()
    .json()
    .catch(() => undefined)) as { type?: unknown } | undefined
  return typeof problem?.type === 'string' && problem.type.endsWith('/payment-expired')
}

function render(error: PaymentError): Response {
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' })
  if (error.retryAfter !== undefined) headers.set('retry-after', String(Math.ceil(error.retryAfter)))
  return new Response(JSON.stringify(error.toProblem()), { status: error.status, headers })
}

/**
 * An opt-in transport for gateways that send an SPT without a challenge round trip: `X-Payment-Token:
 * spt_…`, or `Authorization: Bearer spt_…` with `X-Payment-Protocol: MPP/1.0`. The route's current
 * `stripe` price is charged through the server's normal pipeline (a challenge is minted for the token and
 * paid with it), each SPT settles at most once through the server's Store (across processes), and the
 * response carries `Payment-Receipt`. Unpaid 402s gain `X-Payment-Amount` / `X-Payment-Currency` hints.
 *
 * The binding is weaker than a challenge's: whoever holds the token can spend it on this route at the
 * route's price (up to the token's own limits), and the token is not tied to a request body. Off unless
 * this wrapper is used.
 *
 * @example
 * ```ts
 * const handler = withHeaderTokens({ server, route: { offers: [{ method: 'stripe', request: { amount: '500' } }] }, handler: () => Response.json({ ok: true }) })
 * ```
 * @see draft-stripe-charge-00 §"Settlement Procedure" (the idempotency key binds the minted challenge and the SPT)
 */
export function withHeaderTokens(options: HeaderTokensOptions): (request: Request) => Promise<Response> {
  const { server, route } = options
  const store: Store = server.store
  const prefix = options.keyPrefix ?? 'mppkit:stripe-header:'
  const ttlMs = (options.tokenTtlSeconds ?? 7 * 86_400) * 1000
  const leaseMs = (options.leaseSeconds ?? 120) * 1000
  const paidRequests = new WeakSet<Request>()
  const paid = server.protect(route, (request, payment) => {
    paidRequests.add(request)
    return options.handler(request, payment)
  })

  const withHints = (response: Response): Response => {
    if (response.status !== 402) return response
    const challenge = Challenge.parseAll(response.headers.get('www-authenticate') ?? '').find(
      (c) => c.method === 'stripe' && c.intent === 'charge',
    )
    const { amount, currency } = (challenge?.request ?? {}) as { amount?: unknown; currency?: unknown }
    if (typeof amount !== 'string' || typeof currency !== 'string') return response
    const headers = new Headers(response.headers)
    headers.set('x-payment-amount', amount)
    headers.set('x-payment-currency', currency)
    return new Response(response.body, { status: 402, statusText: response.statusText, headers })
  }

  // A fresh stripe/charge challenge at the route's current price, minted for the request.
  const mint = async (request: Request): Promise<Challenge.Challenge | Response> => {
    const headers = new Headers(request.headers)
    for (const name of ['authorization', 'x-payment-token', 'x-payment-protocol', 'accept-payment'])
      headers.delete(name)
    const unpaid = await server.challenge(new Request(request.clone(), { headers }), route)
    const challenge = Challenge.parseAll(unpaid.headers.get('www-authenticate') ?? '').find(
      (c) => c.method === 'stripe' && c.intent === 'charge',
    )
    return challenge ?? withHints(unpaid)
  }

  // Takes the token for this request: a released challenge is reused (so a retry after an outage
  // reaches Stripe with the same idempotency key), a live one is a 409, a settled one is spent. A
  // released challenge that has expired is reused too (`reused`): the method resumes it when its
  // settlement began (the token may be charged on it), and a fresh one is minted when the server
  // refuses it as expired (see payWithToken).
  const acquire = async (
    key: string,
    request: Request,
  ): Promise<{ challenge: Challenge.Challenge; reused: boolean } | Response> => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const raw = await store.get(key)
      if (raw === undefined) {
        const challenge = await mint(request)
        if (challenge instanceof Response) return challenge
        const record: TokenRecord = { state: 'inflight', challenge, leaseUntil: Date.now() + leaseMs }
        if (await store.putIfAbsent(key, JSON.stringify(record), ttlMs)) return { challenge, reused: false }
        continue
      }
      const record = JSON.parse(raw) as TokenRecord
      if (record.state === 'settled')
        return withHints(await server.challenge(request, route, sptProblem('spt-already-used')))
      if (record.state === 'inflight' && record.leaseUntil > Date.now())
        return render(
          new IdempotencyConflictError({ detail: 'This token is being settled by another request.' }),
        )
      const { challenge } = record
      const next: TokenRecord = { state: 'inflight', challenge, leaseUntil: Date.now() + leaseMs }
      if (await store.compareAndSet(key, raw, JSON.stringify(next), ttlMs)) return { challenge, reused: true }
    }
    return render(new IdempotencyConflictError({ detail: 'This token is being settled by another request.' }))
  }

  // Sends the request through the server's pipeline with the token as a credential for `challenge`.
  const payWith = async (challenge: Challenge.Challenge, spt: string, request: Request) => {
    const headers = new Headers(request.headers)
    headers.delete('x-payment-token')
    headers.delete('x-payment-protocol')
    // A challenge-bound externalId is echoed, as a Payment client does: the method refuses a credential
    // that drops it (conformance vector stripe-external-id-binding).
    const { externalId } = challenge.request as { externalId?: unknown }
    const payload = { spt, ...(typeof externalId === 'string' ? { externalId } : {}) }
    headers.set('authorization', Credential.format({ challenge, payload }))
    const paidRequest = new Request(request, { headers })
    return { paidRequest, response: await paid(paidRequest) }
  }

  // Pays the request with the token through the server's pipeline, then records what happened.
  const payWithToken = async (key: string, spt: string, request: Request): Promise<Response> => {
    const acquired = await acquire(key, request)
    if (acquired instanceof Response) return acquired
    let { challenge } = acquired
    // The request is sent once more (with a fresh challenge) when a reused one is refused as expired.
    const retained = acquired.reused ? request.clone() : request
    let { paidRequest, response } = await payWith(challenge, spt, request)
    if (acquired.reused && !paidRequests.has(paidRequest) && (await isExpired(response))) {
      // Its settlement never began (the method would have resumed it): the token is bound to nothing
      // and pays a fresh challenge.
      const fresh = await mint(retained)
      if (fresh instanceof Response) {
        await store.delete(key)
        return fresh
      }
      challenge = fresh
      const record: TokenRecord = { state: 'inflight', challenge, leaseUntil: Date.now() + leaseMs }
      await store.set(key, JSON.stringify(record), ttlMs)
      ;({ paidRequest, response } = await payWith(challenge, spt, retained))
    }
    if (paidRequests.has(paidRequest)) {
      const receipt = response.headers.get('payment-receipt')
      const record: TokenRecord = { state: 'settled', reference: receipt ?? 'unknown' }
      // Paid and served: a Store failure now must not turn the paid response into an error (the
      // method's own per-token claim still refuses a second settlement).
      await store.set(key, JSON.stringify(record), ttlMs).catch(() => {})
    } else if (response.status === 503 || response.headers.has('retry-after')) {
      // Not settled yet, and a retry of the same credential may complete it: an outage (503), or a
      // PaymentIntent left `processing` (402 `payment-intent-processing` + Retry-After) that spent the
      // token. The next try reuses this challenge, so Stripe replays the create or the method reads the
      // pending intent; a fresh challenge would be refused (the token is bound to this one) and a
      // payment that succeeds later would never be served.
      await store.set(key, JSON.stringify({ state: 'released', challenge } satisfies TokenRecord), ttlMs)
    } else await store.delete(key)
    return withHints(response)
  }

  return async (request) => {
    const spt = readHeaderToken(request)
    if (spt === undefined) return withHints(await paid(request))
    if (spt === 'malformed')
      return withHints(
        await server.challenge(
          request,
          route,
          new MalformedCredentialError({
            detail: 'The payment token header is not a Shared Payment Token id.',
          }),
        ),
      )
    const key = `${prefix}${createHash('sha256').update(spt).digest('base64url')}`
    try {
      return await payWithToken(key, spt, request)
    } catch (cause) {
      // Store failures before or after settlement: retryable, never a stack trace.
      return render(PaymentError.is(cause) ? cause : new StoreUnavailableError())
    }
  }
}
