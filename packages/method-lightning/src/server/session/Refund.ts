import { type AuthenticatedLnd, pay } from 'lightning'
import { errorName } from '../../internal/node.js'
import type { Sessions } from './Sessions.js'

/** What a close returns: the spec's close body. */
export type CloseOutcome = {
  status: 'closed'
  refundSats: number
  refundStatus: 'succeeded' | 'failed' | 'skipped'
}

/** A line for the audit log of failed refunds (never a preimage or an invoice). */
export type RefundFailure = { sessionId: string; refundSats: number; error: string }

/**
 * Closes a session and refunds its unspent balance to the return invoice: status closed first
 * (compare-and-set, so exactly one of any number of closers refunds), one best-effort payment, the
 * outcome recorded. Undefined when the session was not open.
 *
 * "If refundSats > 0, attempt to pay session.returnInvoice with amountSatsToSend = refundSats. If
 * refundSats is zero, the server MUST NOT attempt to pay the return invoice." / "the server MUST still
 * close the session and MUST NOT reopen it" / "The server MUST NOT retry the refund indefinitely; a
 * single best-effort attempt is sufficient." (draft-lightning-session-00 §"Close Action")
 */
export async function closeAndRefund(parameters: {
  sessions: Sessions
  lnd: AuthenticatedLnd
  sessionId: string
  maxFeeSats: (refundSats: bigint) => number
  onRefundFailure: (failure: RefundFailure) => void
}): Promise<CloseOutcome | undefined> {
  const { sessions, sessionId } = parameters
  const closed = await sessions.close(sessionId)
  if (!closed) return undefined
  const { refundSats } = closed
  let refundStatus: CloseOutcome['refundStatus'] = 'skipped'
  if (refundSats > 0n) {
    try {
      await pay({
        lnd: parameters.lnd,
        request: closed.record.returnInvoice,
        tokens: Number(refundSats),
        max_fee: parameters.maxFeeSats(refundSats),
      })
      refundStatus = 'succeeded'
    } catch (error) {
      refundStatus = 'failed'
      // "The server SHOULD log the failed refund attempt including the sessionId and refundSats"
      parameters.onRefundFailure({ sessionId, refundSats: Number(refundSats), error: errorName(error) })
    }
  }
  await sessions.recordRefund(sessionId, refundSats, refundStatus)
  return { status: 'closed', refundSats: Number(refundSats), refundStatus }
}
