import { type Method, mayHaveSettled, PolicyError } from '@mppkit/core/client'
import { defaultChainId } from '../internal/rpc.js'
import type { TempoSessionRequest } from '../Methods.js'

/** TIP-20 amounts are base units of 6 decimals ("in base units (6 decimals)", draft-tempo-session-00). */
export const decimals = 6

/** What a channel's bookings need to know about it. */
type Channel = { deposit: bigint; cumulative: bigint }
type Spend = NonNullable<Method.PayContext<unknown>['spend']>
/** One price booked ahead of service, and its undo. */
type Ahead = { amount: bigint; undo: (keep?: bigint) => void }

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
  // Prices booked ahead of service (`voucherAhead`) not yet taken by a request, most recent last.
  const aheadOf = new WeakMap<Channel, Ahead[]>()
  // What the channel holds locked in the escrow (its deposit and top-ups, `quote.locked`): undone when
  // the channel is closed or forgotten.
  const locksOf = new WeakMap<Channel, ((keep?: bigint) => void)[]>()
  const holdLock = (channel: Channel, undo: (keep?: bigint) => void) =>
    locksOf.set(channel, [...(locksOf.get(channel) ?? []), undo])
  // A top-up whose outcome is unknown (sent without an answer, or answered 5xx): booked until the chain
  // tells whether it landed (the deposit it should reach) or never will.
  const pendingOf = new WeakMap<Channel, { release: () => void; deposit: bigint }>()
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
     * Books a new channel's deposit through `spend` before anything is signed: checked against the
     * policy's `maxDeposit` and held against its `maxLocked`. Returns the undo (the open was never sent);
     * {@link held} keeps it with the channel once the open is sent.
     */
    open(spend: Spend | undefined, request: TempoSessionRequest, deposit: bigint): () => void {
      return spend?.({ ...quoteFor(request, 0n), deposit, locked: deposit }) ?? (() => {})
    },
    /** The channel now holds what `undo` gave back (its open was sent). */
    held(channel: Channel, undo: () => void): void {
      holdLock(channel, undo)
    },
    /** Whether the channel holds locks booked in the policy. */
    holdsLock(channel: Channel): boolean {
      return (locksOf.get(channel)?.length ?? 0) > 0
    },
    /** The channel is closed or gone: what it held locked is given back to the policy. */
    unlock(channel: Channel): void {
      const locks = locksOf.get(channel) ?? []
      locksOf.delete(channel)
      for (const undo of locks) undo()
      pendingOf.get(channel)?.release()
      pendingOf.delete(channel)
    },
    /**
     * The top-up whose outcome was unknown is settled: the escrow's deposit is `deposit` now (read on chain
     * at the block where its transaction's nonce was used, or the deposit it reached once the server took
     * it). Below the deposit the top-up was to reach, it never landed (replaced, or reverted) and will
     * not: its booking (`maxDeposit`, `maxLocked`) is given back; otherwise it stays held with the
     * channel until the channel is closed.
     */
    topUpSettled(channel: Channel, deposit: bigint): void {
      const pending = pendingOf.get(channel)
      if (!pending) return
      pendingOf.delete(channel)
      if (deposit >= pending.deposit) holdLock(channel, pending.release)
      else pending.release()
    },
    /**
     * Runs a top-up of `amount` once the policy allows the channel's new deposit (`maxDeposit`); the
     * booking is undone when the top-up is refused (4xx) or throws before it was sent, and kept when the
     * error says it may have settled (`mayHaveSettled`) or the server failed (5xx: it may have broadcast
     * the transaction) until {@link topUpSettled} tells; `signed` says whether a transaction was signed
     * (none: nothing can land, the booking is undone). Throws `PolicyError` before `run`.
     */
    async topUp(
      channel: Channel,
      amount: bigint,
      run: () => Promise<Response>,
      signed: () => boolean = () => true,
    ): Promise<Response> {
      const booking = bookings.get(channel)
      const deposit = channel.deposit + amount
      const release = booking
        ? booking.spend({ ...booking.quote, amount: 0n, deposit, locked: amount })
        : () => {}
      // Outcome unknown: held until the chain tells (one top-up is pending per channel at a time; an
      // earlier one still unknown stays held with the channel).
      const pend = () => {
        if (!signed()) return release()
        const earlier = pendingOf.get(channel)
        if (earlier) holdLock(channel, earlier.release)
        pendingOf.set(channel, { release, deposit })
      }
      let response: Response
      try {
        response = await run()
      } catch (error) {
        if (!mayHaveSettled(error)) release()
        else pend()
        throw error
      }
      if (response.status >= 500) pend()
      else if (!response.ok) release()
      // Taken: the escrow holds it until the channel is closed.
      else holdLock(channel, release)
      return response
    },
    /**
     * Books what a voucher for `cumulativeAmount` authorizes beyond the channel's last one, before it is
     * saved or signed (throws `PolicyError` when the policy refuses: nothing saved, signed or sent).
     * Returns the undo, to call when the voucher is not sent after all (its save failed).
     */
    voucher(channel: Channel, cumulativeAmount: bigint): () => void {
      const booking = bookings.get(channel)
      if (!booking || cumulativeAmount <= channel.cumulative) return () => {}
      const undo = booking.spend({ ...booking.quote, amount: cumulativeAmount - channel.cumulative })
      return () => undo()
    },
    /**
     * Books the `count` prices a voucher signed ahead of service (`voucherAhead`) authorizes beyond this
     * request, one price at a time while the policy allows, then gives the last one booked back: the
     * next request is booked by the client before it pays with that voucher, and needs that room.
     * Returns how many prices stay booked ahead, which the voucher may authorize (`count` when no paid
     * request books this channel: a method driven directly). Synchronous: concurrent payments on any
     * rail never overrun a limit.
     */
    ahead(channel: Channel, price: bigint, count: bigint): bigint {
      const booking = bookings.get(channel)
      if (!booking) return count
      const booked: Ahead[] = []
      try {
        for (let i = 0n; i <= count; i++)
          booked.push({ amount: price, undo: booking.spend({ ...booking.quote, amount: price }) })
      } catch (error) {
        if (!(error instanceof PolicyError)) {
          for (const { undo } of booked) undo()
          throw error
        }
      }
      booked.pop()?.undo()
      aheadOf.set(channel, [...(aheadOf.get(channel) ?? []), ...booked])
      return BigInt(booked.length)
    },
    /**
     * A request the client booked itself (at `price`) paid with a voucher signed ahead: one price
     * booked ahead gives that much back (what the voucher authorizes stays booked once).
     */
    served(channel: Channel, price: bigint): void {
      const ahead = aheadOf.get(channel)?.pop()
      if (ahead) ahead.undo(ahead.amount > price ? ahead.amount - price : undefined)
    },
    /** Gives back the last `count` prices booked ahead (the voucher they were booked for was not signed). */
    unbook(channel: Channel, count: bigint): void {
      const ahead = aheadOf.get(channel) ?? []
      for (let i = 0n; i < count; i++) ahead.pop()?.undo()
    },
    /** Whether prices booked ahead are held for the channel. */
    heldAhead(channel: Channel): boolean {
      return (aheadOf.get(channel)?.length ?? 0) > 0
    },
    /**
     * The channel closed at a voucher `unspent` below the highest signed: prices booked ahead are given
     * back while they add up to no more than that (the close voids what it did not capture).
     */
    closed(channel: Channel, unspent: bigint): void {
      const ahead = aheadOf.get(channel) ?? []
      let left = unspent
      for (let last = ahead.at(-1); last && last.amount <= left; last = ahead.at(-1)) {
        ahead.pop()
        left -= last.amount
        last.undo()
      }
    },
  }
}
