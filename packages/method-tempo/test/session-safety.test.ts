// Session server safety on anvil: cases an audit found where a payer could be served without funds
// that can be settled (an inflated re-open, a forced close or withdrawal behind a cached channel), and
// SSE metering details (`requiredCumulative` with `minVoucherDelta`, the final receipt on a timeout).
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
import { readChannel, rpcProxy } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-safety-secret-0123456789ab'
const price = 1_000n

describe.skipIf(!!reason)('tempo/session safety on anvil', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 6 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const onChain = (channelId: Hex) => readChannel(devnet.info, channelId)

  function setup(extra: Partial<SessionOptions> = {}, sse = false) {
    const payee = privateKeyToAccount(devnet.info.accounts[0]!.privateKey)
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: payee,
      escrow: devnet.info.escrow,
      timeout: 5_000,
      voucherTimeout: 3_000,
      ...extra,
    })
    const server = createServer({ realm: 'session.test', secrets: [secret], methods: [method] })
    let served = 0
    const handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      (_request, payment) => {
        served++
        return sse ? (payment.context as SessionMeter).sse(['a', 'b', 'c']) : new Response('ok')
      },
    )
    return { handler, served: () => served }
  }
  const challengeOf = async (handler: (r: Request) => Promise<Response>) =>
    Challenge.parseAll(
      (await handler(new Request('https://session.test/r'))).headers.get('www-authenticate')!,
    )[0]!
  const send = async (
    handler: (r: Request) => Promise<Response>,
    payload: Record<string, unknown>,
    method = 'GET',
  ) => {
    const challenge = await challengeOf(handler)
    return handler(
      new Request('https://session.test/r', {
        method,
        headers: { authorization: Credential.format({ challenge, payload }) },
      }),
    )
  }
  const openTransaction = async (index: number, salt: Hex, deposit: bigint, nonce?: number) => {
    const account = privateKeyToAccount(devnet.info.accounts[index]!.privateKey)
    const wallet = walletClientFor({ rpcUrl: devnet.info.rpcUrl, chainId: devnet.info.chainId, account })
    const prepared = await wallet.prepareTransactionRequest({
      calls: [
        {
          to: devnet.info.tokens.pathUsd,
          data: encodeFunctionData({
            abi: erc20Abi,
            functionName: 'approve',
            args: [devnet.info.escrow, deposit],
          }),
        },
        {
          to: devnet.info.escrow,
          data: encodeFunctionData({
            abi: escrowAbi,
            functionName: 'open',
            args: [devnet.info.accounts[0]!.address, devnet.info.tokens.pathUsd, deposit, salt, zeroAddress],
          }),
        },
      ],
      gas: 1_500_000n,
      nonceKey: 0n,
      nonce: nonce ?? (await wallet.getTransactionCount({ address: account.address, blockTag: 'pending' })),
    } as never)
    return (await wallet.signTransaction(prepared as never)) as Hex
  }
  const channelOf = (index: number, salt: Hex) =>
    Channel.computeId({
      payer: devnet.info.accounts[index]!.address,
      payee: devnet.info.accounts[0]!.address,
      token: devnet.info.tokens.pathUsd,
      salt,
      authorizedSigner: zeroAddress,
      escrow: devnet.info.escrow,
      chainId: devnet.info.chainId,
    })
  const voucher = (index: number, channelId: Hex, amount: bigint) =>
    Voucher.sign(privateKeyToAccount(devnet.info.accounts[index]!.privateKey), {
      chainId: devnet.info.chainId,
      escrow: devnet.info.escrow,
      channelId,
      cumulativeAmount: amount,
    })
  const open = async (
    handler: (r: Request) => Promise<Response>,
    index: number,
    deposit: bigint,
    first: bigint,
  ) => {
    const salt = bytesToHex(randomBytes(32))
    const channelId = channelOf(index, salt)
    const transaction = await openTransaction(index, salt, deposit)
    const response = await send(handler, {
      action: 'open',
      type: 'transaction',
      channelId,
      transaction,
      cumulativeAmount: String(first),
      signature: await voucher(index, channelId, first),
    })
    return { response, channelId, salt }
  }

  it('a re-open of an existing channel claiming a larger deposit is held to the on-chain deposit', async () => {
    const { handler, served } = setup()
    const { response, channelId, salt } = await open(handler, 1, 2n * price, price)
    expect(response.status, await response.clone().text()).toBe(200)
    // A never-broadcast open with the same salt (same channel id) claiming 1,000× the deposit.
    const big = 1_000n * price
    const inflated = await openTransaction(1, salt, big, 999)
    for (let i = 0; i < 3; i++) {
      const refused = await send(handler, {
        action: 'open',
        type: 'transaction',
        channelId,
        transaction: inflated,
        cumulativeAmount: String(big),
        signature: await voucher(1, channelId, big),
      })
      expect(refused.status).toBe(402)
      expect(((await refused.json()) as { type: string }).type).toMatch(/session\/amount-exceeds-deposit$/)
    }
    expect(served()).toBe(1)
    expect((await onChain(channelId)).deposit).toBe(2n * price)
  })

  it('a re-sent open of a channel topped up since is held to the on-chain deposit, not its own', async () => {
    const { handler, served } = setup()
    const salt = bytesToHex(randomBytes(32))
    const channelId = channelOf(1, salt)
    const transaction = await openTransaction(1, salt, 2n * price)
    const openWith = async (amount: bigint) =>
      send(handler, {
        action: 'open',
        type: 'transaction',
        channelId,
        transaction,
        cumulativeAmount: String(amount),
        signature: await voucher(1, channelId, amount),
      })
    expect((await openWith(price)).status).toBe(200)
    // Topped up to 5 prices on chain.
    const account = privateKeyToAccount(devnet.info.accounts[1]!.privateKey)
    const wallet = walletClientFor({ rpcUrl: devnet.info.rpcUrl, chainId: devnet.info.chainId, account })
    const additional = 3n * price
    const prepared = await wallet.prepareTransactionRequest({
      calls: [
        {
          to: devnet.info.tokens.pathUsd,
          data: encodeFunctionData({
            abi: erc20Abi,
            functionName: 'approve',
            args: [devnet.info.escrow, additional],
          }),
        },
        {
          to: devnet.info.escrow,
          data: encodeFunctionData({ abi: escrowAbi, functionName: 'topUp', args: [channelId, additional] }),
        },
      ],
      gas: 800_000n,
      nonceKey: 0n,
      nonce: await wallet.getTransactionCount({ address: account.address, blockTag: 'pending' }),
    } as never)
    const topUp = await send(handler, {
      action: 'topUp',
      type: 'transaction',
      channelId,
      transaction: (await wallet.signTransaction(prepared as never)) as Hex,
      additionalDeposit: String(additional),
    })
    expect(topUp.status, await topUp.clone().text()).toBe(200)
    // The same open presented again (a client showing the channel to a server that lost it): a voucher
    // above the open call's 2 prices but within the chain's 5 is served, one above 5 is not.
    const again = await openWith(4n * price)
    expect(again.status, await again.clone().text()).toBe(200)
    const beyond = await openWith(6n * price)
    expect(beyond.status).toBe(402)
    expect(((await beyond.json()) as { type: string }).type).toMatch(/session\/amount-exceeds-deposit$/)
    expect(served()).toBe(2)
    expect((await onChain(channelId)).deposit).toBe(5n * price)
  })

  it('vouchers stop being served once the payer requests a forced close, and after withdrawal', async () => {
    const { handler, served } = setup({ channelStateTtl: 200 })
    const authorized = 10n * price
    const { response, channelId } = await open(handler, 2, 10n * price, authorized)
    expect(response.status).toBe(200)
    const signature = await voucher(2, channelId, authorized)
    const again = () =>
      send(handler, { action: 'voucher', channelId, cumulativeAmount: String(authorized), signature })
    expect((await again()).status).toBe(200) // prepaid balance, same voucher: served
    const { walletClient, publicClient } = tempoClients({
      ...devnet.info,
      privateKey: devnet.info.accounts[2]!.privateKey,
    })
    const requestClose = await walletClient.writeContract({
      address: devnet.info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'requestClose',
      args: [channelId],
      gas: 300_000n,
    } as never)
    await publicClient.waitForTransactionReceipt({ hash: requestClose })
    expect((await onChain(channelId)).closeRequestedAt).toBeGreaterThan(0n)
    await new Promise((resolve) => setTimeout(resolve, 300)) // past channelStateTtl
    const closing = await again()
    expect(closing.status).toBe(410)
    expect(((await closing.json()) as { type: string }).type).toMatch(/session\/channel-finalized$/)
    await advanceTempoTime(devnet.info.rpcUrl, 16 * 60)
    const withdraw = await walletClient.writeContract({
      address: devnet.info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'withdraw',
      args: [channelId],
      gas: 300_000n,
    } as never)
    await publicClient.waitForTransactionReceipt({ hash: withdraw })
    expect((await onChain(channelId)).finalized).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect((await again()).status).toBe(410)
    expect(served()).toBe(2)
  })

  it('nothing is served while a cooperative close is on its way: the capture covers every request served', async () => {
    const proxy = await rpcProxy(devnet.info.rpcUrl)
    try {
      const { handler, served } = setup({ rpcUrl: proxy.url })
      const authorized = 20n * price
      const { response, channelId } = await open(handler, 3, authorized, authorized)
      expect(response.status, await response.clone().text()).toBe(200)
      const signature = await voucher(3, channelId, authorized)
      const request = () =>
        send(handler, { action: 'voucher', channelId, cumulativeAmount: String(authorized), signature })
      expect((await request()).status).toBe(200)
      // The close reads spent (2 requests) and sends its transaction: held at the node's door.
      proxy.set('hold-send')
      const closing = send(handler, {
        action: 'close',
        channelId,
        cumulativeAmount: String(2n * price),
        signature: await voucher(3, channelId, 2n * price),
      })
      await proxy.held()
      const during = await Promise.all([request(), request(), request()])
      for (const refused of during) {
        expect(refused.status).toBe(410)
        expect(((await refused.json()) as { type: string }).type).toMatch(/session\/channel-finalized$/)
      }
      // A second close while the first is on its way is refused too (one close transaction).
      const second = await send(handler, {
        action: 'close',
        channelId,
        cumulativeAmount: String(2n * price),
        signature: await voucher(3, channelId, 2n * price),
      })
      expect(second.status).toBe(410)
      proxy.release()
      const closed = await closing
      expect(closed.status, await closed.clone().text()).toBe(200)
      expect(served()).toBe(2)
      const channel = await onChain(channelId)
      expect(channel.finalized).toBe(true)
      expect((await request()).status).toBe(410)
    } finally {
      await proxy.close()
    }
  })

  it('a close refused or without an answer: the channel serves again, or holds until a retried close', async () => {
    const proxy = await rpcProxy(devnet.info.rpcUrl)
    try {
      const { handler, served } = setup({ rpcUrl: proxy.url, timeout: 1_500 })
      const authorized = 20n * price
      const { response, channelId } = await open(handler, 4, authorized, authorized)
      expect(response.status, await response.clone().text()).toBe(200)
      const signature = await voucher(4, channelId, authorized)
      const request = () =>
        send(handler, { action: 'voucher', channelId, cumulativeAmount: String(authorized), signature })
      // A close signed for less than was spent: refused, and the mark goes with it.
      const short = await send(handler, {
        action: 'close',
        channelId,
        cumulativeAmount: String(0n),
        signature: await voucher(4, channelId, 0n),
      })
      expect(short.status).toBe(402)
      expect((await request()).status).toBe(200)
      const close = async () =>
        send(handler, {
          action: 'close',
          channelId,
          cumulativeAmount: String(2n * price),
          signature: await voucher(4, channelId, 2n * price),
        })
      // The node is unreachable for the close: 503 and nothing captured, but the close may have reached
      // it, so nothing is spent on the channel until a close is retried.
      proxy.set('down')
      expect((await close()).status).toBe(503)
      proxy.set('up')
      expect((await request()).status).toBe(410)
      const closed = await close()
      expect(closed.status, await closed.clone().text()).toBe(200)
      expect(served()).toBe(2)
      expect((await onChain(channelId)).finalized).toBe(true)
      expect((await onChain(channelId)).settled).toBe(2n * price)
    } finally {
      await proxy.close()
    }
  })

  it('a close whose answer is lost after the node took it: nothing more is served, the capture stands', async () => {
    const proxy = await rpcProxy(devnet.info.rpcUrl)
    try {
      const { handler, served } = setup({ rpcUrl: proxy.url, timeout: 1_500 })
      const authorized = 20n * price
      const { response, channelId } = await open(handler, 5, authorized, authorized)
      expect(response.status, await response.clone().text()).toBe(200)
      const signature = await voucher(5, channelId, authorized)
      const request = () =>
        send(handler, { action: 'voucher', channelId, cumulativeAmount: String(authorized), signature })
      proxy.set('lose-send')
      const lost = await send(handler, {
        action: 'close',
        channelId,
        cumulativeAmount: String(price),
        signature: await voucher(5, channelId, price),
      })
      // The answer lost, the escrow is read back: finalized at this close's amount, so the close is done.
      expect(lost.status, await lost.clone().text()).toBe(200)
      proxy.set('up')
      expect((await onChain(channelId)).finalized).toBe(true)
      expect((await request()).status).toBe(410)
      expect(served()).toBe(1)
      expect((await onChain(channelId)).settled).toBe(price)
    } finally {
      await proxy.close()
    }
  })

  it('a topUp on an unknown or expired challenge is session/challenge-not-found (402, fresh challenge)', async () => {
    const { handler } = setup()
    const { response, channelId, salt } = await open(handler, 5, 2n * price, price)
    expect(response.status).toBe(200)
    const challenge = await challengeOf(handler)
    const payload = {
      action: 'topUp',
      type: 'transaction',
      channelId,
      transaction: await openTransaction(5, salt, price),
      additionalDeposit: String(price),
    }
    for (const echoed of [
      { ...challenge, id: `${challenge.id}x` },
      { ...challenge, expires: '2020-01-01T00:00:00Z' },
    ]) {
      const refused = await handler(
        new Request('https://session.test/r', {
          headers: { authorization: Credential.format({ challenge: echoed, payload }) },
        }),
      )
      expect(refused.status).toBe(402)
      expect(refused.headers.get('www-authenticate')).toMatch(/^Payment /)
      expect(((await refused.json()) as { type: string }).type).toBe(
        'https://paymentauth.org/problems/session/challenge-not-found',
      )
    }
    // Other actions keep the core's problems.
    const voucherOnUnknown = await handler(
      new Request('https://session.test/r', {
        headers: {
          authorization: Credential.format({
            challenge: { ...challenge, id: `${challenge.id}x` },
            payload: {
              action: 'voucher',
              channelId,
              cumulativeAmount: String(price),
              signature: await voucher(5, channelId, price),
            },
          }),
        },
      }),
    )
    expect(((await voucherOnUnknown.json()) as { type: string }).type).toMatch(/problems\/invalid-challenge$/)
  })

  const readEvents = async (response: Response, onNeed?: (need: Record<string, string>) => Promise<void>) => {
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    const events: { event: string; data: string }[] = []
    let buffer = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      buffer += value
      let end = buffer.indexOf('\n\n')
      while (end >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message'
        const data = [...block.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).join('\n')
        events.push({ event, data })
        if (event === 'payment-need-voucher' && onNeed) await onNeed(JSON.parse(data))
        end = buffer.indexOf('\n\n')
      }
    }
    return events
  }

  it('payment-need-voucher names a requiredCumulative the server accepts under minVoucherDelta', async () => {
    const { handler } = setup({ unitsPerRequest: 0, minVoucherDelta: 5n * price }, true)
    const { response, channelId } = await open(handler, 3, 20n * price, price)
    expect(response.status).toBe(200)
    const needs: Record<string, string>[] = []
    const events = await readEvents(response, async (need) => {
      needs.push(need)
      const amount = BigInt(need.requiredCumulative!)
      const sent = await send(
        handler,
        {
          action: 'voucher',
          channelId,
          cumulativeAmount: String(amount),
          signature: await voucher(3, channelId, amount),
        },
        'HEAD',
      )
      expect(sent.status).toBe(200)
    })
    expect(needs.length).toBeGreaterThan(0)
    // At least `minVoucherDelta` above the accepted voucher (1000 + 5000).
    expect(needs[0]).toMatchObject({ acceptedCumulative: '1000', requiredCumulative: '6000' })
    expect(events.filter((e) => e.event === 'message').map((e) => e.data)).toEqual(['a', 'b', 'c'])
    expect(events.at(-1)?.event).toBe('payment-receipt')
  })

  it('a stream whose voucher never comes ends with the receipt of what was delivered', async () => {
    const { handler } = setup({ unitsPerRequest: 0, voucherTimeout: 300 }, true)
    const { response } = await open(handler, 4, 20n * price, price)
    expect(response.status).toBe(200)
    const events = await readEvents(response)
    expect(events.map((e) => e.event)).toEqual(['message', 'payment-need-voucher', 'payment-receipt'])
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({
      spent: '1000',
      acceptedCumulative: '1000',
      units: 1,
    })
  })
})
