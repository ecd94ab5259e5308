import { type Method, mayHaveSettled } from '@mppkit/core/client'
import { defaultChainId } from '../internal/rpc.js'
import type { TempoSessionRequest } from '../Methods.js'

/** TIP-20 amounts are base units of 6 decimals ("in base units (6 decimals)", draft-tempo-session-00). */
export const decimals = 6

/** What a channel's bookings need to know about it. */
type Channel = { deposit: bigint; cumulative: bigint }
type Spend = NonNullable<Method.PayContext<unknown>['spend']>

/**
 * Books a session's side payments (top-ups, vouchers sent outside a paid request) in the paying
 * client's ledger, through the `spend` of the last paid request that used the channel. A channel that
 * no client paid through (a method driven directly) books nothing.
 *
 * @example
 * ```ts
 * const bookings = sessionBookings(options.chainId)
 * bookings.remember(state, context.spend, request)
 * const response = await bookings.topUp(state, amount, () => sendTopUp())
 * ```
 * @see draft-httpauth-payment-00 §11.7
 */
export function sessionBookings(chainId: number | undefined) {
  const bookings = new WeakMap<Channel, { spend: Spend; quote: Method.Quote }>()
  const quoteFor = (request: TempoSessionRequest, amount: bigint): Method.Quote => ({
    amount,
    currency: request.currency,
    network: `tempo:${request.methodDetails.chainId ?? chainId ?? defaultChainId}`,
    decimals,
  })
  return {
    /** The quote of a session payment of `amount` (the policy sees chain and decimals). */
    quoteFor,
    /** Books the channel's side payments through this `spend` from now on. */
    remember(channel: Channel, spend: Spend | undefined, request: TempoSessionRequest): void {
      if (spend) bookings.set(channel, { spend, quote: quoteFor(request, 0n) })
    },
    /**
     * Runs a top-up of `amount` once the policy allows the channel's new deposit (`maxDeposit`); the
     * booking is undone when the top-up is refused (4xx) or throws before it was sent, and kept when the
     * error says it may have settled (`mayHaveSettled`) or the server failed (5xx: it may have broadcast
     * the transaction). Throws `PolicyError` before `run`.
     */
    async topUp(channel: Channel, amount: bigint, run: () => Promise<Response>): Promise<Response> {
      const booking = bookings.get(channel)
      const release = booking
        ? booking.spend({ ...booking.quote, amount: 0n, deposit: channel.deposit + amount })
        : () => {}
      let response: Response
      try {
        response = await run()
      } catch (error) {
        if (!mayHaveSettled(error)) release()
        throw error
      }
      if (!response.ok && response.status < 500) release()
      return response
    },
    /** Books what a voucher for `cumulativeAmount` authorizes beyond the channel's last one. */
    voucher(channel: Channel, cumulativeAmount: bigint): void {
      const booking = bookings.get(channel)
      if (booking && cumulativeAmount > channel.cumulative)
        booking.spend({ ...booking.quote, amount: cumulativeAmount - channel.cumulative })
    },
  }
}
