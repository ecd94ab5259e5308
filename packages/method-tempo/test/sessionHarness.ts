// A session server on the anvil devnet, driven credential by credential as a payer would (open, voucher,
// top-up) and left behind by that payer (requestClose, withdraw): shared by the forced-close tests.
import { randomBytes } from 'node:crypto'
import { Challenge, Credential } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { bytesToHex, encodeFunctionData, erc20Abi, type Hex, zeroAddress } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { streamChannelEscrowAbi, type TempoDevnet, tempoClients } from '../../devnet/src/tempo/index.js'
import * as Channel from '../src/Channel.js'
import { escrowAbi } from '../src/internal/escrow.js'
import { walletClientFor } from '../src/internal/rpc.js'
import { type SessionMeter, type SessionOptions, sessionServer } from '../src/server/index.js'
import * as Voucher from '../src/Voucher.js'

export type Handler = (r: Request) => Promise<Response>

/**
 * The harness on `devnet()` (read when called, so it can be made before the devnet starts): `setup`
 * serves one session route at `price` per request (an SSE stream of `chunks` when given), collecting
 * what goes to onError; the rest act as payer `index` (an account of the devnet; account 0 is the payee).
 */
export function sessionHarness(devnet: () => TempoDevnet, options: { secret: string; price: bigint }) {
  const { secret, price } = options
  const info = () => devnet().info

  function setup(extra: Partial<SessionOptions>, chunks?: () => AsyncIterable<string>) {
    const method = sessionServer({
      rpcUrl: info().rpcUrl,
      chainId: info().chainId,
      currency: info().tokens.pathUsd,
      account: privateKeyToAccount(info().accounts[0]!.privateKey),
      escrow: info().escrow,
      timeout: 5_000,
      voucherTimeout: 2_000,
      ...extra,
    })
    const errors: unknown[] = []
    const server = createServer({
      realm: 'session.test',
      secrets: [secret],
      methods: [method],
      onError: (error) => errors.push(error),
    })
    const handler: Handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      (_request, payment) => (chunks ? (payment.context as SessionMeter).sse(chunks()) : new Response('ok')),
    )
    return { handler, errors, server }
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
  const signCalls = async (index: number, calls: { to: Hex; data: Hex }[]) => {
    const wallet = walletClientFor({
      rpcUrl: info().rpcUrl,
      chainId: info().chainId,
      account: privateKeyToAccount(info().accounts[index]!.privateKey),
    })
    const prepared = await wallet.prepareTransactionRequest({
      calls,
      gas: 1_500_000n,
      nonceKey: 0n,
      nonce: await wallet.getTransactionCount({ address: wallet.account.address, blockTag: 'pending' }),
    } as never)
    return (await wallet.signTransaction(prepared as never)) as Hex
  }
  const approve = (amount: bigint) => ({
    to: info().tokens.pathUsd,
    data: encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [info().escrow, amount] }),
  })
  const voucher = (index: number, channelId: Hex, amount: bigint) =>
    Voucher.sign(privateKeyToAccount(info().accounts[index]!.privateKey), {
      chainId: info().chainId,
      escrow: info().escrow,
      channelId,
      cumulativeAmount: amount,
    })
  const open = async (handler: Handler, index: number, deposit: bigint, first: bigint) => {
    const salt = bytesToHex(randomBytes(32))
    const channelId = Channel.computeId({
      payer: info().accounts[index]!.address,
      payee: info().accounts[0]!.address,
      token: info().tokens.pathUsd,
      salt,
      authorizedSigner: zeroAddress,
      escrow: info().escrow,
      chainId: info().chainId,
    })
    const transaction = await signCalls(index, [
      approve(deposit),
      {
        to: info().escrow,
        data: encodeFunctionData({
          abi: escrowAbi,
          functionName: 'open',
          args: [info().accounts[0]!.address, info().tokens.pathUsd, deposit, salt, zeroAddress],
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
      ...info(),
      privateKey: info().accounts[index]!.privateKey,
    })
    const hash = await walletClient.writeContract({
      address: info().escrow,
      abi: streamChannelEscrowAbi,
      functionName,
      args: [channelId],
      gas: 300_000n,
    } as never)
    await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 })
  }
  return { setup, send, signCalls, approve, voucher, open, payerCall }
}
