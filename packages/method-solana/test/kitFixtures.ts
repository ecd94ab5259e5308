import type { Store } from '@mppkit/core'
import type { DescribeMethodOptions, MethodFixture } from '@mppkit/core/testing'
import { createFundedAccount } from '../../devnet/src/solana/index.js'
import { chargeClient } from '../src/client/index.js'
import { chargeServer } from '../src/server/index.js'
import { rpcProxy, signerOf, startSolana, tokenBalance, tokenWorld } from './helpers.js'

// Fixtures of the conformance kit (`describeMethod`) for solana/charge on a fresh devnet SVM each. The
// server reaches the node through an RPC proxy the outage case turns off; clients reach it directly.

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
        problems: { wrongAmount: { type: 'verification-failed', reason: 'amount-mismatch' } },
        outage: {
          start: () => proxy.set('down'),
          stop: () => proxy.set('up'),
          // Pull: settlements counted on chain (the recipient's balance in prices). Push pays on chain
          // when the credential is made, so the kit counts the server's settle calls instead.
          ...(mode === 'pull'
            ? {
                settlements: async () =>
                  Number((await tokenBalance(node, world.mint, world.recipient.address)) / price),
              }
            : {}),
        },
        teardown: async () => {
          await proxy.close()
          await node.stop()
        },
      }
    },
  }
}
