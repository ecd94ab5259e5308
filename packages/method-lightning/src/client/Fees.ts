import { type Method, PolicyError } from '@mppkit/core/client'

/** The spend-policy booking of a payment's routing fee: what to keep once the payment's outcome is known. */
export type FeeBooking = {
  /** The fee limit booked, in satoshis. */
  readonly limit: number
  /**
   * The payment went through with `feeSats` of routing fees: the booking shrinks to exactly that. A fee
   * the wallet did not report (or reported outside 0 to `limit`) leaves the whole limit booked.
   */
  settle(feeSats: unknown): void
  /** Nothing was paid: the whole booking is given back. */
  release(): void
}

/**
 * Books a payment's routing fee limit against the client's spend policy before anything is paid: a
 * routing fee is money spent, so it counts against `budget` and the cross-rail budget like the payment
 * itself, but not against the per-request `maxAmount` (which bounds what the server asks for; `maxFeeSats`
 * bounds the fee): the booking is a fee quote (`fee: true`). Once the payment went through, the booking
 * shrinks to the fee paid (the undo keeps that much): nothing is booked after the payment, so a policy
 * that would refuse a booking then (a cross-rail price function that no longer prices satoshis) cannot
 * leave a paid fee uncounted. The booking is synchronous, so concurrent payments never overrun a limit;
 * when the policy refuses it, a `PolicyError` says so before anything is paid. Without `spend` (a method
 * driven directly) nothing is booked.
 *
 * @example
 * ```ts
 * const booking = bookFee(context.spend, { limit: 10, currency: 'sat', network: 'lightning:regtest' })
 * booking.settle(2) // the payment's routing fee was 2 sat
 * ```
 */
export function bookFee(
  spend: Method.PayContext<unknown>['spend'],
  options: { limit: number; currency: string; network: string },
): FeeBooking {
  const { limit, currency, network } = options
  let undo: ((keep?: bigint) => void) | undefined
  if (spend && limit > 0) {
    try {
      undo = spend({ amount: BigInt(limit), currency, network, decimals: 0, fee: true })
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error
      throw new PolicyError(
        error.reason,
        error.reason === 'budget' || error.reason === 'cross-rail-budget'
          ? `lightning: the payment and its routing fee limit of ${limit} sat (maxFeeSats) would exceed the remaining ${error.reason === 'budget' ? 'budget' : 'cross-rail budget'}`
          : `lightning: the spend policy refused the routing fee limit of ${limit} sat (maxFeeSats): ${error.message}`,
      )
    }
  }
  let done = false
  return {
    limit,
    settle(feeSats) {
      if (done) return
      done = true
      if (typeof feeSats !== 'number' || !Number.isSafeInteger(feeSats) || feeSats < 0 || feeSats > limit)
        return
      undo?.(BigInt(feeSats))
    },
    release() {
      if (done) return
      done = true
      undo?.()
    },
  }
}
