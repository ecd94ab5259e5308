import { type AuthenticatedLnd, type GetPaymentResult, getPayment, pay } from 'lightning'
import * as Invoice from '../../Invoice.js'
import {
  call,
  defaultNodeTimeouts,
  errorName,
  type NodeTimeouts,
  paidNothing,
  within,
} from '../../internal/node.js'
import type { SessionRecord, Sessions } from './Sessions.js'

/** What a close returns: the spec's close body. */
export type CloseOutcome = {
  status: 'closed'
  refundSats: number
  refundStatus: 'succeeded' | 'failed' | 'skipped'
}

/**
 * A close whose refund payment has an unknown outcome (the connection to the node dropped while it was in
 * flight, and the node could not say yet): the refund stays `attempting`, never reported as failed, and
 * the idle sweep records what the node did (see {@link recoverRefund}).
 */
export type RefundInFlight = { status: 'closed'; refundSats: number; refundStatus: 'unknown' }

/** A line for the audit log of failed refunds (never a preimage or an invoice). */
export type RefundFailure = {
  sessionId: string
  refundSats: number
  error: string
  /**
   * Set when what failed to go back is a top-up that reached the session after it closed: its deposit's
   * payment hash (its claim, `funds:<paymentHash>` in the method's Store, records it as not refunded).
   */
  topUpPaymentHash?: string
}

/** What paying a refund needs. */
export type Refunder = {
  sessions: Sessions
  lnd: AuthenticatedLnd
  /** How long a node call and a refund payment are waited for (see `payReturnInvoice`). */
  timeouts: NodeTimeouts
  maxFeeSats: (refundSats: bigint) => number
  onRefundFailure: (failure: RefundFailure) => void
}

/**
 * Closes a session and refunds its unspent balance to the return invoice: status closed first
 * (compare-and-set, so exactly one of any number of closers closes), the refund claimed (one claimer
 * pays), one best-effort payment, the outcome recorded. Undefined when the session was not open.
 *
 * "If refundSats > 0, attempt to pay session.returnInvoice with amountSatsToSend = refundSats. If
 * refundSats is zero, the server MUST NOT attempt to pay the return invoice." / "the server MUST still
 * close the session and MUST NOT reopen it" / "The server MUST NOT retry the refund indefinitely; a
 * single best-effort attempt is sufficient." (draft-lightning-session-00 §"Close Action")
 */
export async function closeAndRefund(
  refunder: Refunder & { sessionId: string; now?: number },
): Promise<CloseOutcome | RefundInFlight | undefined> {
  const closed = await refunder.sessions.close(refunder.sessionId, refunder.now)
  if (!closed) return undefined
  return refundOnce(refunder, refunder.sessionId)
}

/** Claims a pending refund, pays it once (nothing when zero), records the outcome (once known). */
async function refundOnce(
  refunder: Refunder,
  sessionId: string,
): Promise<CloseOutcome | RefundInFlight | undefined> {
  const claimed = await refunder.sessions.claimRefund(sessionId)
  // Claimed by another process (a recovery that found this close stalled): it pays and records.
  if (!claimed) return undefined
  const { record, refundSats } = claimed
  const refundStatus = refundSats > 0n ? await payRefund(refunder, sessionId, record, refundSats) : 'skipped'
  // Unknown: left `attempting` for the sweep, which asks the node (a failure recorded now could be
  // refunded a second time by the operator it is reported to, the first having arrived after all).
  if (refundStatus !== 'unknown') await refunder.sessions.recordRefund(sessionId, refundSats, refundStatus)
  return { status: 'closed', refundSats: Number(refundSats), refundStatus }
}

/**
 * What the node did with payments to `invoice` (a return invoice) of `sats`: `succeeded` (that amount
 * reached it), `pending` (in flight), `none` (never sent), or the failure to record. Throws when the
 * node cannot be asked or gives no answer within `timeoutMs`. The one lookup behind every refund whose outcome was unknown: a close's refund
 * and a top-up given back after the close.
 */
export async function paymentAtNode(
  lnd: AuthenticatedLnd,
  invoice: string,
  sats: bigint,
  timeoutMs: number = defaultNodeTimeouts.callMs,
): Promise<'succeeded' | 'pending' | 'none' | { failed: string }> {
  const paymentHash = Invoice.tryDecode(invoice)?.paymentHash
  if (!paymentHash) return 'none'
  let known: GetPaymentResult
  try {
    // Bounded: a node that does not answer fails the lookup (asked again later), never holds the sweep.
    known = await call(() => getPayment({ lnd, id: paymentHash }), timeoutMs)
  } catch (error) {
    // Not found: this node never started the payment. Anything else (the node down): ask again later.
    if (errorName(error) === 'SentPaymentNotFound') return 'none'
    throw error
  }
  if (known.is_pending) return 'pending'
  // The amount that reached the return invoice, without routing fees (`tokens` counts them).
  const delivered = known.payment
    ? BigInt(known.payment.mtokens) - BigInt(known.payment.fee_mtokens)
    : undefined
  if (known.is_confirmed && delivered === sats * 1000n) return 'succeeded'
  // Failed, or the return invoice was paid another amount (a top-up given back after the close, or the
  // close's refund): this payment did not go out, and that invoice cannot be paid again.
  if (known.is_confirmed) return { failed: 'ReturnInvoicePaidAnotherAmount' }
  if (known.is_failed) return { failed: 'RefundPaymentFailed' }
  return 'none'
}

/**
 * One best-effort payment of `sats` to a return invoice: `unknown` when it may be in flight or done and
 * the node cannot tell yet (a connection dropped while HTLCs were out, or the payment not finished within
 * `timeouts.payMs`); a failure only when it certainly paid nothing (see `paidNothing`) or the node says
 * it failed.
 *
 * The wait is bounded: a payer whose return invoice is a hold invoice could otherwise hold the close
 * request (and the idle sweep, which runs one at a time) for as long as it likes. A payment still in
 * flight then goes on at the node, and its outcome is left to the sweep (`paymentAtNode`); it is never
 * sent again while the node shows it, and the node refuses a second payment to a hash it is paying.
 *
 * @example
 * ```ts
 * const paid = await payReturnInvoice(lnd, { invoice, sats: 9n, maxFeeSats: 10 })
 * ```
 */
export async function payReturnInvoice(
  lnd: AuthenticatedLnd,
  payment: { invoice: string; sats: bigint; maxFeeSats: number; timeouts?: NodeTimeouts },
): Promise<'succeeded' | 'unknown' | { failed: string }> {
  const { invoice, sats } = payment
  const timeouts = payment.timeouts ?? defaultNodeTimeouts
  try {
    const paid = await within(
      pay({ lnd, request: invoice, tokens: Number(sats), max_fee: payment.maxFeeSats }).then(() => true),
      timeouts.payMs,
      () => false,
    )
    if (paid) return 'succeeded'
  } catch (error) {
    if (paidNothing(error)) return { failed: errorName(error) }
  }
  // Failed without a certain answer, or still in flight: the node may know by now.
  const seen = await paymentAtNode(lnd, invoice, sats, timeouts.callMs).catch(() => 'pending' as const)
  if (seen === 'succeeded' || typeof seen === 'object') return seen
  return 'unknown'
}

/**
 * The single refund attempt of a close: `unknown` when the payment may be in flight or done and the
 * node cannot tell yet; only a payment that certainly failed is reported as failed.
 */
async function payRefund(
  refunder: Refunder,
  sessionId: string,
  record: SessionRecord,
  refundSats: bigint,
): Promise<'succeeded' | 'failed' | 'unknown'> {
  // Outside the attempt: a fee limit that cannot be used (a configuration error) pays nothing.
  const maxFeeSats = refunder.maxFeeSats(refundSats)
  const paid = await payReturnInvoice(refunder.lnd, {
    invoice: record.returnInvoice,
    sats: refundSats,
    maxFeeSats,
    timeouts: refunder.timeouts,
  })
  if (typeof paid !== 'object') return paid
  // "The server SHOULD log the failed refund attempt including the sessionId and refundSats"
  refunder.onRefundFailure({ sessionId, refundSats: Number(refundSats), error: paid.failed })
  return 'failed'
}

/**
 * Finishes the refund of a session whose close stopped part-way (the process closing it ended between
 * marking it closed and recording the refund): `done` once the outcome is recorded, `later` while its
 * payment is still in flight at the node.
 *
 * - `pending` (closed, refund not yet claimed): the balance is swept again (nothing is counted twice:
 *   each move is one Store operation) and the refund claimed and paid once, as the close would have.
 * - `attempting` (claimed, outcome not recorded): the payment may or may not have left. The node knows:
 *   a payment to the return invoice's hash that succeeded or failed is recorded as such; one still in
 *   flight is looked at again by the next sweep; none at all means the single attempt never happened,
 *   so it is made now. The node's control tower refuses a second payment to a hash it has paid or is
 *   paying, so no refund is ever paid twice.
 */
export async function recoverRefund(
  refunder: Refunder,
  sessionId: string,
  record: SessionRecord,
): Promise<'done' | 'later'> {
  if (record.refundStatus === 'pending') {
    await refunder.sessions.sweepBalance(sessionId)
    // Claimed by another process in the meantime: the next sweep sees what it recorded.
    return (await refundOnce(refunder, sessionId)) ? 'done' : 'later'
  }
  const refundSats = BigInt(record.refundSats ?? '0')
  let refundStatus: 'succeeded' | 'failed' | 'skipped' = 'skipped'
  if (refundSats > 0n) {
    const seen = await paymentAtNode(refunder.lnd, record.returnInvoice, refundSats, refunder.timeouts.callMs)
    if (seen === 'pending') return 'later'
    if (seen === 'succeeded') refundStatus = 'succeeded'
    else if (typeof seen === 'object') {
      refundStatus = 'failed'
      refunder.onRefundFailure({ sessionId, refundSats: Number(refundSats), error: seen.failed })
    } else {
      const paid = await payRefund(refunder, sessionId, record, refundSats)
      if (paid === 'unknown') return 'later'
      refundStatus = paid
    }
  }
  await refunder.sessions.recordRefund(sessionId, refundSats, refundStatus)
  return 'done'
}
