// Session server on anvil while the payer leaves the channel behind the server's back: a forced close
// requested (or a withdrawal) during a metered stream, and a top-up presented again on a channel the
// payer withdrew. Found by the 2026-12-05 audit of the session server.
import { randomBytes } from 'node:crypto'
import { Challenge, Credential } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { bytesToHex, encodeFunctionData, erc20Abi, type Hex, zeroAddress } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  advanceTempoTime,
  startTempo,
  streamChannelEscrowAbi,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import * as Channel from '../src/Channel.js'
import { escrowAbi } from '../src/internal/escrow.js'
import { walletClientFor } from '../src/internal/rpc.js'
import { type SessionMeter, type SessionOptions, sessionServer } from '../src/server/index.js'
import * as Voucher from '../src/Voucher.js'
import { readChannel } from './helpers.js'

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
  type Handler = (r: Request) => Promise<Response>

  function setup(extra: Partial<SessionOptions>, chunks?: () => AsyncIterable<string>) {
    const payee = privateKeyToAccount(devnet.info.accounts[0]!.privateKey)
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: payee,
      escrow: devnet.info.escrow,
      timeout: 5_000,
      voucherTimeout: 2_000,
      ...extra,
    })
    const server = createServer({ realm: 'session.test', secrets: [secret], methods: [method] })
    const handler: Handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      (_request, payment) => (chunks ? (payment.context as SessionMeter).sse(chunks()) : new Response('ok')),
    )
    return { handler }
  }
  const send = async (handler: Handler, payload: Record<string, unknown>) => {
    const challenge = Challenge.parseAll(
      (await handler(new Request('https://session.test/r'))).headers.get('www-authenticate')!,
    )[0]!
    return handler(
      new Request('https://session.test/r', {
        headers: { authorization: Credential.format({ challenge, payload }) },
      }),
    )
  }
  const payerWallet = (index: number) =>
    walletClientFor({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      account: privateKeyToAccount(devnet.info.accounts[index]!.privateKey),
    })
  const signCalls = async (index: number, calls: { to: Hex; data: Hex }[]) => {
    const wallet = payerWallet(index)
    const prepared = await wallet.prepareTransactionRequest({
      calls,
      gas: 1_500_000n,
      nonceKey: 0n,
      nonce: await wallet.getTransactionCount({ address: wallet.account.address, blockTag: 'pending' }),
    } as never)
    return (await wallet.signTransaction(prepared as never)) as Hex
  }
  const approve = (amount: bigint) => ({
    to: devnet.info.tokens.pathUsd,
    data: encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [devnet.info.escrow, amount] }),
  })
  const voucher = (index: number, channelId: Hex, amount: bigint) =>
    Voucher.sign(privateKeyToAccount(devnet.info.accounts[index]!.privateKey), {
      chainId: devnet.info.chainId,
      escrow: devnet.info.escrow,
      channelId,
      cumulativeAmount: amount,
    })
  const open = async (handler: Handler, index: number, deposit: bigint, first: bigint) => {
    const salt = bytesToHex(randomBytes(32))
    const channelId = Channel.computeId({
      payer: devnet.info.accounts[index]!.address,
      payee: devnet.info.accounts[0]!.address,
      token: devnet.info.tokens.pathUsd,
      salt,
      authorizedSigner: zeroAddress,
      escrow: devnet.info.escrow,
      chainId: devnet.info.chainId,
    })
    const transaction = await signCalls(index, [
      approve(deposit),
      {
        to: devnet.info.escrow,
        data: encodeFunctionData({
          abi: escrowAbi,
          functionName: 'open',
          args: [devnet.info.accounts[0]!.address, devnet.info.tokens.pathUsd, deposit, salt, zeroAddress],
        }),
      },
    ])
    const response = await send(handler, {
      action: 'open',
      type: 'transaction',
      channelId,
      transaction,
      cumulativeAmount: String(first),
      signature: await voucher(index, channelId, first),
    })
    return { response, channelId }
  }
  const payerCall = async (index: number, functionName: 'requestClose' | 'withdraw', channelId: Hex) => {
    const { walletClient, publicClient } = tempoClients({
      ...devnet.info,
      privateKey: devnet.info.accounts[index]!.privateKey,
    })
    const hash = await walletClient.writeContract({
      address: devnet.info.escrow,
      abi: streamChannelEscrowAbi,
      functionName,
      args: [channelId],
      gas: 300_000n,
    } as never)
    await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 })
  }

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
