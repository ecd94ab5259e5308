import { MemoryStore, PaymentError } from '@mppkit/core'
import type { Address, Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import type { ChannelState } from './Chain.js'
import { createChannelStore } from './ChannelStore.js'

const payee: Address = '0x00000000000000000000000000000000000000a1'
const currency: Address = '0x20c0000000000000000000000000000000000000'
const channelId: Hex = `0x${'22'.repeat(32)}`
const stateTtl = 1_000

const onChain: ChannelState = {
  payer: '0x00000000000000000000000000000000000000b2',
  payee,
  token: currency,
  signer: '0x00000000000000000000000000000000000000b2',
  deposit: '10000',
  settled: '0',
  closeRequestedAt: '0',
  finalized: false,
  readAt: 0,
}

/**
 * A channel store over a stand-in escrow whose reads are held until the test answers them: `reads`
 * lists the reads sent, `answer(state)` answers the oldest one (`undefined`: no such channel), `fail()`
 * makes it throw.
 */
function escrowWithHeldReads() {
  const pending: { resolve: (state: ChannelState | undefined) => void; reject: (error: Error) => void }[] = []
  const reads: Hex[] = []
  const channels = createChannelStore({
    ttlMs: 60_000,
    stateTtl,
    payee,
    currency,
    readChannel: (id) => {
      reads.push(id)
      return new Promise((resolve, reject) => pending.push({ resolve, reject }))
    },
  })
  const store = new MemoryStore()
  const settled = async () => {
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
  }
  return {
    channels,
    store,
    reads,
    answer: async (state: ChannelState | undefined) => {
      pending.shift()!.resolve(state)
      await settled()
    },
    fail: async () => {
      pending.shift()!.reject(new Error('rpc down'))
      await settled()
    },
    /** Stores a channel state read `age` ms ago, as another request or process would have. */
    stored: (state: ChannelState, age: number) =>
      store.set(`ch:${channelId}`, JSON.stringify({ ...state, readAt: Date.now() - age }), 60_000),
  }
}

describe('ChannelStore escrow reads', () => {
  it('shares one escrow read among the requests that find a channel stale', async () => {
    const escrow = escrowWithHeldReads()
    await escrow.stored(onChain, stateTtl + 500)
    const loads = Array.from({ length: 20 }, () =>
      escrow.channels.loadChannelRaw(escrow.store, channelId, true, true),
    )
    await new Promise((resolve) => setImmediate(resolve))
    expect(escrow.reads).toHaveLength(1)
    await escrow.answer({ ...onChain, deposit: '20000', readAt: Date.now() })
    const states = await Promise.all(loads)
    expect(new Set(states.map((s) => s.state.deposit))).toEqual(new Set(['20000']))
    // Stored once, for every process sharing the store.
    expect(JSON.parse((await escrow.store.get(`ch:${channelId}`))!).deposit).toBe('20000')
    // Read again only once it goes stale again: the next loads use this process's copy.
    await escrow.channels.loadChannelRaw(escrow.store, channelId, true, true)
    expect(escrow.reads).toHaveLength(1)
  })

  it('renews an aging channel in the background, never waiting for the chain before it is stale', async () => {
    const escrow = escrowWithHeldReads()
    // Past three quarters of stateTtl, not past it: served from what is held.
    await escrow.stored(onChain, (stateTtl * 7) / 8)
    const first = await escrow.channels.loadChannelRaw(escrow.store, channelId, true, true)
    expect(first.state.deposit).toBe('10000')
    expect(escrow.reads).toHaveLength(1)
    // More requests while the read is out: served at once, and no second read.
    for (let i = 0; i < 5; i++)
      expect((await escrow.channels.loadChannelRaw(escrow.store, channelId, true, true)).state.deposit).toBe(
        '10000',
      )
    expect(escrow.reads).toHaveLength(1)
    // The renewed state is this process's copy (and the store's) for the next requests.
    await escrow.answer({ ...onChain, deposit: '30000', readAt: Date.now() })
    const next = await escrow.channels.loadChannelRaw(escrow.store, channelId, true, true)
    expect(next.state.deposit).toBe('30000')
    expect(JSON.parse((await escrow.store.get(`ch:${channelId}`))!).deposit).toBe('30000')
    expect(escrow.reads).toHaveLength(1)
  })

  it('waits for a renewal in flight once the state it holds is stale', async () => {
    const escrow = escrowWithHeldReads()
    await escrow.stored(onChain, (stateTtl * 7) / 8)
    await escrow.channels.loadChannelRaw(escrow.store, channelId, true, true)
    expect(escrow.reads).toHaveLength(1)
    // The held state goes stale while the renewal is still out: the next request waits for it.
    await escrow.stored(onChain, stateTtl + 1)
    let done = false
    const waiting = escrow.channels.loadChannelRaw(escrow.store, channelId, true, false).then((r) => {
      done = true
      return r
    })
    await new Promise((resolve) => setImmediate(resolve))
    expect(done).toBe(false)
    expect(escrow.reads).toHaveLength(1)
    // A forced close the renewal finds is what the waiting request acts on.
    await escrow.answer({ ...onChain, closeRequestedAt: '1700000000', readAt: Date.now() })
    expect((await waiting).state.closeRequestedAt).toBe('1700000000')
  })

  it('leaves a failed renewal to the next request that must read, which then reads again', async () => {
    const escrow = escrowWithHeldReads()
    await escrow.stored(onChain, (stateTtl * 7) / 8)
    await escrow.channels.loadChannelRaw(escrow.store, channelId, true, true)
    await escrow.fail()
    await escrow.stored(onChain, stateTtl + 1)
    const failing = escrow.channels.loadChannelRaw(escrow.store, channelId, true, false)
    await new Promise((resolve) => setImmediate(resolve))
    expect(escrow.reads).toHaveLength(2)
    const refused = expect(failing).rejects.toThrow('rpc down')
    await escrow.fail()
    await refused
    const again = escrow.channels.loadChannelRaw(escrow.store, channelId, true, false)
    await new Promise((resolve) => setImmediate(resolve))
    expect(escrow.reads).toHaveLength(3)
    await escrow.answer({ ...onChain, readAt: Date.now() })
    expect((await again).state.deposit).toBe('10000')
  })

  it('never lets a read undo a state read after it was sent (a top-up stored meanwhile)', async () => {
    const escrow = escrowWithHeldReads()
    await escrow.stored(onChain, (stateTtl * 7) / 8)
    // A renewal goes out…
    await escrow.channels.loadChannelRaw(escrow.store, channelId, true, true)
    const sentAt = Date.now()
    expect(escrow.reads).toHaveLength(1)
    // …a top-up lands and its own read (sent after the renewal) is stored…
    await new Promise((resolve) => setTimeout(resolve, 5))
    await escrow.channels.saveChannel(escrow.store, channelId, {
      ...onChain,
      deposit: '50000',
      readAt: Date.now(),
    })
    // …then the renewal answers with what the escrow held when it was sent.
    await escrow.answer({ ...onChain, readAt: sentAt })
    expect(JSON.parse((await escrow.store.get(`ch:${channelId}`))!).deposit).toBe('50000')
    const next = await escrow.channels.loadChannelRaw(escrow.store, channelId, true, true)
    expect(next.state.deposit).toBe('50000')
    // A stale load that shares such a read gets the newer state too.
    await escrow.stored({ ...onChain, deposit: '50000' }, stateTtl + 1)
    const waiting = escrow.channels.loadChannelRaw(escrow.store, channelId, true, false)
    await new Promise((resolve) => setImmediate(resolve))
    const secondSent = Date.now() - 1
    await escrow.channels.saveChannel(escrow.store, channelId, {
      ...onChain,
      deposit: '70000',
      readAt: Date.now() + 1,
    })
    await escrow.answer({ ...onChain, deposit: '50000', readAt: secondSent })
    expect((await waiting).state.deposit).toBe('70000')
  })

  it('answers every request sharing a read of a channel that no longer exists with 410', async () => {
    const escrow = escrowWithHeldReads()
    const loads = Array.from({ length: 3 }, () =>
      escrow.channels.loadChannelRaw(escrow.store, channelId, true, true).then(
        () => undefined,
        (error: unknown) => error,
      ),
    )
    await new Promise((resolve) => setImmediate(resolve))
    expect(escrow.reads).toHaveLength(1)
    await escrow.answer(undefined)
    for (const error of await Promise.all(loads)) {
      expect(PaymentError.is(error) && error.status).toBe(410)
    }
  })
})
