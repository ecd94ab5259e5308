import { MemoryStore, type Store } from '@mppkit/core'
import type { Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import type { ChannelState, SessionChain } from './Chain.js'
import { createChannelStore } from './ChannelStore.js'
import { createSettlement, createSettlementSchedule } from './Settlement.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('createSettlementSchedule', () => {
  const recorder = (options: { fail?: boolean; delayMs?: number } = {}) => {
    const calls: Store[] = []
    let running = 0
    let overlapped = false
    const settle = async (store: Store): Promise<Hex | undefined> => {
      running++
      if (running > 1) overlapped = true
      calls.push(store)
      await sleep(options.delayMs ?? 0)
      running--
      if (options.fail) throw new Error('node unreachable')
      return '0x01'
    }
    return { settle, calls, overlapped: () => overlapped }
  }

  it('runs a timer per attached server, reports its errors, and stops it on that server’s abort', async () => {
    const { settle, calls } = recorder({ fail: true })
    const schedule = createSettlementSchedule(settle, 10)
    const store = new MemoryStore()
    const reported: unknown[] = []
    const lifetime = new AbortController()
    schedule.attach({ store, report: (e) => reported.push(e), signal: lifetime.signal })
    // Two timer batches (10 ms apart): waited for, not timed, since a loaded machine runs timers late.
    for (let waited = 0; calls.length < 2 && waited < 5_000; waited += 20) await sleep(20)
    expect(calls.length).toBeGreaterThanOrEqual(2)
    lifetime.abort()
    await schedule.close()
    // Read after close: a timer batch can be mid-flight at any instant before it (called, not yet
    // failed), and close resolves only once no batch is running, each failure reported.
    expect(reported.length).toBe(calls.length)
    const settled = calls.length
    await sleep(60)
    expect(calls.length).toBe(settled)
  })

  it('close settles only the closed server’s store, once, and leaves the other attached', async () => {
    const { settle, calls } = recorder()
    const schedule = createSettlementSchedule(settle, 3_600_000)
    const [a, b] = [new MemoryStore(), new MemoryStore()]
    const [lifeA, lifeB] = [new AbortController(), new AbortController()]
    schedule.attach({ store: a, report: () => {}, signal: lifeA.signal })
    schedule.attach({ store: b, report: () => {}, signal: lifeB.signal })
    lifeA.abort()
    await schedule.close()
    expect(calls).toEqual([a])
    expect(await schedule.settleNow()).toBe('0x01')
    expect(calls).toEqual([a, b])
  })

  it('never flushes on close without a settleInterval, and never runs two batches at once', async () => {
    const { settle, calls, overlapped } = recorder({ delayMs: 10 })
    const schedule = createSettlementSchedule(settle, undefined)
    const lifetime = new AbortController()
    schedule.attach({ store: new MemoryStore(), report: () => {}, signal: lifetime.signal })
    await Promise.all([schedule.settleNow(), schedule.settleNow(), schedule.settleNow()])
    expect(calls).toHaveLength(3)
    expect(overlapped()).toBe(false)
    lifetime.abort()
    await schedule.close()
    expect(calls).toHaveLength(3)
  })

  it('skips a timer tick while that server’s batch still runs (a slow node builds no backlog)', async () => {
    const { settle, calls } = recorder({ delayMs: 100 })
    const schedule = createSettlementSchedule(settle, 10)
    const lifetime = new AbortController()
    schedule.attach({ store: new MemoryStore(), report: () => {}, signal: lifetime.signal })
    await sleep(250)
    lifetime.abort()
    await schedule.close()
    // ~3 batches in 250 ms of 100 ms each, plus the one close runs; not one per 10 ms tick.
    expect(calls.length).toBeGreaterThanOrEqual(2)
    expect(calls.length).toBeLessThanOrEqual(5)
  })
})

describe('createSettlement (channels awaiting settlement)', () => {
  const payee = '0x00000000000000000000000000000000000000a1'
  const currency = '0x20c0000000000000000000000000000000000000'
  const id = (n: number): Hex => `0x${n.toString(16).padStart(64, '0')}`
  const state = (fields: Partial<ChannelState> = {}): ChannelState => ({
    payer: '0x00000000000000000000000000000000000000b2',
    payee,
    token: currency,
    signer: '0x00000000000000000000000000000000000000b2',
    deposit: '10000',
    settled: '0',
    closeRequestedAt: '0',
    finalized: false,
    readAt: Date.now(),
    ...fields,
  })
  const setup = (maxDirty?: number, maxBatch?: number) => {
    const channels = createChannelStore({
      ttlMs: 60_000,
      stateTtl: 1_000,
      payee,
      currency,
      readChannel: async () => state(),
      ...(maxDirty === undefined ? {} : { maxDirty }),
    })
    const sent: unknown[] = []
    const batches: number[] = []
    const chain = {
      readChannel: async () => state(),
      sendAsPayee: async (calls: unknown[]) => {
        batches.push(calls.length)
        sent.push(...calls)
        return { status: 'success', transactionHash: '0x01' }
      },
      simulateAsPayee: async () => true,
    } as unknown as SessionChain
    const settlement = createSettlement({
      chain,
      channels,
      escrow: '0x00000000000000000000000000000000000000e5',
      ...(maxBatch === undefined ? {} : { maxBatch }),
    })
    return { channels, settlement, sent, batches, store: new MemoryStore() }
  }

  it('sends at most maxBatch settle calls per transaction: a large sweep goes out as several', async () => {
    const { channels, settlement, sent, batches, store } = setup(undefined, 2)
    for (const n of [1, 2, 3, 4, 5]) {
      await channels.saveChannel(store, id(n), state())
      await channels.deduct(store, id(n), 10n, { amount: '10', signature: '0x' as Hex })
    }
    expect(await settlement.settle(store)).toBe('0x01')
    expect(batches).toEqual([2, 2, 1])
    expect(sent).toHaveLength(5)
  })

  it('forgets channels with nothing left to settle: finalized, or gone from the store', async () => {
    const { channels, settlement, sent, store } = setup()
    const [gone, finalized, open] = [id(1), id(2), id(3)]
    for (const channelId of [gone, finalized, open]) channels.dirty.add(channelId)
    await channels.saveChannel(store, finalized, state({ finalized: true }))
    await channels.saveChannel(store, open, state())
    expect(await settlement.settle(store)).toBeUndefined()
    expect(sent).toEqual([])
    // The open channel's voucher is not consumed yet: it waits for a later batch.
    expect([...channels.dirty]).toEqual([open])
  })

  it('tracks at most maxDirty channels, forgetting the one spent on longest ago', async () => {
    const { channels, store } = setup(3)
    const voucher = { amount: '10', signature: '0x' as Hex }
    for (const n of [1, 2, 3, 4, 5]) await channels.deduct(store, id(n), 1n, voucher)
    expect([...channels.dirty]).toEqual([id(3), id(4), id(5)])
    // Spending again on a tracked channel makes it the newest.
    await channels.deduct(store, id(3), 1n, voucher)
    await channels.deduct(store, id(6), 1n, voucher)
    expect([...channels.dirty]).toEqual([id(5), id(3), id(6)])
  })
})
