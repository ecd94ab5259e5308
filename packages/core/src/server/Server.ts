import type { PaymentError } from '../Errors.js'
import type * as Method from '../Method.js'
import type { Store } from '../Store.js'
import * as Authorize from './Authorize.js'
import { createCore, type Options, type Phase } from './Core.js'
import * as Health from './Health.js'
import * as Http from './Http.js'
import * as Idempotency from './Idempotency.js'
import * as Issuance from './Issuance.js'
import * as Lifecycle from './Lifecycle.js'
import * as Offers from './Offers.js'
import { own } from './Owner.js'
import type { Handler } from './Paid.js'
import * as Verification from './Verification.js'

export type { Outcome, PaymentInput, Replay } from './Authorize.js'
export type { Options, Phase } from './Core.js'
export type { Health } from './Health.js'
export type { Authorization } from './Http.js'
export type { ChallengeInput, IssuedChallenge, Problem } from './Issuance.js'
export type { Offer, Route } from './Offers.js'
export type { Handler, Paid, Payment } from './Paid.js'

/** An MPP server. */
export type Server = {
  readonly realm: string
  /** The methods this server accepts, as given to `create` (adapters check their options against them). */
  readonly methods: readonly Method.Server[]
  readonly store: Store
  /** Largest request body read for the digest binding (bytes); larger is a 413. */
  readonly maxBodyBytes: number
  /** Wraps a Fetch handler: 402 until paid, then the handler, with a receipt. */
  protect(route: Offers.Route, handler: Handler): (request: Request) => Promise<Response>
  /** The whole payment pipeline for one HTTP request, for framework adapters. */
  authorize(request: Request, route: Offers.Route): Promise<Http.Authorization>
  /** A fresh 402 for the route. */
  challenge(request: Request, route: Offers.Route, error?: PaymentError): Promise<Response>
  /**
   * The transport-neutral pipeline: a credential (token or parsed object), the route and the request
   * data in; paid, a problem with the challenges to offer (as data), or a stored replay out. A
   * transport renders the outcome (HTTP headers, a JSON-RPC error, an MCP `_meta` receipt).
   */
  authorizePayment(input: Authorize.PaymentInput): Promise<Authorize.Outcome>
  /** Fresh challenges for a route as data (with `error`, default payment-required). */
  issueChallenges(
    input: Issuance.ChallengeInput & { route: Offers.Route },
    error?: PaymentError,
  ): Promise<Issuance.Problem>
  /**
   * Aborts the signal every method received in `setup` and awaits every method's `close()` (timers
   * stopped, settlement batches flushed). Idempotent; errors of a method's close go to onError.
   */
  close(): Promise<void>
  /**
   * Readiness probe: a put/get/delete round trip through the store and each method's optional
   * `check()`; `ok` is false when any failed. Never throws.
   */
  check(): Promise<Health.Health>
  /**
   * Reports an unexpected error, or a mounting mistake an adapter found, to the server's `logger` and
   * `onError` (one line per distinct failure, never a credential). For transports and adapters.
   */
  report(error: unknown, phase: Phase): void
}

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
  const core = createCore(options)
  const compile = Offers.compiler(core)
  const { refuse } = Issuance.issuer(core)
  const authorize = Authorize.pipeline({
    core,
    verification: Verification.create(core),
    idempotency: Idempotency.create(core),
    refuse,
  })
  const http = Http.transport({ core, compile, refuse, authorize })
  const close = Lifecycle.start(core)
  const methods = Object.freeze([...options.methods])
  const reporter = { report: (error: unknown, phase: Phase) => core.report(error, phase) }
  return {
    realm: core.realm,
    methods,
    store: core.store,
    maxBodyBytes: core.maxBodyBytes,
    // Each protected handler knows its server, so `toNodeListener(handler)` reports to it.
    protect: (route, handler) => own(http.protect(route, handler), reporter),
    authorize: http.authorize,
    challenge: http.challenge,
    authorizePayment: (input) => authorize(compile(input.route), input),
    issueChallenges: async (input, error) => refuse(compile(input.route), input, error),
    close,
    check: () => Health.check(core),
    report: (error, phase) => core.report(error, phase),
  }
}
