import type { Store } from '@mppkit/core'
import type { DescribeMethodOptions, MethodFixture } from '@mppkit/core/testing'
import { generateKeyPairSigner } from '@solana/kit'
import { createFundedAccount, createMint, mintTo } from '../../devnet/src/solana/index.js'
import { chargeClient } from '../src/client/index.js'
import { chargeServer } from '../src/server/index.js'
import { rpcProxy, signerOf, startSolana, tokenBalance, tokenWorld } from './helpers.js'

// Fixtures of the conformance kit (`describeMethod`) for solana/charge on a fresh devnet SVM each. The
// server reaches the node through an RPC proxy the outage cases switch; clients reach it directly.

const price = 250n

/** Kit options for solana/charge: SPL pull (optionally fee-sponsored) or push. */
export function solanaChargeKit(
  name: string,
  extra: {
    mode?: 'pull' | 'push'
    sponsored?: boolean
    skip?: string | undefined
    store?: () => Store | Promise<Store>
  } = {},
): DescribeMethodOptions {
  const { mode = 'pull', sponsored = false, ...rest } = extra
  return {
    name,
    concurrency: 8,
    ...rest,
    async setup(): Promise<MethodFixture> {
      const node = await startSolana({ commitment: { confirmed: 1, finalized: 4 }, slotTimeMs: 20 })
      const world = await tokenWorld(node)
      const proxy = await rpcProxy(node.info.rpcUrl)
      const feePayer = sponsored ? await signerOf(await createFundedAccount(node)) : undefined
      // Payees a client can really pay, so the server's own check refuses them (not the node refusing a
      // transfer to a token account that does not exist): another owner with an account for the mint,
      // and another mint (same decimals and program) the payer holds and the recipient has an account for.
      const stranger = await generateKeyPairSigner()
      await mintTo(node, { mint: world.mint, owner: stranger.address, amount: 0n })
      const other = await createMint(node, { decimals: world.decimals, program: 'token' })
      await mintTo(node, { mint: other.mint, owner: world.payer.address, amount: 1_000_000_000n })
      await mintTo(node, { mint: other.mint, owner: world.recipient.address, amount: 0n })
      const settlements = async () =>
        Number((await tokenBalance(node, world.mint, world.recipient.address)) / price)
      return {
        server: chargeServer({
          rpcUrl: proxy.url,
          network: 'localnet',
          currency: world.mint,
          decimals: world.decimals,
          recipient: world.recipient.address,
          timeout: 2_000,
          ...(feePayer ? { feePayer } : {}),
        }),
        client: () =>
          chargeClient({ signer: world.payer, rpcUrl: node.info.rpcUrl, network: 'localnet', mode }),
        offer: { method: 'solana', request: { amount: String(price) } },
        problems: {
          wrongAmount: { type: 'verification-failed', reason: 'amount-mismatch' },
          wrongRecipient: { type: 'verification-failed', reason: 'recipient-mismatch' },
          wrongCurrency: { type: 'verification-failed', reason: 'currency-mismatch' },
        },
        wrongRecipient: (request) => ({ ...request, recipient: stranger.address }),
        wrongCurrency: (request) => ({ ...request, currency: other.mint }),
        // The payer's balances of both mints: a refused payload the server sent anyway would move one.
        payerActivity: async () => [
          await tokenBalance(node, world.mint, world.payer.address),
          await tokenBalance(node, other.mint, world.payer.address),
        ],
        outage: {
          // Connections refused: no call reaches the node, so the same credential may be retried.
          start: () => proxy.set('down'),
          stop: () => proxy.set('up'),
          // Pull: settlements counted on chain (the recipient's balance in prices). Push pays on chain
          // when the credential is made, so the kit counts the server's settle calls instead.
          ...(mode === 'pull' ? { settlements } : {}),
        },
        // No `outageAfterPayment`: a pull settlement is idempotent per transaction signature (a claim the
        // server already holds makes it ask the node before sending again), so a failure after the send
        // is a 503 + Retry-After and the same credential, resent, serves once (problems.test.ts). Push
        // pays on chain before the credential is presented: the server's settlement only records it.
        noOutageAfterPayment:
          mode === 'pull'
            ? 'a pull settlement is idempotent per transaction signature: a failure after the send is 503 + Retry-After, and the resent credential serves once (problems.test.ts)'
            : "push pays on chain before the credential exists; the server's settlement only records it",
        teardown: async () => {
          await proxy.close()
          await node.stop()
        },
      }
    },
  }
}
