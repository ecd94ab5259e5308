import type { AuthenticatedLnd } from 'lightning'
import { errorName, type NodeTimeouts } from '../../internal/node.js'
import { type Delivered, feeBudgets, paymentAtNode, payReturnInvoice, type RefundFailure } from './Refund.js'
import type { SessionRecord, Sessions } from './Sessions.js'

/**
 * What the deposit paid under one payment hash went to, stored under `funds:<paymentHash>`. It is
 * written once, by the first `open` or `topUp` that settles with that deposit, before any balance
 * changes, so money paid to one invoice funds one action only, whatever happens to the challenge
 * around it (a credential the core gives back after a failed settle, a retry, another action).
 */
export type DepositClaim = {
  action: 'open' | 'topUp'
  /** The challenge whose credential claimed it: only a retry of that credential goes on from it. */
  challengeId: string
  sessionId: string
  sats: string
  /**
   * Top-ups only. `claimed`: nothing moved yet (a retry goes on from here); `credited`; `refused`: the
   * session closed first, and `refundStatus` says what became of the satoshis. `crediting` and
   * `refunding` mark a step that a failure may have cut short without telling whether it took effect
   * (a credit on a Store without `atomic`, a refund payment): a retry never runs it again.
   */
  state?: 'claimed' | 'crediting' | 'credited' | 'refunding' | 'refused'
  /** When it became `refunding` (epoch ms): the idle sweep finishes a refund left so for long (see {@link Deposits.recoverReturn}). */
  refundingAt?: number
  /**
   * `pending`: added to the close's refund, not yet paid; `succeeded`: paid to the return invoice;
   * `failed`: not paid back (reported through `onRefundFailure`; this record is what it is refunded from);
   * `skipped`: nothing of it was left to give back (see `backSats`).
   */
  refundStatus?: 'pending' | 'succeeded' | 'failed' | 'skipped'
  /**
   * What of it is given back, when less than `sats`: on a Store without `atomic`, a close that overtook
   * the credit kept the rest with the session (refunded with the close, or spent by a request served
   * before it; see `Sessions.credit`).
   */
  backSats?: string
  /** Once paid back (`succeeded`): what reached the return invoice, the routing fee out of it. */
  refundedSats?: string
  /** Once paid back (`succeeded`): that routing fee (satoshis, rounded up). */
  refundFeeSats?: string
}

/**
 * A top-up whose session closed before the credit: what became of its satoshis (see
 * {@link DepositClaim.refundStatus}; `pending` also while its own payment to the return invoice has an
 * unknown outcome, recorded once the node reports it).
 */
export type TopUpRefusal = {
  status: 'refused'
  /** What reached the return invoice once `succeeded`; else what is (or was to be) given back. */
  refundSats: number
  refundStatus: 'pending' | 'succeeded' | 'failed' | 'skipped'
  /** The routing fee paid out of it, when one was (`succeeded`). */
  refundFeeSats?: number
}

/** What became of a top-up. */
export type TopUpOutcome =
  | { status: 'credited' }
  | TopUpRefusal
  /** Cut short earlier at a step that cannot be told done or not (or settled by another request): left as it is. */
  | { status: 'interrupted' }

/** A claim as stored (`raw`, what a compare-and-set expects) and parsed. */
export type Claimed = { raw: string; claim: DepositClaim }

/**
 * The deposit claims of one Store, and the top-up credit built on them: claimed, then credited once or,
 * when the session closed in the meantime, refused and given back.
 *
 * "Retrying a credential after a network failure MUST NOT result in double-crediting or
 * double-refunding." (draft-lightning-session-00 §"Idempotency"); "This ensures each top-up invoice can
 * only be used once." (§"TopUp Action"); "Servers MUST NOT allow session IDs to be guessed or reused
 * across sessions." (§"Session Isolation")
 *
 * @example
 * ```ts
 * const claimed = await deposits.claim(hash, { action: 'topUp', challengeId, sessionId, sats: '10', state: 'claimed' })
 * if (claimed) await deposits.topUp(hash, claimed)
 * ```
 */
export class Deposits {
  constructor(
    readonly sessions: Sessions,
    readonly options: {
      ttlMs: number
      lnd: AuthenticatedLnd
      /** How long a node call and a refund payment are waited for. */
      timeouts: NodeTimeouts
      maxFeeSats: (sats: bigint) => number
      onRefundFailure: (failure: RefundFailure) => void
      /** How long a `refunding` claim is left to the process paying it before the sweep finishes it (ms). */
      recoveryMs: number
    },
  ) {}

  async get(paymentHash: string): Promise<DepositClaim | undefined> {
    const raw = await this.sessions.store.get(key(paymentHash))
    return raw === undefined ? undefined : (JSON.parse(raw) as DepositClaim)
  }

  /**
   * Claims the deposit of `paymentHash` for `claim`, before anything is credited. Returns the claim to
   * go on from: this one, or the one an earlier attempt of the same credential (same action, challenge
   * and session) made before it failed part-way. Undefined when anything else claimed the deposit: an
   * open, a top-up of another session, or another challenge.
   */
  async claim(paymentHash: string, claim: DepositClaim): Promise<Claimed | undefined> {
    const { store } = this.sessions
    const raw = JSON.stringify(claim)
    if (await store.putIfAbsent(key(paymentHash), raw, this.options.ttlMs)) return { raw, claim }
    const current = await store.get(key(paymentHash))
    if (current === undefined) return undefined
    const found = JSON.parse(current) as DepositClaim
    const same =
      found.action === claim.action &&
      found.challengeId === claim.challengeId &&
      found.sessionId === claim.sessionId
    return same ? { raw: current, claim: found } : undefined
  }

  /**
   * Credits a claimed top-up to its session once. "TopUp actions MUST atomically increment
   * `session.depositSats`": on a Store with `atomic`, the credit and the claim's move to `credited` are
   * one operation, so a retry after any failure knows whether it happened. When the session closed first
   * ("Servers MUST reject any action on a closed session"), the top-up is refused and given back.
   */
  async topUp(paymentHash: string, claimed: Claimed, now: number = Date.now()): Promise<TopUpOutcome> {
    const { claim } = claimed
    if (claim.state === 'credited') return { status: 'credited' }
    if (claim.state === 'refused') return refusal(claim)
    if (claim.state !== 'claimed') return { status: 'interrupted' }
    const { store } = this.sessions
    const { ttlMs } = this.options
    const sats = BigInt(claim.sats)
    const credited = JSON.stringify({ ...claim, state: 'credited' })
    let raw = claimed.raw
    if (store.atomic) {
      const result = await this.sessions.creditWith(claim.sessionId, sats, {
        key: key(paymentHash),
        expected: raw,
        next: credited,
      })
      if (result === 'claimed') return { status: 'interrupted' }
      if (result === 'credited') return { status: 'credited' }
      return this.#refuse(paymentHash, claim, raw, now, sats)
    }
    // Without `atomic` the credit takes several operations: the claim says `crediting` first, so a
    // retry after a failure part-way (which cannot tell whether the credit landed) never credits again.
    const crediting = JSON.stringify({ ...claim, state: 'crediting' })
    if (!(await store.compareAndSet(key(paymentHash), raw, crediting, ttlMs)))
      return { status: 'interrupted' }
    raw = crediting
    const result = await this.sessions.credit(claim.sessionId, sats)
    if (result.status === 'credited') {
      await store.compareAndSet(key(paymentHash), raw, credited, ttlMs)
      return { status: 'credited' }
    }
    // Closed during the credit: never answered credited; what was taken back is given back.
    return this.#refuse(paymentHash, claim, raw, now, result.back)
  }

  /**
   * Gives back a top-up whose session closed before it was credited. The spec's only way back to the
   * client is the session's return invoice, and a BOLT11 invoice is paid once:
   * - while the close's refund is unclaimed, the top-up is added to it (one payment carries both);
   * - else, when the close refunded nothing (so never paid that invoice), it is paid to the return
   *   invoice (the first such top-up only);
   * - else the invoice is spent (by the close's refund, or by another such top-up): the top-up is
   *   reported through `onRefundFailure` (`ReturnInvoiceUsed`) and kept in its claim
   *   (`refundStatus: 'failed'`), where the operator finds what to refund. So is one whose payment
   *   certainly failed; one whose outcome is unknown (the node connection dropped while it was in
   *   flight) is never reported failed (the operator would refund it a second time, the first having
   *   arrived after all): it stays `refunding`, answered `pending`, and the idle sweep records what the
   *   node did (see {@link Deposits.recoverReturn}).
   *
   * `returned:<sessionId>` names the one top-up that may pay the return invoice. `sats` is what is given
   * back (all of it, unless a close overtook a credit on a Store without `atomic`: see `Sessions.credit`);
   * nothing left is recorded `skipped`. Paid to the return invoice, its routing fee comes out of it (see
   * `payReturnInvoice`).
   */
  async #refuse(
    paymentHash: string,
    given: DepositClaim,
    raw: string,
    now: number,
    sats: bigint,
  ): Promise<TopUpOutcome> {
    const { store } = this.sessions
    const { ttlMs } = this.options
    const claim: DepositClaim = sats === BigInt(given.sats) ? given : { ...given, backSats: String(sats) }
    const { sessionId } = claim
    const failed = (error: string) => {
      this.options.onRefundFailure({
        sessionId,
        refundSats: Number(sats),
        error,
        topUpPaymentHash: paymentHash,
      })
      return 'failed' as const
    }
    let refundStatus: NonNullable<DepositClaim['refundStatus']>
    let refunded: Partial<DepositClaim> = {}
    if (sats === 0n) refundStatus = 'skipped'
    else if (await this.sessions.refundWithClose(sessionId, paymentHash, sats)) refundStatus = 'pending'
    else {
      const record = await this.sessions.get(sessionId)
      const unpaid =
        record?.refundSats === '0' &&
        (record.refundStatus === 'skipped' || record.refundStatus === 'attempting')
      const returned = `returned:${sessionId}`
      if (
        record &&
        unpaid &&
        ((await store.putIfAbsent(returned, paymentHash, ttlMs)) ||
          (await store.get(returned)) === paymentHash)
      ) {
        // Indexed again (the sweep may have dropped the closed session): the sweep finds this refund if
        // its outcome stays unknown or this process stops before recording it.
        await this.sessions.index.add(sessionId)
        // Marked before paying: a retry after a failure from here on cannot tell whether the payment
        // left, so it never pays again.
        const refunding = JSON.stringify({ ...claim, state: 'refunding', refundingAt: now })
        if (!(await store.compareAndSet(key(paymentHash), raw, refunding, ttlMs)))
          return { status: 'interrupted' }
        raw = refunding
        let paid: Awaited<ReturnType<typeof payReturnInvoice>>
        try {
          paid = await payReturnInvoice(this.options.lnd, {
            invoice: record.returnInvoice,
            sats,
            maxFeeSats: this.options.maxFeeSats(sats),
            timeouts: this.options.timeouts,
          })
        } catch (error) {
          // A fee limit that cannot be used (a configuration error): nothing was paid.
          paid = { failed: errorName(error) }
        }
        if (paid === 'unknown')
          return { status: 'refused', refundSats: Number(sats), refundStatus: 'pending' }
        if ('succeeded' in paid) {
          refundStatus = 'succeeded'
          refunded = delivered(paid.succeeded)
        } else refundStatus = failed(paid.failed)
      } else refundStatus = failed(record ? 'ReturnInvoiceUsed' : 'SessionNotFound')
    }
    // Recorded: a retry of the same credential is answered from here.
    const refused: DepositClaim = { ...claim, ...refunded, state: 'refused', refundStatus }
    await store.compareAndSet(key(paymentHash), raw, JSON.stringify(refused), ttlMs)
    return refusal(refused)
  }

  /**
   * Finishes the top-up of `sessionId` given back to its return invoice (see `#refuse`) whose outcome
   * was unknown, or whose process stopped before recording it: `done` once recorded (or when there is
   * none), `later` while it is recent (`recoveryMs`: left to the process paying it) or still in flight.
   * The node knows: a payment that reached the return invoice is recorded `succeeded`, one that failed
   * `failed` (and reported); none at all means the single attempt never left, so it is made now (the
   * node's control tower refuses a second payment to a hash it paid or is paying). The outcome is
   * recorded by compare-and-set, so it is reported once.
   */
  async recoverReturn(sessionId: string, record: SessionRecord, now: number): Promise<'done' | 'later'> {
    const { store } = this.sessions
    const { lnd, ttlMs, timeouts } = this.options
    const paymentHash = await store.get(`returned:${sessionId}`)
    if (paymentHash === undefined) return 'done'
    const raw = await store.get(key(paymentHash))
    if (raw === undefined) return 'done'
    const claim = JSON.parse(raw) as DepositClaim
    if (claim.state !== 'refunding') return 'done'
    if (now - (claim.refundingAt ?? 0) < this.options.recoveryMs) return 'later'
    const sats = BigInt(claim.backSats ?? claim.sats)
    const maxFeeSats = this.options.maxFeeSats(sats)
    const budgets = feeBudgets(sats, maxFeeSats)
    const seen = await paymentAtNode(lnd, record.returnInvoice, { sats, budgets }, timeouts.callMs)
    if (seen === 'pending') return 'later'
    // None at all: the single attempt never left (its process stopped before paying), so it is made now.
    const outcome =
      seen === 'none'
        ? await payReturnInvoice(lnd, { invoice: record.returnInvoice, sats, maxFeeSats, timeouts })
        : seen
    if (outcome === 'unknown') return 'later'
    const refused: DepositClaim =
      'succeeded' in outcome
        ? { ...claim, ...delivered(outcome.succeeded), state: 'refused', refundStatus: 'succeeded' }
        : { ...claim, state: 'refused', refundStatus: 'failed' }
    const recorded = await store.compareAndSet(key(paymentHash), raw, JSON.stringify(refused), ttlMs)
    if (recorded && 'failed' in outcome)
      this.options.onRefundFailure({
        sessionId,
        refundSats: Number(sats),
        error: outcome.failed,
        topUpPaymentHash: paymentHash,
      })
    return 'done'
  }
}

const key = (paymentHash: string) => `funds:${paymentHash}`

/** A top-up paid back, as its claim records it. */
const delivered = ({ sentSats, feeSats }: Delivered): Partial<DepositClaim> => ({
  refundedSats: String(sentSats),
  refundFeeSats: String(feeSats),
})

/** The outcome a refused top-up's claim records. */
export function refusal(claim: DepositClaim): TopUpRefusal {
  const fee = Number(claim.refundFeeSats ?? '0')
  return {
    status: 'refused',
    refundSats: Number(claim.refundedSats ?? claim.backSats ?? claim.sats),
    refundStatus: claim.refundStatus ?? 'failed',
    ...(fee > 0 ? { refundFeeSats: fee } : {}),
  }
}
