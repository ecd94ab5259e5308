// A dual-stack paid route: MPP clients pay it with an `evm` charge (Authorization: Payment), x402
// clients with PAYMENT-SIGNATURE (v2) or X-PAYMENT (v1). One price, one pipeline, one receipt.
// The server settles EIP-3009 authorizations itself (its wallet pays gas).
// Env: MPPKIT_RPC_URL, MPPKIT_CHAIN_ID, MPPKIT_TOKEN, MPPKIT_TOKEN_NAME, MPPKIT_TOKEN_VERSION,
// MPPKIT_RECIPIENT, MPPKIT_GAS_KEY, MPP_SECRET (≥ 32 bytes), PORT.
import http from 'node:http'
import { Server, toNodeListener } from '@mppkit/core/server'
import { charge, x402 } from '@mppkit/x402-compat/server'
import { createWalletClient, defineChain, publicActions, http as rpc } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'x402-server',
  'run `node examples/x402-server/run.mjs`, or set the MPPKIT_* variables listed in server.mjs',
)
requireEnv('MPPKIT_RPC_URL', 'MPPKIT_CHAIN_ID', 'MPPKIT_TOKEN', 'MPPKIT_RECIPIENT', 'MPPKIT_GAS_KEY')

const chainId = Number(process.env.MPPKIT_CHAIN_ID)
const chain = defineChain({
  id: chainId,
  name: 'devnet',
  nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 },
  rpcUrls: { default: { http: [/** @type {string} */ (process.env.MPPKIT_RPC_URL)] } },
})
const wallet = createWalletClient({
  account: privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_GAS_KEY)),
  chain,
  transport: rpc(process.env.MPPKIT_RPC_URL, { timeout: 10_000 }),
}).extend(publicActions)

const server = Server.create({
  realm: 'x402-server.example',
  secrets: [process.env.MPP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef'],
  methods: [
    charge({
      chainId,
      currency: /** @type {`0x${string}`} */ (process.env.MPPKIT_TOKEN),
      recipient: /** @type {`0x${string}`} */ (process.env.MPPKIT_RECIPIENT),
      domain: {
        name: process.env.MPPKIT_TOKEN_NAME ?? 'USD Coin',
        version: process.env.MPPKIT_TOKEN_VERSION ?? '2',
      },
      decimals: 6,
      wallet,
    }),
  ],
})

const quote = x402(server, { v1: true }).protect(
  { offers: [{ method: 'evm', request: { amount: '1000' } }] },
  () => Response.json({ quote: 'Simplicity is prerequisite for reliability.' }),
)

const listener = http.createServer(toNodeListener(quote))
listener.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(
    `listening on http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (listener.address()).port}/quote`,
  )
})
