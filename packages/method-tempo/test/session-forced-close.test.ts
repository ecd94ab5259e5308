// Session server on anvil while the payer leaves the channel behind the server's back: a forced close
// requested (or a withdrawal) during a metered stream, and a top-up presented again on a channel the
// payer withdrew. Found by the 2026-12-05 audit of the session server.
import { encodeFunctionData, type Hex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  advanceTempoTime,
  startTempo,
  type TempoDevnet,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { escrowAbi } from '../src/internal/escrow.js'
import { readChannel } from './helpers.js'
import { sessionHarness } from './sessionHarness.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-forced-close-secret-012345'
const price = 1_000n
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(!!reason)('tempo/session: the payer leaves while the server serves', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 4 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const onChain = (channelId: Hex) => readChannel(devnet.info, channelId)

  const { setup, send, signCalls, approve, open, payerCall } = sessionHarness(() => devnet, {
    secret,
    price,
  })

  it('a metered stream stops within channelStateTtl once the payer requests a forced close', async () => {
    // "Servers MUST reject vouchers on channels with a pending forced close to prevent service delivery
    // that cannot be settled": a stream on a pre-authorized voucher delivers service too.
    const interval = 50
    let yielded = 0
    async function* ticks() {
      for (let i = 0; i < 80; i++) {
        await sleep(interval)
        yielded++
        yield `t${i}`
      }
    }
    const { handler } = setup({ unitsPerRequest: 0, channelStateTtl: 200 }, ticks)
    const authorized = 100n * price
    const { response, channelId } = await open(handler, 1, authorized, authorized)
    expect(response.status).toBe(200)
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let text = ''
    const messages = () => [...text.matchAll(/^data: t\d+$/gm)].length
    let closeRequested: Promise<number> | undefined
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      text += value
      if (!closeRequested && messages() >= 3)
        closeRequested = payerCall(1, 'requestClose', channelId).then(() => yielded)
    }
    const atClose = await closeRequested!
    expect((await onChain(channelId)).closeRequestedAt).toBeGreaterThan(0n)
    // Within the state TTL (200 ms at 50 ms a chunk) plus one re-read: a few chunks, never the 80.
    expect(atClose).toBeLessThan(40)
    expect(messages() - atClose).toBeLessThanOrEqual(10)
    expect(text).toMatch(/event: payment-receipt\n/)
  })

  it('a top-up presented again after the payer withdrew is refused: the channel is finalized', async () => {
    const { handler } = setup({ channelStateTtl: 200 })
    const { response, channelId } = await open(handler, 2, 2n * price, price)
    expect(response.status, await response.clone().text()).toBe(200)
    const topUp = {
      action: 'topUp',
      type: 'transaction',
      channelId,
      transaction: await signCalls(2, [
        approve(price),
        {
          to: devnet.info.escrow,
          data: encodeFunctionData({ abi: escrowAbi, functionName: 'topUp', args: [channelId, price] }),
        },
      ]),
      additionalDeposit: String(price),
    }
    const first = await send(handler, topUp)
    expect(first.status, await first.clone().text()).toBe(200)
    await payerCall(2, 'requestClose', channelId)
    await advanceTempoTime(devnet.info.rpcUrl, 16 * 60)
    await payerCall(2, 'withdraw', channelId)
    expect((await onChain(channelId)).finalized).toBe(true)
    // "Query the escrow contract to verify updated channel state: … Channel is not finalized"
    const again = await send(handler, topUp)
    expect(again.status, await again.clone().text()).toBe(410)
    expect(((await again.json()) as { type: string }).type).toMatch(/session\/channel-finalized$/)
  })
})
