// The channels a session server's settlement batches look at (review 3, findings 1 and 3), on a stand-in
// escrow: the channels this process spent on are kept per store (one method may be set up in several
// servers, each with its own store), and the store itself lists every channel that may need settlement,
// so a process that never saw a channel (the one that served it stopped without closing) settles it.
import { MemoryStore, type Store } from '@mppkit/core'
import { decodeFunctionData, type Hex } from 'viem'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { escrowAbi } from '../src/internal/escrow.js'
import type { ChannelState, PayeeCall, SessionChain } from '../src/server/session/Chain.js'
import { createChannelStore } from '../src/server/session/ChannelStore.js'
import { createSettlement } from '../src/server/session/Settlement.js'

const payee = '0x00000000000000000000000000000000000000a1'
const currency = '0x20c0000000000000000000000000000000000000'
const id = (n: number): Hex => `0x${n.toString(16).padStart(64, '0')}`
const good = `0x${'11'.repeat(65)}` as Hex
const bad = `0x${'ee'.repeat(65)}` as Hex
const ttlMs = 60_000

/**
 * A stand-in escrow: `settle(channelId, amount, signature)` settles `amount` unless the channel is
 * finalized, the amount is not above what is settled, or the signature is `bad`; a batch is atomic.
 */
function escrow() {
  const settled = new Map<Hex, bigint>()
  const finalized = new Set<Hex>()
  const sent: { channelId: Hex; amount: bigint }[][] = []
  let beforeSend: (() => void) | undefined
  const decode = (call: PayeeCall) => {
    const { args } = decodeFunctionData({ abi: escrowAbi, data: call.data })
    const [channelId, amount, signature] = args as [Hex, bigint, Hex]
    return { channelId, amount, signature }
  }
  const applies = ({ channelId, amount, signature }: ReturnType<typeof decode>) =>
    !finalized.has(channelId) && amount > (settled.get(channelId) ?? 0n) && signature !== bad
  const state = (channelId: Hex): ChannelState => ({
    payer: '0x00000000000000000000000000000000000000b2',
    payee,
    token: currency,
    signer: '0x00000000000000000000000000000000000000b2',
    deposit: '10000',
    settled: String(settled.get(channelId) ?? 0n),
    closeRequestedAt: '0',
    finalized: finalized.has(channelId),
    readAt: Date.now(),
  })
  const chain = {
    readChannel: async (channelId: Hex) => state(channelId),
    sendAsPayee: async (calls: PayeeCall[]) => {
      beforeSend?.()
      beforeSend = undefined
      const settles = calls.map(decode)
      sent.push(settles.map(({ channelId, amount }) => ({ channelId, amount })))
      const ok = settles.every(applies)
      if (ok) for (const { channelId, amount } of settles) settled.set(channelId, amount)
      return { status: ok ? 'success' : 'reverted', transactionHash: `0x${'0'.repeat(63)}${sent.length}` }
    },
    simulateAsPayee: async (call: PayeeCall) => applies(decode(call)),
  } as unknown as SessionChain
  return {
    chain,
    state,
    settled,
    finalized,
    sent,
    /** Runs `effect` just before the next batch is sent (another process settling first, say). */
    before: (effect: () => void) => {
      beforeSend = effect
    },
  }
}

/** One server process: its own channel store and settlement, over the shared stand-in escrow. */
function processOn(
  chain: ReturnType<typeof escrow>,
  extra: { index?: { shards: number; perShard: number } } = {},
) {
  const channels = createChannelStore({
    ttlMs,
    stateTtl: 1_000,
    payee,
    currency,
    readChannel: chain.chain.readChannel,
    ...extra,
  })
  const reported: unknown[] = []
  const settlement = createSettlement({
    chain: chain.chain,
    channels,
    escrow: '0x00000000000000000000000000000000000000e5',
  })
  /** Opens (saves) the channel in `store` and serves `amount` on a voucher of `amount`. */
  const serve = async (store: Store, channelId: Hex, amount: bigint, signature = good) => {
    await channels.saveChannel(store, channelId, chain.state(channelId))
    const balance = await channels.deduct(store, channelId, amount, { amount: String(amount), signature })
    expect(balance.ok).toBe(true)
  }
  const settle = (store: Store, sweep?: boolean) =>
    settlement.settle(store, (error) => reported.push(error), undefined, sweep)
  return { channels, settlement, serve, settle, reported }
}

describe('settlement batches: the channels they look at', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('keeps the channels spent on per store: a batch of one store leaves the other store’s alone', async () => {
    const chain = escrow()
    const server = processOn(chain)
    const [first, second] = [new MemoryStore(), new MemoryStore()]
    await server.serve(second, id(1), 2_000n)
    // The first store knows nothing of the channel: its batch sends nothing and forgets nothing.
    expect(await server.settle(first)).toBeUndefined()
    expect(server.channels.dirty.in(second)).toEqual([id(1)])
    expect(server.channels.dirty.in(first)).toEqual([])
    expect(await server.settle(second)).toBeDefined()
    expect(chain.settled.get(id(1))).toBe(2_000n)
    expect([...server.channels.dirty]).toEqual([])
  })

  it('a channel spent on in two stores stays awaiting settlement in the one not settled yet', async () => {
    const chain = escrow()
    const server = processOn(chain)
    const [first, second] = [new MemoryStore(), new MemoryStore()]
    await server.serve(first, id(2), 1_000n)
    await server.serve(second, id(2), 1_000n)
    expect(await server.settle(first)).toBeDefined()
    expect(server.channels.dirty.has(id(2), first)).toBe(false)
    expect(server.channels.dirty.has(id(2), second)).toBe(true)
  })

  it('a process that never saw a channel settles it from the store’s index (the one that served it stopped)', async () => {
    const chain = escrow()
    const store = new MemoryStore()
    const crashed = processOn(chain)
    await crashed.serve(store, id(3), 3_000n)
    const restarted = processOn(chain)
    expect([...restarted.channels.dirty]).toEqual([])
    expect(await restarted.channels.indexedChannels(store)).toEqual([id(3)])
    expect(await restarted.settle(store)).toBeDefined()
    expect(chain.settled.get(id(3))).toBe(3_000n)
    // Settled, not finalized: still listed (more may be served on it), and not sent again.
    expect(await restarted.settle(store, true)).toBeUndefined()
    expect(chain.sent).toHaveLength(1)
  })

  it('reads the index on a store’s first batch, then once per sweepInterval, and always when asked', async () => {
    const chain = escrow()
    const store = new MemoryStore()
    const other = processOn(chain)
    const reads: string[] = []
    const counted: Store = {
      get: (key) => {
        reads.push(key)
        return store.get(key)
      },
      set: (key, value, ttl) => store.set(key, value, ttl),
      putIfAbsent: (key, value, ttl) => store.putIfAbsent(key, value, ttl),
      delete: (key) => store.delete(key),
      compareAndSet: (key, expected, next, ttl) => store.compareAndSet(key, expected, next, ttl),
      increment: (key, delta, options) => store.increment(key, delta, options),
    }
    const self = processOn(chain)
    expect(await self.settle(counted)).toBeUndefined()
    expect(reads.filter((k) => k.startsWith('unsettled:'))).toHaveLength(64)
    // Another process serves a channel: the next timer batch, before sweepInterval, reads nothing.
    await other.serve(store, id(4), 1_000n)
    reads.length = 0
    expect(await self.settle(counted)).toBeUndefined()
    expect(reads).toEqual([])
    // settleChannels() (sweep) reads the index and settles it.
    expect(await self.settle(counted, true)).toBeDefined()
    expect(chain.settled.get(id(4))).toBe(1_000n)
  })

  it('removes finalized and forgotten channels from the index; one presented again meanwhile stays listed', async () => {
    const chain = escrow()
    const store = new MemoryStore()
    const server = processOn(chain)
    for (const n of [5, 6, 7]) await server.channels.saveChannel(store, id(n), chain.state(id(n)))
    // Closed on chain (its close saved the finalized state); the store forgot another (keys expired).
    chain.finalized.add(id(5))
    await server.channels.saveChannel(store, id(5), chain.state(id(5)))
    await store.delete(`ch:${id(6)}`)
    expect(await processOn(chain).settle(store)).toBeUndefined()
    expect(await server.channels.indexedChannels(store)).toEqual([id(7)])
    // A channel removed as forgotten while it is stored again (presented again by its payer) is listed again.
    await server.channels.unindexChannels(store, [], [id(7)])
    expect(await server.channels.indexedChannels(store)).toEqual([id(7)])
  })

  it('lists a channel the store first holds from an escrow read (a voucher on a channel it never saw opened)', async () => {
    const chain = escrow()
    const store = new MemoryStore()
    const server = processOn(chain)
    await server.channels.loadChannelRaw(store, id(18), true, false)
    expect(await processOn(chain).channels.indexedChannels(store)).toEqual([id(18)])
  })

  it('holds at most shards × perShard channels, dropping the one listed longest ago', async () => {
    const chain = escrow()
    const store = new MemoryStore()
    const server = processOn(chain, { index: { shards: 1, perShard: 3 } })
    for (const n of [8, 9, 10, 11, 12]) await server.channels.saveChannel(store, id(n), chain.state(id(n)))
    expect(await server.channels.indexedChannels(store)).toEqual([id(10), id(11), id(12)])
  })

  it('keeps its keys alive while batches read them, though no channel is opened', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const chain = escrow()
    const store = new MemoryStore({ now: () => Date.now() })
    const server = processOn(chain)
    await server.channels.saveChannel(store, id(13), chain.state(id(13)))
    vi.setSystemTime(Date.now() + ttlMs / 2)
    expect(await server.channels.indexedChannels(store)).toEqual([id(13)])
    // Past the TTL of the open that listed it: the read above wrote the key again.
    vi.setSystemTime(Date.now() + (ttlMs * 3) / 4)
    expect(await server.channels.indexedChannels(store)).toEqual([id(13)])
  })

  it('a settle that reverts by itself is reported once, not sent again by each sweep for the same amount', async () => {
    const chain = escrow()
    const store = new MemoryStore()
    const crashed = processOn(chain)
    await crashed.serve(store, id(14), 1_000n, bad)
    await crashed.serve(store, id(15), 1_000n)
    const server = processOn(chain)
    expect(await server.settle(store)).toBeDefined()
    expect(chain.settled.get(id(15))).toBe(1_000n)
    expect(server.reported.map((e) => (e as { reason?: string }).reason)).toEqual(['settle-reverted'])
    const batches = chain.sent.length
    expect(await server.settle(store, true)).toBeUndefined()
    expect(chain.sent).toHaveLength(batches)
    expect(server.reported).toHaveLength(1)
  })

  it('a channel another process settled while this batch was sent is dropped without a report', async () => {
    const chain = escrow()
    const store = new MemoryStore()
    const [a, b] = [processOn(chain), processOn(chain)]
    await a.serve(store, id(16), 2_000n)
    await a.serve(store, id(17), 1_000n)
    // Process a's batch lands first (both listed the same channel): b's reverts for id(16).
    chain.before(() => chain.settled.set(id(16), 2_000n))
    expect(await b.settle(store)).toBeDefined()
    expect(chain.settled.get(id(17))).toBe(1_000n)
    expect(b.reported).toEqual([])
  })
})
