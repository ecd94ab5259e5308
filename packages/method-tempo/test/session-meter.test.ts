// The session meter a paid route gets as `payment.context`: a negative or fractional count of units is
// a programming error, refused before anything is deducted (a negative one would lower `spent` and let
// the payer be served again on a voucher already used up; found in review, 2026-12-06).

import { ConfigurationError, MemoryStore } from '@mppkit/core'
import type { Address, Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import { createChannelStore } from '../src/server/session/ChannelStore.js'
import { createMeter } from '../src/server/session/Meter.js'

const payee: Address = '0x00000000000000000000000000000000000000a1'
const currency: Address = '0x20c0000000000000000000000000000000000000'
const channelId: Hex = `0x${'33'.repeat(32)}`

async function spentChannel() {
  const store = new MemoryStore()
  const channels = createChannelStore({
    ttlMs: 60_000,
    stateTtl: 60_000,
    payee,
    currency,
    readChannel: async () => undefined,
  })
  // A voucher for 100 accepted and fully spent.
  await channels.accept(store, channelId, 100n, '0xsig', 0n)
  expect(await channels.deduct(store, channelId, 100n)).toMatchObject({ ok: true, spent: 100n })
  const meter = createMeter({
    channels,
    store,
    channelId,
    price: 10n,
    challengeId: 'challenge-1',
    minDelta: 0n,
    voucherTimeout: 1_000,
    closed: () => false,
    channelReadAt: Date.now(),
  })
  return { store, channels, meter }
}

describe('SessionMeter units', () => {
  it('charge() refuses a negative or fractional count, and spent stays where it was', async () => {
    const { store, channels, meter } = await spentChannel()
    for (const units of [-5, 1.5, Number.NaN, '2' as unknown as number])
      await expect(meter.charge(units)).rejects.toBeInstanceOf(ConfigurationError)
    expect(await channels.spentOf(store, channelId)).toBe(100n)
    // The channel is used up: nothing more is served on it without a new voucher.
    expect(await meter.charge(1)).toBe(false)
    expect((await channels.deduct(store, channelId, 10n)).ok).toBe(false)
    expect(await meter.charge(0)).toBe(true)
  })

  it('sse() refuses a negative unitsPerChunk before streaming, and a deduction cannot be negative', async () => {
    const { store, channels, meter } = await spentChannel()
    expect(() => meter.sse(['a', 'b'], { unitsPerChunk: -1 })).toThrow(ConfigurationError)
    await expect(channels.deduct(store, channelId, -50n)).rejects.toThrow(/negative/)
    expect(await channels.spentOf(store, channelId)).toBe(100n)
  })
})
