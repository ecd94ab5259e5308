import { BaseError } from '@mppkit/core'
import { type AuthenticatedLnd, type GetInvoiceResult, getInvoice } from 'lightning'
import { call, errorName } from '../internal/node.js'

/** gRPC NOT_FOUND: LND's LookupInvoice status for an invoice it does not hold. */
const grpcNotFound = 5
/**
 * LND's own texts for an invoice it does not hold (`invoices.ErrInvoiceNotFound`,
 * `ErrNoInvoicesCreated`), which LND versions before NOT_FOUND sent as gRPC UNKNOWN.
 */
const notFoundText = /^(unable to locate invoice|there are no existing invoices)$/

/** The gRPC status of a `lightning` rejection (`[503, 'UnexpectedLookupInvoiceErr', { err }]`), if any. */
function grpcStatus(error: unknown): { code?: unknown; details?: unknown } | undefined {
  if (!Array.isArray(error)) return undefined
  return (error[2] as { err?: { code?: unknown; details?: unknown } } | undefined)?.err
}

/** True for the node's answer that it holds no invoice of this hash: a definite answer, not a failure. */
function isNotFound(error: unknown): boolean {
  const status = grpcStatus(error)
  return (
    status?.code === grpcNotFound ||
    (typeof status?.details === 'string' && notFoundText.test(status.details))
  )
}

/**
 * Asks the node what it received on the invoice of `paymentHash`: the millisatoshis of a settled
 * invoice, or `undefined` when the node answers that the invoice is not settled or that it holds no such
 * invoice. Only those answers may refuse a credential (402). A lookup that failed is not a lookup that
 * said "unpaid": a node that is down or gives no answer within `timeoutMs` throws
 * `ServiceUnavailableError` (503 + Retry-After); any other failure (a gRPC INTERNAL or UNKNOWN, an
 * answer that does not parse) throws {@link LookupFailedError}, which the core reports (`onError`,
 * phase `settle`) and answers 503 + Retry-After. Either way the challenge is not consumed, so the same
 * credential succeeds once the node answers again.
 *
 * @example
 * ```ts
 * const received = await settledMsat(lnd, invoice.paymentHash, 10_000)
 * if (received === undefined || received < invoice.amountMsat) throw new VerificationFailedError({ … })
 * ```
 */
export async function settledMsat(
  lnd: AuthenticatedLnd,
  paymentHash: string,
  timeoutMs: number,
): Promise<bigint | undefined> {
  let record: GetInvoiceResult
  try {
    record = await call(() => getInvoice({ lnd, id: paymentHash }), timeoutMs)
  } catch (error) {
    if (isNotFound(error)) return undefined
    // `call` turned an unreachable or silent node into ServiceUnavailableError already.
    if (!Array.isArray(error)) throw error
    throw new LookupFailedError(paymentHash, error)
  }
  return record.is_confirmed ? BigInt(record.received_mtokens) : undefined
}

/**
 * The node failed to look up an invoice (anything but "not settled" or "not found"): whether it was paid
 * is unknown. The `lightning` rejection is the `cause` (the node's message may name hosts: never sent to
 * the client, who gets a 503 + Retry-After).
 */
export class LookupFailedError extends BaseError {
  override name = 'InvoiceLookup.LookupFailedError'
  constructor(paymentHash: string, cause: unknown) {
    const code = grpcStatus(cause)?.code
    super(
      `The Lightning node failed to look up invoice ${paymentHash} (${errorName(cause)}${
        typeof code === 'number' ? `, gRPC status ${code}` : ''
      }): whether it was paid is unknown (answered 503; the same credential may be presented again).`,
      { code: 'lightning-lookup-failed', cause },
    )
  }
}
