import { type AuthenticatedLnd, type GetPaymentResult, getPayment, pay } from 'lightning'
import * as Invoice from '../../Invoice.js'
import { errorName } from '../../internal/node.js'
import type { SessionRecord, Sessions } from './Sessions.js'

/** What a close returns: the spec's close body. */
export type CloseOutcome = {
  status: 'closed'
  refundSats: number
  refundStatus: 'succeeded' | 'failed' | 'skipped'
}

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
): Promise<CloseOutcome | undefined> {
  const closed = await refunder.sessions.close(refunder.sessionId, refunder.now)
  if (!closed) return undefined
  return refundOnce(refunder, refunder.sessionId)
}

/** Claims a pending refund, pays it once (nothing when zero), records the outcome. */
async function refundOnce(refunder: Refunder, sessionId: string): Promise<CloseOutcome | undefined> {
  const claimed = await refunder.sessions.claimRefund(sessionId)
  // Claimed by another process (a recovery that found this close stalled): it pays and records.
  if (!claimed) return undefined
  const { record, refundSats } = claimed
  const refundStatus = refundSats > 0n ? await payRefund(refunder, sessionId, record, refundSats) : 'skipped'
  await refunder.sessions.recordRefund(sessionId, refundSats, refundStatus)
  return { status: 'closed', refundSats: Number(refundSats), refundStatus }
}

async function payRefund(
  refunder: Refunder,
  sessionId: string,
  record: SessionRecord,
  refundSats: bigint,
): Promise<'succeeded' | 'failed'> {
  try {
    await pay({
      lnd: refunder.lnd,
      request: record.returnInvoice,
      tokens: Number(refundSats),
      max_fee: refunder.maxFeeSats(refundSats),
    })
    return 'succeeded'
  } catch (error) {
    // "The server SHOULD log the failed refund attempt including the sessionId and refundSats"
    refunder.onRefundFailure({ sessionId, refundSats: Number(refundSats), error: errorName(error) })
    return 'failed'
  }
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
    const paymentHash = Invoice.tryDecode(record.returnInvoice)?.paymentHash
    let known: GetPaymentResult | undefined
    try {
      if (paymentHash) known = await getPayment({ lnd: refunder.lnd, id: paymentHash })
    } catch (error) {
      // Not found: this node never started the payment. Anything else (the node down): try again later.
      if (errorName(error) !== 'SentPaymentNotFound') throw error
    }
    if (known?.is_pending) return 'later'
    // The amount that reached the return invoice, without routing fees (`tokens` counts them).
    const delivered = known?.payment
      ? BigInt(known.payment.mtokens) - BigInt(known.payment.fee_mtokens)
      : undefined
    if (known?.is_confirmed && delivered === refundSats * 1000n) refundStatus = 'succeeded'
    else if (known?.is_confirmed || known?.is_failed) {
      // Failed, or the return invoice was paid another amount (a top-up given back after the close):
      // the refund itself did not go out, and that invoice cannot be paid again.
      refundStatus = 'failed'
      refunder.onRefundFailure({
        sessionId,
        refundSats: Number(refundSats),
        error: known.is_failed ? 'RefundPaymentFailed' : 'ReturnInvoicePaidAnotherAmount',
      })
    } else refundStatus = await payRefund(refunder, sessionId, record, refundSats)
  }
  await refunder.sessions.recordRefund(sessionId, refundSats, refundStatus)
  return 'done'
}
