import type { Challenge } from './Challenge.js'
import type { Credential } from './Credential.js'
import { ConfigurationError, type PaymentError } from './Errors.js'
import type { Receipt } from './Receipt.js'
import type { Store } from './Store.js'

/**
 * A schema the core can validate untrusted data with. zod schemas satisfy it as they are; any object
 * with a compatible `safeParse` (valibot adapters, hand-written guards) works too.
 */
export type Schema<output> = {
  safeParse(value: unknown): { success: true; data: output } | { success: false; error: unknown }
}

/** The output type of a {@link Schema}. */
export type Infer<schema> = schema extends Schema<infer output> ? output : never

/**
 * The data half of a payment method: its registered name, the intent it implements, and the schemas of
 * the decoded challenge `request` and of the credential `payload` (wire field names as the spec spells
 * them).
 */
export type Definition<request = unknown, payload = unknown> = {
  readonly name: string
  readonly intent: string
  readonly request: Schema<request>
  readonly payload: Schema<payload>
}

const nameRule = /^[a-z]+$/
const intentRule = /^[A-Za-z0-9-]+$/

/**
 * Declares a payment method (data first; server and client sides are built from it).
 *
 * @example
 * ```ts
 * const charge = Method.define({ name: 'tempo', intent: 'charge', request: TempoChargeRequest, payload: TempoChargePayload })
 * ```
 * @see draft-httpauth-payment-00 §6 (Payment Methods), §10.1 (Payment Method Specifications)
 */
export function define<const definition extends Definition<any, any>>(definition: definition): definition {
  // "payment-method-id = 1*LOWERALPHA" (§6.1); "intent = 1*( ALPHA / DIGIT / "-" )" (§7.1)
  if (!nameRule.test(definition.name))
    throw new ConfigurationError(`method name must be lowercase letters: ${definition.name}`)
  if (!intentRule.test(definition.intent))
    throw new ConfigurationError(`invalid intent: ${definition.intent}`)
  return Object.freeze(definition)
}

/** Method-scoped state: the server Store with keys namespaced by method and intent. */
export type MethodStore = Store

/**
 * What a server method receives once, when a server is created with it (`Server.create` calls
 * {@link Server.setup} for every method before any request). A method given to several servers is set
 * up once per server.
 *
 * @example
 * ```ts
 * const method: Method.Server<typeof charge> = { definition: charge, setup({ signal, report }) { startFlusher(signal, report) }, … }
 * ```
 * @see draft-httpauth-payment-00 §11.6 (state shared through the Store)
 */
export type SetupContext = {
  /** The method's scoped store (keys prefixed by method/intent), the same one `verify` receives. */
  store: MethodStore
  /** Hands an unexpected background error (a timer, a settlement batch) to the server's onError. */
  report(error: unknown): void
  /** Aborted by `server.close()`: stop timers and background loops. */
  signal: AbortSignal
  realm: string
  /** The server clock (epoch ms). */
  now(): number
}

/** Which check a credential failed when a method is asked for its own problem (see `challengeProblem`). */
export type ChallengeProblemKind = 'unknown' | 'expired' | 'consumed' | 'malformed'

/** What {@link Server.resumesExpired} sees: the expired challenge, the payload as received, the method's store. */
export type ResumeContext = {
  challenge: Challenge
  /** The credential payload as received, not yet validated against the method's payload schema. */
  payload: unknown
  /** The method's scoped store, the same one `verify` and `settle` receive. */
  store: MethodStore
}

/** What a server method sees when a challenge is issued. */
export type PrepareContext<request> = {
  /** The route's request fields (pinned), already merged with the method defaults. */
  request: request
  /** The incoming HTTP request that will receive the 402. */
  httpRequest: Request
  realm: string
  /** The challenge expiry (RFC 3339). */
  expires: string
}

/** What a server method sees when verifying and settling. */
export type VerifyContext<request, payload> = {
  challenge: Challenge
  /** The echoed `request`, validated against the method's request schema. */
  request: request
  /** The credential payload, validated against the method's payload schema. */
  payload: payload
  credential: Credential
  /** Method-namespaced store, for single-use proofs and session state. */
  store: MethodStore
  httpRequest: Request
}

/** What `settle` returns: the method-specific receipt fields (status/method/timestamp are added). */
export type Settlement = {
  /** Method-specific reference: tx hash, invoice hash, PaymentIntent id, channel id… */
  reference: string
  externalId?: string
  /** Extra receipt fields defined by the method specification. */
  receipt?: Record<string, unknown>
  /** Data for the route handler (e.g. a session meter); never serialized. */
  context?: unknown
  /**
   * When set, the server answers with this response instead of calling the route handler (e.g. a
   * session `close` or `topUp` action that buys no resource). Still a 2xx with a receipt.
   */
  response?: Response
}

/**
 * The server half of a method: `verify` has no side effects (throws a `PaymentError` subclass); `settle`
 * moves value and is idempotent per challenge id. When `settle` throws, the core releases the challenge
 * so the same credential can be retried, unless the error says `consumed: true` (see {@link Server.settle}).
 *
 * @example
 * ```ts
 * const server: Method.Server<typeof charge> = { definition: charge, async verify(ctx) { … }, async settle(ctx) { … } }
 * ```
 */
export type Server<definition extends Definition<any, any> = Definition<any, any>, verified = unknown> = {
  readonly definition: definition
  /** Method defaults merged under the route's request (e.g. currency, recipient, chainId). */
  readonly defaults?: Partial<Infer<definition['request']>>
  /**
   * Lets a credential answer a challenge that was already consumed. By default the core consumes every
   * challenge id exactly once; a method may waive that for payloads whose effect can only happen once
   * anyway (e.g. a session `close`, which the escrow finalizes once), and then guarantees single use
   * itself. Clients such as mppx's session manager close on the last challenge they paid.
   */
  reusesChallenge?(payload: Infer<definition['payload']>): boolean
  /**
   * A method-specific problem for a credential whose challenge is unknown (binding failed), expired,
   * already consumed, or whose payload fails the method's schema (`malformed`), instead of the core's
   * `invalid-challenge` / `payment-expired` / `malformed-credential` (e.g. tempo session `topUp`, which
   * its spec answers with `session/challenge-not-found`). Gets the payload as received, not yet
   * validated; return undefined to keep the core's problem.
   */
  challengeProblem?(payload: unknown, kind: ChallengeProblemKind): PaymentError | undefined
  /**
   * A credential identical (same credential string, same body) to the one that consumed a challenge
   * gets the original response back instead of a problem (the lightning session spec asks for this).
   * Streamed responses are never replayed.
   */
  readonly replaysConsumed?: boolean
  /**
   * Lets a credential whose challenge has expired still be verified and settled, when this method's
   * settlement of exactly that challenge began before (a payment left processing, or an outage that hid
   * whether the payment happened): refusing it `payment-expired` would leave a payer charged and never
   * served. Asked only for a credential whose binding, body and offer checked out, within
   * `resumeWindowMs` of its expiry. Resolve true only when settlement of this very challenge began and
   * has not completed: an expired credential is otherwise refused as before. A rejection is a store
   * failure (503).
   *
   * The consumed mark of a resumed credential is kept `resumeWindowMs` longer (no second request settles
   * it meanwhile); that of a challenge settled before it expired lives until the expiry plus 60 s as
   * usual, so once a challenge settled, the method MUST resolve false for it.
   */
  resumesExpired?(context: ResumeContext): Promise<boolean>
  /** With `resumesExpired`: how long after its challenge expired a credential may be resumed, in ms. */
  readonly resumeWindowMs?: number
  /** Called once by `Server.create`, before any request: keep the store, start timers on the signal. */
  setup?(context: SetupContext): void
  /** Called by `server.close()`: stop timers, flush settlement batches. Awaited. */
  close?(): void | Promise<void>
  /** Readiness: throws when the rail cannot be used (RPC unreachable). Called by `server.check()`. */
  check?(): void | Promise<void>
  /** Adds per-challenge fields (memo, nonce, fee-payer data) at issuance. These are not pinned. */
  prepare?(
    context: PrepareContext<Infer<definition['request']>>,
  ): Infer<definition['request']> | Promise<Infer<definition['request']>>
  verify(
    context: VerifyContext<Infer<definition['request']>, Infer<definition['payload']>>,
  ): Promise<verified>
  /**
   * Moves value; idempotent per challenge id. A failure before any value moved throws a `PaymentError`
   * (a 503 `ServiceUnavailableError` for an outage) and the core releases the challenge, so the same
   * credential may be retried. A failure after value moved, or may have (broadcast and unconfirmed,
   * received for the wrong amount), throws one with `consumed: true`: the challenge stays consumed, a
   * retry is refused as used (`invalid-challenge`, or the method's `consumed` problem), no
   * `Retry-After` is sent, and the error is reported to `onError` (phase `settle`) for reconciliation.
   *
   * @example
   * ```ts
   * import { VerificationFailedError } from '@mppkit/core'
   * throw new VerificationFailedError({ detail: 'The transfer landed for the wrong amount.', consumed: true })
   * ```
   * @see draft-httpauth-payment-00 §Replay Protection
   */
  settle(
    context: VerifyContext<Infer<definition['request']>, Infer<definition['payload']>> & {
      verified: verified
    },
  ): Promise<Settlement>
}

/** What a client method sees when asked to pay. */
export type PayContext<request> = {
  challenge: Challenge
  /** The challenge request, validated against the method's request schema. */
  request: request
  /** What is being paid for: the URL, or the transport's name for it (e.g. an MCP tool). */
  url: string
  signal?: AbortSignal
  /**
   * Books a side payment the method makes on its own (e.g. a session top-up or a voucher inside a
   * stream) against the client's spend policy, atomically. Throws `PolicyError` when the policy refuses
   * (sign nothing then); returns an undo to call if the side payment is not made after all, or, with
   * `keep`, to give back all but `keep` base units of it (a fee booked at its limit, kept at what was
   * paid). The client always gives it; it is absent only when a method is driven directly (tests, tools).
   */
  spend?(quote: Quote): (keep?: bigint) => void
}

/**
 * A price as the client policy understands it.
 *
 * @example
 * ```ts
 * const quote: Quote = { amount: 10_000n, currency: '0x20c0…0001', network: 'tempo:4217', decimals: 6 }
 * ```
 */
export type Quote = {
  /** Amount in base units that this payment spends now (a session: this request's price). */
  amount: bigint
  /**
   * The currency identifier as the method's spec spells it (a token address, a mint, an ISO 4217
   * code). Compared exactly, except EVM addresses (`0x` + 40 hex), whose checksum case is not identity.
   */
  currency: string
  /** Where the currency lives, e.g. `tempo:4217` (method name and chain id). */
  network?: string
  /** Decimals of the currency's base unit (6: 1 000 000 base units are one token). */
  decimals?: number
  /** Session deposit (or deposit increase), checked against the policy's `maxDeposit`. */
  deposit?: bigint
  /**
   * Base units this payment locks in an escrow that stays the payer's (a non-custodial session's
   * deposit or top-up, refunded by a close or taken back by the payer's forced close), booked through
   * `spend`: held against the policy's `maxLocked` until the booking is undone (give it back once the
   * channel is closed), and counted against no budget (it has not been spent).
   */
  locked?: bigint
  /**
   * A fee paid on top of a payment (a Lightning routing fee), booked through `spend`: it counts against
   * `budget` and the cross-rail budget, not against `maxAmount`, `maxDeposit` or the cross-rail
   * `maxAmount`, which bound what a server asks for (the rail bounds its fees itself).
   */
  fee?: boolean
  /**
   * Money moved into a balance the server holds for the payer (a custodial session's deposit or top-up),
   * booked through `spend`: it counts against `budget` and the cross-rail budget (it has left the wallet),
   * and its `deposit` against `maxDeposit`, but not against `maxAmount` or the cross-rail `maxAmount`,
   * which bound the price of one request. Requests then drawn from that balance quote `prepaid`.
   */
  prepay?: boolean
  /**
   * This request is paid from a balance already booked as a `prepay` (a custodial session's bearer
   * request): checked against `maxAmount`, `maxDeposit` and the cross-rail `maxAmount`, but booked
   * against no budget, which holds the prepayment already. Its undo gives nothing back.
   */
  prepaid?: boolean
}

/**
 * The client half of a method: quote the challenge for the spend policy, then create the payload.
 *
 * @example
 * ```ts
 * const client: Method.Client<typeof charge> = { definition: charge, quote: (r) => …, async createPayload(ctx) { … } }
 * ```
 */
export type Client<definition extends Definition<any, any> = Definition<any, any>> = {
  readonly definition: definition
  /**
   * Price of paying this request (defaults to the charge intent's `amount`/`currency` fields). The
   * client passes the challenge too, e.g. for a session method to tell whether it already holds a
   * channel for that server (no new deposit).
   */
  quote?(request: Infer<definition['request']>, challenge?: Challenge): Quote
  createPayload(
    context: PayContext<Infer<definition['request']>>,
  ): Promise<{ payload: Infer<definition['payload']>; source?: string }>
  /** Called with the receipt of a successful payment (e.g. to track a session's cumulative spend). */
  onReceipt?(receipt: Receipt, challenge: Challenge): void
  /**
   * Called when the paid request was refused (a 4xx, 402 included, with no receipt; never a 5xx). Return
   * true only when the refusal says this method's own state was stale and the payment moved nothing
   * (e.g. a session channel the server no longer has: `410`; a Lightning session's `bearer` refused `402`
   * because the server closed or lost the session): the paying client then pays the resource's fresh
   * challenge once more within the same `fetch`, instead of handing the refusal to the caller. Never for
   * a 402 that may answer money moved (a deposit, a top-up): that one is the caller's. At most once per
   * `fetch`; the refused payment stays booked.
   */
  retryRefused?(refusal: Refusal, challenge: Challenge): boolean
}

/** A refused paid request, as {@link Client.retryRefused} sees it. */
export type Refusal = {
  status: number
  /** The problem details (`application/problem+json` or JSON, at most 64 KiB), when the answer had them. */
  problem: Record<string, unknown> | undefined
}

/** Registry key of a method. */
export function key(method: { name: string; intent: string } | { method: string; intent: string }): string {
  return `${'name' in method ? method.name : method.method}/${method.intent}`
}
