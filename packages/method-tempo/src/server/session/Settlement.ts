import type { Store } from '@mppkit/core'
import { type Address, encodeFunctionData, type Hex } from 'viem'
import { escrowAbi } from '../../internal/escrow.js'
import type { PayeeCall, SessionChain } from './Chain.js'
import type { ChannelStore } from './ChannelStore.js'

/** Parameters of {@link createSettlement}. */
export type SettlementParameters = {
  chain: Pick<SessionChain, 'readChannel' | 'sendAsPayee'>
  channels: ChannelStore
  escrow: Address
}

/**
 * Batched settlement of a session server: every channel whose highest voucher is fully consumed is
 * settled in one Tempo transaction ("Server-scheduled settlement batches vouchers"), never capturing
 * more than was served.
 *
 * @example
 * ```ts
 * const settlement = createSettlement({ chain, channels, escrow })
 * const hash = await settlement.settle(store)
 * ```
 * @see draft-tempo-session-00 §13 (Settlement)
 */
export function createSettlement(parameters: SettlementParameters) {
  const { chain, channels } = parameters
  /** Settles the consumed vouchers of the dirty channels recorded in `s` (undefined: nothing to settle). */
  const settle = async (s: Store): Promise<Hex | undefined> => {
    const { dirty } = channels
    if (dirty.size === 0) return undefined
    const calls: PayeeCall[] = []
    const batch: { channelId: Hex; amount: bigint }[] = []
    for (const channelId of [...dirty]) {
      const voucher = await channels.consumedVoucher(s, channelId)
      const channel = await channels.cachedChannel(s, channelId)
      if (!voucher || !channel) continue
      if (channel.finalized || BigInt(voucher.amount) <= BigInt(channel.settled)) {
        dirty.delete(channelId)
        continue
      }
      calls.push({
        to: parameters.escrow,
        data: encodeFunctionData({
          abi: escrowAbi,
          functionName: 'settle',
          args: [channelId, BigInt(voucher.amount), voucher.signature],
        }),
      })
      batch.push({ channelId, amount: BigInt(voucher.amount) })
    }
    if (calls.length === 0) return undefined
    const receipt = await chain.sendAsPayee(calls, 150_000n * BigInt(calls.length) + 100_000n)
    if (receipt.status !== 'success') return receipt.transactionHash
    for (const { channelId, amount } of batch) {
      const channel = await chain.readChannel(channelId)
      if (channel) await channels.saveChannel(s, channelId, channel)
      if (channel && BigInt(channel.settled) >= amount) channels.dirty.delete(channelId)
    }
    return receipt.transactionHash
  }
  return { settle }
}
