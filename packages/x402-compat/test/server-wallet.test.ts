// The server's own wallet under load and under refusal, on anvil: payments it submits at the same moment
// (EIP-3009 `authorization`, `permit2`) each settle once, however many share its nonce sequence; and a
// definite refusal (no balance, a reverting simulation, a facilitator saying invalid) answers without
// searching the chain's logs for a lost settlement, which only an unknown outcome needs.
import { receipt } from '@mppkit/core/client'
import { createWalletClient, custom, type Hex, http, parseAbiItem, publicActions } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { charge as chargeClient } from '../src/client/index.js'
import type { CredentialType } from '../src/Methods.js'
import type { Facilitator, Reader, Wallet } from '../src/server/index.js'
import { balanceOf, chainOf, walletOf } from './peers.js'
import { approvePermit2, challengeOf, nativeServer, send, url } from './requests.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
let permit2Reason: string | undefined
beforeAll(async () => {
  if (reason) return
  devnet = await startTempo({ accounts: 8 })
  permit2Reason = await approvePermit2(devnet.info, [1, 2, 3, 4])
})
afterAll(async () => {
  await devnet?.stop()
})

/**
 * Dev account `index` as a wallet+public client whose JSON-RPC calls are counted by method (every call
 * the server makes through it: sends, simulations, receipts, log searches).
 */
function countingWalletOf(index: number) {
  const info = devnet.info
  const calls = new Map<string, number>()
  const inner = http(info.rpcUrl, { timeout: 10_000 })({ chain: chainOf(info) })
  const transport = custom({
    request: ({ method, params }: { method: string; params?: unknown }) => {
      calls.set(method, (calls.get(method) ?? 0) + 1)
      return inner.request({ method, params } as never)
    },
  })
  const wallet = createWalletClient({
    account: privateKeyToAccount(info.accounts[index]!.privateKey),
    chain: chainOf(info),
    transport,
  }).extend(publicActions)
  return { wallet, count: (method: string) => calls.get(method) ?? 0 }
}

function setup(
  types: CredentialType[],
  options: { wallet?: Wallet; client?: Reader; facilitator?: Facilitator } = {},
) {
  return nativeServer(devnet.info, types, options)
}

/** A signed credential of `account` for a fresh challenge of `handler`, ready to present. */
async function credentialFor(
  handler: (request: Request) => Promise<Response>,
  account: ReturnType<typeof privateKeyToAccount>,
) {
  const challenge = await challengeOf(handler)
  const paid = await chargeClient({ account }).createPayload({
    challenge,
    request: challenge.request as never,
    url,
  })
  return () => send(handler, challenge, paid.payload, paid.source)
}

const transferEvent = parseAbiItem('event Transfer(address indexed from, address indexed to, uint256 value)')

/** The token's `Transfer` logs to `to` from block `fromBlock` on, by transaction hash. */
async function transfersTo(to: Hex, fromBlock: bigint) {
  const logs = await walletOf(devnet.info, 0).getLogs({
    address: devnet.info.eip3009Token,
    event: transferEvent,
    args: { to },
    fromBlock,
    toBlock: 'latest',
  })
  return logs.map((log) => ({ hash: log.transactionHash, from: log.args.from!, value: log.args.value! }))
}

describe.skipIf(reason)('evm charge, payments the server’s wallet submits at the same moment', () => {
  /** Eight payments, two from each of payers 1–4, presented at once; each must settle exactly once. */
  async function concurrently(types: CredentialType[]) {
    const { info, payTo, handler, runs } = setup(types)
    const payers = [1, 2, 3, 4].map((index) => privateKeyToAccount(info.accounts[index]!.privateKey))
    const presents = await Promise.all([...payers, ...payers].map((payer) => credentialFor(handler, payer)))
    const balances = await Promise.all(payers.map((payer) => balanceOf(info, payer.address)))
    const before = await balanceOf(info, payTo)
    const fromBlock = (await walletOf(info, 0).getBlockNumber()) + 1n
    const responses = await Promise.all(presents.map((present) => present()))
    const bodies = await Promise.all(responses.map((response) => response.clone().text()))
    expect(
      responses.map((response) => response.status),
      bodies.join('\n'),
    ).toEqual(Array(8).fill(200))
    expect(runs()).toBe(8)
    // One transfer of 900 per payment, in eight distinct transactions, two from each payer.
    const transfers = await transfersTo(payTo, fromBlock)
    expect(transfers).toHaveLength(8)
    expect(new Set(transfers.map((transfer) => transfer.hash)).size).toBe(8)
    expect(transfers.every((transfer) => transfer.value === 900n)).toBe(true)
    expect((await balanceOf(info, payTo)) - before).toBe(8n * 900n)
    for (const [index, payer] of payers.entries())
      expect(balances[index]! - (await balanceOf(info, payer.address))).toBe(1800n)
  }

  it('eight EIP-3009 authorizations settled by the wallet at once: all served, each transferred once', async () => {
    await concurrently(['authorization'])
  }, 60_000)

  it('eight permits submitted by the wallet at once: all served, each transferred once', async (context) => {
    if (permit2Reason) return context.skip(permit2Reason)
    await concurrently(['permit2'])
  }, 60_000)
})

describe.skipIf(reason)(
  'evm charge, a definite refusal does not search the chain for a lost settlement',
  () => {
    it('an authorization from an empty wallet (the simulation reverts): refused, no log search', async () => {
      const { wallet, count } = countingWalletOf(7)
      const { handler, runs } = setup(['authorization'], { wallet: wallet as unknown as Wallet })
      const present = await credentialFor(handler, privateKeyToAccount(generatePrivateKey()))
      for (let attempt = 0; attempt < 3; attempt++) {
        const response = await present()
        expect(response.status).toBe(402)
        expect(((await response.json()) as { reason?: string }).reason).toBe('authorization-reverts')
      }
      expect(count('eth_call')).toBeGreaterThan(0)
      expect(count('eth_getLogs')).toBe(0)
      expect(count('eth_sendRawTransaction')).toBe(0)
      expect(runs()).toBe(0)
    })

    it('a permit from an empty wallet (balance too low): refused, no log search', async (context) => {
      if (permit2Reason) return context.skip(permit2Reason)
      const { wallet, count } = countingWalletOf(7)
      const { handler, runs } = setup(['permit2'], { wallet: wallet as unknown as Wallet })
      const present = await credentialFor(handler, privateKeyToAccount(generatePrivateKey()))
      for (let attempt = 0; attempt < 3; attempt++) {
        const response = await present()
        expect(response.status).toBe(402)
        expect(((await response.json()) as { reason?: string }).reason).toBe('insufficient-balance')
      }
      expect(count('eth_getLogs')).toBe(0)
      expect(count('eth_sendRawTransaction')).toBe(0)
      expect(runs()).toBe(0)
    })

    it('an authorization the facilitator calls invalid: refused, no log search', async () => {
      const { wallet, count } = countingWalletOf(0)
      let settles = 0
      const refusing: Facilitator = {
        verify: async () => ({ isValid: false, invalidReason: 'insufficient_funds' }),
        settle: async () => {
          settles++
          throw new Error('never asked')
        },
      }
      const { handler, runs } = setup(['authorization'], {
        facilitator: refusing,
        client: wallet as unknown as Reader,
      })
      const present = await credentialFor(handler, privateKeyToAccount(generatePrivateKey()))
      const response = await present()
      expect(response.status).toBe(402)
      expect(((await response.json()) as { reason?: string }).reason).toBe('insufficient_funds')
      expect(count('eth_getLogs')).toBe(0)
      expect(settles).toBe(0)
      expect(runs()).toBe(0)
    })
  },
)

describe.skipIf(reason)('evm charge, type="authorization": a lost answer of the server’s wallet', () => {
  it('a retry refused by the chain (the authorization is used) still finds the settlement that landed', async () => {
    const info = devnet.info
    // The wallet's transaction lands, then its answer is lost; the log search is down too: a 503.
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
    let searches = 0
    const reader = {
      ...base,
      getLogs: (args: never) => {
        searches++
        return logsDown
          ? Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
          : base.getLogs(args)
      },
    } as unknown as Reader
    const { payTo, handler, runs } = setup(['authorization'], { wallet: losing, client: reader })
    const before = await balanceOf(info, payTo)
    const present = await credentialFor(handler, privateKeyToAccount(info.accounts[5]!.privateKey))
    const first = await present()
    expect(first.status).toBe(503)
    expect(searches).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    // The retry: its simulation reverts (the authorization is used), a refusal, but an earlier attempt's
    // outcome was unknown: the chain is searched, and the payment that landed serves the payer once.
    logsDown = false
    const retry = await present()
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(searches).toBe(2)
    expect(runs()).toBe(1)
    expect(sent).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
  })
})

describe.skipIf(reason)(
  'evm charge, type="authorization": a copy lands before the wallet’s transaction',
  () => {
    it('the wallet’s transaction reverts after broadcast (an unknown outcome): the copy that paid serves once', async () => {
      const info = devnet.info
      // Anyone holding the authorization may submit it: here a copy is mined just before the server's own
      // transaction, which then reverts on chain (the authorization is used) after it was broadcast.
      const real = walletOf(info, 7)
      const other = walletOf(info, 0)
      let copy: Hex | undefined
      const racing = {
        ...real,
        sendTransaction: async (args: { to: Hex; data: Hex }) => {
          copy = await other.sendTransaction({ to: args.to, data: args.data, gas: 300_000n })
          await other.waitForTransactionReceipt({ hash: copy })
          return real.sendTransaction(args as never)
        },
      } as unknown as Wallet
      const { payTo, handler, runs } = setup(['authorization'], { wallet: racing })
      const before = await balanceOf(info, payTo)
      const present = await credentialFor(handler, privateKeyToAccount(info.accounts[5]!.privateKey))
      const first = await present()
      expect(first.status, await first.clone().text()).toBe(200)
      expect(receipt(first)!.reference).toBe(copy)
      expect(runs()).toBe(1)
      expect((await balanceOf(info, payTo)) - before).toBe(900n)
    })
  },
)
