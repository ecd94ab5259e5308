// Session server on anvil: vouchers the escrow could never redeem (v = 0/1) are refused, a channel whose
// settle reverts never keeps the others unsettled, and what is settled on chain is never served again
// once the store has forgotten the channel (state expired, or an in-memory store restarted).
import { randomBytes } from 'node:crypto'
import { Challenge, Credential, MemoryStore, type PaymentError, type Store } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { bytesToHex, encodeFunctionData, erc20Abi, type Hex, zeroAddress } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import * as Channel from '../src/Channel.js'
import { escrowAbi } from '../src/internal/escrow.js'
import { walletClientFor } from '../src/internal/rpc.js'
import { sessionServer } from '../src/server/index.js'
import * as Voucher from '../src/Voucher.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-settled-secret-0123456789ab'
const price = 1_000n
/** A 65-byte signature re-encoded with v = 0/1: the same key off chain, refused by the escrow's ecrecover. */
const toV01 = (signature: Hex) =>
  `${signature.slice(0, 130)}${(Number.parseInt(signature.slice(130), 16) - 27).toString(16).padStart(2, '0')}` as Hex
/** The same store without the optional `atomic` capability (the session server's other path). */
const withoutAtomic = (store: Store): Store => ({
  putIfAbsent: (k, v, t) => store.putIfAbsent(k, v, t),
  get: (k) => store.get(k),
  set: (k, v, t) => store.set(k, v, t),
  delete: (k) => store.delete(k),
  compareAndSet: (k, e, n, t) => store.compareAndSet(k, e, n, t),
  increment: (k, d, o) => store.increment(k, d, o),
})

describe.skipIf(!!reason)('tempo/session: what can be settled, and what is settled', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 5 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  function setup(store: Store = new MemoryStore()) {
    const payee = privateKeyToAccount(devnet.info.accounts[0]!.privateKey)
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: payee,
      escrow: devnet.info.escrow,
      timeout: 5_000,
    })
    const errors: unknown[] = []
    const server = createServer({
      realm: 'session.test',
      secrets: [secret],
      methods: [method],
      store,
      onError: (error) => errors.push(error),
    })
    let served = 0
    const handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => {
        served++
        return new Response('ok')
      },
    )
    const send = async (payload: Record<string, unknown>) => {
      const challenge = Challenge.parseAll(
        (await handler(new Request('https://session.test/r'))).headers.get('www-authenticate')!,
      )[0]!
      return handler(
        new Request('https://session.test/r', {
          headers: { authorization: Credential.format({ challenge, payload }) },
        }),
      )
    }
    return { method, send, served: () => served, errors }
  }

  const sign = (index: number, channelId: Hex, amount: bigint) =>
    Voucher.sign(privateKeyToAccount(devnet.info.accounts[index]!.privateKey), {
      chainId: devnet.info.chainId,
      escrow: devnet.info.escrow,
      channelId,
      cumulativeAmount: amount,
    })
  const openTransaction = async (index: number, salt: Hex, deposit: bigint) => {
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
      nonce: await wallet.getTransactionCount({ address: account.address, blockTag: 'pending' }),
    } as never)
    return (await wallet.signTransaction(prepared as never)) as Hex
  }
  /** Opens a channel of payer `index` with a first voucher of one price; returns its id and open payload. */
  const open = async (send: (payload: Record<string, unknown>) => Promise<Response>, index: number) => {
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
    const payload = {
      action: 'open',
      type: 'transaction',
      channelId,
      transaction: await openTransaction(index, salt, 100_000n),
    }
    const response = await send({
      ...payload,
      cumulativeAmount: String(price),
      signature: await sign(index, channelId, price),
    })
    expect(response.status, await response.clone().text()).toBe(200)
    return { channelId, payload }
  }
  const voucherPayload = async (index: number, channelId: Hex, amount: bigint) => ({
    action: 'voucher',
    channelId,
    cumulativeAmount: String(amount),
    signature: await sign(index, channelId, amount),
  })

  it('a voucher signed with v = 0/1 is refused as an invalid signature (402), never served', async () => {
    const { send, served, method } = setup()
    const { channelId } = await open(send, 1)
    const before = served()
    const payload = await voucherPayload(1, channelId, 2n * price)
    const response = await send({ ...payload, signature: toV01(payload.signature) })
    expect(response.status).toBe(402)
    expect((await response.json()).type).toMatch(/session\/invalid-signature$/)
    expect(served()).toBe(before)
    // The same voucher with v 27/28 is served.
    expect((await send(payload)).status).toBe(200)
    method.stop()
  })

  it('a channel whose settle reverts is left out of the batch and reported: the others settle', async () => {
    const store = new MemoryStore()
    const { send, method, errors } = setup(store)
    const honest = (await open(send, 2)).channelId
    const other = (await open(send, 3)).channelId
    for (const [index, channelId] of [
      [2, honest],
      [3, other],
    ] as const)
      expect((await send(await voucherPayload(index, channelId, 2n * price))).status).toBe(200)
    // A consumed voucher the escrow refuses (stored before v = 0/1 was refused, or any settle that
    // reverts on its own): it must not revert the honest channel's settlement with it.
    const refused = toV01(await sign(3, other, 2n * price))
    await store.set(
      `mppkit:m:tempo/session:ok:${other.toLowerCase()}`,
      JSON.stringify({ amount: String(2n * price), signature: refused }),
      60_000,
    )
    const hash = await method.settleChannels()
    expect(hash).toBeDefined()
    const { publicClient } = tempoClients(devnet.info)
    expect((await publicClient.getTransactionReceipt({ hash: hash! })).status).toBe('success')
    expect((await readChannel(devnet.info, honest)).settled).toBe(2n * price)
    expect((await readChannel(devnet.info, other)).settled).toBe(0n)
    expect(errors.map((error) => (error as PaymentError).reason)).toContain('settle-reverted')
    // Dropped, not retried with every batch: nothing is left to settle.
    expect(await method.settleChannels()).toBeUndefined()
    method.stop()
  })

  it.each([
    ['with', (store: Store) => store],
    ['without', withoutAtomic],
  ])(
    'a store that forgot the channel (%s atomic) never serves what is settled on chain again',
    async (_, wrap) => {
      const first = setup(wrap(new MemoryStore()))
      const index = _ === 'with' ? 4 : 1
      const { channelId, payload } = await open(first.send, index)
      for (let amount = 2n; amount <= 5n; amount++)
        expect((await first.send(await voucherPayload(index, channelId, amount * price))).status).toBe(200)
      await first.method.settleChannels()
      expect((await readChannel(devnet.info, channelId)).settled).toBe(5n * price)
      first.method.stop()

      // A new process on an empty store (a restarted in-memory store, or the channel's keys expired).
      const { send, served, method } = setup(wrap(new MemoryStore()))
      // Below the settled amount: refused before anything is stored ("`voucher.cumulativeAmount >=
      // channel.settled`").
      const below = await send(await voucherPayload(index, channelId, 4n * price))
      expect(below.status).toBe(402)
      expect((await below.json()).reason).toBe('amount-not-increasing')
      // The settled voucher again: spent starts at the settled amount, so it pays for nothing.
      const old = await voucherPayload(index, channelId, 5n * price)
      for (let i = 0; i < 3; i++) {
        const response = await send(old)
        expect(response.status).toBe(402)
        expect((await response.json()).spent).toBe(String(5n * price))
      }
      expect(served()).toBe(0)
      method.stop()

      // Another empty store: a re-open of the channel with its settled voucher authorizes nothing new.
      const again = setup(wrap(new MemoryStore()))
      const reopen = await again.send({
        ...payload,
        cumulativeAmount: String(5n * price),
        signature: await sign(index, channelId, 5n * price),
      })
      expect(reopen.status).toBe(402)
      expect((await reopen.json()).spent).toBe(String(5n * price))
      // A voucher above it pays for exactly what it adds.
      const next = await again.send(await voucherPayload(index, channelId, 6n * price))
      expect(next.status).toBe(200)
      expect(again.served()).toBe(1)
      expect((await again.send(await voucherPayload(index, channelId, 6n * price))).status).toBe(402)
      await again.method.settleChannels()
      expect((await readChannel(devnet.info, channelId)).settled).toBe(6n * price)
      again.method.stop()
    },
  )
})
