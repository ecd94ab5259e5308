// A plain x402 v2 service, built only from the x402 reference packages (@x402/hono with an in-process
// facilitator that settles EIP-3009 authorizations on the local node). Nothing of mppkit here.
// Env: MPPKIT_RPC_URL, MPPKIT_CHAIN_ID, MPPKIT_TOKEN, MPPKIT_TOKEN_NAME, MPPKIT_TOKEN_VERSION,
// MPPKIT_RECIPIENT, MPPKIT_GAS_KEY, PORT.
import { serve } from '@hono/node-server'
import { x402Facilitator } from '@x402/core/facilitator'
import { x402ResourceServer } from '@x402/core/server'
import { toFacilitatorEvmSigner } from '@x402/evm'
import { registerExactEvmScheme } from '@x402/evm/exact/facilitator'
import { ExactEvmScheme } from '@x402/evm/exact/server'
import { paymentMiddleware } from '@x402/hono'
import { Hono } from 'hono'
import { createWalletClient, defineChain, http, publicActions } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'x402-client server',
  'run `node examples/x402-client/run.mjs`, or set the MPPKIT_* variables listed in server.mjs',
)
requireEnv('MPPKIT_RPC_URL', 'MPPKIT_CHAIN_ID', 'MPPKIT_TOKEN', 'MPPKIT_RECIPIENT', 'MPPKIT_GAS_KEY')

const network = /** @type {`${string}:${string}`} */ (`eip155:${process.env.MPPKIT_CHAIN_ID}`)
const chain = defineChain({
  id: Number(process.env.MPPKIT_CHAIN_ID),
  name: 'devnet',
  nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 },
  rpcUrls: { default: { http: [/** @type {string} */ (process.env.MPPKIT_RPC_URL)] } },
})
const wallet = createWalletClient({
  account: privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_GAS_KEY)),
  chain,
  transport: http(process.env.MPPKIT_RPC_URL, { timeout: 10_000 }),
}).extend(publicActions)

const facilitator = registerExactEvmScheme(new x402Facilitator(), {
  signer: toFacilitatorEvmSigner(/** @type {any} */ (wallet)),
  networks: network,
})
const resourceServer = new x402ResourceServer({
  verify: (payload, requirements) => facilitator.verify(payload, requirements),
  settle: (payload, requirements) => facilitator.settle(payload, requirements),
  getSupported: async () => /** @type {any} */ (facilitator.getSupported()),
}).register(network, new ExactEvmScheme())

const app = new Hono()
app.use(
  paymentMiddleware(
    {
      'GET /weather': {
        accepts: {
          scheme: 'exact',
          network,
          payTo: /** @type {string} */ (process.env.MPPKIT_RECIPIENT),
          price: {
            amount: '2500',
            asset: /** @type {string} */ (process.env.MPPKIT_TOKEN),
            extra: {
              name: process.env.MPPKIT_TOKEN_NAME ?? 'USD Coin',
              version: process.env.MPPKIT_TOKEN_VERSION ?? '2',
            },
          },
          maxTimeoutSeconds: 120,
        },
        description: 'Weather, paid per request',
      },
    },
    resourceServer,
  ),
)
app.get('/weather', (c) => c.json({ weather: 'sunny', temperature: 21 }))

const listener = serve(
  { fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' },
  (info) => {
    console.log(`listening on http://127.0.0.1:${info.port}/weather`)
  },
)
process.once('SIGTERM', () => listener.close())
