import { createHash, randomBytes } from 'node:crypto'
import {
  anySignal,
  Challenge,
  ConfigurationError,
  Credential,
  type Method,
  mayHaveSettled,
  PaymentFailedError,
  untilAborted,
} from '@mppkit/core/client'
import * as Invoice from '../Invoice.js'
import { type LightningNetwork, type LightningSessionRequest, session } from '../Methods.js'
import { type ChargeClientOptions, feeLimit, minValidityMs, walletOf } from './Charge.js'
import { bookFee } from './Fees.js'
import {
  checkLost,
  checkSaved,
  checkSessionStore,
  lostTopUpKey,
  originOf,
  type SavedLostTopUp,
  type SavedSession,
  type SessionStore,
} from './Saved.js'
import { checkInvoice, payInvoice } from './Wallet.js'

/** Options of {@link sessionClient}. */
export type SessionClientOptions = ChargeClientOptions & {
  /**
   * The fetch for side requests (probes of restored sessions, opens sent again, top-ups, closes; each
   * within `sideTimeoutMs`); default `globalThis.fetch`.
   */
  fetch?: typeof fetch
  /**
   * Time limit in milliseconds of each side request this client makes on its own (default 10 000): the
   * check of a restored session, a saved open sent again, the request for a challenge before a top-up
   * or close, and the top-up or close itself (each request with its answer's body; combined with the
   * caller's signal where there is one). A positive, finite number (at most 2 147 483 647); anything
   * else is a `ConfigurationError` at creation. A server that does not answer in time is treated as one
   * that cannot be reached: a restored session is kept, a saved open stays pending (it may have got
   * through: never taken as refused, never paid again), and a top-up or close fails with a
   * `PaymentFailedError` (code `session-side-timeout`) saying its outcome is unknown (a paid top-up stays
   * pending and is sent again, never paid again; a close is finished by the next `close`).
   */
  sideTimeoutMs?: number
  /**
   * Expiry of the return invoice in seconds (default: the larger of 30 days and twice the server's
   * advertised idle timeout, as the spec recommends).
   */
  returnInvoiceExpirySeconds?: number
  /** Top up before a request the balance (as this client counts it) cannot pay (default true). */
  autoTopUp?: boolean
  /**
   * Keeps this client's sessions across restarts (e.g. `fileSessionStore(path)` from
   * `@mppkit/method-lightning/client/node`): a session is saved once its deposit is paid, before its open
   * is sent, again before a paid top-up is sent and as its balance changes, and deleted once closed. A
   * restarted client (`restore()`, or its first payment) reads them back and keeps paying from them
   * (bearer requests with the deposit preimage) instead of paying a new deposit, and can still close them
   * (refund to the return invoice). The records hold the deposit preimages: bearer secrets, to be kept
   * as secret as an API key.
   */
  sessionStore?: SessionStore
  /**
   * Told of every `sessionStore` load, save or delete that failed (`operation`; `key` and `sessionId`
   * are empty for a load), with the store's own error (which a store of your own may have filled with
   * the record: treat it as secret; the errors this client throws never carry it). A save that follows
   * a payment (a deposit or top-up paid) never holds back the credential that payment needs: its record
   * may then be stale or missing after a restart, and this is the only sign. A save before a bearer
   * request (no money moved for it) that fails sends nothing: that payment is refused
   * (`PaymentFailedError`, code `session-store-failed`), the session kept in this process.
   */
  onStoreError?: (
    error: unknown,
    info: { key: string; sessionId: string; operation: 'load' | 'save' | 'delete' },
  ) => void
}

/** What the client keeps of an open session (per server origin). */
export type SessionState = {
  sessionId: string
  /** The realm the session was opened in: its bearer and top-up credentials answer that realm's challenges. */
  realm: string
  /** The deposit preimage: a bearer secret, never logged. */
  preimage: string
  /** Total deposited, satoshis. */
  deposit: bigint
  /** Spent as this client counts it (per request; streams may spend more). */
  spent: bigint
  price: bigint
  /** The resource URL side requests (top-up, close) go to. */
  url: string
  /** The amountless invoice the server refunds to (sent with the open; not a secret). */
  returnInvoice?: string
  /** The last challenge this session answered (a close presents itself on it to get a close challenge). */
  challenge?: Challenge.Challenge
  /**
   * A top-up paid whose credit the server has not confirmed (it answered 503, a 2xx without
   * `{"status":"ok"}`, or not at all): sent again
   * before any new deposit invoice is paid, to `url`, the URL its challenge came from (a server pins a
   * challenge to its resource). Its preimage is a secret, never logged.
   */
  pendingTopUp?: { challenge: Challenge.Challenge; preimage: string; sats: bigint; url: string }
}

/**
 * A session whose deposit is paid but whose open its server has not taken yet (see
 * {@link SessionClient.pending}): restored from the `sessionStore`, or of this process (a `close` found
 * its open unconfirmed). No secret: its preimage stays in the store (or in this process).
 */
export type PendingOpen = {
  sessionId: string
  realm: string
  /** The URL the session was opened on (its open goes there). */
  url: string
  /** The deposit paid, satoshis. */
  deposit: bigint
  /**
   * Why its open is still pending: the outcome of the last attempt (the server unreachable, not
   * answering within `sideTimeoutMs` or answering 5xx, or refusing it without telling whether it has the
   * session), or that none was made yet.
   */
  reason: string
}

/** The outcome of closing one session in {@link SessionClient.closeAll}. */
export type CloseResult = {
  sessionId: string
  /** The URL the session was opened on (its close goes there). */
  url: string
  /**
   * Whether the session is closed: its server answered the close with the close body (or said it had
   * closed the session already, its refund sent then, or has no such session), and this client no longer
   * holds it (its record deleted). Otherwise it is still held (or, its open unconfirmed, in {@link SessionClient.pending}), and
   * a later close finishes it.
   */
  closed: boolean
  /** The server's answer to the close, when there was one. */
  response?: Response
  /**
   * What {@link SessionClient.close} rejected with, as it would have: e.g. `session-side-timeout` (its
   * server did not answer in time: its outcome unknown), `session-open-pending`, `session-topup-pending`,
   * or `session-topup-lost` (with `closed` true when the session was closed all the same).
   */
  error?: unknown
}

/**
 * A record of the `sessionStore` this client left as it is, neither restored nor listed by `lost()` nor
 * deleted (see {@link SessionClient.skipped}): nothing is paid, sent or closed on it, and no session is
 * ever saved over it. No secret: what is wrong names fields, never their values.
 */
export type SkippedSession = {
  /** The record's key in the store (a server origin, `realm:<realm>`, or a `lost:` key). */
  key: string
  /**
   * `invalid`: not a valid record (broken JSON text, not an object, a wrong or missing field, an unknown
   * version, not under its own key, or a preimage that is not its session's); `network`: a valid
   * session of another network than the one this client pays on (a client of that network pays on it
   * and closes it).
   */
  reason: 'invalid' | 'network'
  /** What is wrong, after the record's name ("is not a valid record (spent)"): fields, never values. */
  problem: string
  /** The session of a valid record of another network (never read from a record that is not valid). */
  sessionId?: string
  /** The network of a valid record of another network. */
  network?: LightningNetwork
  /** The server the record is kept for: its key's origin, or else its URL's, when either is one. */
  origin?: string
}

/** Attempts at sending a paid top-up while the server answers 503 (then it stays pending). */
const topUpAttempts = 3
/** Default of {@link SessionClientOptions.sideTimeoutMs}. */
const defaultSideTimeoutMs = 10_000
/** Servers {@link SessionClient.closeAll} closes at once. */
const closeConcurrency = 4
/** The longest time limit a timer takes (2^31 - 1 ms, about 24.8 days). */
const maxTimeoutMs = 2_147_483_647

/** The time limit of side requests in ms; throws `ConfigurationError` unless positive and finite. */
function sideTimeoutOf(options: Pick<SessionClientOptions, 'sideTimeoutMs'>): number {
  const ms = options.sideTimeoutMs ?? defaultSideTimeoutMs
  if (typeof ms !== 'number' || !(ms > 0) || !(ms <= maxTimeoutMs))
    throw new ConfigurationError(
      `lightning session: sideTimeoutMs must be a positive, finite number of milliseconds (at most ${maxTimeoutMs})`,
    )
  return Math.ceil(ms)
}

/** The session client method with its session controls. */
export type SessionClient = Method.Client<typeof session> & {
  /**
   * Open sessions by server origin (`https://host:port` of the paid URL). A method driven directly with a
   * `url` that has no origin (a transport's name for the resource) keys its session `realm:<realm>`.
   */
  readonly sessions: Map<string, SessionState>
  /**
   * Pays a new deposit invoice of `url`'s server and credits the session; the `{"status":"ok"}` response.
   * A top-up paid earlier and still pending (the server answered 503, or not in time) is sent again
   * instead, to the URL it was paid on. Each request it makes is limited to `sideTimeoutMs` (and aborted by `signal`).
   *
   * A paid top-up the server will never credit (refused with a 4xx other than 408 or 429, or a pending
   * one whose challenge expired before it could be sent again: "Clients MUST NOT submit credentials for
   * expired challenges") rejects with a `PaymentFailedError` (code `session-topup-lost`) naming the
   * session, the sats and the reason (never the preimage); the session stays open, and the top-up's
   * proof of payment is kept in the `sessionStore` (see {@link SessionClient.lost}). A payment whose
   * automatic top-up is lost so fails the same way.
   *
   * Only a 2xx with the spec's body (`{"status":"ok"}`) counts as credited. Any other 2xx (a captive
   * portal's page, a proxy's, a route that never read the credential) leaves its outcome unknown: it
   * rejects with a `PaymentFailedError` (code `session-topup-pending`), and the top-up stays pending with
   * its preimage (in the `sessionStore` too), sent again (never paid again) by the next `topUp`, payment
   * or `close` to that server, as one answered 503. A payment whose automatic top-up is so answered fails
   * the same way.
   *
   * @example
   * ```ts
   * await sessions.topUp(url).catch((error) => {
   *   if (error instanceof PaymentFailedError && error.code === 'session-topup-pending') console.warn(error.message)
   *   if (error instanceof PaymentFailedError && error.code === 'session-topup-lost') console.error(error.message)
   * })
   * ```
   */
  topUp(url: string, options?: { signal?: AbortSignal }): Promise<Response>
  /**
   * Closes the session of `url`'s server (refund to the return invoice); the close response. A close the
   * server does not answer within `sideTimeoutMs` fails with a `PaymentFailedError` (code
   * `session-side-timeout`): its outcome is unknown, the session is kept, and the next `close` finishes
   * it (a server that closed it meanwhile says so).
   *
   * What the server must hear before the close goes first. A session whose open its server has not
   * confirmed (answered 5xx, or not at all) has its open sent again on its own challenge, as `restore`
   * does: while the server cannot take it, the close fails with a `PaymentFailedError` (code
   * `session-open-pending`) and the session moves to {@link SessionClient.pending} (its record kept; never
   * taken for closed on a `session-not-found`, which may only mean the open did not get through). A paid
   * top-up still pending is sent again (never paid again): while the server cannot take it (5xx,
   * unreachable, no answer in time, a 2xx without `{"status":"ok"}`), the close fails with a `PaymentFailedError` (code
   * `session-topup-pending`), the session and its record kept (a close would refund the deposit without
   * it).
   *
   * A paid top-up its server refuses for good (a 4xx other than 408 or 429), or whose challenge expired
   * before it could be sent again, will never be credited: the close goes on (the deposit's refund is not
   * held back for a top-up that will not come), and the top-up's proof of payment (its preimage) is kept
   * in the `sessionStore` under `lost:<sessionId>:topup:<paymentHash>` (see {@link SessionClient.lost})
   * before the session's record is deleted. Once the close is answered, it rejects with a
   * `PaymentFailedError` (code `session-topup-lost`) naming the session, the sats, the reason, where the
   * proof is kept (never the preimage) and whether the session was closed (then it is no longer in
   * `sessions`: nothing is left to close). A rejection rather than a resolved close because money was
   * paid and not credited, which a caller must not miss; reported once (when the close itself fails, its
   * own error is thrown, and the report comes with the next close, top-up or payment to that server).
   * Only when the store cannot save that proof is the close refused (`session-topup-pending`), the
   * session's record, which holds it, kept.
   *
   * @example
   * ```ts
   * await sessions.close(url).catch((error) => {
   *   if (error instanceof PaymentFailedError && error.code === 'session-topup-pending') console.warn(error.message)
   *   if (error instanceof PaymentFailedError && error.code === 'session-topup-lost') console.error(error.message)
   * })
   * ```
   */
  close(url: string, options?: { signal?: AbortSignal }): Promise<Response>
  /**
   * Closes every session this client holds (those in `sessions`, once the `sessionStore` is read and its
   * sessions checked), each as {@link SessionClient.close} does (e.g. when an agent is done): one result
   * per session, in the order of `sessions`, a failure reported in its result rather than thrown, so the
   * other sessions are still closed. Different servers are closed at once, up to 4 at a time: a server that
   * does not answer holds up only its own session's close (each of its requests within `sideTimeoutMs`),
   * never the others' closes and refunds. A session whose close failed stays held (and saved) for a
   * later close; its server also closes it after its idle timeout, refunding the return invoice. Sessions
   * whose open is pending ({@link SessionClient.pending}) are not in `sessions`: `close(url)` sends their
   * open again first, `abandonPending` gives them up.
   *
   * @example
   * ```ts
   * for (const { sessionId, closed, error } of await sessions.closeAll())
   *   if (!closed) console.warn(sessionId, error instanceof Error ? error.message : 'not closed')
   * ```
   */
  closeAll(options?: { signal?: AbortSignal }): Promise<CloseResult[]>
  /**
   * Reads back the sessions `sessionStore` kept into `sessions` (the store is read once; the first
   * payment does it too) and returns the sessions restored so far that are still held (in `sessions`, in
   * the store's order: none closed or dropped since). Call it before the first payment so that the
   * policy's quote sees the session (no new deposit).
   *
   * Each restored session is checked with the server by a `topUp` credential that cannot be credited (a
   * random preimage on a fresh challenge; never a close): one the server answers is closed or unknown is
   * dropped (a later payment opens a new one if the policy allows); any other answer (none at all, or
   * none within `sideTimeoutMs`, included) keeps it. Each server's sessions are checked on their own:
   * a payment, `topUp` or `close` waits for the store read and for the check of its own server only, so
   * a server slow to answer holds up nothing sent elsewhere; this call resolves once every check is done.
   *
   * An open saved before it was sent and never confirmed is sent again on its own challenge. While its
   * server cannot take it (unreachable, not answering within `sideTimeoutMs` (it may have got through:
   * never taken as refused), answering 5xx, or refusing it without telling whether it has the session),
   * the session is listed in {@link SessionClient.pending} and this call still resolves: the sessions of
   * other servers are restored and usable. Its record stays in the store, and its open is
   * sent again by every later `restore()` call and before the next payment, `topUp` or `close` to that
   * server (never twice at once); until it gets through, a payment to that server fails with a
   * `PaymentFailedError` (code `session-open-pending`) and pays no new deposit there.
   *
   * An open that can no longer be sent (its challenge expired, or refused) and that the server does not
   * report open or closed (it may have got through) is lost: its record is moved in the store to
   * `lost:<sessionId>`, as proof of the deposit paid (see {@link SessionClient.lost}), and it is reported
   * once, by a `PaymentFailedError` (code `session-lost`) naming its session id (never its preimage): from
   * the next `restore()` call, or from the next payment, `topUp` or `close` to that server, whichever
   * comes first. The other sessions are restored all the same (in `sessions` and `pending` when this call
   * rejects so: a caller goes on with them), and that server is free for a new session.
   *
   * Deposits restored were paid, and booked, by an earlier process: they are not booked against this
   * client's budget, and a close gives back to it only what this process booked (its top-ups).
   *
   * A record that is not valid (broken JSON text, a wrong shape, an unknown version, not under its own
   * key, a preimage that is not its session's), or a session of another network, is skipped, named in
   * {@link SessionClient.skipped} and left in the store as it is, so that one bad record never stops the
   * others from being paid on or closed. A payment whose new session would be saved over a skipped
   * record (one of the same server) is refused (`ConfigurationError`) before anything is paid, until the
   * record is fixed or removed: it may hold a paid deposit's preimage. A store that cannot be read at
   * all rejects (`session-store-failed`, or the store's `ConfigurationError`), and is read again by the
   * next call.
   *
   * @example
   * ```ts
   * const restored = await sessions.restore()
   * for (const [origin, { sessionId, reason }] of sessions.pending) console.warn(origin, sessionId, reason)
   * ```
   */
  restore(): Promise<SessionState[]>
  /**
   * The records of the `sessionStore` this client skipped (see {@link SkippedSession}): those the store
   * read of `restore()` (or of the first payment) found not valid or of another network, and the lost
   * records not valid that it, or the last `lost()` call, found. Empty before the store is read. Each
   * names its key and what is wrong, never a value: a record holds preimages (bearer secrets and proofs
   * of payment).
   *
   * @example
   * ```ts
   * await sessions.restore()
   * for (const { key, problem } of sessions.skipped()) console.warn(`saved session ${JSON.stringify(key)} ${problem}`)
   * ```
   */
  skipped(): SkippedSession[]
  /**
   * Sessions whose deposit is paid but whose open their server has not taken yet, by session key:
   * restored ones (see `restore`), and those of this process a `close` found unconfirmed and could not
   * get through. Read-only: each is sent again by `restore()` and before a payment, `topUp` or `close`
   * to its server; once it gets through it moves to `sessions` (or, when it can never be sent or
   * {@link SessionClient.abandonPending} gives it up, to the store's lost records).
   */
  readonly pending: ReadonlyMap<string, PendingOpen>
  /**
   * Whether the server confirmed the open of `state`, one of {@link SessionClient.sessions} (a receipt of
   * the session seen). One whose open was answered 5xx, or not at all, is not confirmed: its server may
   * never have taken it, so it is not yet a session that can be paid on there; `close` sends its open
   * again first (see {@link SessionClient.pending}).
   *
   * @example
   * ```ts
   * for (const state of sessions.sessions.values()) if (!sessions.confirmed(state)) console.warn(state.sessionId, 'open unconfirmed')
   * ```
   */
  confirmed(state: SessionState): boolean
  /**
   * The `sessionStore`'s lost records, of this client's network, each checked like a restored one: the
   * sessions reported lost (`lost:<sessionId>`, a {@link SavedSession}: a deposit paid whose open was
   * never confirmed and can no longer be sent, or was given up by `abandonPending`), holding the deposit preimage, the proof that the deposit
   * was paid and a bearer secret; and the top-ups reported lost (`lost:<sessionId>:topup:<paymentHash>`,
   * a {@link SavedLostTopUp} with `kind: 'topUp'`: paid, and refused for good or expired before they
   * could be sent again, see `close`), holding the top-up's preimage, the proof that it was paid. Show
   * them to the server's operator; keep them as secret as an API key. This client never sends them again
   * nor deletes them on its own. A lost record that is not valid is left out, left in the store as it is
   * and named in {@link SessionClient.skipped}: one bad record never hides the others.
   *
   * @example
   * ```ts
   * for (const record of await sessions.lost())
   *   if ('kind' in record) console.log('top-up', record.sessionId, record.paymentHash, record.sats, record.reason)
   *   else console.log('session', record.sessionId, record.url, record.deposit)
   * ```
   */
  lost(): Promise<Array<SavedSession | SavedLostTopUp>>
  /**
   * Deletes lost records of `sessionId` (of this client's network) from the `sessionStore`: with
   * `paymentHash`, only that lost top-up's (`lost:<sessionId>:topup:<paymentHash>`); without, every lost
   * record of the session (`lost:<sessionId>` and its lost top-ups'). Their preimages, the only proof
   * that the payments were made, are gone with them. Resolves `true` once one is deleted; `false`,
   * deleting nothing, when there is no such lost record (a live or pending session's record is never
   * deleted by it).
   *
   * @example
   * ```ts
   * for (const record of await sessions.lost())
   *   await sessions.forgetLost(record.sessionId, 'kind' in record ? record.paymentHash : undefined)
   * ```
   */
  forgetLost(sessionId: string, paymentHash?: string): Promise<boolean>
  /**
   * Gives up the pending open of session `sessionId` (one in {@link SessionClient.pending}: its deposit
   * paid, its open never taken by its server, e.g. a server gone for good): its record is moved in the
   * `sessionStore` to `lost:<sessionId>`, as a lost session's is, keeping the deposit preimage (the proof
   * that the deposit was paid, a bearer secret) and the rest of the record; {@link SessionClient.lost}
   * lists it and `forgetLost(sessionId)` deletes it. Its open is no longer sent again (by `restore()`, a
   * payment, `topUp` or `close`), and its server is free for a new session: the next payment there pays
   * a new deposit (within the policy). Waits for an attempt at the open under way: one that gets through
   * leaves the session open (in `sessions`, never abandoned) and this call resolves `undefined`, as it does
   * when no pending open has that id (an open session is ended by `close(url)`).
   *
   * Resolves the lost record (a {@link SavedSession}, its preimage included: keep it as secret as an API
   * key). Without a `sessionStore` that record, and the payer node's payment of `sessionId`, are the
   * only proof left. When the store cannot save or move it, nothing is given up: it rejects with a
   * `PaymentFailedError` (code `session-store-failed`; `onStoreError` has the store's error), the open
   * still pending and its record kept.
   *
   * @example
   * ```ts
   * for (const { sessionId, reason } of sessions.pending.values())
   *   if (reason.includes('could not be reached')) await sessions.abandonPending(sessionId)
   * ```
   */
  abandonPending(sessionId: string): Promise<SavedSession | undefined>
  /**
   * Reads an SSE response of a session stream: yields data chunks, tops up on `payment-need-topup`
   * (the connection stays open and resumes), stops at `[DONE]`; `onEvent` sees every named event.
   */
  stream(
    response: Response,
    url: string,
    onEvent?: (event: string, data: unknown) => void,
  ): AsyncGenerator<string, void, void>
}

type Spend = NonNullable<Method.PayContext<unknown>['spend']>
/**
 * A paid top-up its server will never credit: where its proof is kept (`store`: its own record in the
 * `sessionStore`; `none`: no store, the payer node's payment holds it; `unkept`: the store could not
 * save it, so it stays in the session's record, as a pending top-up). No secret.
 */
type LostTopUp = {
  sessionId: string
  sats: bigint
  paymentHash: string
  reason: string
  kept: 'store' | 'none' | 'unkept'
}
/** A deposit or top-up booked against the spend policy's budget (a prepayment): what to give back on a refund. */
type Prepayment = { sats: bigint; undo: (keep?: bigint) => void }

/**
 * Gives `refunded` satoshis back to the budget, from the latest prepayment backwards (each undo keeps
 * what is not given back of it).
 */
function giveBack(prepayments: Prepayment[], refunded: bigint): void {
  let left = refunded
  for (let i = prepayments.length - 1; i >= 0 && left > 0n; i--) {
    const { sats, undo } = prepayments[i]!
    if (left >= sats) {
      undo()
      left -= sats
    } else {
      undo(sats - left)
      left = 0n
    }
  }
  prepayments.length = 0
}

/**
 * Creates the client side of `lightning/session`: the first challenge of a server opens a session (pays
 * the deposit invoice after checking it, sends the preimage and an amountless return invoice); later
 * requests are `bearer` actions. A server is the origin of the paid URL, not the realm its challenges
 * name (any origin may name any realm): an origin has at most one open session, whose deposit and
 * top-ups stay within the policy's `maxDeposit` together. A challenge of that origin naming another
 * realm than the session's is refused (`PaymentFailedError`), paying nothing: never a second deposit to
 * an origin while a session is open there; `close(url)` ends the session first. Only a method driven
 * directly with a `url` that has no origin keys its session by the challenge's realm. `topUp(url)` and
 * `close(url)` are side requests; `stream()` follows a stream billed per chunk through its top-ups. The
 * spend policy's deposit limit applies to deposits and top-ups (per origin). Its budget holds what leaves
 * the wallet: each deposit and top-up (a prepayment: the server holds it for the payer) and their routing
 * fees (each fee limit booked before paying, then replaced by the fee paid); requests paid from the
 * deposit are checked against `maxAmount` and book nothing more. A close's refund, once the wallet
 * reports its return invoice paid (`Wallet.received`), goes back to the budget.
 *
 * @example
 * ```ts
 * const sessions = sessionClient({ lnd, network: 'regtest' })
 * const client = Client.create({ methods: [sessions], policy: { maxDeposit: { sat: 10_000n } } })
 * await client.fetch(url); await sessions.close(url)
 * ```
 * @see draft-lightning-session-00
 */
export function sessionClient(options: SessionClientOptions): SessionClient {
  const wallet = walletOf(options)
  checkSessionStore(options?.sessionStore)
  const store = options.sessionStore
  const network = options.network ?? 'mainnet'
  const now = options.now ?? Date.now
  const margin = minValidityMs(options)
  const sideTimeoutMs = sideTimeoutOf(options)
  /** The error of a side request `url`'s server did not answer within `sideTimeoutMs`. */
  const timedOut = (url: string) =>
    new PaymentFailedError(
      `lightning session: ${originOf(url) ?? url} did not answer within ${sideTimeoutMs} ms (sideTimeoutMs)`,
      { code: 'session-side-timeout' },
    )
  const isTimeout = (error: unknown) =>
    error instanceof PaymentFailedError && error.code === 'session-side-timeout'
  /**
   * A side request (a probe, an open sent again, a challenge fetched, a top-up, a close), within
   * `sideTimeoutMs` (and `caller`'s signal, if any): the fetch gets the combined signal, and is raced
   * against it too, so that a fetch that does not honour it cannot hold the client up either. With
   * `body`, the answer's body is read within the same limit, and the response returned holds it (the
   * answers to credentials, small JSON documents, are read whole); without, only its head is waited for
   * (the caller cancels the body). A timeout is a `PaymentFailedError` (code `session-side-timeout`); a
   * caller's abort is its reason, as with `fetch`.
   */
  const sideFetch = async (
    url: string,
    init: RequestInit = {},
    { caller, body = false }: { caller?: AbortSignal | undefined; body?: boolean } = {},
  ): Promise<Response> => {
    const timeout = AbortSignal.timeout(sideTimeoutMs)
    const signal = caller ? anySignal([timeout, caller]) : timeout
    try {
      const response = await untilAborted(
        signal,
        (options.fetch ?? globalThis.fetch)(url, { ...init, signal }),
      )
      if (!body) return response
      const content = await untilAborted(signal, response.arrayBuffer())
      const whole = new Response([101, 204, 205, 304].includes(response.status) ? null : content, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      })
      Object.defineProperty(whole, 'url', { value: response.url })
      return whole
    } catch (error) {
      if (timeout.aborted && !caller?.aborted) throw timedOut(url)
      throw error
    }
  }
  const sessions = new Map<string, SessionState>()
  const spends = new Map<string, Spend>()
  // One chain per server (session key): an open, a top-up or a close waits for the one before it, so
  // each sees the session (and its deposit) the previous left, never a stale balance or a second open.
  const queues = new Map<string, Promise<unknown>>()
  const serialized = <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const next = (queues.get(key) ?? Promise.resolve()).then(fn)
    const tail = next.then(
      () => {},
      () => {},
    )
    queues.set(key, tail)
    // The last in the chain removes it, so a server no longer used leaves nothing behind.
    void tail.then(() => {
      if (queues.get(key) === tail) queues.delete(key)
    })
    return next
  }
  /**
   * The session key of a payment: the origin of its URL, so that a server naming a new realm on every
   * 402 cannot make this client open (and pay a deposit for) a session per realm; the challenge's realm
   * only when the URL has no origin (a method driven directly, or a transport's name for the resource).
   */
  const keyOf = (url: string, realm: string) => originOf(url) ?? `realm:${realm}`
  /** Refuses a challenge of another realm than the session's (its credentials answer their own realm only). */
  const sameRealm = (state: SessionState, challenge: Challenge.Challenge, url: string) => {
    if (challenge.realm !== state.realm)
      throw new PaymentFailedError(
        `lightning: ${originOf(url) ?? url} has an open session in realm "${state.realm}" and now names realm "${challenge.realm}": close that session before opening another`,
      )
  }
  const quoteFor = (request: LightningSessionRequest, amount: bigint): Method.Quote => ({
    amount,
    currency: request.currency,
    network: `lightning:${network}`,
    decimals: 0,
  })
  // The deposits and top-ups of each open session booked against the budget, for its refund (none when
  // the method is driven without a spend policy: then no refund is looked up either).
  const prepaymentsOf = new WeakMap<SessionState, Prepayment[]>()
  /**
   * Books a deposit or top-up of `sats` against the budget before it is paid (a prepayment: the money
   * leaves the wallet for a balance the server holds), its `deposit` total against `maxDeposit`. Throws
   * `PolicyError` when the policy refuses, paying nothing.
   */
  const prepay = (spend: Spend | undefined, request: LightningSessionRequest, sats: bigint, total: bigint) =>
    spend?.({ ...quoteFor(request, sats), prepay: true, deposit: total })
  /** Gives a prepayment back unless the payment may have gone out. */
  const unbook = (undo: ((keep?: bigint) => void) | undefined, error: unknown) => {
    if (!mayHaveSettled(error)) undo?.()
  }

  // `sessionStore`: each session under its key in `sessions`. Sessions whose open the server has not
  // confirmed yet (no receipt of the session seen): saved so, their open is sent again on restore.
  const unopened = new WeakSet<SessionState>()
  // The last challenge of each session a receipt came for (consumed by the server).
  const answeredOf = new WeakMap<SessionState, Challenge.Challenge>()
  // The session each bearer credential was made for, by its challenge (a bearer moves no money: one
  // refused because the server closed or lost the session may be paid again, see retryRefused).
  const bearerOn = new WeakMap<Challenge.Challenge, { key: string; state: SessionState }>()
  // Sessions dropped so (closed or unknown on the server).
  const dropped = new WeakSet<SessionState>()
  // Sessions a close ended (its server answered it closed, now or before).
  const closed = new WeakSet<SessionState>()
  const challengeText = (challenge: Challenge.Challenge) =>
    Challenge.format(challenge, Challenge.wireRequest(challenge))
  const toSaved = (state: SessionState): SavedSession => ({
    v: 1,
    network,
    sessionId: state.sessionId,
    preimage: state.preimage,
    realm: state.realm,
    deposit: String(state.deposit),
    spent: String(state.spent),
    price: String(state.price),
    url: state.url,
    ...(state.returnInvoice === undefined ? {} : { returnInvoice: state.returnInvoice }),
    ...(state.challenge ? { challenge: challengeText(state.challenge) } : {}),
    opened: !unopened.has(state),
    ...(answeredOf.has(state) ? { answered: challengeText(answeredOf.get(state)!) } : {}),
    ...(state.pendingTopUp
      ? {
          pendingTopUp: {
            challenge: challengeText(state.pendingTopUp.challenge),
            preimage: state.pendingTopUp.preimage,
            sats: String(state.pendingTopUp.sats),
            url: state.pendingTopUp.url,
          },
        }
      : {}),
  })
  const storeFailed = (
    error: unknown,
    key: string,
    sessionId: string,
    operation: 'load' | 'save' | 'delete',
  ) => {
    try {
      options.onStoreError?.(error, { key, sessionId, operation })
    } catch {}
  }
  /**
   * Saves the session as it now stands (its record is taken when called: saves land in call order on a
   * store that runs them in order, as `fileSessionStore` does). Every save that matters comes after money
   * moved (a deposit or top-up paid): holding back the credential that depends on it would only make
   * sure the payment is lost, so a failed save sends it all the same (the store was read, and locked,
   * before the first payment, by `restore`).
   *
   * Unlike Tempo's channelStore, whose save comes before the transaction or voucher that moves money is
   * signed, so that a failed save sends nothing: here a deposit's (or top-up's) preimage only exists once
   * it is paid, and the open (or top-up) credential is the only way to get that money into a session or
   * back (no open, no session, no refund). So a failed save is told to `onStoreError` and the credential
   * sent; only `required` (the save before a bearer request, which moves no money) throws, nothing sent.
   */
  const persist = async (key: string, state: SessionState, required = false) => {
    if (!store) return
    try {
      await store.save(key, toSaved(state))
    } catch (error) {
      storeFailed(error, key, state.sessionId, 'save')
      // The store's error is not the cause: a store of the user's may quote the record (its preimage).
      if (required)
        throw new PaymentFailedError(
          `lightning session: could not save session ${state.sessionId} to the sessionStore; nothing was sent (onStoreError has the store's error)`,
          { code: 'session-store-failed' },
        )
    }
  }
  const forget = async (key: string, state: SessionState) => {
    if (!store) return
    await store.delete(key).catch((error: unknown) => storeFailed(error, key, state.sessionId, 'delete'))
  }

  // The records the store read skipped (see `skipped()`): the sessions' by the first read, the lost
  // records' by it or by the last `lost()` call. None is ever saved over.
  let skippedSessions: SkippedSession[] = []
  let skippedLost: SkippedSession[] = []
  const skippedAt = (key: string) =>
    skippedSessions.find((entry) => entry.key === key) ?? skippedLost.find((entry) => entry.key === key)
  /**
   * Names a record skipped: its key, why and what is wrong; its session id and network only once it is
   * valid (a record that is not may hold a preimage where its session id belongs); its server's origin.
   */
  const skippedEntry = (
    key: string,
    reason: SkippedSession['reason'],
    problem: string,
    value: unknown,
    saved?: SavedSession,
  ): SkippedSession => {
    const url = (value as { url?: unknown } | null)?.url
    const origin =
      !key.startsWith('lost:') && /^https?:/.test(key) && originOf(key) === key
        ? key
        : typeof url === 'string' && /^https?:/i.test(url)
          ? originOf(url)
          : undefined
    return {
      key,
      reason,
      problem,
      ...(saved ? { sessionId: saved.sessionId, network: saved.network } : {}),
      ...(origin === undefined ? {} : { origin }),
    }
  }
  /**
   * Saves a lost record (the proof of a payment) under `key`, unless a record the store read skipped is
   * kept there: never saved over (it may be another proof), a `ConfigurationError` taken as a failed save.
   */
  const saveLost = async (key: string, record: SavedSession | SavedLostTopUp) => {
    const skipped = skippedAt(key)
    if (skipped)
      throw new ConfigurationError(
        `lightning session: saved record ${JSON.stringify(key)} ${skipped.problem}: it was skipped and is never saved over (fix or remove it)`,
      )
    await store!.save(key, record)
  }

  /** Checks the challenge's deposit invoice (network, amount, hash, expiry with the safety margin). */
  const checkDeposit = (challenge: Challenge.Challenge, request: LightningSessionRequest) => {
    const invoice = checkInvoice(request.depositInvoice, {
      network,
      sats: BigInt(request.depositAmount ?? '0'),
      paymentHash: request.paymentHash,
      networkField: network,
      expires: challenge.expires,
      now: now(),
      minValidityMs: margin,
    })
    if (request.paymentHash === undefined)
      throw new PaymentFailedError('lightning: the session challenge has no paymentHash')
    return invoice
  }

  /**
   * Checks and pays the challenge's deposit invoice, its routing fee limit booked through `spend` (a fee
   * quote, counted against the budgets only), returning the preimage and the sats paid.
   */
  const payDeposit = async (
    challenge: Challenge.Challenge,
    request: LightningSessionRequest,
    spend: Spend | undefined,
  ) => {
    const invoice = checkDeposit(challenge, request)
    const sats = invoice.amountMsat! / 1000n
    const fee = bookFee(spend, {
      limit: feeLimit(options.maxFeeSats, sats),
      currency: request.currency,
      network: `lightning:${network}`,
    })
    const preimage = await payInvoice(wallet, request.depositInvoice!, invoice.paymentHash, { fee })
    return { preimage, sats }
  }

  /** The session challenge of a 402, if it has a valid one. */
  const sessionChallengeIn = (response: Response) => {
    if (response.status !== 402) return undefined
    const challenge = Challenge.parseAll(response.headers.get('www-authenticate') ?? '').find(
      (c) => c.method === 'lightning' && c.intent === 'session',
    )
    const parsed = challenge && session.request.safeParse(challenge.request)
    return parsed?.success ? { challenge: challenge!, request: parsed.data } : undefined
  }

  /** A fresh session challenge of `url` (an unauthenticated request answered 402). */
  const challengeOf = async (url: string, caller?: AbortSignal) => {
    const response = await sideFetch(url, {}, { caller })
    // Only its head is read.
    await response.body?.cancel().catch(() => {})
    const found = sessionChallengeIn(response)
    if (!found)
      throw new PaymentFailedError(
        `lightning: ${url} answered ${response.status} without a valid session challenge`,
      )
    return found
  }

  /** Sends a credential (`payload` on `challenge`) to `url`: the answer, read whole within the time limit. */
  const send = (
    url: string,
    challenge: Challenge.Challenge,
    payload: Record<string, unknown>,
    caller?: AbortSignal,
  ) =>
    sideFetch(
      url,
      { headers: { authorization: Credential.format({ challenge, payload } as never) } },
      { caller, body: true },
    )

  /** The open session of `url`'s server (its origin's; the one opened on `url` itself when it has none). */
  const stateOf = (url: string) => {
    const origin = originOf(url)
    if (origin !== undefined) {
      const state = sessions.get(origin)
      if (state) return { key: origin, state }
    } else for (const [key, state] of sessions) if (state.url === url) return { key, state }
    throw new PaymentFailedError('lightning: no open session for this server')
  }
  /** The session under `key`, still open once its chain's turn came. */
  const openSession = (key: string) => {
    const state = sessions.get(key)
    if (!state) throw new PaymentFailedError('lightning: no open session for this server')
    return state
  }

  /**
   * Why the server will not credit a top-up it refused (`response`, a 4xx): its status and problem type,
   * and what it says of a refund, as a bounded phrase (the server's words checked, never quoted whole).
   */
  const refusalOf = async (response: Response) => {
    const body = (await response
      .clone()
      .json()
      .catch(() => ({}))) as { type?: unknown; refundSats?: unknown; refundStatus?: unknown } | null
    const type = typeof body?.type === 'string' ? /([a-z0-9-]{1,64})$/.exec(body.type)?.[1] : undefined
    const sats = String(body?.refundSats ?? '')
    const status = body?.refundStatus
    const refund =
      /^\d{1,20}$/.test(sats) && ['succeeded', 'pending', 'failed', 'skipped'].includes(status as string)
        ? `; it reports a refund of ${sats} sat to the return invoice: ${status as string}`
        : ''
    return `the server refused it (HTTP ${response.status}${type ? ` ${type}` : ''})${refund}`
  }

  /**
   * Keeps the proof of a paid top-up its server will never credit (`reason`, no secret): its preimage,
   * under `lost:<sessionId>:topup:<paymentHash>` in the `sessionStore` (see {@link SavedLostTopUp}),
   * before the session's record drops it. `kept` says where the proof is: in that record (`store`), in
   * no store (`none`: the payer node's payment holds the preimage), or still in the session's record as
   * a pending top-up because the store could not save it (`unkept`: onStoreError told).
   */
  const keepLostTopUp = async (
    state: SessionState,
    pending: NonNullable<SessionState['pendingTopUp']>,
    reason: string,
  ): Promise<LostTopUp> => {
    const paymentHash = createHash('sha256').update(Buffer.from(pending.preimage, 'hex')).digest('hex')
    const lost: LostTopUp = {
      sessionId: state.sessionId,
      sats: pending.sats,
      paymentHash,
      reason,
      kept: 'none',
    }
    if (!store) return lost
    const lostKey = lostTopUpKey(state.sessionId, paymentHash)
    const record: SavedLostTopUp = {
      v: 1,
      kind: 'topUp',
      network,
      sessionId: state.sessionId,
      realm: state.realm,
      url: pending.url,
      paymentHash,
      preimage: pending.preimage,
      sats: String(pending.sats),
      challenge: challengeText(pending.challenge),
      reason,
    }
    try {
      await saveLost(lostKey, record)
    } catch (error) {
      storeFailed(error, lostKey, state.sessionId, 'save')
      return { ...lost, kept: 'unkept' }
    }
    return { ...lost, kept: 'store' }
  }

  /** Whether a top-up's 2xx answer is the spec's acknowledgement of the credit (`{"status":"ok"}`). */
  const creditedBy = async (response: Response) => {
    const body = (await response
      .clone()
      .json()
      .catch(() => ({}))) as { status?: unknown } | null
    return response.ok && body?.status === 'ok'
  }

  /** Why a top-up answered `response` (a 2xx) is not taken for credited. */
  const unacknowledged = (response: Response) =>
    `its server answered HTTP ${response.status} without the {"status":"ok"} body that acknowledges the credit`

  /** Whether `challenge` has expired, by this client's clock. */
  const expired = (challenge: Challenge.Challenge) =>
    challenge.expires !== undefined && !(Date.parse(challenge.expires) > now())

  /**
   * Sends a paid top-up to the URL its challenge came from (a server pins a challenge to its resource:
   * another of its URLs would refuse it), again while the server answers 503 (honouring Retry-After, at
   * most 2 s): the invoice is paid, so its credential is what must get through, never a second payment.
   * Credited (a 2xx with `{"status":"ok"}`), it is no longer pending; still unavailable (any 5xx, a 408
   * or 429, or unreachable), or answered a 2xx without that body (its outcome unknown), it stays pending.
   * Refused for good (any other 4xx), or its challenge expired before it could be sent ("Clients MUST
   * NOT submit credentials for expired challenges": not sent), it is `lost`: its proof is kept apart
   * (see `keepLostTopUp`) and it is no longer pending, unless the store could not keep it (then it stays
   * pending, in the session's record). `response` is the server's last answer (none when not sent).
   */
  const sendTopUp = async (
    state: SessionState,
    pending: NonNullable<SessionState['pendingTopUp']>,
    caller?: AbortSignal,
  ): Promise<{ response?: Response; lost?: LostTopUp }> => {
    state.pendingTopUp = pending
    const lose = async (reason: string, response?: Response) => {
      const lost = await keepLostTopUp(state, pending, reason)
      if (lost.kept !== 'unkept') delete state.pendingTopUp
      return { ...(response ? { response } : {}), lost }
    }
    const lapsed =
      'its challenge expired before it could be sent again (not sent: an earlier attempt left unanswered may have been credited)'
    if (expired(pending.challenge)) return lose(lapsed)
    const { url } = pending
    const payload = { action: 'topUp', sessionId: state.sessionId, topUpPreimage: pending.preimage }
    // Not answered in time (or not at all), it stays pending: its outcome is unknown, so it is sent
    // again by the next top-up, never paid again.
    const sendOnce = () =>
      send(url, pending.challenge, payload, caller).catch((error: unknown) => {
        if (!isTimeout(error)) throw error
        throw new PaymentFailedError(
          `lightning session: ${originOf(url) ?? url} did not answer the top-up of session ${state.sessionId} within ${sideTimeoutMs} ms (sideTimeoutMs): its outcome is unknown; it is paid, kept pending, and sent again (never paid again) by the next top-up or payment to this server`,
          { code: 'session-side-timeout' },
        )
      })
    let response = await sendOnce()
    for (let attempt = 1; response.status === 503 && attempt < topUpAttempts; attempt++) {
      const seconds = Number(response.headers.get('retry-after'))
      const wait = Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 2) * 1000 : 250
      await new Promise((resolve) => setTimeout(resolve, wait))
      if (expired(pending.challenge)) return lose(lapsed, response)
      response = await sendOnce()
    }
    // A 5xx says nothing of the top-up (a proxy's 502 never reached the server): still pending; nor
    // does a 408 or 429 (try again later).
    if (response.status >= 500 || response.status === 408 || response.status === 429) return { response }
    if (!response.ok) return lose(await refusalOf(response), response)
    // "Upon successful verification, the server MUST atomically add the top-up amount to
    // `session.depositSats` and return HTTP 200 with body `{"status":"ok"}`." Any other 2xx (a portal's
    // or a proxy's page, a route that never looked at the credential) says nothing of the credit: its
    // outcome is unknown, so it stays pending, sent again on its own challenge (a server that credited
    // it answers the same again: "MUST return the original HTTP response"), never paid again.
    if (!(await creditedBy(response))) return { response }
    delete state.pendingTopUp
    state.deposit += pending.sats
    state.challenge = pending.challenge
    return { response }
  }

  /**
   * The report of a paid top-up its server will not credit (`session-topup-lost`), naming the session,
   * the sats, the reason and where its proof is kept (never the preimage); `after` says what became of
   * the session.
   */
  const topUpLostError = (key: string, lost: LostTopUp, after: string) =>
    new PaymentFailedError(
      `lightning session: the top-up of ${lost.sats} sat of session ${lost.sessionId} (${key}) is paid but will not be credited: ${lost.reason}; ${
        lost.kept === 'store'
          ? `its proof of payment (the top-up's preimage) is kept in the sessionStore under "${lostTopUpKey(lost.sessionId, lost.paymentHash)}" (lost() lists it)`
          : lost.kept === 'unkept'
            ? `the sessionStore could not keep its proof under "${lostTopUpKey(lost.sessionId, lost.paymentHash)}" (onStoreError has the store's error): it stays in the session's record, as a pending top-up`
            : `no sessionStore keeps its record: the payer node's payment of ${lost.paymentHash} holds the preimage, the proof of payment`
      }; ${after}`,
      { code: 'session-topup-lost' },
    )
  // Lost top-ups a close found (its report waits for the close's answer), by session key: reported once,
  // after that close, or by the next payment, top-up or close to that server when the close failed.
  const unreportedTopUps = new Map<string, LostTopUp>()
  /** Throws the report of a lost top-up of the server under `key` not yet reported (once). */
  const reportTopUpLost = (key: string, after: string) => {
    const lost = unreportedTopUps.get(key)
    if (!lost) return
    unreportedTopUps.delete(key)
    throw topUpLostError(key, lost, after)
  }

  /** A top-up of the session under `key`, inside its chain (its requests aborted by `caller` too). */
  const topUpNow = async (url: string, key: string, caller?: AbortSignal): Promise<Response> => {
    const state = openSession(key)
    // A top-up already paid but not yet credited goes first, instead of paying another invoice.
    if (state.pendingTopUp) return creditTopUp(key, state, state.pendingTopUp, caller)
    const { challenge, request } = await challengeOf(url, caller)
    // Another realm's deposit invoice does not fund this session: nothing paid.
    sameRealm(state, challenge, url)
    const sats = BigInt(request.depositAmount ?? '0')
    // The policy's deposit limit applies to the session's deposit total, its budget to the top-up itself;
    // nothing is paid when it refuses.
    const spend = spends.get(key)
    const undo = prepay(spend, request, sats, state.deposit + sats)
    let paid: { preimage: string; sats: bigint }
    try {
      paid = await payDeposit(challenge, request, spend)
    } catch (error) {
      unbook(undo, error)
      throw error
    }
    if (undo) prepaymentsOf.get(state)?.push({ sats: paid.sats, undo })
    // Saved as pending before it is sent: a client that stops before its answer sends it again, never
    // pays another.
    state.pendingTopUp = { challenge, preimage: paid.preimage, sats: paid.sats, url }
    await persist(key, state)
    return creditTopUp(key, state, state.pendingTopUp, caller)
  }

  /**
   * Sends a paid top-up of the session under `key` (see `sendTopUp`) and saves the session as it then
   * stands: the answer, or, when the server will not credit it, its report (`session-topup-lost`), the
   * session open as before.
   */
  const creditTopUp = async (
    key: string,
    state: SessionState,
    pending: NonNullable<SessionState['pendingTopUp']>,
    caller?: AbortSignal,
  ): Promise<Response> => {
    const { response, lost } = await sendTopUp(state, pending, caller)
    // After the lost top-up's own record: the proof is always in one record or the other.
    await persist(key, state)
    if (lost) throw topUpLostError(key, lost, 'the session stays open, without it')
    // A 2xx that does not acknowledge the credit: never taken for credited (see `sendTopUp`).
    if (response!.ok && state.pendingTopUp === pending)
      throw new PaymentFailedError(
        `lightning session: the top-up of ${pending.sats} sat of session ${state.sessionId} (${key}) is paid but ${unacknowledged(response!)}: its outcome is unknown; it is kept pending and sent again (never paid again) by the next top-up, payment or close to this server`,
        { code: 'session-topup-pending' },
      )
    return response!
  }

  const topUp = async (url: string, init?: { signal?: AbortSignal }): Promise<Response> => {
    const asked = ++clock
    await loaded()
    const key = keyFor(url)
    return serialized(key, async () => {
      await settle(key, asked)
      reportTopUpLost(key, 'nothing was paid now')
      return topUpNow(url, key, init?.signal)
    })
  }

  /**
   * Whether a close's answer says the session is closed (or unknown to the server) for good. A 2xx only
   * with the close body (`{"status":"closed",…}`): a close presented on a consumed challenge may be
   * answered with that challenge's original response ("MUST return the original HTTP response"), a
   * bearer request's 200, which closed nothing.
   */
  const closedBy = async (response: Response) => {
    const body = (await response
      .clone()
      .json()
      .catch(() => ({}))) as { type?: unknown; status?: unknown } | null
    if (response.ok) return body?.status === 'closed'
    const type = body?.type
    return typeof type === 'string' && /\/session-(closed|not-found)$/.test(type)
  }

  /**
   * A close of the session under `key`, inside its chain. It pays nothing, so a fresh close challenge of
   * the same origin naming another realm is used too: a server that renamed its realm can still be asked
   * for the refund, and the origin freed for a new session.
   */
  const closeNow = async (url: string, key: string, caller?: AbortSignal): Promise<Response> => {
    const state = openSession(key)
    const payload = { action: 'close', sessionId: state.sessionId, preimage: state.preimage }
    // A close credential not answered in time may have closed the session, or not: kept, its preimage
    // with it, for the next close (which the server answers closed if it was).
    const sendClose = (challenge: Challenge.Challenge) =>
      send(url, challenge, payload, caller).catch((error: unknown) => {
        if (!isTimeout(error)) throw error
        throw new PaymentFailedError(
          `lightning session: ${originOf(url) ?? url} did not answer the close of session ${state.sessionId} within ${sideTimeoutMs} ms (sideTimeoutMs): its outcome is unknown; the session is kept, and the next close finishes it`,
          { code: 'session-side-timeout' },
        )
      })
    let response: Response | undefined
    // A close needs no payment, so no deposit invoice: presented on the session's last challenge
    // (consumed, still unexpired: "Clients MUST NOT submit credentials for expired challenges"), it is
    // refused with a fresh close challenge, which carries none. Otherwise an unauthenticated request.
    const last = state.challenge
    let challenge: Challenge.Challenge | undefined
    if (usable(last)) {
      const refused = await sendClose(last)
      // Closed or unknown already (an idle close): that is the answer; else the fresh challenge.
      if (await closedBy(refused)) response = refused
      else challenge = sessionChallengeIn(refused)?.challenge
    }
    if (!response) {
      challenge ??= (await challengeOf(url, caller)).challenge
      response = await sendClose(challenge)
    }
    // "Clients MUST NOT submit further actions on a closed session." Any other refusal (a 402 on a
    // stale or unknown challenge) leaves the session open, and its preimage kept for another close.
    if (await closedBy(response)) {
      closed.add(state)
      sessions.delete(key)
      spends.delete(key)
      await forget(key, state)
      await refundToBudget(state)
    }
    return response
  }

  /**
   * Once a session is closed, gives what its return invoice received back to the budget (up to what its
   * deposits and top-ups booked). Only the wallet's word counts, never the server's: a wallet that cannot
   * tell (no `received`, a lookup failing, nothing received yet) leaves the prepayments booked.
   */
  const refundToBudget = async (state: SessionState) => {
    const prepayments = prepaymentsOf.get(state)
    const paymentHash = state.returnInvoice && Invoice.tryDecode(state.returnInvoice)?.paymentHash
    if (!prepayments?.length || !paymentHash || !wallet.received) return
    let refunded: bigint
    try {
      refunded = await wallet.received(paymentHash)
    } catch {
      return
    }
    if (typeof refunded === 'bigint' && refunded > 0n) giveBack(prepayments, refunded)
  }

  /** Whether `challenge` is still usable for a credential (not expired, with 5 s to spare). */
  const usable = (challenge: Challenge.Challenge | undefined): challenge is Challenge.Challenge =>
    challenge !== undefined &&
    (challenge.expires === undefined || Date.parse(challenge.expires) > now() + 5_000)

  /**
   * Whether the server still has `state` open, asked with a `topUp` credential on a fresh challenge
   * whose `topUpPreimage` is random: it cannot match the challenge's payment hash (nothing was paid), so
   * no server credits, serves or closes anything on it. It proves nothing either (no session secret is
   * sent): the spec's top-up verification looks the session up and checks it is open before the preimage,
   * so the refusal tells: `invalid-preimage` (open), `session-closed` (closed: its refund went to the
   * return invoice) or `session-not-found` (missing). No answer (unreachable, or a 5xx) is `unreachable`;
   * any other answer (another realm, another problem) is `unknown`. Never a close credential: the spec's
   * close verification does not look at the challenge, and one presented on a consumed challenge may be
   * answered with that challenge's original response ("MUST return the original HTTP response"), so a
   * probe by close could close a session the client meant to keep, or read a replayed 200 as closed.
   */
  const standing = async (
    state: SessionState,
  ): Promise<'open' | 'closed' | 'missing' | 'unknown' | 'unreachable'> => {
    let response: Response
    try {
      // Not answered within `sideTimeoutMs`: unreachable, as a server that refuses the connection.
      const first = await sideFetch(state.url)
      await first.body?.cancel().catch(() => {})
      const found = sessionChallengeIn(first)
      if (!found) return first.status >= 500 ? 'unreachable' : 'unknown'
      const { challenge } = found
      if (challenge.realm !== state.realm || !usable(challenge)) return 'unknown'
      response = await send(state.url, challenge, {
        action: 'topUp',
        sessionId: state.sessionId,
        topUpPreimage: randomBytes(32).toString('hex'),
      })
    } catch {
      return 'unreachable'
    }
    const type = (
      (await response
        .clone()
        .json()
        .catch(() => ({}))) as { type?: unknown }
    ).type
    await response.body?.cancel().catch(() => {})
    if (response.status >= 500) return 'unreachable'
    if (response.status !== 402 || typeof type !== 'string') return 'unknown'
    if (type.endsWith('/session-closed')) return 'closed'
    if (type.endsWith('/session-not-found')) return 'missing'
    if (type.endsWith('/invalid-preimage')) return 'open'
    return 'unknown'
  }

  /**
   * Sends again the open of a restored session the server never confirmed, on its own challenge (its
   * deposit invoice's: no other challenge opens this deposit). Answered 2xx: opened. Refused: it may
   * have got through before the client stopped (its challenge consumed), which the session's standing
   * tells. When the server cannot answer now (unreachable, a 5xx, or a refusal that leaves its standing
   * unknown), it is still pending, with the reason (no secret: never the fetch's error, which may quote
   * the request's headers, the preimage). Its challenge expired, it is lost unless the server reports the
   * session open or closed (or cannot be reached to tell: pending).
   */
  const reopen = async (state: SessionState): Promise<'open' | 'closed' | 'lost' | { pending: string }> => {
    const challenge = state.challenge
    if (!usable(challenge)) {
      // It cannot be sent again; it may have got through before the client stopped (the session is then
      // open, or closed with its refund sent to the return invoice).
      const now = await standing(state)
      if (now === 'unreachable')
        return {
          pending:
            'its challenge has expired and the server cannot be reached to tell whether the open got through',
        }
      return now === 'open' ? 'open' : now === 'closed' ? 'closed' : 'lost'
    }
    const payload = { action: 'open', preimage: state.preimage, returnInvoice: state.returnInvoice }
    let response: Response
    try {
      response = await send(state.url, challenge, payload)
    } catch (error) {
      // Not answered in time, it may have got through: pending, never taken as refused (its deposit is
      // never paid again), and its standing told by the next attempt.
      if (isTimeout(error)) return { pending: `the server did not answer within ${sideTimeoutMs} ms` }
      return { pending: `the server could not be reached (${(error as Error)?.name ?? 'error'})` }
    }
    if (response.ok) {
      await response.body?.cancel().catch(() => {})
      return 'open'
    }
    await response.body?.cancel().catch(() => {})
    if (response.status >= 500) return { pending: `the server answered ${response.status}` }
    const now = await standing(state)
    if (now === 'unknown' || now === 'unreachable')
      return {
        pending: `the server refused it (${response.status}) and did not tell whether it has the session`,
      }
    return now === 'open' ? 'open' : now === 'closed' ? 'closed' : 'lost'
  }

  /** Reads the store (`ConfigurationError` as the store threw it; any other failure told and refused). */
  const readStore = async (): Promise<Record<string, unknown>> => {
    try {
      return (await store!.load()) ?? {}
    } catch (error) {
      if (error instanceof ConfigurationError) throw error
      // Not the store's error as `cause`: a store of the user's may quote what it read (a JSON.parse
      // error quotes the text around its fault, a preimage maybe); onStoreError has it.
      storeFailed(error, '', '', 'load')
      throw new PaymentFailedError(
        "lightning session: could not read the sessionStore; nothing was paid (onStoreError has the store's error)",
        { code: 'session-store-failed' },
      )
    }
  }

  // Restored sessions whose open is still to be sent (see `restore`), by key: the record as loaded and
  // when the last attempt at its open ended (a tick of `clock`; 0: none yet). Each is tried inside its
  // key's chain (or by its key's first check, which every operation of that key waits for): never twice
  // at once.
  const opens = new Map<string, { state: SessionState; record: SavedSession; settled: number }>()
  const pending = new Map<string, PendingOpen>()
  // Ticks ordering requests and attempts: a request (a `restore()` call, a payment, a top-up, a close)
  // tries a pending open again only when the last attempt ended before it was made. The requests made
  // while an attempt is under way share its outcome instead of sending the same open once more each.
  let clock = 0
  // Lost sessions not reported yet, by key: each reported once (see `restore`).
  const unreported = new Map<string, string>()
  // Every session restored from the store (what `restore()` returns, in the store's order).
  const restored: SessionState[] = []
  const storeOrder = new WeakMap<SessionState, number>()
  // The first check of each session read from the store (its probe, or its open sent again), by key:
  // started by the store read, each on its own, so that a server slow to answer (each of its requests
  // within `sideTimeoutMs`) holds up only the operations on that server, which wait for it.
  const checks = new Map<string, { state: SessionState; done: Promise<void> }>()
  /** Checks a session the store kept whose open was confirmed: kept unless closed or unknown there. */
  const probe = async (key: string, state: SessionState) => {
    const now = await standing(state)
    if (now === 'missing' || now === 'closed') {
      // Closed by the server (idle) or unknown to it: "Clients MUST NOT submit further actions on a
      // closed session." (Its refund, if any, went to the return invoice.)
      await forget(key, state)
      return
    }
    sessions.set(key, state)
    restored.push(state)
  }
  /**
   * The report of lost sessions (`session-lost`): each named by its id and key, never its preimage. A
   * caller that restores can tell it from the failure that stops a restore (a store unreadable) by its
   * code, and go on with the sessions restored.
   */
  const lostError = (lost: string[]) =>
    new PaymentFailedError(
      `lightning session: the deposit of session ${lost.join(', ')} was paid but its open was never confirmed and can no longer be sent (its challenge expired, or the server has no such session); ${
        store
          ? 'its record is kept in the sessionStore under "lost:<sessionId>" as proof of payment'
          : "no sessionStore keeps its record: the payer node's payment of that hash (the session id) holds the preimage, the proof of payment"
      }`,
      { code: 'session-lost' },
    )
  const pendingView = (state: SessionState, reason: string): PendingOpen => ({
    sessionId: state.sessionId,
    realm: state.realm,
    url: state.url,
    deposit: state.deposit,
    reason,
  })

  /**
   * Sends the pending open under `key` again (inside its chain, or in the first load) and settles the
   * outcome: opened (now in `sessions`, saved so), closed meanwhile (forgotten), lost (its record moved
   * to `lost:<sessionId>`, reported once), or still pending (the reason kept, the record untouched).
   */
  const sendOpen = async (key: string) => {
    const entry = opens.get(key)
    if (!entry) return
    const { state, record } = entry
    // One read from the store, or one of this process whose close found its open unconfirmed.
    const fromStore = storeOrder.has(state)
    const outcome = await reopen(state)
    entry.settled = ++clock
    if (typeof outcome === 'object') {
      pending.set(key, pendingView(state, outcome.pending))
      return
    }
    if (outcome === 'lost') {
      // Kept as proof of the deposit paid; the origin is free for a new session.
      let operation: 'save' | 'delete' = 'save'
      if (store)
        try {
          await saveLost(`lost:${record.sessionId}`, record)
          operation = 'delete'
          await store.delete(key)
        } catch (error) {
          storeFailed(error, key, record.sessionId, operation)
          // Moved next time (the open is tried again first: it is lost again, or the server tells).
          pending.set(
            key,
            pendingView(
              state,
              `it can no longer be sent, and the sessionStore could not move its record to "lost:${record.sessionId}" (onStoreError has the store's error)`,
            ),
          )
          return
        }
      opens.delete(key)
      pending.delete(key)
      unreported.set(key, `${record.sessionId} (${key})`)
      return
    }
    opens.delete(key)
    pending.delete(key)
    if (outcome === 'closed' && fromStore) {
      // Closed by the server (idle): "Clients MUST NOT submit further actions on a closed session." (Its
      // refund, if any, went to the return invoice.)
      await forget(key, state)
      return
    }
    // Its open challenge is consumed now (or was: the open had got through). One of this process that
    // its server closed meanwhile goes back to `sessions` too: its server had it, so the close waiting
    // for it hears `session-closed` from the server and ends it as any other (its refund to the budget).
    unopened.delete(state)
    if (state.challenge) answeredOf.set(state, state.challenge)
    sessions.set(key, state)
    if (fromStore) restored.push(state)
    await persist(key, state)
  }
  /** Tries the pending open under `key` again unless an attempt ended after the request `asked` was made. */
  const retryOpen = async (key: string, asked: number) => {
    const entry = opens.get(key)
    if (entry && entry.settled < asked) await sendOpen(key)
  }
  /**
   * Before an operation on the server under `key` (inside its chain; the request made at tick `asked`):
   * the store read, the first check of that server's restored session (none of another server's), its
   * pending open tried again, and what stands in the way thrown: its lost session not yet reported
   * (once), or its open still pending (no new deposit while a paid one waits).
   */
  const settle = async (key: string, asked: number) => {
    await loaded()
    await checks.get(key)?.done
    await retryOpen(key, asked)
    const lost = unreported.get(key)
    if (lost !== undefined) {
      unreported.delete(key)
      throw lostError([lost])
    }
    const waiting = pending.get(key)
    if (waiting)
      throw new PaymentFailedError(
        `lightning session: the deposit of session ${waiting.sessionId} (${key}) is paid and its open is pending (${waiting.reason}); nothing was paid now, and the open is sent again on the next restore() or payment to this server`,
        { code: 'session-open-pending' },
      )
  }

  /**
   * Before a close of the session under `key` (inside its chain): one of this process whose open its
   * server has not confirmed (no receipt of it seen: the open was answered 5xx, or not at all) is moved
   * to the pending opens, so that `settle` sends its open again on its own challenge (as `restore` does)
   * before anything else, and, while its server cannot take it, refuses the close (`session-open-pending`)
   * keeping it (and its record). A close presented on that challenge instead would be answered
   * `session-not-found` by a server that never took the open, which reads as closed: the session
   * dropped, its record deleted, its deposit paid with no refund and no proof left.
   */
  const parkUnconfirmed = (key: string) => {
    const state = sessions.get(key)
    if (!state || !unopened.has(state) || opens.has(key)) return
    sessions.delete(key)
    opens.set(key, { state, record: toSaved(state), settled: 0 })
    pending.set(key, pendingView(state, 'its open has not been confirmed by its server'))
  }

  /**
   * Before a close of the session under `key` (inside its chain): a paid top-up still pending (its
   * server answered 5xx, a 2xx without `{"status":"ok"}`, or not at all) is sent again, with the same
   * preimage (never paid again), so that the refund counts it. While its server still cannot take it (5xx,
   * unreachable, no answer within `sideTimeoutMs`, a 2xx without that body), the close is refused with a `PaymentFailedError` (code `session-topup-pending`),
   * the session and its record (the top-up's preimage, the proof it was paid) kept: a close now would
   * have the server refund the deposit without the top-up, and delete the only record of it.
   *
   * Refused for good (a 4xx), or its challenge expired before it could be sent again, it will never be
   * credited: holding the close back would not change that, only hold back the deposit's refund. Its
   * proof is kept apart (`lost:<sessionId>:topup:<paymentHash>`) and returned, and the close goes on; the
   * close reports it once answered. Only when the store cannot keep that proof is the close refused
   * (`session-topup-pending`): the session's record, which the close would delete, is then the only one
   * holding it.
   */
  const creditPendingTopUp = async (key: string, caller?: AbortSignal) => {
    const state = openSession(key)
    const waiting = state.pendingTopUp
    if (!waiting) return
    let reason: string
    try {
      const { response, lost } = await sendTopUp(state, waiting, caller)
      if (lost?.kept === 'unkept')
        reason = `${lost.reason}, and the sessionStore could not keep its proof under "${lostTopUpKey(lost.sessionId, lost.paymentHash)}" (onStoreError has the store's error)`
      else if (lost) {
        // Reported after the close (or, if the close fails, by the next operation on this server).
        unreportedTopUps.set(key, lost)
        return
      }
      // Credited: no longer pending, and saved so; the close goes on.
      else if (!state.pendingTopUp) return
      else reason = response!.ok ? unacknowledged(response!) : `the server answered ${response!.status}`
    } catch (error) {
      if (caller?.aborted) throw error
      // Never the fetch's error itself: it may quote the request's headers (the top-up's preimage).
      reason = isTimeout(error)
        ? `the server did not answer within ${sideTimeoutMs} ms`
        : `the server could not be reached (${(error as Error)?.name ?? 'error'})`
    } finally {
      await persist(key, state)
    }
    throw new PaymentFailedError(
      `lightning session: session ${state.sessionId} (${key}) was not closed: its top-up of ${waiting.sats} sat is paid but its server has not credited it (${reason}), and a close now would refund its deposit without it; the session and its record are kept, and the top-up is sent again (never paid again) by the next close, top-up or payment to this server`,
      { code: 'session-topup-pending' },
    )
  }

  const load = async (): Promise<void> => {
    if (!store) return
    const records = await readStore()
    // A record this client cannot use is named and skipped, left in the store as it is, and never stops
    // the others: each is its own server's session, paid on or closed without the rest. Every record is
    // checked before any is used (one whose preimage is not its session's is never presented).
    const saved: { key: string; saved: SavedSession }[] = []
    const skipped: SkippedSession[] = []
    const lostSkipped: SkippedSession[] = []
    for (const [key, value] of Object.entries(records)) {
      if (key.startsWith('lost:')) {
        const checked = checkLost(key, value)
        if (!checked.ok) lostSkipped.push(skippedEntry(key, 'invalid', checked.problem, value))
        continue
      }
      const checked = checkSaved(key, value)
      if (!checked.ok) skipped.push(skippedEntry(key, 'invalid', checked.problem, value))
      // A client of its network pays on it and closes it; this one leaves it alone (its key is a server's
      // too: a session of this network there would be saved over it).
      else if (checked.saved.network !== network)
        skipped.push(
          skippedEntry(
            key,
            'network',
            `is a session of network ${checked.saved.network}, not of ${network}, which this client pays on`,
            value,
            checked.saved,
          ),
        )
      else saved.push({ key, saved: checked.saved })
    }
    skippedSessions = skipped
    skippedLost = lostSkipped
    for (const [index, { key, saved: record }] of saved.entries()) {
      if (sessions.has(key) || opens.has(key) || checks.has(key)) continue
      const state: SessionState = {
        sessionId: record.sessionId,
        realm: record.realm,
        preimage: record.preimage,
        deposit: BigInt(record.deposit),
        spent: BigInt(record.spent),
        price: BigInt(record.price),
        url: record.url,
        ...(record.returnInvoice === undefined ? {} : { returnInvoice: record.returnInvoice }),
        ...(record.challenge === undefined ? {} : { challenge: Challenge.parse(record.challenge) }),
        ...(record.pendingTopUp
          ? {
              pendingTopUp: {
                challenge: Challenge.parse(record.pendingTopUp.challenge),
                preimage: record.pendingTopUp.preimage,
                sats: BigInt(record.pendingTopUp.sats),
                url: record.pendingTopUp.url ?? record.url,
              },
            }
          : {}),
      }
      // Paid (and booked) by an earlier process: nothing of it is this client's budget to give back.
      prepaymentsOf.set(state, [])
      storeOrder.set(state, index)
      const answered = record.answered === undefined ? undefined : Challenge.parse(record.answered)
      if (answered) answeredOf.set(state, answered)
      if (!record.opened) {
        // Sent again now; while its server cannot take it, it waits in `pending` (the others go on).
        opens.set(key, { state, record, settled: 0 })
        pending.set(key, pendingView(state, 'its open has not been sent again yet'))
      }
      // Started, not awaited: the store read ends here (what every payment waits for); each operation on
      // this server waits for its check (an opened session is kept unless the server says it is closed or
      // unknown to it).
      const done = record.opened ? probe(key, state) : sendOpen(key)
      // Its failure (none is expected: each step catches its own) is thrown to whoever waits for it.
      done.catch(() => {})
      checks.set(key, { state, done })
    }
  }
  // The store is read once (again only after a load that failed: a store unreadable).
  let loading: Promise<void> | undefined
  const loaded = () => {
    loading ??= load().catch((error: unknown) => {
      skippedSessions = []
      skippedLost = []
      loading = undefined
      throw error
    })
    return loading
  }
  const restore = async (): Promise<SessionState[]> => {
    const asked = ++clock
    await loaded()
    // Every server's first check done; then each pending open tried again in its server's chain (after
    // what that server is doing now).
    await Promise.all([...checks.values()].map(({ done }) => done))
    await Promise.all([...opens.keys()].map((key) => serialized(key, () => retryOpen(key, asked))))
    if (unreported.size > 0) {
      const lost = [...unreported.values()]
      unreported.clear()
      throw lostError(lost)
    }
    // Only those still held: one closed or dropped since is no longer the caller's to pay on or close.
    const held = new Set(sessions.values())
    return restored
      .filter((state) => held.has(state))
      .sort((x, y) => (storeOrder.get(x) ?? 0) - (storeOrder.get(y) ?? 0))
  }
  /**
   * A close of the session under `key` (the request made at tick `asked`), in its chain: what the server
   * must hear first, the close, and the report of a lost top-up once it is answered (see `close`).
   */
  const closeKey = (key: string, url: string, asked: number, caller?: AbortSignal) =>
    serialized(key, async () => {
      // "Clients MUST NOT submit further actions on a closed session": nor take for closed a session its
      // server never had. An unconfirmed open goes through first, then a paid top-up still pending.
      parkUnconfirmed(key)
      await settle(key, asked)
      await creditPendingTopUp(key, caller)
      const response = await closeNow(url, key, caller)
      // A paid top-up its server will not credit (found now, or by a close that failed): reported once
      // the close is answered.
      reportTopUpLost(
        key,
        sessions.has(key)
          ? `the close that followed was answered HTTP ${response.status}: the session stays open`
          : 'the session was closed: its server refunds what it did not spend of the deposit to the return invoice',
      )
      return response
    })

  /**
   * Moves the pending open of `sessionId` to `lost:<sessionId>` (see `abandonPending`), inside its
   * server's chain, after its first check: never while an attempt at it is under way.
   */
  const abandonPending = async (sessionId: string): Promise<SavedSession | undefined> => {
    if (typeof sessionId !== 'string') return undefined
    await loaded()
    const keyOfOpen = () => {
      for (const [key, { state }] of opens) if (state.sessionId === sessionId) return key
      return undefined
    }
    const key = keyOfOpen()
    if (key === undefined) return undefined
    return serialized(key, async () => {
      await checks.get(key)?.done.catch(() => {})
      // Opened (or lost) meanwhile: nothing pending to give up.
      if (keyOfOpen() !== key) return undefined
      const { record } = opens.get(key)!
      if (store) {
        const lostKey = `lost:${sessionId}`
        // Saved before the live record is deleted: the proof is always in one record or the other.
        let step: { key: string; operation: 'save' | 'delete' } = { key: lostKey, operation: 'save' }
        try {
          await saveLost(lostKey, record)
          step = { key, operation: 'delete' }
          await store.delete(key)
        } catch (error) {
          storeFailed(error, step.key, sessionId, step.operation)
          throw new PaymentFailedError(
            `lightning session: could not move the pending open of session ${sessionId} (${key}) to "${lostKey}" in the sessionStore (could not ${step.operation} "${step.key}"); it stays pending, its record kept (onStoreError has the store's error)`,
            { code: 'session-store-failed' },
          )
        }
      }
      opens.delete(key)
      pending.delete(key)
      return record
    })
  }

  /** The session key of a side request on `url` (its origin's; else the session opened on `url` itself). */
  const keyFor = (url: string) => {
    const origin = originOf(url)
    if (origin !== undefined) return origin
    for (const [key, state] of sessions) if (state.url === url) return key
    for (const [key, { state }] of opens) if (state.url === url) return key
    // A restored one whose first check is still under way (the operation waits for it).
    for (const [key, { state }] of checks) if (state.url === url) return key
    throw new PaymentFailedError('lightning: no open session for this server')
  }

  const client: SessionClient = {
    definition: session,
    sessions,
    pending,
    confirmed: (state) => !unopened.has(state),
    restore,
    skipped: () => [...skippedSessions, ...skippedLost].map((entry) => ({ ...entry })),
    async lost() {
      if (!store) return []
      const records = await readStore()
      const kept: Array<SavedSession | SavedLostTopUp> = []
      const skipped: SkippedSession[] = []
      for (const [key, value] of Object.entries(records)) {
        if (!key.startsWith('lost:')) continue
        const checked = checkLost(key, value)
        // Named and left as it is: one bad record never hides the others' proofs.
        if (!checked.ok) skipped.push(skippedEntry(key, 'invalid', checked.problem, value))
        // Another network's client lists it, as it pays on that network's sessions.
        else if (checked.saved.network === network) kept.push(checked.saved)
      }
      skippedLost = skipped
      return kept
    },
    async forgetLost(sessionId, paymentHash) {
      const hex32 = /^[0-9a-f]{64}$/
      if (!store || typeof sessionId !== 'string' || !hex32.test(sessionId)) return false
      if (paymentHash !== undefined && (typeof paymentHash !== 'string' || !hex32.test(paymentHash)))
        return false
      const records = await readStore()
      const keys = Object.keys(records).filter((key) =>
        paymentHash === undefined
          ? key === `lost:${sessionId}` || key.startsWith(`lost:${sessionId}:topup:`)
          : key === lostTopUpKey(sessionId, paymentHash),
      )
      let deleted = false
      for (const key of keys) {
        const record = records[key] as { network?: unknown } | null
        // Another network's client leaves it alone, as it leaves that network's sessions.
        if (!record || typeof record !== 'object' || record.network !== network) continue
        try {
          await store.delete(key)
        } catch (error) {
          storeFailed(error, key, sessionId, 'delete')
          throw new PaymentFailedError(
            `lightning session: could not delete the lost record ${JSON.stringify(key)} of session ${sessionId} from the sessionStore; it is kept (onStoreError has the store's error)`,
            { code: 'session-store-failed' },
          )
        }
        deleted = true
        // A lost record skipped as not valid, deleted by its owner's hand: no longer there to name.
        skippedLost = skippedLost.filter((entry) => entry.key !== key)
      }
      return deleted
    },
    abandonPending,
    onReceipt(receipt, challenge) {
      // A receipt of the session: the server has it (its open went through), and consumed `challenge`
      // (what a restarted client asks the session's standing on; saved with the next change, or now when
      // it confirms the open).
      for (const [key, state] of sessions)
        if (state.sessionId === receipt.reference) {
          answeredOf.set(state, challenge)
          if (unopened.delete(state)) void persist(key, state)
        }
    },
    quote(request) {
      // Each request is paid from the session's deposit, which is booked against the budget when paid:
      // its price is checked against maxAmount and books nothing more. The quote names the deposit (for
      // maxDeposit, before anything is created) while this client has no session at all (it does not
      // see the URL); createPayload books each deposit itself.
      const price = { ...quoteFor(request, BigInt(request.amount)), prepaid: true }
      return sessions.size === 0 ? { ...price, deposit: BigInt(request.depositAmount ?? '0') } : price
    },
    createPayload: ({ challenge, request, url, spend, signal }) => {
      const key = keyOf(url, challenge.realm)
      const asked = ++clock
      return serialized(key, async () => {
        // A pending open of this server goes first: never a second deposit while a paid one waits.
        await settle(key, asked)
        reportTopUpLost(key, 'nothing was paid now')
        if (spend) spends.set(key, spend)
        const price = BigInt(request.amount)
        const state = sessions.get(key)
        if (!state) {
          // A record the store read skipped (not valid, or of another network) under the key the new
          // session would be saved with: never saved over (it may hold a paid deposit's preimage), so
          // nothing is paid until it is fixed or removed.
          const skipped = skippedAt(key)
          if (skipped)
            throw new ConfigurationError(
              `lightning session: saved session ${JSON.stringify(key)} ${skipped.problem}: a new session for this server would be saved over it; nothing was paid (${
                skipped.reason === 'network'
                  ? `a client of network ${skipped.network} closes it`
                  : 'fix or remove it'
              })`,
            )
          // The deposit is booked here, before paying: against maxDeposit and the budget.
          const deposit = BigInt(request.depositAmount ?? '0')
          const undo = prepay(spend, request, deposit, deposit)
          let paid: { preimage: string; sats: bigint }
          let returnInvoice: string
          try {
            // Nothing created for a deposit that will not be paid (one expiring too soon, say).
            checkDeposit(challenge, request)
            // The return invoice first: a wallet that cannot create it (a pay-only macaroon) fails here,
            // before the deposit is paid, not after (the deposit would be lost and paid again on retry).
            const idle = Number(request.idleTimeout ?? '300')
            ;({ invoice: returnInvoice } = await wallet.receive({
              expirySeconds: options.returnInvoiceExpirySeconds ?? Math.max(30 * 86_400, 2 * idle),
              description: 'mppkit session refund',
            }))
            paid = await payDeposit(challenge, request, spend)
          } catch (error) {
            unbook(undo, error)
            throw error
          }
          const { preimage, sats } = paid
          const opened: SessionState = {
            sessionId: request.paymentHash!,
            realm: challenge.realm,
            preimage,
            deposit: sats,
            spent: price,
            price,
            url,
            returnInvoice,
            challenge,
          }
          sessions.set(key, opened)
          prepaymentsOf.set(opened, undo ? [{ sats, undo }] : [])
          // Saved before the open is sent: a client that stops before its answer sends it again.
          unopened.add(opened)
          await persist(key, opened)
          return { payload: { action: 'open', preimage, returnInvoice } }
        }
        // One session per origin: a challenge naming another realm opens no second one (no second
        // deposit, however many realms the server names) and gets no credential of this one.
        sameRealm(state, challenge, url)
        // A bearer challenge (no deposit invoice) names the session it was issued for.
        if (request.depositInvoice === undefined && request.paymentHash !== state.sessionId)
          throw new PaymentFailedError('lightning: the challenge was issued for another session')
        if ((options.autoTopUp ?? true) && state.deposit - state.spent < price) {
          const response = await topUpNow(url, key, signal)
          if (!response.ok)
            throw new PaymentFailedError(`lightning: the top-up was refused (${response.status})`)
        }
        const before = { spent: state.spent, challenge: state.challenge }
        state.spent += price
        // Until its server confirms the open, the session keeps its open challenge: the only one its open
        // can be sent again on (by a close, or after a restart). A bearer's would make it lost.
        if (!unopened.has(state)) state.challenge = challenge
        try {
          await persist(key, state, true)
        } catch (error) {
          // Nothing sent: the session stands as it did.
          state.spent = before.spent
          if (before.challenge) state.challenge = before.challenge
          else delete state.challenge
          throw error
        }
        bearerOn.set(challenge, { key, state })
        return { payload: { action: 'bearer', sessionId: state.sessionId, preimage: state.preimage } }
      })
    },
    retryRefused(refusal, challenge) {
      // A bearer refused 402 because the server closed the session (its idle close, whose refund went to
      // the return invoice) or no longer has it: "Clients MUST NOT submit further actions on a closed
      // session." The session is dropped, and the core client pays the resource's fresh challenge once
      // more (a new deposit, within the policy). Never for an open or a top-up: those moved money.
      if (refusal.status !== 402) return false
      const type = typeof refusal.problem?.type === 'string' ? refusal.problem.type : ''
      if (!/(^|\/)lightning\/session-(closed|not-found)$/.test(type)) return false
      const sent = bearerOn.get(challenge)
      if (!sent) return false
      bearerOn.delete(challenge)
      const { key, state } = sent
      // Another bearer of it, refused the same way, dropped it already: this one is paid again too.
      if (dropped.has(state)) return true
      if (sessions.get(key) !== state) return false
      // A session whose open its server never confirmed is not taken for closed (nor its deposit for
      // refunded): `session-not-found` may only mean its open did not get through. Kept, and its record,
      // for the close that sends its open again; no second deposit paid.
      if (unopened.has(state)) return false
      dropped.add(state)
      sessions.delete(key)
      spends.delete(key)
      void forget(key, state)
      // What the server refunded to the return invoice goes back to the budget once the wallet has it.
      void refundToBudget(state).catch(() => {})
      return true
    },
    topUp,
    close: async (url, init) => {
      const asked = ++clock
      await loaded()
      return closeKey(keyFor(url), url, asked, init?.signal)
    },
    async closeAll(init) {
      const asked = ++clock
      await loaded()
      // Each restored session checked first: one its server closed meanwhile is dropped, not closed again.
      await Promise.all([...checks.values()].map(({ done }) => done.catch(() => {})))
      const targets = [...sessions.entries()]
      const results: CloseResult[] = []
      const closeOne = async (index: number) => {
        const [key, state] = targets[index]!
        let response: Response | undefined
        let error: unknown
        try {
          response = await closeKey(key, state.url, asked, init?.signal)
        } catch (caught) {
          error = caught
        }
        results[index] = {
          sessionId: state.sessionId,
          url: state.url,
          closed: closed.has(state),
          ...(response ? { response } : {}),
          ...(error === undefined ? {} : { error }),
        }
      }
      // Different servers at once (one session per server), at most `closeConcurrency`: a server that
      // does not answer holds up only its own session's close.
      let next = 0
      const worker = async () => {
        while (next < targets.length) await closeOne(next++)
      }
      await Promise.all(Array.from({ length: Math.min(closeConcurrency, targets.length) }, worker))
      return results
    },
    async *stream(response, url, onEvent) {
      if (!response.body) return
      const decoder = new TextDecoder()
      let buffer = ''
      const reader = response.body.getReader()
      try {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) return
          buffer += decoder.decode(value, { stream: true })
          let end = buffer.indexOf('\n\n')
          while (end >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            end = buffer.indexOf('\n\n')
            let name: string | undefined
            const data: string[] = []
            for (const line of block.split('\n')) {
              if (line.startsWith('event: ')) name = line.slice(7)
              else if (line.startsWith('data: ')) data.push(line.slice(6))
            }
            const text = data.join('\n')
            if (name === undefined) {
              if (text === '[DONE]') return
              const state = [...sessions.values()].find((s) => s.url === url) ?? stateOf(url).state
              state.spent += state.price
              yield text
              continue
            }
            let parsed: unknown = text
            try {
              parsed = JSON.parse(text)
            } catch {}
            onEvent?.(name, parsed)
            // "Continue holding the original SSE response reader open … Submit an unauthenticated request
            // to the same resource URI … Retry the request with a topUp credential" (§"Client Top-Up Flow")
            if (name === 'payment-need-topup') {
              const topped = await topUp(url)
              if (!topped.ok)
                throw new PaymentFailedError(`lightning: the top-up was refused (${topped.status})`)
            }
          }
        }
      } finally {
        reader.releaseLock()
      }
    },
  }
  return client
}
