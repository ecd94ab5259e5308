// Real x402 SVM peers on the devnet's LiteSVM RPC: an in-process facilitator (`@x402/core` + `@x402/svm`)
// that co-signs as fee payer and broadcasts `exact` transactions, and an `@x402/hono` v2 server. `@x402/svm`
// only knows the public clusters' CAIP-2 ids, so the local node stands in for Solana devnet (its id, our RPC).
import { createKeyPairSignerFromBytes, type KeyPairSigner } from '@solana/kit'
import { x402Facilitator } from '@x402/core/facilitator'
import type { FacilitatorClient } from '@x402/core/server'
import { x402ResourceServer } from '@x402/core/server'
import { paymentMiddleware } from '@x402/hono'
import { SOLANA_DEVNET_CAIP2, toFacilitatorSvmSigner } from '@x402/svm'
import { registerExactSvmScheme } from '@x402/svm/exact/facilitator'
import { ExactSvmScheme as ExactSvmServerScheme } from '@x402/svm/exact/server'
import { Hono } from 'hono'
import {
  createFundedAccount,
  createMint,
  findAssociatedTokenAddress,
  mintTo,
  type SolanaNode,
} from '../../devnet/src/solana/index.js'

export const network = SOLANA_DEVNET_CAIP2 as `solana:${string}`

export const signerOf = (keypair: { secretKey: number[] }): Promise<KeyPairSigner> =>
  createKeyPairSignerFromBytes(new Uint8Array(keypair.secretKey))

/** A fresh mint (6 decimals unless told), a funded payer holding tokens, a recipient whose ATA exists. */
export async function world(node: SolanaNode, options: { decimals?: number } = {}) {
  const decimals = options.decimals ?? 6
  const { mint } = await createMint(node, { decimals })
  const payer = await signerOf(await createFundedAccount(node))
  const recipient = await signerOf(await createFundedAccount(node))
  await mintTo(node, { mint, owner: payer.address, amount: 1_000_000_000n })
  await mintTo(node, { mint, owner: recipient.address, amount: 0n })
  return { mint: String(mint), decimals, payer, recipient }
}

/** The token balance of an owner's ATA (0 when it does not exist). */
export async function tokenBalance(node: SolanaNode, mint: string, owner: string): Promise<bigint> {
  const tokenProgram = node.ledger.account(mint)!.owner
  const ata = await findAssociatedTokenAddress({ owner, mint, tokenProgram })
  const account = node.ledger.account(ata)
  if (!account) return 0n
  return new DataView(account.data.buffer, account.data.byteOffset).getBigUint64(64, true)
}

/** An in-process x402 SVM facilitator whose funded key pays the fees, counting calls. */
export async function svmFacilitator(node: SolanaNode, rpcUrl = node.info.rpcUrl) {
  const feePayer = await signerOf(await createFundedAccount(node))
  const facilitator = new x402Facilitator()
  registerExactSvmScheme(facilitator, {
    signer: toFacilitatorSvmSigner(feePayer as never, { defaultRpcUrl: rpcUrl }),
    networks: network,
  })
  const counts = { verify: 0, settle: 0, settled: 0 }
  const client: FacilitatorClient = {
    verify: async (payload, requirements) => {
      counts.verify++
      return facilitator.verify(payload, requirements)
    },
    settle: async (payload, requirements) => {
      counts.settle++
      const settled = await facilitator.settle(payload, requirements)
      if (settled.success) counts.settled++
      return settled
    },
    getSupported: async () => facilitator.getSupported() as never,
  }
  return { client, counts, feePayer: String(feePayer.address) }
}

/** An `@x402/hono` v2 app selling `GET /paid` for `amount` of `mint` to `payTo`, on Solana devnet's id. */
export function honoSvmServer(options: {
  facilitator: FacilitatorClient
  payTo: string
  mint: string
  amount: string
}) {
  const server = new x402ResourceServer(options.facilitator).register(network, new ExactSvmServerScheme())
  let runs = 0
  const app = new Hono()
  app.use(
    paymentMiddleware(
      {
        'GET /paid': {
          accepts: {
            scheme: 'exact',
            network,
            payTo: options.payTo,
            price: { amount: options.amount, asset: options.mint },
            maxTimeoutSeconds: 120,
          },
          description: 'a paid thing',
        },
      },
      server,
    ),
  )
  app.get('/paid', (c) => {
    runs++
    return c.text('paid content')
  })
  return { fetch: (request: Request) => app.fetch(request) as Promise<Response>, runs: () => runs }
}
