import { createHash } from 'node:crypto'
import { BaseError, PaymentFailedError } from '@mppkit/core/client'
import { type AuthenticatedLnd, createInvoice, getInvoice, pay } from 'lightning'
import * as Invoice from '../Invoice.js'
import type { LightningNetwork } from '../Methods.js'
import type { FeeBooking } from './Fees.js'

/** What a lightning client needs from its node, with an implementation on LND ({@link lndWallet}). */
export type Wallet = {
  /**
   * Pays `invoice` (with `sats` for an amountless one) under a fee limit; resolves with the preimage (hex)
   * and the routing fee paid, in whole satoshis rounded up (`feeSats`: without it, the client keeps the
   * whole fee limit booked against its spend policy). A wallet that knows nothing was paid rejects with a
   * `PaymentFailedError` (from `@mppkit/core/client`); any other rejection is taken to mean the payment
   * may have gone through, and the client keeps it, and its fee limit, booked against its spend policy.
   */
  pay(
    invoice: string,
    options: { maxFeeSats: number; sats?: bigint },
  ): Promise<{ preimage: string; feeSats?: number }>
  /** Creates an amountless invoice for refunds, expiring in `expirySeconds`. */
  receive(options: { expirySeconds: number; description?: string }): Promise<{ invoice: string }>
  /**
   * Satoshis received on an invoice this wallet created (by payment hash, hex), `0n` while it is unpaid.
   * Optional: a session client sees its refunds through it and gives them back to its spend policy's
   * budget; without it (or when it fails) a closed session's deposits stay booked.
   */
  received?(paymentHash: string): Promise<bigint>
}

/**
 * A {@link Wallet} on an LND node through the `lightning` package: `SendPaymentV2` with `max_fee`,
 * `AddInvoice` for return invoices and `LookupInvoice` for what they received (the macaroon needs
 * `invoices:read` for that; without it, refunds are not given back to the budget).
 *
 * @example
 * ```ts
 * const wallet = lndWallet(authenticatedLndGrpc({ cert, macaroon, socket }).lnd)
 * ```
 * @see draft-lightning-charge-00 §"Intent: charge"
 */
export function lndWallet(lnd: AuthenticatedLnd): Wallet {
  return {
    async pay(invoice, { maxFeeSats, sats }) {
      const paid = await pay({
        lnd,
        request: invoice,
        max_fee: maxFeeSats,
        ...(sats !== undefined ? { tokens: Number(sats) } : {}),
      })
      // `safe_fee`: the fee in satoshis rounded up (LND pays fees in millisatoshis).
      return { preimage: paid.secret, feeSats: paid.safe_fee }
    },
    async receive({ expirySeconds, description }) {
      const created = await createInvoice({
        lnd,
        expires_at: new Date(Date.now() + expirySeconds * 1000).toISOString(),
        ...(description !== undefined ? { description } : {}),
      })
      return { invoice: created.request }
    },
    async received(paymentHash) {
      const invoice = await getInvoice({ lnd, id: paymentHash })
      // `received`: whole satoshis received (rounded down from the millisatoshis).
      return invoice.is_confirmed ? BigInt(invoice.received) : 0n
    },
  }
}

/**
 * Decodes and checks an invoice before paying it: its network, its amount, that it has not expired, and
 * that the convenience fields match it. "Clients MUST decode and verify the invoice independently
 * before paying, and MUST reject challenges where the convenience fields do not match the invoice."
 * (draft-lightning-charge-00 §"Method Details")
 */
export function checkInvoice(
  text: string | undefined,
  expected: {
    network: LightningNetwork
    sats: bigint
    paymentHash?: string | undefined
    /** The challenge's `network` convenience field ("Defaults to "mainnet" if omitted"). */
    networkField?: LightningNetwork | undefined
    expires?: string | undefined
    now: number
    /** Refuse an invoice or challenge ending within this many ms (see `minValiditySeconds`). */
    minValidityMs?: number
  },
): Invoice.Invoice {
  const invoice = Invoice.tryDecode(text)
  if (!invoice) throw new PaymentFailedError('lightning: the challenge carries no valid BOLT11 invoice')
  // "Clients SHOULD reject invoices whose network does not match their configured network."
  if (invoice.network !== expected.network)
    throw new PaymentFailedError(
      `lightning: the invoice is for ${invoice.network}, this client pays on ${expected.network}`,
    )
  if ((expected.networkField ?? 'mainnet') !== invoice.network)
    throw new PaymentFailedError('lightning: the challenge network does not match its invoice')
  if (expected.paymentHash !== undefined && expected.paymentHash !== invoice.paymentHash)
    throw new PaymentFailedError('lightning: the challenge paymentHash does not match its invoice')
  if (invoice.amountMsat !== expected.sats * 1000n)
    throw new PaymentFailedError('lightning: the invoice amount does not match the challenge')
  // "Clients SHOULD use the earlier of the two values when deciding whether to attempt payment."
  const challengeEnd = expected.expires ? Date.parse(expected.expires) : Number.POSITIVE_INFINITY
  const end = Math.min(invoice.expiresAt, challengeEnd)
  if (end <= expected.now) throw new PaymentFailedError('lightning: the invoice has expired')
  // Paid that close to the end, the credential reaches the server after it, which must refuse it
  // ("Servers MUST reject credentials for expired challenges"): the payment would be lost.
  if (end <= expected.now + (expected.minValidityMs ?? 0))
    throw new PaymentFailedError(
      'lightning: the invoice expires too soon to pay and present in time (minValiditySeconds)',
    )
  return invoice
}

/**
 * Failures `lightning`'s `pay` reports once LND finished the payment as failed: LND marks a payment
 * failed only after every HTLC of it resolved, so nothing was paid.
 */
const failedPayments = new Set([
  'PaymentExecutionCanceled',
  'InsufficientBalanceToAttemptPayment',
  'PaymentRejectedByDestination',
  'PaymentAttemptsTimedOut',
  'PaymentPathfindingFailedToFindPossibleRoute',
  'FailedToFindPayableRouteToDestination',
])

/**
 * True when a rejected `wallet.pay` certainly paid nothing: LND finished the payment as failed, the
 * `lightning` package refused its arguments before sending (a 4xx, an unsupported invoice feature), or
 * the wallet said so with a typed mppkit error not marked `mayHaveSettled`. A lost connection or an
 * unexpected stream error comes while HTLCs may be in flight: the outcome is unknown.
 */
function nothingPaid(cause: unknown): boolean {
  if (Array.isArray(cause)) {
    const [status, name] = cause as [unknown, unknown]
    if (typeof status === 'number' && status >= 400 && status < 500) return true
    return name === 'UnsupportedPaymentFeatureInPayRequest' || failedPayments.has(name as string)
  }
  return BaseError.is(cause) && (cause as { mayHaveSettled?: unknown }).mayHaveSettled !== true
}

/**
 * Pays through `wallet` under the fee limit `fee` booked, and checks the preimage against the hash (never
 * echoing either in errors). The booking shrinks to the fee the wallet reports once it paid, is given back
 * when nothing was paid, and stays whole when the outcome is unknown. A failure after the payment may
 * have gone out is a `PaymentFailedError` with `mayHaveSettled`.
 */
export async function payInvoice(
  wallet: Wallet,
  invoice: string,
  paymentHash: string,
  options: { fee: FeeBooking; sats?: bigint },
): Promise<string> {
  const { fee, sats } = options
  let preimage: string
  try {
    const paid = await wallet.pay(invoice, { maxFeeSats: fee.limit, ...(sats !== undefined ? { sats } : {}) })
    fee.settle(paid?.feeSats)
    preimage = paid?.preimage
  } catch (cause) {
    const name = Array.isArray(cause) && typeof cause[1] === 'string' ? `: ${cause[1]}` : ''
    const settled = !nothingPaid(cause)
    // Unknown outcome: the fee limit stays booked with the payment, as the core keeps the payment.
    if (!settled) fee.release()
    throw new PaymentFailedError(`lightning: the payment failed${name}`, { cause, mayHaveSettled: settled })
  }
  // The node reports the invoice paid: whatever is wrong with the preimage, the money may have moved.
  if (
    typeof preimage !== 'string' ||
    !/^[0-9a-f]{64}$/.test(preimage) ||
    createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex') !== paymentHash
  )
    throw new PaymentFailedError('lightning: the node returned a preimage that does not match the invoice', {
      mayHaveSettled: true,
    })
  return preimage
}
