import { MemoryStore, type Store } from '@mppkit/core'
import type { Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import { createSettlementSchedule } from './Settlement.js'

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
    await sleep(60)
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
})
