import { type Store, VerificationFailedError } from '@mppkit/core'
import { type Address, encodeFunctionData, type Hex } from 'viem'
import { escrowAbi } from '../../internal/escrow.js'
import { reportableRpcError } from '../../internal/rpcErrors.js'
import type { PayeeCall, SessionChain } from './Chain.js'
import type { ChannelStore } from './ChannelStore.js'

/** Parameters of {@link createSettlement}. */
export type SettlementParameters = {
  chain: Pick<SessionChain, 'readChannel' | 'sendAsPayee' | 'simulateAsPayee'>
  channels: ChannelStore
  escrow: Address
  /**
   * How often (ms) a batch also reads the store's index of channels that may need settlement, which
   * lists every process's channels (default 60 000; the first batch of each store reads it, and so does
   * every `settleChannels()`).
   */
  sweepInterval?: number
  /** The most settle calls one transaction carries (default 64, ~9.7M gas); more go out as several. */
  maxBatch?: number
}

/**
 * Batched settlement of a session server: every channel whose highest voucher is fully consumed is
 * settled in one Tempo transaction ("Server-scheduled settlement batches vouchers"), never capturing
 * more than was served. A batch is atomic, so when it reverts each of its calls is simulated on its own:
 * the channels whose settle reverts by itself are dropped (reported as `settle-reverted`) and the
 * others sent again, so one unsettleable channel never keeps every other channel unsettled.
 *
 * The channels a batch looks at are those this process spent on in that store since they were last
 * settled and, on the first batch of each store and every `sweepInterval` after, every channel the
 * store's own index lists: what another process served (one that stopped without closing, say) is
 * settled too.
 *
 * @example
 * ```ts
 * const settlement = createSettlement({ chain, channels, escrow })
 * const hash = await settlement.settle(store, (error) => log(error))
 * ```
 * @see draft-tempo-session-00 §13 (Settlement)
 */
export function createSettlement(parameters: SettlementParameters) {
  const { chain, channels } = parameters
  const sweepInterval = parameters.sweepInterval ?? 60_000
  type Entry = { channelId: Hex; amount: bigint; call: PayeeCall }
  const maxBatch = parameters.maxBatch ?? 64
  const send = (batch: readonly Entry[]) =>
    chain.sendAsPayee(
      batch.map((entry) => entry.call),
      150_000n * BigInt(batch.length) + 100_000n,
    )
  // The amount of each channel whose settle reverted by itself: not sent again for the same amount by a
  // re-read of a channel being force-closed, nor by a sweep of the index (a deduction that marks the
  // channel dirty again in this process still has it tried again).
  const refused = new Map<Hex, bigint>()
  const refuse = (channelId: Hex, amount: bigint) => {
    // Bounded: the oldest refusal is forgotten (it is only asked about again, never paid twice).
    if (refused.size >= 10_000 && !refused.has(channelId)) refused.delete(refused.keys().next().value as Hex)
    refused.set(channelId, amount)
  }
  // When each store's index was last read by this process.
  const sweptAt = new WeakMap<Store, number>()
  /**
   * Settles the consumed vouchers of the dirty channels recorded in `s` (undefined: nothing to settle);
   * the hash of the last batch sent. Channels dropped because their settle reverts go to `report`.
   * `only`: these channels instead (dirty or not), e.g. one whose payer requested a forced close.
   * `sweep`: whether to also look at every channel the store's index lists (default: when this process
   * has not read it for `sweepInterval` ms).
   */
  const settle = async (
    s: Store,
    report?: (error: unknown) => void,
    only?: readonly Hex[],
    sweep?: boolean,
  ): Promise<Hex | undefined> => {
    const { dirty } = channels
    const dirtyHere = dirty.in(s)
    const sweeping =
      only === undefined && (sweep ?? Date.now() - (sweptAt.get(s) ?? -Infinity) >= sweepInterval)
    let candidates: readonly Hex[]
    if (only) candidates = only
    else if (!sweeping) candidates = dirtyHere
    else {
      const indexed = await channels.indexedChannels(s)
      sweptAt.set(s, Date.now())
      candidates = [...new Set([...dirtyHere, ...indexed])]
    }
    if (candidates.length === 0) return undefined
    const batch: Entry[] = []
    const finalized: Hex[] = []
    const forgotten: Hex[] = []
    for (const channelId of candidates) {
      const voucher = await channels.consumedVoucher(s, channelId)
      const channel = await channels.cachedChannel(s, channelId)
      // Nothing left to settle: a finalized channel, a consumed voucher already settled, or a channel
      // the store no longer holds anything of (its keys expired). The first and last leave the index.
      if (
        channel?.finalized ||
        (voucher && channel && BigInt(voucher.amount) <= BigInt(channel.settled)) ||
        (!voucher && !channel)
      ) {
        dirty.delete(channelId, s)
        refused.delete(channelId)
        if (channel?.finalized) finalized.push(channelId)
        else if (!channel) forgotten.push(channelId)
        continue
      }
      // No fully consumed voucher yet (kept for a later batch), or no cached channel to check it against.
      if (!voucher || !channel) continue
      const amount = BigInt(voucher.amount)
      if ((only || !dirty.has(channelId, s)) && refused.get(channelId) === amount) continue
      batch.push({
        channelId,
        amount,
        call: {
          to: parameters.escrow,
          data: encodeFunctionData({
            abi: escrowAbi,
            functionName: 'settle',
            args: [channelId, amount, voucher.signature],
          }),
        },
      })
    }
    // Housekeeping only: a failure leaves the entries for the next sweep, and never holds the batch back.
    if (finalized.length > 0 || forgotten.length > 0)
      await channels.unindexChannels(s, finalized, forgotten).catch(() => {})
    if (batch.length === 0) return undefined
    // A transaction of a bounded number of calls (~150k gas each): a sweep over thousands of channels
    // goes out as several, each within a block's gas limit.
    let last: Hex | undefined
    for (let i = 0; i < batch.length; i += maxBatch)
      last = (await settleCalls(s, batch.slice(i, i + maxBatch), report)) ?? last
    return last
  }
  /** Sends one batch of settle calls, then again without those that revert on their own. */
  const settleCalls = async (
    s: Store,
    calls: Entry[],
    report: ((error: unknown) => void) | undefined,
  ): Promise<Hex | undefined> => {
    const { dirty } = channels
    let batch = calls
    let receipt = await send(batch)
    if (receipt.status !== 'success') {
      // The whole batch reverted for at least one call: keep the calls that succeed on their own.
      const settleable: Entry[] = []
      for (const entry of batch) {
        if (await chain.simulateAsPayee(entry.call)) {
          settleable.push(entry)
          continue
        }
        // Not retried with every batch (it would revert each of them): a later deduction on the channel
        // marks it dirty again, and a close still captures what it owes.
        dirty.delete(entry.channelId, s)
        // Settled (or closed) meanwhile by another process sharing the store, whose batch or sweep
        // listed it too: nothing is lost, nothing to report.
        const now = await chain.readChannel(entry.channelId)
        if (now && (now.finalized || BigInt(now.settled) >= entry.amount)) {
          await channels.saveChannel(s, entry.channelId, now)
          continue
        }
        refuse(entry.channelId, entry.amount)
        report?.(
          new VerificationFailedError({
            detail: `The escrow refuses to settle channel ${entry.channelId}; it was left out of the batch.`,
            reason: 'settle-reverted',
            extensions: { channelId: entry.channelId, amount: String(entry.amount) },
          }),
        )
      }
      if (settleable.length === 0 || settleable.length === batch.length) return receipt.transactionHash
      batch = settleable
      receipt = await send(batch)
    }
    if (receipt.status !== 'success') return receipt.transactionHash
    for (const { channelId, amount } of batch) {
      const channel = await chain.readChannel(channelId)
      if (channel) await channels.saveChannel(s, channelId, channel)
      if (channel && BigInt(channel.settled) >= amount) dirty.delete(channelId, s)
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
  settle: (
    store: Store,
    report?: (error: unknown) => void,
    only?: readonly Hex[],
    sweep?: boolean,
  ) => Promise<Hex | undefined>,
  interval: number | undefined,
) {
  type Attached = SettlementTarget & { timer?: ReturnType<typeof setInterval> }
  const attached = new Set<Attached>()
  // Channels waiting for a prompt settlement, per server (see `settleSoon`).
  const queued = new Map<Attached, Set<Hex>>()
  let running: Promise<unknown> = Promise.resolve()
  // `sweep`: read each store's index of channels that may need settlement (see `createSettlement`).
  const run = (targets: readonly Attached[], sweep?: boolean): Promise<Hex | undefined> => {
    const next = running.then(async () => {
      let hash: Hex | undefined
      for (const target of targets)
        hash = (await settle(target.store, target.report, undefined, sweep)) ?? hash
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
        // A tick while this server's last batch is still queued or running is skipped: with a slow RPC,
        // ticks would otherwise pile up and then fire back to back once it answers, delaying a prompt
        // settlement (`settleSoon`) queued behind them.
        let busy = false
        entry.timer = setInterval(() => {
          if (busy) return
          busy = true
          run([entry])
            .catch((error) => entry.report(reportableRpcError(error)))
            .finally(() => {
              busy = false
            })
        }, interval)
        entry.timer.unref?.()
      }
      target.signal.addEventListener('abort', () => stopTimer(entry), { once: true })
    },
    /** Settles now, in every attached store, every channel its index lists included. */
    settleNow: () => run([...attached], true),
    /**
     * Settles `channelId` in `store` soon, whatever `interval` (its payer requested a forced close: what
     * was served on it is lost once the grace period ends): queued behind the batch running, never in
     * the request that noticed it; failures go to that server's `report`. Only for a server set up with
     * this store and not closed.
     */
    settleSoon(store: Store, channelId: Hex) {
      const target = [...attached].find((entry) => entry.store === store)
      if (!target || target.signal.aborted) return
      const waiting = queued.get(target)
      if (waiting) {
        waiting.add(channelId)
        return
      }
      const channelIds = new Set([channelId])
      queued.set(target, channelIds)
      const next = running.then(() => {
        queued.delete(target)
        return settle(target.store, target.report, [...channelIds])
      })
      running = next.catch(() => {})
      next.catch((error) => target.report(reportableRpcError(error)))
    },
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
        for (const target of targets)
          await run([target]).catch((error) => target.report(reportableRpcError(error)))
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
