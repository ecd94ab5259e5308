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

/** One server's hold on the settlement schedule (what `setup` received). */
export type SettlementTarget = {
  store: Store
  report(error: unknown): void
  signal: AbortSignal
}

/**
 * Runs settlement batches for every server a session method is set up in: on a timer every `interval`
 * ms when given (errors go to that server's `report`), on demand, and once more when a server closes.
 * Batches never overlap, so one voucher is never sent twice.
 *
 * @example
 * ```ts
 * const schedule = createSettlementSchedule(settlement.settle, 5_000)
 * schedule.attach({ store, report, signal }) // in Method.setup
 * await schedule.close() // in Method.close: timers stopped, pending vouchers settled
 * ```
 * @see draft-tempo-session-00 §13 (Settlement)
 */
export function createSettlementSchedule(
  settle: (store: Store) => Promise<Hex | undefined>,
  interval: number | undefined,
) {
  type Attached = SettlementTarget & { timer?: ReturnType<typeof setInterval> }
  const attached = new Set<Attached>()
  let running: Promise<unknown> = Promise.resolve()
  const run = (targets: readonly Attached[]): Promise<Hex | undefined> => {
    const next = running.then(async () => {
      let hash: Hex | undefined
      for (const target of targets) hash = (await settle(target.store)) ?? hash
      return hash
    })
    running = next.catch(() => {})
    return next
  }
  const stopTimer = (target: Attached) => {
    if (target.timer) clearInterval(target.timer)
    delete target.timer
  }
  return {
    attach(target: SettlementTarget) {
      const entry: Attached = { ...target }
      attached.add(entry)
      if (interval !== undefined && !target.signal.aborted) {
        entry.timer = setInterval(() => {
          run([entry]).catch((error) => entry.report(error))
        }, interval)
        entry.timer.unref?.()
      }
      target.signal.addEventListener('abort', () => stopTimer(entry), { once: true })
    },
    /** Settles now, in every attached store. */
    settleNow: () => run([...attached]),
    /**
     * Detaches the servers that were closed (their signal aborted; all of them when none was), stops
     * their timers and, when settlement is scheduled, settles what they left pending. Resolves once no
     * batch is running.
     */
    async close() {
      const closed = [...attached].filter((target) => target.signal.aborted)
      const targets = closed.length > 0 ? closed : [...attached]
      for (const target of targets) {
        stopTimer(target)
        attached.delete(target)
      }
      if (interval !== undefined)
        for (const target of targets) await run([target]).catch((error) => target.report(error))
      await running
    },
    /** How many servers are attached (set up and not closed). */
    attached: () => attached.size,
    /** Stops every timer (the servers stay attached for `settleNow`). */
    stop() {
      for (const target of attached) stopTimer(target)
    },
  }
}
