import {
  BaseError,
  ConfigurationError,
  Credential,
  type Method,
  ServiceUnavailableError,
  VerificationFailedError,
} from '@mppkit/core'
import type { AuthenticatedLnd } from 'lightning'
import * as Invoice from '../Invoice.js'
import { issueInvoice } from '../internal/issue.js'
import { checkedFee, checkedTimeout, defaultNodeTimeouts, type NodeTimeouts } from '../internal/node.js'
import { type LightningSessionPayload, type LightningSessionRequest, session } from '../Methods.js'
import { LightningProblem } from '../Problems.js'
import { challengeProblemFor, checkedSeconds, sha256Hex } from './Charge.js'
import { settledMsat } from './InvoiceLookup.js'
import { type DepositClaim, Deposits, refusal, type TopUpRefusal } from './session/Deposits.js'
import { createMeter, credited, type SessionMeter } from './session/Meter.js'
import { closeAndRefund, type RefundFailure, recoverRefund } from './session/Refund.js'
import { type SessionRecord, Sessions } from './session/Sessions.js'

/** The longest `idleTimeoutSeconds`: the challenge's `idleTimeout` is a decimal string of 1–9 digits. */
const maxIdleTimeoutSeconds = 999_999_999
/** The largest `depositSats`: 21 million bitcoin, in satoshis. */
const maxDepositSats = 2_100_000_000_000_000n

/** Options of {@link sessionServer}. */
export type SessionOptions = {
  /** The payee's node (invoices, lookups, and refund payments: an admin macaroon). */
  lnd: AuthenticatedLnd
  /** Deposit in satoshis, 1 to 2.1 × 10¹⁵ (default `amount × 20`, the spec's recommendation). */
  depositSats?: bigint | number
  /**
   * Whole seconds (1 to 999 999 999) without a bearer or topUp action before the server closes and
   * refunds (default 300); advertised as the challenge's `idleTimeout`.
   */
  idleTimeoutSeconds?: number
  /** How often the idle sweeper runs, in ms (default: a tenth of the idle timeout, at most 30 s). */
  idleCheckIntervalMs?: number
  /** How long a paused stream waits for a top-up, in ms (default 60 000, as the spec recommends). */
  topUpTimeoutMs?: number
  /**
   * The most of a refund (or of a top-up given back) spent on its routing fee, in satoshis (default 1% of
   * it, at least 10). The fee comes out of the refund, never on top of it: a route without fees is tried
   * first (all of it arrives); else the refund less a fee budget, the budget doubling from 1 sat up to
   * this limit (and below the refund) until one is routed. A refund too small to pay its route's fee is
   * not paid: `failed`, reported through `onRefundFailure` (`RefundBelowRoutingFee`).
   */
  maxRefundFeeSats?: number | ((refundSats: bigint) => number)
  /** Bill `amount` when a request is served (open, bearer) before the handler runs (default true). */
  billPerRequest?: boolean
  /**
   * How long sessions are retained, in seconds (default 30 days): "Closed sessions MUST be retained". An
   * open session's keys are refreshed while it is kept open (by the idle sweep, once per half of it).
   */
  retentionSeconds?: number
  /**
   * Failed refunds (default: reported to the server's `onError`/`logger`); never given a preimage or an
   * invoice. Also a top-up that reached a session closed in the meantime and could not be given back
   * (its return invoice already paid by the close): `topUpPaymentHash` set, and the refusal recorded in
   * the method's Store under `funds:<topUpPaymentHash>` for the operator to refund.
   */
  onRefundFailure?: (failure: RefundFailure) => void
  /**
   * Whole seconds after a close whose refund is still unrecorded (its process stopped between closing and
   * recording the refund) before the idle sweep finishes it (default 600): longer than any close takes.
   */
  refundRecoverySeconds?: number
  /**
   * How long a call to the node may take, in ms (default 10 000): one that gets no answer by then (a
   * stalled node, a connection that died silently) is answered 503 + Retry-After, as a node that is down.
   */
  nodeTimeoutMs?: number
  /**
   * How long a refund payment (all its attempts, see `maxRefundFeeSats`) is waited for, in ms (default
   * 30 000). One still in flight by then (a
   * return invoice the payer holds, a slow route) goes on at the node; the close is answered as one
   * whose refund outcome is unknown (503 `refund-in-flight`), and the idle sweep records what the node
   * did, once.
   */
  refundTimeoutMs?: number
}

type Verified =
  | { action: 'open'; sessionId: string; depositSats: bigint; returnInvoice: string }
  | { action: 'bearer'; sessionId: string }
  | { action: 'topUp'; sessionId: string; topUpSats: bigint; paymentHash: string }
  | { action: 'close'; sessionId: string }

/** The session server method, with its meter type. */
export type SessionServer = Method.Server<typeof session, Verified> & {
  /** Closes idle sessions now (what the background job does on its interval). */
  sweepIdle(): Promise<void>
}

export type { SessionMeter }

/**
 * Creates the server side of `lightning/session`: a deposit invoice per challenge; `open` registers the
 * session with its return invoice; `bearer` serves requests against the balance (billed per request
 * and per streamed chunk through the meter in `payment.context`); `topUp` credits a new deposit;
 * `close` — and the idle timeout, a background job on the server lifecycle — closes once and refunds
 * `deposit - spent` to the return invoice. A consumed challenge presented again gets the original
 * response (`replaysConsumed`).
 *
 * @example
 * ```ts
 * const server = Server.create({ realm, secrets, store, methods: [sessionServer({ lnd, idleTimeoutSeconds: 300 })] })
 * const handler = server.protect({ offers: [{ method: 'lightning', intent: 'session', request: { amount: '2' } }] },
 *   (_request, payment) => (payment.context as SessionMeter).sse(tokens))
 * ```
 * @see draft-lightning-session-00
 */
export function sessionServer(options: SessionOptions): SessionServer {
  if (!options || typeof options !== 'object' || !options.lnd || typeof options.lnd !== 'object')
    throw new ConfigurationError(
      'lightning session: options.lnd (an authenticated LND gRPC object) is required',
    )
  const { lnd } = options
  // Advertised in every challenge: "idleTimeout: … in seconds, as a decimal string (e.g., "300" for 5
  // minutes)", which the request schema holds to 1–9 digits. Anything else (1.5, 1e9) issues challenges
  // the method's own verify refuses, after the payer paid the deposit.
  const idleSeconds = options.idleTimeoutSeconds ?? 300
  if (
    typeof idleSeconds !== 'number' ||
    !Number.isSafeInteger(idleSeconds) ||
    idleSeconds < 1 ||
    idleSeconds > maxIdleTimeoutSeconds
  )
    throw new ConfigurationError(
      `lightning session: idleTimeoutSeconds must be a whole number of seconds, 1 to ${maxIdleTimeoutSeconds}`,
    )
  // Advertised as `depositAmount` and asked of the node as an invoice amount (a JavaScript number there):
  // at most every bitcoin there is, which both hold exactly.
  const deposit = options.depositSats
  if (
    deposit !== undefined &&
    !(typeof deposit === 'bigint' || (typeof deposit === 'number' && Number.isSafeInteger(deposit)))
  )
    throw new ConfigurationError('lightning session: depositSats must be a whole number of satoshis')
  const depositOption = deposit === undefined ? undefined : BigInt(deposit)
  if (depositOption !== undefined && (depositOption <= 0n || depositOption > maxDepositSats))
    throw new ConfigurationError(`lightning session: depositSats must be 1 to ${maxDepositSats} satoshis`)
  const retentionMs =
    checkedSeconds(options.retentionSeconds, 30 * 86_400, 'lightning session: retentionSeconds') * 1000
  // Infinity here would leave an interrupted close unrefunded for good (the sweep never reaches it).
  const refundRecoveryMs =
    checkedSeconds(options.refundRecoverySeconds, 600, 'lightning session: refundRecoverySeconds') * 1000
  const topUpTimeoutMs = checkedTimeout(options.topUpTimeoutMs, 60_000, 'lightning session: topUpTimeoutMs')
  checkedTimeout(options.idleCheckIntervalMs, 1, 'lightning session: idleCheckIntervalMs')
  const timeouts: NodeTimeouts = {
    callMs: checkedTimeout(
      options.nodeTimeoutMs,
      defaultNodeTimeouts.callMs,
      'lightning session: nodeTimeoutMs',
    ),
    payMs: checkedTimeout(
      options.refundTimeoutMs,
      defaultNodeTimeouts.payMs,
      'lightning session: refundTimeoutMs',
    ),
  }
  const billPerRequest = options.billPerRequest ?? true
  // A string `'false'` would bill every request: only a boolean says what is meant.
  if (typeof billPerRequest !== 'boolean')
    throw new ConfigurationError('lightning session: billPerRequest must be true or false')
  if (options.onRefundFailure !== undefined && typeof options.onRefundFailure !== 'function')
    throw new ConfigurationError('lightning session: onRefundFailure must be a function')
  // Checked on every use: `lightning`'s pay without a usable `max_fee` lets the node spend any fee. A
  // number is checked here too, so a bad one is refused at startup, not when a close would refund.
  if (typeof options.maxRefundFeeSats !== 'function' && options.maxRefundFeeSats !== undefined)
    checkedFee(options.maxRefundFeeSats, 'lightning session: maxRefundFeeSats')
  const maxRefundFee = (sats: bigint) =>
    checkedFee(
      typeof options.maxRefundFeeSats === 'function'
        ? options.maxRefundFeeSats(sats)
        : (options.maxRefundFeeSats ?? Math.max(10, Math.ceil(Number(sats) / 100))),
      'lightning session: maxRefundFeeSats',
    )
  // The servers this method is set up with report through their onError/logger (the user's choice).
  const reporters = new Set<(error: unknown) => void>()
  const onRefundFailure =
    options.onRefundFailure ??
    ((failure: RefundFailure) => {
      const what = failure.topUpPaymentHash ? `top-up ${failure.topUpPaymentHash} of session` : 'session'
      const error = new BaseError(
        `lightning refund failed: ${what} ${failure.sessionId}, ${failure.refundSats} sat (${failure.error})`,
        { code: 'lightning-refund-failed' },
      )
      for (const report of reporters) report(error)
    })

  // Per server this method is set up with (one scoped store each): its sessions, clock and signal.
  type ServerState = {
    sessions: Sessions
    deposits: Deposits
    now: () => number
    signal: AbortSignal
    realm?: string
  }
  const states = new Map<Method.MethodStore, ServerState>()
  const stateFor = (store: Method.MethodStore): ServerState => {
    let state = states.get(store)
    if (!state) {
      const sessions = new Sessions(store, { ttlMs: retentionMs, idleMs: idleSeconds * 1000 })
      state = {
        sessions,
        deposits: new Deposits(sessions, {
          ttlMs: retentionMs,
          lnd,
          timeouts,
          maxFeeSats: maxRefundFee,
          onRefundFailure,
          recoveryMs: refundRecoveryMs,
        }),
        now: () => Date.now(),
        signal: new AbortController().signal,
      }
      states.set(store, state)
    }
    return state
  }
  const closers: Array<() => Promise<void>> = []

  // The idle sweep walks the Store's index of open sessions, so it finds the sessions of every server
  // process sharing the Store; one process sweeps at a time, and each close is a compare-and-set on the
  // session's status, so exactly one refund is attempted whichever processes race for it.
  const sweep = async ({ sessions, deposits, now }: ServerState, signal?: AbortSignal) => {
    const refunder = { sessions, lnd, timeouts, maxFeeSats: maxRefundFee, onRefundFailure }
    /** A close whose refund was never recorded (its process stopped part-way): after `refundRecoverySeconds`. */
    const recoverClose = async (id: string, record: SessionRecord) => {
      if (record.refundStatus !== 'pending' && record.refundStatus !== 'attempting') return 'done'
      if (now() - (record.closedAt ?? 0) < refundRecoveryMs) return 'later'
      return recoverRefund(refunder, id, record)
    }
    await sessions.index.sweep(async (id) => {
      const record = await sessions.get(id)
      if (record === undefined) return 'drop'
      if (record.status !== 'open') {
        // A closed session stays indexed until its refund, and any top-up given back after it (see
        // Deposits.recoverReturn), is recorded: the sweep finishes what an unknown outcome or a stopped
        // process left.
        try {
          const refund = await recoverClose(id, record)
          const topUp = await deposits.recoverReturn(id, record, now())
          return refund === 'done' && topUp === 'done' ? 'drop' : 'keep'
        } catch (error) {
          // The node or the Store failed: the next sweep tries again.
          for (const report of reporters) report(error)
          return 'keep'
        }
      }
      if (await sessions.active(id)) {
        // Kept open by its activity: its keys outlive the retention (refreshed once per half of it).
        await sessions.renew(id, record, now())
        return 'keep'
      }
      // "When a server closes a session without a client close action, it MUST follow the same refund
      // procedure": "Mark session.status = "closed" atomically before attempting the refund"; "a single
      // best-effort attempt is sufficient"; "the server MUST NOT reopen the session".
      await closeAndRefund({ ...refunder, sessionId: id, now: now() })
      // Kept while its refund is unrecorded (this close lost the race to another closer that has not
      // finished, or stopped): the entry is how a later sweep finds it.
      const after = await sessions.get(id)
      return after?.refundStatus === 'pending' || after?.refundStatus === 'attempting' ? 'keep' : 'drop'
    }, signal)
  }
  const sweepIdle = async () => {
    for (const state of states.values()) await sweep(state)
  }

  const requireOpen = async (store: Method.MethodStore, sessionId: string, preimage: string | undefined) => {
    const record = await stateFor(store).sessions.get(sessionId)
    if (!record) throw new LightningProblem('session-not-found', 'No session has this id.')
    // "Servers MUST reject any action on a closed session."
    if (record.status !== 'open') throw new LightningProblem('session-closed', 'The session is closed.')
    // "Servers MUST verify SHA-256(preimage) == paymentHash for all open, bearer, and close actions."
    if (preimage !== undefined && sha256Hex(preimage) !== record.paymentHash)
      throw new LightningProblem('invalid-preimage', 'SHA-256 of the preimage does not match the session.')
    return record
  }

  /** The problem of a top-up refused because its session closed first, saying what became of its satoshis. */
  const topUpRefused = ({ refundSats, refundStatus, refundFeeSats }: TopUpRefusal) =>
    new LightningProblem(
      'session-closed',
      `The session closed before the top-up was credited; ${
        refundStatus === 'pending'
          ? 'its refund to the return invoice is pending (recorded once the Lightning node reports it).'
          : refundStatus === 'succeeded'
            ? 'it was refunded to the return invoice.'
            : refundStatus === 'skipped'
              ? "nothing of it was left to give back: it went with the session's refund, or paid for requests served before the close."
              : 'it could not be refunded to the return invoice; the server recorded it for a refund.'
      }`,
      { refundSats, refundStatus, ...(refundFeeSats === undefined ? {} : { refundFeeSats }) },
    )

  /**
   * Whether a top-up credential may go on although its session is closed: its own earlier attempt
   * claimed the deposit and stopped before crediting it, so settling again gives it back. One that was
   * refused already is answered as it was then ("MUST NOT result in double-crediting or
   * double-refunding"). Anything else is refused as any action on a closed session.
   */
  const resumesClosedTopUp = async (
    store: Method.MethodStore,
    challengeId: string,
    action: Extract<LightningSessionPayload, { action: 'topUp' }>,
    request: LightningSessionRequest,
  ) => {
    const { sessions, deposits } = stateFor(store)
    if (request.paymentHash === undefined || (await sessions.get(action.sessionId))?.status !== 'closed')
      return false
    const claim = await deposits.get(request.paymentHash)
    if (
      claim?.action !== 'topUp' ||
      claim.challengeId !== challengeId ||
      claim.sessionId !== action.sessionId ||
      sha256Hex(action.topUpPreimage) !== request.paymentHash
    )
      return false
    if (claim.state === 'refused') throw topUpRefused(refusal(claim))
    // Given back to the return invoice, its outcome not recorded yet (the idle sweep records it).
    if (claim.state === 'refunding') throw topUpRefused({ ...refusal(claim), refundStatus: 'pending' })
    return claim.state === 'claimed'
  }

  /** The deposit invoice of the challenge, checked against its `paymentHash` and the paid preimage. */
  const paidDeposit = async (request: LightningSessionRequest, preimage: string) => {
    const invoice = Invoice.tryDecode(request.depositInvoice)
    if (!invoice || request.paymentHash !== invoice.paymentHash || invoice.amountMsat === undefined)
      throw new LightningProblem('unknown-challenge', 'The challenge carries no deposit invoice issued here.')
    // "SHA-256(topUpPreimage) MUST equal challenge.request.paymentHash" / open step 4
    if (sha256Hex(preimage) !== invoice.paymentHash)
      throw new LightningProblem(
        'invalid-preimage',
        'SHA-256 of the preimage does not match the payment hash.',
      )
    // Only the node's answer refuses (402); a lookup that failed throws (503, the challenge kept).
    const received = await settledMsat(lnd, invoice.paymentHash, timeouts.callMs)
    if (received === undefined || received < invoice.amountMsat)
      throw new VerificationFailedError({
        detail: 'The node has not received this deposit.',
        reason: 'invoice-not-settled',
      })
    return { invoice, sats: invoice.amountMsat / 1000n }
  }

  /**
   * The open session a request's own `bearer` or `close` credential proves (preimage checked), when that
   * action can go on without a payment: a bearer request the balance still covers, or a close. The fresh
   * challenge of a refusal of such a request is a bearer/close challenge.
   */
  const sessionActing = async (httpRequest: Request, realm: string, price: bigint) => {
    let payload: Record<string, unknown>
    try {
      const header = httpRequest.headers.get('authorization')
      if (!header) return undefined
      const credential = Credential.parse(header)
      if (credential.challenge.method !== 'lightning' || credential.challenge.intent !== 'session')
        return undefined
      payload = credential.payload
    } catch {
      return undefined
    }
    const parsed = session.payload.safeParse(payload)
    if (!parsed.success || (parsed.data.action !== 'bearer' && parsed.data.action !== 'close'))
      return undefined
    const { sessionId, preimage } = parsed.data
    if (sha256Hex(preimage) !== sessionId) return undefined
    for (const state of states.values()) {
      if (state.realm !== realm) continue
      if ((await state.sessions.get(sessionId))?.status !== 'open') continue
      if (parsed.data.action === 'close' || (await state.sessions.balance(sessionId)).available >= price)
        return sessionId
    }
    return undefined
  }

  const meterFor = (state: ServerState, sessionId: string, request: LightningSessionRequest): SessionMeter =>
    createMeter({
      sessions: state.sessions,
      sessionId,
      price: BigInt(request.amount),
      prepaid: billPerRequest ? 1 : 0,
      topUpTimeoutMs,
      signal: state.signal,
      now: state.now,
    })

  const json = (body: unknown) =>
    new Response(JSON.stringify(body), { headers: { 'content-type': 'application/json' } })

  const method: SessionServer = {
    definition: session,
    defaults: { currency: 'sat' },
    replaysConsumed: true,
    challengeProblem: challengeProblemFor('challenge-expired'),
    sweepIdle,

    setup(context) {
      reporters.add(context.report)
      const state = stateFor(context.store)
      // The server's state goes with it: a closed server's store is no longer swept (`sweepIdle`) nor
      // looked through for a session (`sessionActing`), and is not kept alive by this method.
      context.signal.addEventListener(
        'abort',
        () => {
          reporters.delete(context.report)
          if (states.get(context.store) === state) states.delete(context.store)
        },
        { once: true },
      )
      state.now = context.now
      state.signal = context.signal
      state.realm = context.realm
      const interval = options.idleCheckIntervalMs ?? Math.min(30_000, (idleSeconds * 1000) / 10)
      // The sweep in flight, if any: closing waits for it (it stops after its current batch), so that the
      // Store is still open when it releases its lease. A process that closed its Store under a running
      // sweep would leave the lease held, and every other process unable to sweep, until it expired.
      let running: Promise<void> | undefined
      const timer = setInterval(() => {
        if (running) return
        running = sweep(state, context.signal)
          .catch((error) => context.report(error))
          .finally(() => {
            running = undefined
          })
      }, interval)
      timer.unref?.()
      const stop = async () => {
        clearInterval(timer)
        await running
      }
      context.signal.addEventListener('abort', () => void stop(), { once: true })
      closers.push(stop)
    },

    async close() {
      await Promise.all(closers.splice(0).map((stop) => stop()))
    },

    async prepare({ request, expires, httpRequest, realm }): Promise<LightningSessionRequest> {
      const price = BigInt(request.amount)
      // "depositInvoice: CONDITIONAL. … REQUIRED for open and topUp challenges; MUST be absent for bearer
      // and close challenges, where no payment is required." A request that carries its own bearer or
      // close credential (refused: expired, consumed…) gets a challenge for that action: no invoice, and
      // the session's id as its `paymentHash` ("paymentHash: REQUIRED").
      const acting = await sessionActing(httpRequest, realm, price)
      if (acting !== undefined) return { ...request, paymentHash: acting, idleTimeout: String(idleSeconds) }
      // "depositSats = configured_depositAmount ?? (amount * 20)"; "The deposit MUST be at least 1 unit of service"
      let deposit = depositOption ?? price * 20n
      if (deposit < price) deposit = price
      // "Servers MUST generate a fresh BOLT11 invoice for every unauthenticated request."
      const issued = await issueInvoice(lnd, {
        sats: deposit,
        description: request.description,
        expires,
        timeoutMs: timeouts.callMs,
      })
      return {
        ...request,
        depositInvoice: issued.request,
        paymentHash: issued.paymentHash,
        depositAmount: String(deposit),
        idleTimeout: String(idleSeconds),
      }
    },

    async verify({ challenge, request, payload, store }): Promise<Verified> {
      const action = payload as LightningSessionPayload
      if (action.action === 'open') {
        const { invoice, sats } = await paidDeposit(request, action.preimage)
        // "Verify depositSats >= amount (at least one unit of service)"
        if (sats < BigInt(request.amount))
          throw new LightningProblem('insufficient-balance', 'The deposit does not cover one unit.')
        // "Verify the returnInvoice is a valid BOLT11 invoice on the same network as the deposit invoice …
        // Invoices encoding a non-zero amount MUST be rejected"
        const returnInvoice = Invoice.tryDecode(action.returnInvoice)
        if (
          !returnInvoice ||
          returnInvoice.network !== invoice.network ||
          (returnInvoice.amountMsat ?? 0n) !== 0n
        )
          throw new LightningProblem(
            'invalid-return-invoice',
            'The return invoice must be a BOLT11 invoice without an amount on the deposit network.',
          )
        // An expired invoice cannot be paid: no refund could ever reach it. (The spec asks only the
        // client for a long expiry, "SHOULD have an expiry of at least 30 days" and "that comfortably
        // exceeds the server's advertised idleTimeout", so a shorter one is taken.)
        if (returnInvoice.expiresAt <= stateFor(store).now())
          throw new LightningProblem('invalid-return-invoice', 'The return invoice has expired.')
        return {
          action: 'open',
          sessionId: invoice.paymentHash,
          depositSats: sats,
          returnInvoice: action.returnInvoice,
        }
      }
      if (action.action === 'topUp') {
        if (!(await resumesClosedTopUp(store, challenge.id, action, request))) {
          // Step 4 of the TopUp verification: "Verify session.status == "open""
          await requireOpen(store, action.sessionId, undefined)
        }
        const { invoice, sats } = await paidDeposit(request, action.topUpPreimage)
        return {
          action: 'topUp',
          sessionId: action.sessionId,
          topUpSats: sats,
          paymentHash: invoice.paymentHash,
        }
      }
      // A bearer/close challenge (no deposit invoice) was issued for one session only.
      if (request.depositInvoice === undefined && request.paymentHash !== action.sessionId)
        throw new LightningProblem('unknown-challenge', 'This challenge was issued for another session.')
      await requireOpen(store, action.sessionId, action.preimage)
      return { action: action.action, sessionId: action.sessionId }
    },

    async settle({ challenge, request, store, verified }): Promise<Method.Settlement> {
      const state = stateFor(store)
      const s = state.sessions
      const { sessionId } = verified
      const price = BigInt(request.amount)
      if (verified.action === 'open') {
        // "Servers MUST NOT allow session IDs to be guessed or reused across sessions." The deposit is
        // claimed for this open before the session is written: a deposit paid for a top-up (credited, or
        // refunded because its session closed) never opens a session, even when the core gave its
        // challenge back after a failed settle; nor does this one ever top up another.
        const claim: DepositClaim = {
          action: 'open',
          challengeId: challenge.id,
          sessionId,
          sats: String(verified.depositSats),
        }
        if (!(await state.deposits.claim(sessionId, claim)))
          throw new LightningProblem('unknown-challenge', 'This deposit has already been used.')
        // "Store session state: {paymentHash, depositSats, spent: 0, returnInvoice, status: "open"}"
        const opened = await s.open(
          {
            paymentHash: sessionId,
            returnInvoice: verified.returnInvoice,
            status: 'open',
            openedBy: challenge.id,
            renewedAt: state.now(),
          },
          verified.depositSats,
        )
        if (!opened) {
          if ((await s.get(sessionId))?.openedBy !== challenge.id)
            throw new LightningProblem('unknown-challenge', 'This deposit has already opened a session.')
          // The same open again (it failed after writing the session): finish what it may have skipped.
          await s.reopened(sessionId)
        }
        if (billPerRequest && !(await s.charge(sessionId, price)))
          throw new LightningProblem(
            'insufficient-balance',
            'The session balance does not cover this request.',
          )
        return { reference: sessionId, context: meterFor(state, sessionId, request) }
      }
      if (verified.action === 'topUp') {
        const { paymentHash, topUpSats } = verified
        // "This ensures each top-up invoice can only be used once.": the deposit is claimed for this top-up
        // of this session (one claim shared with open) before anything is credited or refunded.
        const claimed = await state.deposits.claim(paymentHash, {
          action: 'topUp',
          challengeId: challenge.id,
          sessionId,
          sats: String(topUpSats),
          state: 'claimed',
        })
        if (!claimed) throw new LightningProblem('unknown-challenge', 'This deposit has already been used.')
        const outcome = await state.deposits.topUp(paymentHash, claimed, state.now())
        if (outcome.status === 'interrupted') {
          // An earlier attempt stopped where it cannot be told whether the credit or refund happened.
          const error = new BaseError(
            `lightning top-up interrupted: top-up ${paymentHash} of session ${sessionId}, ${topUpSats} sat, not settled again`,
            { code: 'lightning-topup-interrupted' },
          )
          for (const report of reporters) report(error)
          throw new LightningProblem('unknown-challenge', 'This top-up was already settled in part.')
        }
        // The session closed between verification and credit: "Servers MUST reject any action on a
        // closed session." The claim keeps the deposit spent and records the refund, so neither a retry
        // nor another action can run it again.
        if (outcome.status === 'refused') throw topUpRefused(outcome)
        credited.emit(sessionId)
        // "return HTTP 200 with body {"status":"ok"}" / "The server MUST NOT initiate a new stream"
        return { reference: sessionId, response: json({ status: 'ok' }) }
      }
      if (verified.action === 'close') {
        const outcome = await closeAndRefund({
          sessions: s,
          lnd,
          timeouts,
          sessionId,
          maxFeeSats: maxRefundFee,
          onRefundFailure,
          now: state.now(),
        })
        if (!outcome) throw new LightningProblem('session-closed', 'The session is closed.')
        // The refund left but its outcome is not known yet: never answered `failed` (it may arrive). The
        // session stays closed; the idle sweep records what the node did.
        if (outcome.refundStatus === 'unknown')
          throw new ServiceUnavailableError({
            detail:
              'The session is closed; the outcome of its refund payment is not known yet and is recorded once the Lightning node reports it.',
            reason: 'refund-in-flight',
            consumed: true,
          })
        // "refundSats: … The unspent balance that was (or was attempted to be) refunded": what reached the
        // return invoice once paid, its routing fee (out of the balance) beside it as `refundFeeSats`.
        const { refundSats, refundStatus, refundFeeSats } = outcome
        return {
          reference: sessionId,
          receipt: { refundSats, refundStatus, ...(refundFeeSats === undefined ? {} : { refundFeeSats }) },
          response: json(outcome),
        }
      }
      // Bearer: "The server verifies SHA-256(preimage) == session.paymentHash and that the session is open."
      await s.touch(sessionId)
      if (billPerRequest && !(await s.charge(sessionId, price)))
        throw new LightningProblem('insufficient-balance', 'The session balance does not cover this request.')
      return { reference: sessionId, context: meterFor(state, sessionId, request) }
    },
  }
  return method
}
