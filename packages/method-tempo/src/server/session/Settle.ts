import { type Method, PaymentError, ServiceUnavailableError, VerificationFailedError } from '@mppkit/core'
import { type Address, encodeFunctionData, type Hex, isAddressEqual } from 'viem'
import { escrowAbi } from '../../internal/escrow.js'
import { rpcErrorSummary } from '../../internal/rpcErrors.js'
import type { session } from '../../Methods.js'
import type { ChannelState, SessionChain } from './Chain.js'
import type { ChannelStore, StoredVoucher } from './ChannelStore.js'
import { createMeter, receiptFields } from './Meter.js'
import { sessionProblem } from './problems.js'
import { checkSettled, recheckVoucher, type Verified } from './Verify.js'

/** Parameters of {@link createSettle}. */
export type SettleParameters = {
  chain: SessionChain
  channels: ChannelStore
  escrow: Address
  currency: Address
  payee: Address
  /** Units charged before the handler runs. */
  unitsPerRequest: bigint
  voucherTimeout: number
  /** True once every server of the method closed (paused streams end). */
  closed: () => boolean
}

type Context = Parameters<Method.Server<typeof session, Verified>['settle']>[0]

const reverted = (what: string) =>
  new VerificationFailedError({ detail: `The ${what} transaction reverted.`, reason: 'transaction-reverted' })

/**
 * How far a cooperative close got: `sent` once its transaction is handed to the node (from then on it
 * may be mined whatever answer comes back), `reverted` once it was mined and reverted.
 */
type CloseProgress = { sent: boolean; reverted: boolean }

/**
 * The value-moving half of a session server: broadcasts an `open` or `topUp`, accepts a voucher and
 * deducts the request's cost before it is served, or closes the channel cooperatively.
 *
 * @example
 * ```ts
 * const settle = createSettle({ chain, channels, escrow, currency, payee, unitsPerRequest: 1n, voucherTimeout: 60_000, closed: () => false })
 * const settlement = await settle(context)
 * ```
 * @see draft-tempo-session-00 §8 (Server Verification), §9 (Accounting)
 */
export function createSettle(parameters: SettleParameters): (context: Context) => Promise<Method.Settlement> {
  const { chain, channels, unitsPerRequest } = parameters
  return async ({ challenge, request, payload, store: s, verified, httpRequest }) => {
    const price = BigInt(request.amount)
    const cost = price * unitsPerRequest
    const minDelta = BigInt(request.methodDetails.minVoucherDelta ?? '0')
    const { channelId } = verified
    const signature = (payload as { signature: Hex }).signature
    const pureVoucher = httpRequest.method === 'HEAD'
    const done = async (
      extra: Record<string, unknown> = {},
      response?: Response,
      // The balance a deduction just returned (saves two reads on the per-voucher path).
      known?: { accepted: bigint; spent: bigint },
    ): Promise<Method.Settlement> => {
      const state = known ?? {
        accepted: await channels.accepted(s, channelId),
        spent: await channels.spentOf(s, channelId),
      }
      return {
        reference: channelId,
        receipt: receiptFields(challenge.id, channelId, state, extra),
        context: createMeter({
          channels,
          store: s,
          channelId,
          price,
          challengeId: challenge.id,
          minDelta,
          voucherTimeout: parameters.voucherTimeout,
          closed: parameters.closed,
          // An open has just read the channel from the escrow.
          channelReadAt: 'channel' in verified ? verified.channel.readAt : Date.now(),
        }),
        ...(response ? { response } : {}),
      }
    }
    // `settled`: the channel's on-chain settled amount, the floor of `spent` (ChannelStore.spend).
    const serve = async (charge: boolean, justAccepted: StoredVoucher, settled: string) => {
      if (!charge) return done({}, new Response(null, { status: 200 }))
      const result = await channels.deduct(s, channelId, cost, justAccepted, BigInt(settled))
      if (result.closing) throw channels.closingProblem()
      if (!result.ok) throw channels.insufficient(channelId, cost, result)
      return done(cost > 0n ? { units: Number(unitsPerRequest) } : {}, undefined, result)
    }
    // A cooperative close, once the channel is marked as closing.
    const closeChannel = async (
      verified: Extract<Verified, { action: 'close' }>,
      progress: CloseProgress,
    ) => {
      const spent = await channels.spentOf(s, channelId)
      const settled = BigInt(verified.channel.settled)
      // "captureAmount = max(spent, settledOnChain)"; "Servers MUST NOT capture more than the amount
      // actually consumed by delivered service." A v1 close captures the voucher amount, so the close
      // voucher must be exactly the capture amount (or at/below the settled amount: nothing new).
      const capture = spent > settled ? spent : settled
      if (verified.amount < capture || (verified.amount > capture && verified.amount > settled))
        throw new VerificationFailedError({
          detail: `Sign the close voucher for exactly the spent amount ${capture}.`,
          reason: 'close-amount-mismatch',
          extensions: { spent: String(capture) },
        })
      const data = encodeFunctionData({
        abi: escrowAbi,
        functionName: 'close',
        args: [channelId, verified.amount, signature],
      })
      // Handed to the node from here on: whatever comes back (no answer, a revert, a failed read-back),
      // this close or an earlier one may have finalized the channel (see `closeOutcome`).
      progress.sent = true
      const receipt = await chain.sendAsPayee([{ to: parameters.escrow, data }], 400_000n)
      if (receipt.status !== 'success') {
        progress.reverted = true
        throw reverted('close')
      }
      // Mined: the escrow's `close` "marks channel finalized", read back or not. Without the read-back
      // the state recorded is the one the close left (settled at its voucher amount), so the channel is
      // refused from now on and not only while the closing mark lasts.
      let channel: ChannelState | undefined
      try {
        channel = await chain.readChannel(channelId)
      } catch {
        channel = {
          ...verified.channel,
          settled: String(verified.amount > settled ? verified.amount : settled),
          finalized: true,
          readAt: Date.now(),
        }
      }
      if (channel) await channels.saveChannel(s, channelId, channel)
      channels.dirty.delete(channelId)
      return done({ txHash: receipt.transactionHash }, new Response(null, { status: 200 }))
    }
    /**
     * A close that failed once its transaction may have reached the node: the escrow says what happened.
     * Finalized (by this close, or an earlier one whose answer was lost): the state is recorded, the
     * closing mark stays, and the close is answered from the channel (done when it settled this close's
     * amount, else `410`). Unreadable: the mark stays (`uncertainClose`, a retried close takes it over)
     * and the answer is 503 + Retry-After. The mark is lifted only when this close was mined, reverted,
     * and the channel is still open with no forced close pending; a close without an answer may still be
     * in the node's pool, so its mark stays.
     */
    const closeOutcome = async (
      verified: Extract<Verified, { action: 'close' }>,
      progress: CloseProgress,
      error: unknown,
    ): Promise<Method.Settlement> => {
      let channel: ChannelState | undefined
      try {
        channel = await chain.readChannel(channelId)
      } catch (readError) {
        await channels.uncertainClose(s, channelId).catch(() => {})
        if (PaymentError.is(readError) && readError.status === 503) throw readError
        throw new ServiceUnavailableError({
          detail: 'The close transaction may have been mined; retry the close later.',
          reason: 'close-unconfirmed',
          retryAfter: 2,
          cause: rpcErrorSummary(readError),
        })
      }
      if (channel?.finalized) {
        await channels.saveChannel(s, channelId, channel)
        channels.dirty.delete(channelId)
        // The escrow settled what this close asked for: the close is done, only its answer was lost.
        if (BigInt(channel.settled) === verified.amount) return done({}, new Response(null, { status: 200 }))
        // "410 Gone | Channel finalized or not found": "If verification fails, servers MUST return an
        // appropriate HTTP status code with a Problem Details response body".
        throw sessionProblem('channel-finalized', 'Channel Finalized', 410, 'The channel has been closed.')
      }
      if (channel) await channels.saveChannel(s, channelId, channel)
      const stillOpen = channel !== undefined && channel.closeRequestedAt === '0'
      if (progress.reverted && stillOpen) await channels.abortClose(s, channelId).catch(() => {})
      else await channels.uncertainClose(s, channelId).catch(() => {})
      throw error
    }
    switch (verified.action) {
      case 'open': {
        let channel = await chain.readChannel(channelId)
        if (!channel) {
          const receipt = await chain.broadcast(
            await chain.finalTransaction(verified.serialized, chain.sponsoredBy(request)),
          )
          if (receipt.status !== 'success') throw reverted('open')
          channel = await chain.readChannel(channelId)
        }
        if (!channel)
          throw sessionProblem('channel-not-found', 'Channel Not Found', 410, 'The channel was not opened.')
        // "Channel exists …, `channel.payee` matches server's address, `channel.token` matches
        // `request.currency`, `channel.deposit - channel.settled >= amount`, not finalized,
        // `channel.closeRequestedAt == 0`"
        if (
          !isAddressEqual(channel.payer, verified.payer) ||
          !isAddressEqual(channel.payee, parameters.payee) ||
          !isAddressEqual(channel.token, parameters.currency) ||
          channel.finalized ||
          channel.closeRequestedAt !== '0' ||
          BigInt(channel.deposit) - BigInt(channel.settled) < price
        )
          throw new VerificationFailedError({
            detail: 'The on-chain channel does not match this session.',
            reason: 'channel-mismatch',
          })
        // "Signer matches `channel.payer` or `channel.authorizedSigner`": the voucher was checked against
        // the signer of the open transaction's calldata; the channel id commits to it on a compliant
        // escrow, and the escrow's own answer is what settles, so it must name the same signer.
        if (!isAddressEqual(channel.signer, verified.signer))
          throw sessionProblem(
            'signer-mismatch',
            'Signer Mismatch',
            402,
            'The voucher is not signed by the channel signer.',
          )
        // "Verify `cumulativeAmount <= channel.deposit`" against the chain, not the open call's calldata:
        // when the channel already exists the transaction is not broadcast, and its claimed deposit
        // (the channel id does not cover it) proves nothing.
        if (verified.amount > BigInt(channel.deposit))
          throw sessionProblem(
            'amount-exceeds-deposit',
            'Amount Exceeds Deposit',
            402,
            'The voucher exceeds the channel deposit.',
            { deposit: channel.deposit },
          )
        // "`voucher.cumulativeAmount >= channel.settled`"
        checkSettled(channel, verified.amount)
        await channels.saveChannel(s, channelId, channel)
        const acceptedNow = await channels.accept(s, channelId, verified.amount, signature, 0n)
        return serve(!pureVoucher, { amount: String(acceptedNow), signature }, channel.settled)
      }
      case 'voucher': {
        // One store operation per voucher on a store with `atomic` (ChannelStore.acceptAndDeduct).
        if (s.atomic && verified.channelRaw !== undefined && !pureVoucher && cost > 0n) {
          const result = await channels.acceptAndDeduct(
            s as typeof s & Required<Pick<typeof s, 'atomic'>>,
            channelId,
            {
              channelRaw: verified.channelRaw,
              amount: verified.amount,
              signature,
              minDelta,
              cost,
              settled: BigInt(verified.channel.settled),
              recheck: (channel) => recheckVoucher(verified, channel),
            },
          )
          if (!result.ok) throw channels.insufficient(channelId, cost, result)
          return done({ units: Number(unitsPerRequest) }, undefined, result)
        }
        // Verified against this process's copy of the channel: check it against the stored state first.
        let { channel } = verified
        if (verified.channelRaw !== undefined) {
          channel = (await channels.loadChannelRaw(s, channelId, true, false)).state
          recheckVoucher(verified, channel)
        }
        const acceptedNow = await channels.accept(s, channelId, verified.amount, signature, minDelta)
        return serve(!pureVoucher, { amount: String(acceptedNow), signature }, channel.settled)
      }
      case 'topUp': {
        const receipt = await chain.broadcast(
          await chain.finalTransaction(verified.serialized, chain.sponsoredBy(request)),
        )
        if (receipt.status !== 'success') throw reverted('topUp')
        const channel = await chain.readChannel(channelId)
        // "Query the escrow contract to verify updated channel state: … Channel is not finalized" (a
        // top-up mined before and presented again finds its old receipt; the channel may be withdrawn since).
        if (channel?.finalized) {
          await channels.saveChannel(s, channelId, channel)
          throw sessionProblem('channel-finalized', 'Channel Finalized', 410, 'The channel has been closed.')
        }
        // "`channel.deposit` increased by `additionalDeposit`"
        if (
          !channel ||
          BigInt(channel.deposit) < BigInt(verified.channel.deposit) + verified.additionalDeposit
        )
          throw new VerificationFailedError({
            detail: 'The deposit did not increase.',
            reason: 'topup-missing',
          })
        await channels.saveChannel(s, channelId, channel)
        channels.notify(channelId)
        return done(
          { txHash: receipt.transactionHash, deposit: channel.deposit },
          new Response(null, { status: 200 }),
        )
      }
      case 'close': {
        // Marked first, read second: a request spending after the read would be served uncaptured.
        if (!(await channels.beginClose(s, channelId))) throw channels.closingProblem()
        const progress: CloseProgress = { sent: false, reverted: false }
        try {
          return await closeChannel(verified, progress)
        } catch (error) {
          if (progress.sent) return await closeOutcome(verified, progress, error)
          // Refused before its transaction went out: the channel serves again.
          await channels.abortClose(s, channelId).catch(() => {})
          throw error
        }
      }
      default:
        throw new VerificationFailedError({ detail: 'Unknown session action.', reason: 'unknown-action' })
    }
  }
}
