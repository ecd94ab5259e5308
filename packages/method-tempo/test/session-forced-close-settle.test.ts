// Session server on anvil without `settleInterval`: once a re-read of the escrow shows that the payer
// requested a forced close, the fully consumed voucher the server holds is settled at once, without any
// `settleChannels()` call, before the grace period lets the payer withdraw what was served (audit
// 2026-12: "No settlement when a forced close is detected"). A failed settlement goes to onError.
import type { Hex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  advanceTempoTime,
  startTempo,
  type TempoDevnet,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { readChannel, rpcProxy } from './helpers.js'
import { type Handler, sessionHarness } from './sessionHarness.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-forced-close-settle-secret-01'
const price = 1_000n
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(!!reason)('tempo/session: a forced close is settled without settleChannels()', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 4 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const onChain = (channelId: Hex) => readChannel(devnet.info, channelId)

  const { setup, send, voucher, open, payerCall } = sessionHarness(() => devnet, {
    secret,
    price,
  })

  const pay = async (handler: Handler, index: number, channelId: Hex, amount: bigint) =>
    send(handler, {
      action: 'voucher',
      channelId,
      cumulativeAmount: String(amount),
      signature: await voucher(index, channelId, amount),
    })
  /** Polls the escrow until the channel's settled amount reaches `amount` (or `timeout` ms pass). */
  const settledReaches = async (channelId: Hex, amount: bigint, timeout = 10_000) => {
    const deadline = Date.now() + timeout
    for (;;) {
      const channel = await onChain(channelId)
      if (channel.settled >= amount || Date.now() > deadline) return channel
      await sleep(100)
    }
  }

  it('settles the consumed voucher once a re-read shows the forced close, before the grace period ends', async () => {
    const { handler, errors } = setup({ channelStateTtl: 200 })
    const { response, channelId } = await open(handler, 1, 10n * price, price)
    expect(response.status, await response.clone().text()).toBe(200)
    const paid = await pay(handler, 1, channelId, 2n * price)
    expect(paid.status, await paid.clone().text()).toBe(200)
    // The server holds a fully consumed voucher of 2 000, nothing settled on chain.
    expect((await onChain(channelId)).settled).toBe(0n)

    await payerCall(1, 'requestClose', channelId)
    await sleep(300)
    // The next voucher re-reads the escrow (the cached state is older than channelStateTtl): refused,
    // and the channel is settled in the background.
    const refused = await pay(handler, 1, channelId, 3n * price)
    expect(refused.status).toBe(410)

    const channel = await settledReaches(channelId, 2n * price)
    expect(channel.settled).toBe(2n * price)
    expect(channel.closeRequestedAt).toBeGreaterThan(0n)
    expect(channel.finalized).toBe(false)
    expect(errors).toEqual([])

    // After the grace period the payer withdraws what is left; what was served stays with the payee.
    await advanceTempoTime(devnet.info.rpcUrl, 16 * 60)
    await payerCall(1, 'withdraw', channelId)
    expect(await onChain(channelId)).toMatchObject({ finalized: true, settled: 2n * price })
  })

  it('hands a failed settlement of a force-closed channel to onError', async () => {
    const proxy = await rpcProxy(devnet.info.rpcUrl)
    try {
      const { handler, errors } = setup({ channelStateTtl: 200, rpcUrl: proxy.url })
      const { response, channelId } = await open(handler, 2, 10n * price, price)
      expect(response.status, await response.clone().text()).toBe(200)
      await payerCall(2, 'requestClose', channelId)
      await sleep(300)
      // The settle transaction reaches the node, its answer is lost.
      proxy.set('lose-send')
      expect((await pay(handler, 2, channelId, 2n * price)).status).toBe(410)
      const deadline = Date.now() + 10_000
      while (errors.length === 0 && Date.now() < deadline) await sleep(50)
      proxy.set('up')
      expect(errors).toHaveLength(1)
      expect((await settledReaches(channelId, price)).settled).toBe(price)
    } finally {
      await proxy.close()
    }
  })
})
