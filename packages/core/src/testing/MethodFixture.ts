import type { Options as ClientOptions } from '../client/Client.js'
import type * as Method from '../Method.js'
import type { Receipt } from '../Receipt.js'
import type { Handler, Offer } from '../server/Server.js'
import type { ExpectedProblems } from './expectedProblems.js'

/**
 * Builds the client side of the rail; the kit calls it once per case (a fresh payer state each time)
 * with the `fetch` the client must use for its own side requests (vouchers, top-ups, closes).
 */
export type ClientFactory = (context: { fetch: typeof fetch }) => Method.Client

/**
 * A way to make the rail fail and recover (e.g. an RPC proxy that refuses connections), and optionally
 * to count the settlements the rail really made (e.g. transfers seen on chain).
 */
export type RailOutage = {
  start(): void | Promise<void>
  stop(): void | Promise<void>
  /** Settlements the rail made so far; when absent the kit counts the server method's successful `settle` calls. */
  settlements?(): number | Promise<number>
}

/** What a flow step can use. */
export type FlowContext = {
  /** The suite's fixture. */
  fixture: MethodFixture
  /** The flow's client method instance (one per flow). */
  client: Method.Client
  /** A paying fetch over the kit's server (the core client with this flow's client method). */
  fetch: (url: string, init?: RequestInit) => Promise<Response>
  /** The protected resource's URL. */
  url: string
}

/** One step of a multi-step flow. */
export type FlowStep = {
  name: string
  /** Performs the step (default: one paid GET of the resource through `context.fetch`). */
  run?(context: FlowContext): Promise<Response>
  /** Receipt fields the step's receipt must have (a subset match). */
  receipt?: Record<string, unknown>
  /** Whether the step reaches the route handler (default: true when `run` is absent, else false). */
  servesResource?: boolean
}

/** What a flow produced, for the fixture's own accounting checks. */
export type FlowOutcome = {
  fixture: MethodFixture
  client: Method.Client
  /** One receipt per step, in order. */
  receipts: Receipt[]
  /** Successful `settle` calls of the server method during the flow. */
  settles: number
}

/** A multi-step payment flow (e.g. a session: open → use ×N → top up → close). */
export type MethodFlow = {
  name: string
  steps: FlowStep[]
  /** Every receipt of the flow carries the same `reference` (e.g. one channel). */
  sameReference?: boolean
  /** Checks that balances and receipts add up (on chain, in the rail's ledger…). */
  verify?(outcome: FlowOutcome): void | Promise<void>
}

/** What a rail gives the conformance kit. */
export type MethodFixture = {
  /** Server side of the method under test. */
  server: Method.Server
  /** Client side that can pay the challenges `server` issues: one instance, or a factory (fresh state per case). */
  client: Method.Client | ClientFactory
  /** Spend policy of the kit's paying client (e.g. a session's `maxDeposit`). */
  policy?: ClientOptions['policy']
  /** The route's offer (method, intent, pinned request). */
  offer: Offer
  /** The route handler (default: a JSON `{ ok: true }`). */
  handler?: Handler
  /** The problems this rail answers per failure case, over {@link defaultProblems}; false skips a case. */
  problems?: ExpectedProblems
  /** A payload the method's schema refuses (default `{}`). */
  malformedPayload?: unknown
  /**
   * Changes the challenge request the client pays, so the payload pays a wrong amount (default: `amount`
   * minus one when the request has a decimal `amount`; otherwise the case is skipped).
   */
  wrongAmount?: (request: Record<string, unknown>) => Record<string, unknown>
  /**
   * Changes the challenge request the client pays, so the payload pays another recipient (default: the
   * last character of a string `recipient` changed within its class, e.g. hex stays hex; the case is
   * skipped, with a printed reason, when the request has none or the client cannot pay the change).
   */
  wrongRecipient?: (request: Record<string, unknown>) => Record<string, unknown> | undefined
  /**
   * As {@link MethodFixture.wrongRecipient}, for another currency (default: a string `currency` the
   * route's offer pins, changed; skipped when the offer pins none).
   */
  wrongCurrency?: (request: Record<string, unknown>) => Record<string, unknown> | undefined
  /**
   * A snapshot of what the payer has done on the rail (e.g. its account nonce, or its balances), compared
   * with `toEqual` before and after each wrong-amount, wrong-recipient and wrong-currency payload is
   * presented: a refused payload must move nothing, not even when the server sent it (a pull rail) and
   * only refused it afterwards. Taken after the payload is made (a push payment already moved value).
   */
  payerActivity?: () => unknown | Promise<unknown>
  /** Makes the rail fail and recover, for the outage case. */
  outage?: RailOutage
  /**
   * Makes the rail fail after value moved, or may have (e.g. the RPC goes away between broadcast and
   * confirmation), for the `consumed` case: while started, `settle` must throw a `PaymentError` with
   * `consumed: true`, so the server keeps the challenge used and the same credential is never charged
   * again. Without it the case is skipped with a printed reason.
   */
  outageAfterPayment?: RailOutage
  /**
   * Why the rail has no {@link MethodFixture.outageAfterPayment} (printed with the skipped case), e.g. a
   * settlement that is idempotent per proof, so a failure after the send is retryable.
   */
  noOutageAfterPayment?: string
  /**
   * A session (or other non-charge) rail whose payloads are bound to one challenge all the same (e.g. a
   * deposit paid to the challenge's own invoice): the kit then runs the spent-payload and
   * many-challenges cases on it too.
   */
  bindsPayloads?: boolean
  /** Releases nodes, clients… */
  teardown?: () => Promise<void>
}
