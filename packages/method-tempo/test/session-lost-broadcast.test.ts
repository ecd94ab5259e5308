// A session open or top-up whose broadcast the node took while the RPC went away before the server saw
// the outcome. Unlike a charge (whose lost pull broadcast keeps its challenge used, see the conformance
// kit's `consumed` case), these only fund the payer's own escrow channel, so the server answers 503 +
// Retry-After and the same credential, sent again, is served once: the reason the session fixture of the
// kit gives no `outageAfterPayment`.
import { randomBytes } from 'node:crypto'
import { Challenge, Credential } from '@mppkit/core'
import { bytesToHex, encodeFunctionData, zeroAddress } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoRpc,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import * as Channel from '../src/Channel.js'
import { escrowAbi } from '../src/internal/escrow.js'
import { readChannel, rpcProxy } from './helpers.js'
import { type Handler, sessionHarness } from './sessionHarness.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-lost-broadcast-secret-0123'
const price = 1_000n

describe.skipIf(!!reason)('tempo/session: an open or top-up broadcast whose outcome was lost', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const { setup, signCalls, approve, voucher } = sessionHarness(() => devnet, { secret, price })

  /** One credential for a fresh challenge, to be submitted as many times as a test wants. */
  const credential = async (handler: Handler, payload: Record<string, unknown>) => {
    const challenge = Challenge.parseAll(
      (await handler(new Request('https://session.test/r'))).headers.get('www-authenticate')!,
    )[0]!
    const authorization = Credential.format({ challenge, payload })
    return () => handler(new Request('https://session.test/r', { headers: { authorization } }))
  }

  it('is answered 503 + Retry-After, and the same credential is then served once', async () => {
    const proxy = await rpcProxy(devnet.info.rpcUrl)
    try {
      const { handler } = setup({ rpcUrl: proxy.url, timeout: 2_000 })
      let served = 0
      const counted: Handler = async (request) => {
        const response = await handler(request)
        if (response.status === 200 && (await response.clone().text()) === 'ok') served++
        return response
      }
      const payee = devnet.info.accounts[0]!.address
      const salt = bytesToHex(randomBytes(32))
      const deposit = 3n * price
      const channelId = Channel.computeId({
        payer: devnet.info.accounts[1]!.address,
        payee,
        token: devnet.info.tokens.pathUsd,
        salt,
        authorizedSigner: zeroAddress,
        escrow: devnet.info.escrow,
        chainId: devnet.info.chainId,
      })
      const openTx = await signCalls(1, [
        approve(deposit),
        {
          to: devnet.info.escrow,
          data: encodeFunctionData({
            abi: escrowAbi,
            functionName: 'open',
            args: [payee, devnet.info.tokens.pathUsd, deposit, salt, zeroAddress],
          }),
        },
      ])
      const open = await credential(counted, {
        action: 'open',
        type: 'transaction',
        channelId,
        transaction: openTx,
        cumulativeAmount: String(price),
        signature: await voucher(1, channelId, price),
      })

      proxy.set('send-then-down')
      const lost = await open()
      proxy.set('up')
      expect(lost.status, await lost.clone().text()).toBe(503)
      expect(Number(lost.headers.get('retry-after'))).toBeGreaterThan(0)
      // The node took it: the channel is open on chain, and nothing was served or spent.
      expect(await readChannel(devnet.info, channelId)).toMatchObject({ deposit, settled: 0n })
      expect(served).toBe(0)
      const retried = await open()
      expect(retried.status, await retried.clone().text()).toBe(200)
      expect(served).toBe(1)
      // Spent once; the credential is used now.
      const receipt = JSON.parse(
        Buffer.from(retried.headers.get('payment-receipt')!, 'base64url').toString(),
      ) as Record<string, unknown>
      expect(receipt).toMatchObject({ reference: channelId, spent: String(price) })
      expect((await open()).status).toBe(402)
      expect(served).toBe(1)

      // A top-up the same way: the deposit grows once, the same credential then succeeds.
      const topUpTx = await signCalls(1, [
        approve(price),
        {
          to: devnet.info.escrow,
          data: encodeFunctionData({ abi: escrowAbi, functionName: 'topUp', args: [channelId, price] }),
        },
      ])
      const topUp = await credential(counted, {
        action: 'topUp',
        type: 'transaction',
        channelId,
        transaction: topUpTx,
        additionalDeposit: String(price),
      })
      proxy.set('send-then-down')
      const lostTopUp = await topUp()
      proxy.set('up')
      expect(lostTopUp.status, await lostTopUp.clone().text()).toBe(503)
      expect(Number(lostTopUp.headers.get('retry-after'))).toBeGreaterThan(0)
      expect((await readChannel(devnet.info, channelId)).deposit).toBe(deposit + price)
      const toppedUp = await topUp()
      expect(toppedUp.status, await toppedUp.clone().text()).toBe(200)
      expect((await readChannel(devnet.info, channelId)).deposit).toBe(deposit + price)
      expect(served).toBe(1)
    } finally {
      await proxy.close()
    }
  })

  it('an open the node holds unmined is answered 503 + Retry-After while it waits (never transaction-rejected), and served once mined', async () => {
    const automine = (on: boolean) => tempoRpc(devnet.info.rpcUrl, 'evm_setAutomine', [on])
    // The server gives the node 1 s to mine: a broadcast the node keeps unmined times out.
    const { handler } = setup({ timeout: 1_000 })
    const payee = devnet.info.accounts[0]!.address
    const salt = bytesToHex(randomBytes(32))
    const deposit = 3n * price
    const channelId = Channel.computeId({
      payer: devnet.info.accounts[2]!.address,
      payee,
      token: devnet.info.tokens.pathUsd,
      salt,
      authorizedSigner: zeroAddress,
      escrow: devnet.info.escrow,
      chainId: devnet.info.chainId,
    })
    const openTx = await signCalls(2, [
      approve(deposit),
      {
        to: devnet.info.escrow,
        data: encodeFunctionData({
          abi: escrowAbi,
          functionName: 'open',
          args: [payee, devnet.info.tokens.pathUsd, deposit, salt, zeroAddress],
        }),
      },
    ])
    const open = await credential(handler, {
      action: 'open',
      type: 'transaction',
      channelId,
      transaction: openTx,
      cumulativeAmount: String(price),
      signature: await voucher(2, channelId, price),
    })
    try {
      await automine(false)
      const first = await open()
      expect(first.status, await first.clone().text()).toBe(503)
      // Sent again while the node still holds it: the node refuses a second copy, yet the first may
      // still be mined, so the answer is 503 again, not a refusal.
      const again = await open()
      expect(again.status, await again.clone().text()).toBe(503)
      expect(Number(again.headers.get('retry-after'))).toBeGreaterThan(0)
      expect((await again.json()) as { reason?: string }).toMatchObject({ reason: 'transaction-pending' })
      await automine(true)
      await tempoRpc(devnet.info.rpcUrl, 'evm_mine', [])
      const served = await open()
      expect(served.status, await served.clone().text()).toBe(200)
      expect(await readChannel(devnet.info, channelId)).toMatchObject({ deposit, settled: 0n })
    } finally {
      await automine(true)
    }
  })
})
