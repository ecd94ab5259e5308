import { create as createClient, receipt } from '@mppkit/core/client'
import { encodeFunctionData, erc20Abi, type Hex, keccak256, parseGwei, parseTransaction } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoRpc,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { charge as chargeClient } from '../src/client/index.js'
import type { CredentialType } from '../src/Methods.js'
import * as Permit2 from '../src/Permit2.js'
import type { Reader, Wallet } from '../src/server/index.js'
import { asFetch, balanceOf, walletOf } from './peers.js'
import { challengeOf, nativeServer, send, url } from './requests.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
let permit2Reason: string | undefined
beforeAll(async () => {
  if (reason) return
  devnet = await startTempo({ accounts: 8 })
  const code = await walletOf(devnet.info, 0).getCode({ address: Permit2.permit2Address })
  if (!code || code === '0x') permit2Reason = 'Permit2 is not deployed at its canonical address on this node'
})
afterAll(async () => {
  await devnet?.stop()
})

function setup(types: CredentialType[], options: { wallet?: Wallet; client?: Reader } = {}) {
  return nativeServer(devnet.info, types, options)
}

/** Dev account `index` (gas paid in the node's fee token), left holding exactly `tokens`, approving Permit2 for `allowance`. */
async function payerWith(index: number, tokens: bigint, allowance: bigint) {
  const info = devnet.info
  const wallet = walletOf(info, index)
  const rest = (await balanceOf(info, wallet.account.address)) - tokens
  const write = async (functionName: 'transfer' | 'approve', args: readonly [Hex, bigint]) => {
    const hash = await wallet.writeContract({
      address: info.eip3009Token,
      abi: erc20Abi,
      functionName,
      args,
      gas: 100_000n,
    })
    await wallet.waitForTransactionReceipt({ hash })
  }
  if (rest > 0n) await write('transfer', [info.faucet, rest])
  await write('approve', [Permit2.permit2Address, allowance])
  return privateKeyToAccount(info.accounts[index]!.privateKey)
}

const until = async (check: () => Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

describe.skipIf(reason)('evm charge, a transaction replaced before it is mined', () => {
  it('is not paid for by the replacement’s receipt: the payment serves once (by the hash that landed)', async () => {
    const { info, payTo, handler, runs } = setup(['transaction', 'hash'])
    const payer = walletOf(info, 4)
    const key = privateKeyToAccount(info.accounts[4]!.privateKey)
    const prepared = await payer.prepareTransactionRequest({
      to: info.eip3009Token,
      data: encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [payTo, 900n] }),
      type: 'eip1559',
      gas: 100_000n,
      maxFeePerGas: parseGwei('20'),
      maxPriorityFeePerGas: parseGwei('1'),
    })
    const { account: _account, ...fields } = prepared as Record<string, unknown>
    const original = await key.signTransaction(fields as never)
    // The same transfer, repriced (the payer bumps its fee): same sender, nonce and calldata.
    const repriced = await key.signTransaction({
      ...(fields as object),
      maxFeePerGas: parseGwei('40'),
      maxPriorityFeePerGas: parseGwei('2'),
    } as never)
    expect(parseTransaction(repriced).nonce).toBe(parseTransaction(original).nonce)
    const before = await balanceOf(info, payTo)
    await tempoRpc(info.rpcUrl, 'evm_setAutomine', [false])
    let first: Response
    try {
      const pending = send(handler, await challengeOf(handler), { type: 'transaction', signature: original })
      // The server broadcast the original and is waiting for its receipt (it has seen it pending) …
      await until(
        async () => (await tempoRpc(info.rpcUrl, 'eth_getTransactionByHash', [keccak256(original)])) !== null,
      )
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      // … when the payer's repriced copy replaces it, and that copy is mined.
      await tempoRpc(info.rpcUrl, 'eth_sendRawTransaction', [repriced])
      await tempoRpc(info.rpcUrl, 'evm_mine', [])
      first = await pending
    } finally {
      await tempoRpc(info.rpcUrl, 'evm_setAutomine', [true])
    }
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    // The repriced copy, presented by its hash, is the payment that landed.
    const byHash = await send(handler, await challengeOf(handler), {
      type: 'hash',
      hash: keccak256(repriced),
    })
    // One transfer of 900: one service, whichever credential it is served under.
    expect([first.status, byHash.status].filter((status) => status === 200)).toHaveLength(1)
    expect(runs()).toBe(1)
    expect(first.status).toBe(402)
    expect((await first.json()).reason).toBe('transaction-replaced')
    expect(byHash.status).toBe(200)
  }, 30_000)
})

describe.skipIf(reason)('evm charge, a hash of a transfer the server (or a facilitator) submitted', () => {
  it('an authorization the server settled is not paid for again by its transaction hash', async () => {
    const { info, payTo, handler, runs } = setup(['authorization', 'hash'])
    const client = createClient({
      methods: [chargeClient({ account: privateKeyToAccount(info.accounts[1]!.privateKey) })],
      fetch: asFetch(handler),
    })
    const before = await balanceOf(info, payTo)
    const paid = await client.fetch(url)
    expect(paid.status, await paid.clone().text()).toBe(200)
    const reference = receipt(paid)!.reference as Hex
    // Anyone watching the chain sees the settlement and presents its hash for another challenge.
    const again = await send(handler, await challengeOf(handler), { type: 'hash', hash: reference })
    expect(again.status).toBe(402)
    expect((await again.json()).reason).toBe('transfer-mismatch')
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
  })

  it('a permit the server submitted is not paid for again by its transaction hash', async (context) => {
    if (permit2Reason) return context.skip(permit2Reason)
    const { info, payTo, handler, runs } = setup(['permit2', 'hash'])
    const payer = await payerWith(3, 10_000n, 10_000n)
    const before = await balanceOf(info, payTo)
    const client = createClient({ methods: [chargeClient({ account: payer })], fetch: asFetch(handler) })
    const paid = await client.fetch(url)
    expect(paid.status, await paid.clone().text()).toBe(200)
    const again = await send(handler, await challengeOf(handler), {
      type: 'hash',
      hash: receipt(paid)!.reference,
    })
    expect(again.status).toBe(402)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
  })
})

describe.skipIf(reason)('evm charge, type="permit2", a lost answer', () => {
  it('a payer whose balance and allowance the landed permit used up is still served by the retry', async (context) => {
    if (permit2Reason) return context.skip(permit2Reason)
    const info = devnet.info
    // Exactly one payment's worth of tokens and of Permit2 allowance.
    const payer = await payerWith(2, 900n, 900n)
    // The server's submission lands, its answer is lost, and the lookup cannot run (logs down): a 503.
    const real = walletOf(info, 7)
    let sent = 0
    const losing = {
      ...real,
      sendTransaction: async (args: never) => {
        const hash = await real.sendTransaction(args)
        await real.waitForTransactionReceipt({ hash })
        sent++
        throw new Error('socket hang up')
      },
    } as unknown as Wallet
    const base = walletOf(info, 0)
    let logsDown = true
    const reader = {
      ...base,
      getLogs: (args: never) =>
        logsDown
          ? Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
          : base.getLogs(args),
    } as unknown as Reader
    const { payTo, handler, runs } = setup(['permit2'], { wallet: losing, client: reader })
    const challenge = await challengeOf(handler)
    const paid = await chargeClient({ account: payer }).createPayload({
      challenge,
      request: challenge.request as never,
      url,
    })
    const before = await balanceOf(info, payTo)
    const first = await send(handler, challenge, paid.payload, paid.source)
    expect(first.status).toBe(503)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    expect(await balanceOf(info, payer.address)).toBe(0n)
    // The retry: the payer has nothing left (the permit took it), but its permit paid: it is served.
    logsDown = false
    const retry = await send(handler, challenge, paid.payload, paid.source)
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    expect(sent).toBe(1)
  })
})

describe.skipIf(reason)('evm charge, type="authorization" settled by the server’s wallet', () => {
  it('an authorization that cannot pay (no balance) is refused before the wallet spends gas on it', async () => {
    const { info, handler, runs } = setup(['authorization'])
    const payer = privateKeyToAccount(generatePrivateKey()) // holds no token
    const server = walletOf(info, 7)
    const nonce = await server.getTransactionCount({ address: server.account.address })
    const client = createClient({ methods: [chargeClient({ account: payer })], fetch: asFetch(handler) })
    const response = await client.fetch(url).catch((error: unknown) => error)
    expect(response).toBeInstanceOf(Response)
    expect((response as Response).status).toBe(402)
    expect(((await (response as Response).json()) as { reason?: string }).reason).toBe(
      'authorization-reverts',
    )
    // Nothing was sent from the server's wallet.
    expect(await server.getTransactionCount({ address: server.account.address })).toBe(nonce)
    expect(runs()).toBe(0)
  })
})
