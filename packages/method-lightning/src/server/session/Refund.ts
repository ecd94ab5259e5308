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

/**
 * What a close returns: the spec's close body. `refundSats` is what reached the return invoice when the
 * refund succeeded (the routing fee came out of the balance: see {@link payReturnInvoice}), else the
 * balance that was to be refunded; `refundFeeSats` (an extension, present when a fee was paid) is that
 * routing fee, in satoshis rounded up.
 */
export type CloseOutcome = {
  status: 'closed'
  refundSats: number
  refundStatus: 'succeeded' | 'failed' | 'skipped'
  refundFeeSats?: number
}

/**
 * A refund that reached a return invoice: the satoshis it received and the routing fee paid for it
 * (millisatoshis rounded up), both out of what was owed.
 */
export type Delivered = { sentSats: bigint; feeSats: bigint }

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
  /** The most of a refund of `refundSats` spent on its routing fee (out of it: see `payReturnInvoice`). */
  maxFeeSats: (refundSats: bigint) => number
  onRefundFailure: (failure: RefundFailure) => void
}

/**
 * Closes a session and refunds its unspent balance to the return invoice: status closed first
 * (compare-and-set, so exactly one of any number of closers closes), the refund claimed (one claimer
 * pays), one best-effort refund (its routing fee out of it, see {@link payReturnInvoice}), the outcome
 * recorded. Undefined when the session was not open.
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
  const paid = refundSats > 0n ? await payRefund(refunder, sessionId, record, refundSats) : 'skipped'
  // Unknown: left `attempting` for the sweep, which asks the node (a failure recorded now could be
  // refunded a second time by the operator it is reported to, the first having arrived after all).
  if (paid === 'unknown') return { status: 'closed', refundSats: Number(refundSats), refundStatus: 'unknown' }
  await refunder.sessions.recordRefund(sessionId, refundSats, paid)
  return closeOutcome(refundSats, paid)
}

/** The close body of a refund of `owed` satoshis with this outcome (see {@link CloseOutcome}). */
function closeOutcome(owed: bigint, paid: { succeeded: Delivered } | 'failed' | 'skipped'): CloseOutcome {
  if (typeof paid === 'string') return { status: 'closed', refundSats: Number(owed), refundStatus: paid }
  const { sentSats, feeSats } = paid.succeeded
  return {
    status: 'closed',
    refundSats: Number(sentSats),
    refundStatus: 'succeeded',
    ...(feeSats > 0n ? { refundFeeSats: Number(feeSats) } : {}),
  }
}

/**
 * The routing fee budgets a refund of `sats` is tried with, in order (see {@link payReturnInvoice}):
 * none first, then doubling from 1 sat up to `maxFeeSats`, each leaving at least 1 sat to send. Empty
 * when `sats` is not positive.
 *
 * @example
 * ```ts
 * feeBudgets(19n, 10) // [0n, 1n, 2n, 4n, 8n, 10n]
 * feeBudgets(9n, 10) // [0n, 1n, 2n, 4n, 8n]
 * ```
 */
export function feeBudgets(sats: bigint, maxFeeSats: number): bigint[] {
  if (sats <= 0n) return []
  const limit = BigInt(maxFeeSats) < sats - 1n ? BigInt(maxFeeSats) : sats - 1n
  const budgets = [0n]
  for (let budget = 1n; budget < limit; budget *= 2n) budgets.push(budget)
  if (limit > 0n) budgets.push(limit)
  return budgets
}

/**
 * What the node did with payments to `invoice` (a return invoice) owed `sats`: `succeeded` (a payment
 * of one of `budgets`, see {@link feeBudgets}, reached it: `sats - budget` with at most `budget` of
 * fee; or, as paid before fees came out of refunds, all of `sats` with its fee on top), `pending` (in
 * flight), `none` (never sent), or the failure to record. Throws when the node cannot be asked or gives
 * no answer within `timeoutMs`. The one lookup behind every refund whose outcome was unknown: a close's
 * refund and a top-up given back after the close.
 */
export async function paymentAtNode(
  lnd: AuthenticatedLnd,
  invoice: string,
  owed: { sats: bigint; budgets: bigint[] },
  timeoutMs: number = defaultNodeTimeouts.callMs,
): Promise<{ succeeded: Delivered } | 'pending' | 'none' | { failed: string }> {
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
  if (known.is_confirmed && known.payment) {
    const delivered = delivery(known.payment)
    if (delivered && fits(delivered, owed)) return { succeeded: delivered }
  }
  // Failed, or the return invoice was paid another amount (a top-up given back after the close, or the
  // close's refund): this payment did not go out, and that invoice cannot be paid again.
  if (known.is_confirmed) return { failed: 'ReturnInvoicePaidAnotherAmount' }
  if (known.is_failed) return { failed: 'RefundPaymentFailed' }
  return 'none'
}

/** What a finished payment delivered (`mtokens` counts the routing fee) and its fee; none for a fraction. */
function delivery(payment: { mtokens: string; fee_mtokens: string }): Delivered | undefined {
  const feeMsat = BigInt(payment.fee_mtokens)
  const deliveredMsat = BigInt(payment.mtokens) - feeMsat
  if (deliveredMsat % 1000n !== 0n) return undefined
  return { sentSats: deliveredMsat / 1000n, feeSats: (feeMsat + 999n) / 1000n }
}

/** Whether a payment that delivered `delivered` is one {@link payReturnInvoice} made for `owed`. */
function fits({ sentSats, feeSats }: Delivered, owed: { sats: bigint; budgets: bigint[] }): boolean {
  // Paid by a server from before fees came out of refunds: all of it, its fee on top.
  if (sentSats === owed.sats) return true
  const budget = owed.sats - sentSats
  return owed.budgets.includes(budget) && feeSats <= budget
}

/** The failure after which a larger fee budget may find a route (it paid nothing: see `paidNothing`). */
const noRoute = 'PaymentPathfindingFailedToFindPossibleRoute'

/**
 * Pays back `sats` owed to a return invoice, the routing fee out of them: it never costs the payee more
 * than `sats`, whatever the route (the payer writes the return invoice, and its route hints can set the
 * hop fees). A route without fees first (a direct channel: all of `sats` arrives); when there is none,
 * `sats - budget` with a fee limit of `budget`, for each of {@link feeBudgets} in turn until one is
 * routed. At most `maxFeeSats`, and never all of `sats`, goes to fees: a refund whose route costs as
 * much is not paid (`failed`, `RefundBelowRoutingFee`). What a budget leaves unspent stays with the
 * payee (LND pays a fee limit, not a chosen fee).
 *
 * Answers `unknown` when a payment may be in flight or done and the node cannot tell yet (a connection
 * dropped while HTLCs were out, or not finished within `timeouts.payMs`, one deadline for all the
 * attempts); a failure only when every attempt certainly paid nothing (see `paidNothing`) or the node
 * says it failed. Each attempt after the first follows a certain failure to find a route, so at most
 * one of them can pay (and the node refuses a second payment to a hash it paid or is paying).
 *
 * The wait is bounded: a payer whose return invoice is a hold invoice could otherwise hold the close
 * request (and the idle sweep, which runs one at a time) for as long as it likes. A payment still in
 * flight then goes on at the node, and its outcome is left to the sweep (`paymentAtNode`); it is never
 * sent again while the node shows it.
 *
 * The spec's "attempt to pay session.returnInvoice with amountSatsToSend = refundSats … subject to the
 * same fee constraints as a client-initiated close" (draft-lightning-session-00 §"Server-Initiated
 * Close") leaves the fee to the server; "The server MUST NOT retry the refund indefinitely; a single
 * best-effort attempt is sufficient": the attempts are a bounded search for one route, under one deadline.
 *
 * @example
 * ```ts
 * const paid = await payReturnInvoice(lnd, { invoice, sats: 9n, maxFeeSats: 10 })
 * ```
 */
export async function payReturnInvoice(
  lnd: AuthenticatedLnd,
  payment: { invoice: string; sats: bigint; maxFeeSats: number; timeouts?: NodeTimeouts },
): Promise<{ succeeded: Delivered } | 'unknown' | { failed: string }> {
  const { invoice, sats } = payment
  const timeouts = payment.timeouts ?? defaultNodeTimeouts
  const budgets = feeBudgets(sats, payment.maxFeeSats)
  const deadline = Date.now() + timeouts.payMs
  let failed: string | undefined
  for (const budget of budgets) {
    try {
      const paid = await within(
        pay({ lnd, request: invoice, tokens: Number(sats - budget), max_fee: Number(budget) }),
        Math.max(1, deadline - Date.now()),
        () => undefined,
      )
      const delivered = paid && delivery(paid)
      if (delivered) return { succeeded: delivered }
      // Still in flight at the deadline: the node tells what became of it.
      break
    } catch (error) {
      if (!paidNothing(error)) break
      failed = errorName(error)
      // No route within this budget: the next one may find one, while there is time.
      if (failed !== noRoute || Date.now() >= deadline) return { failed }
    }
  }
  if (failed === noRoute) {
    // Every budget tried: none routed. Capped by the refund itself, it is too small to pay its fee.
    return { failed: BigInt(payment.maxFeeSats) >= sats ? 'RefundBelowRoutingFee' : failed }
  }
  // Failed without a certain answer, or still in flight: the node may know by now.
  const seen = await paymentAtNode(lnd, invoice, { sats, budgets }, timeouts.callMs).catch(
    () => 'pending' as const,
  )
  if (typeof seen === 'object') return seen
  return 'unknown'
}

/**
 * The single refund of a close: `unknown` when the payment may be in flight or done and the node cannot
 * tell yet; only a payment that certainly failed is reported as failed.
 */
async function payRefund(
  refunder: Refunder,
  sessionId: string,
  record: SessionRecord,
  refundSats: bigint,
): Promise<{ succeeded: Delivered } | 'failed' | 'unknown'> {
  // Outside the attempt: a fee limit that cannot be used (a configuration error) pays nothing.
  const maxFeeSats = refunder.maxFeeSats(refundSats)
  const paid = await payReturnInvoice(refunder.lnd, {
    invoice: record.returnInvoice,
    sats: refundSats,
    maxFeeSats,
    timeouts: refunder.timeouts,
  })
  if (paid === 'unknown' || 'succeeded' in paid) return paid
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
  let outcome: { succeeded: Delivered } | 'failed' | 'skipped' = 'skipped'
  if (refundSats > 0n) {
    const budgets = feeBudgets(refundSats, refunder.maxFeeSats(refundSats))
    const seen = await paymentAtNode(
      refunder.lnd,
      record.returnInvoice,
      { sats: refundSats, budgets },
      refunder.timeouts.callMs,
    )
    if (seen === 'pending') return 'later'
    if (typeof seen === 'object' && 'succeeded' in seen) outcome = seen
    else if (typeof seen === 'object') {
      outcome = 'failed'
      refunder.onRefundFailure({ sessionId, refundSats: Number(refundSats), error: seen.failed })
    } else {
      const paid = await payRefund(refunder, sessionId, record, refundSats)
      if (paid === 'unknown') return 'later'
      outcome = paid
    }
  }
  await refunder.sessions.recordRefund(sessionId, refundSats, outcome)
  return 'done'
}
