import type { Store } from '@mppkit/core'
import type { DescribeMethodOptions, MethodFixture, MethodFlow } from '@mppkit/core/testing'
import { erc20Abi, type Hex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { expect } from 'vitest'
import { startTempo, type TempoDevnet, tempoClients } from '../../devnet/src/tempo/index.js'
import { chargeClient, type SessionClient, sessionClient } from '../src/client/index.js'
import { chargeServer, type SessionServer, sessionServer } from '../src/server/index.js'
import { readChannel, rpcProxy } from './helpers.js'

// Fixtures of the conformance kit (`describeMethod`) for Tempo charge and session on a fresh anvil each.
// The server reaches the node through an RPC proxy the outage cases turn off; clients reach it directly.
// The payee cases pay a real other account (`accounts[2]`) or another predeployed TIP-20 (AlphaUSD, which
// every dev account holds), so the client really can pay the changed request.

const chargeAmount = 250n

/**
 * Kit options for tempo/charge (pull mode): every case, an outage that counts transfers on chain, and a
 * failure after payment: the server broadcasts the payer's transaction and the RPC goes away before it
 * can learn the outcome (the transaction is mined all the same).
 */
export function tempoChargeKit(
  name: string,
  extra: { skip?: string | undefined; store?: () => Store | Promise<Store> } = {},
): DescribeMethodOptions {
  return {
    name,
    concurrency: 8,
    ...extra,
    async setup(): Promise<MethodFixture> {
      const node = await startTempo({ accounts: 3 })
      const { info } = node
      const proxy = await rpcProxy(info.rpcUrl)
      // A fresh recipient: its balance counts the settlements (the payer pays the fees).
      const recipient = privateKeyToAccount(generatePrivateKey()).address
      const received = () =>
        tempoClients(info).publicClient.readContract({
          address: info.tokens.pathUsd,
          abi: erc20Abi,
          functionName: 'balanceOf',
          args: [recipient],
        })
      return {
        server: chargeServer({
          rpcUrl: proxy.url,
          chainId: info.chainId,
          currency: info.tokens.pathUsd,
          recipient,
          timeout: 3_000,
        }),
        client: () =>
          chargeClient({
            account: privateKeyToAccount(info.accounts[1]!.privateKey),
            rpcUrl: info.rpcUrl,
            chainId: info.chainId,
          }),
        offer: { method: 'tempo', request: { amount: String(chargeAmount) } },
        problems: {
          wrongAmount: { type: 'verification-failed', reason: 'amount-mismatch' },
          wrongRecipient: { type: 'verification-failed', reason: 'recipient-mismatch' },
          wrongCurrency: { type: 'verification-failed', reason: 'token-mismatch' },
        },
        wrongRecipient: (request) => ({ ...request, recipient: info.accounts[2]!.address }),
        wrongCurrency: (request) => ({ ...request, currency: info.tokens.alphaUsd }),
        // The payer's nonce: any transaction of the payer's the server broadcast moves it.
        payerActivity: () =>
          tempoClients(info).publicClient.getTransactionCount({ address: info.accounts[1]!.address }),
        outage: {
          start: () => proxy.set('down'),
          stop: () => proxy.set('up'),
          settlements: async () => Number((await received()) / chargeAmount),
        },
        outageAfterPayment: {
          start: () => proxy.set('send-then-down'),
          stop: () => proxy.set('up'),
          settlements: async () => Number((await received()) / chargeAmount),
        },
        teardown: async () => {
          await proxy.close()
          await node.stop()
        },
      }
    },
  }
}

const price = 1_000n
const deposit = 10n * price
let sessionNode: TempoDevnet | undefined
let sessionMethod: SessionServer | undefined

/** The session flow: open → use ×3 → top up → close, each step's receipt and the escrow adding up. */
const sessionFlow: MethodFlow = {
  name: 'session: open → use ×3 → top up → close',
  sameReference: true,
  steps: [
    { name: 'open', receipt: { intent: 'session', acceptedCumulative: '1000', spent: '1000', units: 1 } },
    { name: 'use', receipt: { acceptedCumulative: '2000', spent: '2000' } },
    { name: 'use', receipt: { acceptedCumulative: '3000', spent: '3000' } },
    { name: 'use', receipt: { acceptedCumulative: '4000', spent: '4000' } },
    {
      name: 'top up',
      run: ({ client, url }) => (client as SessionClient).topUp(url, 5n * price),
      receipt: { deposit: String(deposit + 5n * price), spent: '4000' },
    },
    {
      name: 'close',
      run: ({ client, url }) => (client as SessionClient).close(url),
      receipt: { spent: '4000' },
    },
  ],
  async verify({ receipts, settles }) {
    expect(settles).toBe(6)
    const channelId = receipts[0]!.reference as Hex
    // Spent grows by one price per served request and never by a top-up or close.
    const spent = receipts.map((r) => BigInt(r.spent as string))
    expect(spent).toEqual([1n, 2n, 3n, 4n, 4n, 4n].map((n) => n * price))
    // The close captured exactly what was spent, and the deposit included the top-up.
    expect(await readChannel(sessionNode!.info, channelId)).toMatchObject({
      finalized: true,
      settled: 4n * price,
    })
    expect(receipts[5]!.txHash).toMatch(/^0x[0-9a-f]{64}$/)
  },
}

/**
 * Kit options for tempo/session (v1 escrow): every case, the session flow, and an RPC outage on open.
 *
 * No `outageAfterPayment` (the kit's `consumed` case stays skipped): no session step fails after paying
 * the payee in a way that must not be retried. An `open` or `topUp` whose broadcast outcome is lost only
 * moved the payer's funds into its own escrow channel (refundable, nothing captured), and the same
 * credential is safely retried: the server re-reads the channel, or finds the mined transaction's
 * receipt, and deducts the request once (session-lost-broadcast.test.ts: 503 + Retry-After, then the
 * same credential served once; the session client re-sends such opens and top-ups as they are).
 * Keeping the challenge used would turn that recovery into a refusal. What does
 * pay the payee, a voucher's deduction, is one store operation, and a close's challenge is reusable by
 * design (the escrow finalizes a channel once).
 */
export function tempoSessionKit(
  name: string,
  extra: { skip?: string | undefined; store?: () => Store | Promise<Store> } = {},
): DescribeMethodOptions {
  return {
    name,
    concurrency: 8,
    flows: [sessionFlow],
    ...extra,
    async setup(): Promise<MethodFixture> {
      const node = await startTempo({ accounts: 3 })
      sessionNode = node
      const { info } = node
      const proxy = await rpcProxy(info.rpcUrl)
      sessionMethod = sessionServer({
        rpcUrl: proxy.url,
        chainId: info.chainId,
        currency: info.tokens.pathUsd,
        account: privateKeyToAccount(info.accounts[0]!.privateKey),
        escrow: info.escrow,
        timeout: 3_000,
      })
      return {
        server: sessionMethod,
        client: ({ fetch }) =>
          sessionClient({
            account: privateKeyToAccount(info.accounts[1]!.privateKey),
            rpcUrl: info.rpcUrl,
            chainId: info.chainId,
            deposit,
            fetch,
          }),
        policy: { maxDeposit: 100n * price },
        offer: {
          method: 'tempo',
          intent: 'session',
          request: { amount: String(price), unitType: 'request' },
        },
        problems: {
          // An open whose voucher is one unit short opens the channel, then cannot pay the request.
          wrongAmount: { type: 'session/insufficient-balance' },
          // An open for another payee, or on another token (whose approve call is then on a contract
          // other than the escrow and the channel token), is refused before it is broadcast.
          wrongRecipient: { type: 'verification-failed', reason: 'channel-mismatch' },
          wrongCurrency: { type: 'verification-failed', reason: 'unexpected-call' },
        },
        wrongRecipient: (request) => ({ ...request, recipient: info.accounts[2]!.address }),
        wrongCurrency: (request) => ({ ...request, currency: info.tokens.alphaUsd }),
        // A topUp the schema refuses is malformed, not the topUp's `challenge-not-found`.
        malformedPayload: { action: 'topUp', channelId: `0x${'ab'.repeat(32)}` },
        outage: { start: () => proxy.set('down'), stop: () => proxy.set('up') },
        noOutageAfterPayment:
          "an open or top-up moves the payer's funds into its own channel, and one resent after a lost answer is served once (session-lost-broadcast.test.ts)",
        teardown: async () => {
          await proxy.close()
          await node.stop()
        },
      }
    },
  }
}
