// One payment-server process of the cross-process replay test: a dual-stack (MPP + x402) route whose
// `evm` charge settles through an in-process x402 facilitator on anvil, on a RedisStore shared with
// the other process. Prints `listening <port>`; GET /stats answers its own settle and handler counts.
import http from 'node:http'
import { Server, toNodeListener } from '@mppkit/core/server'
import { RedisStore } from '@mppkit/store-redis'
import { x402Facilitator } from '@x402/core/facilitator'
import { toFacilitatorEvmSigner } from '@x402/evm'
import { registerExactEvmScheme } from '@x402/evm/exact/facilitator'
import { createWalletClient, defineChain, publicActions, http as rpc } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { charge, x402 } from '../../src/server/index.js'

const config = JSON.parse(process.env.X402_CHILD ?? '{}') as {
  redisUrl: string
  keyPrefix: string
  info: {
    rpcUrl: string
    chainId: number
    eip3009Token: `0x${string}`
    eip3009: { name: string; version: string }
    accounts: { address: `0x${string}`; privateKey: `0x${string}` }[]
  }
  gasIndex: number
  payTo: `0x${string}`
}
const { info } = config
const chain = defineChain({
  id: info.chainId,
  name: 'devnet',
  nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 },
  rpcUrls: { default: { http: [info.rpcUrl] } },
})
const wallet = createWalletClient({
  account: privateKeyToAccount(info.accounts[config.gasIndex]!.privateKey),
  chain,
  transport: rpc(info.rpcUrl, { timeout: 10_000 }),
}).extend(publicActions)
const facilitator = registerExactEvmScheme(new x402Facilitator(), {
  signer: toFacilitatorEvmSigner(wallet as never),
  networks: `eip155:${info.chainId}`,
})
const counts = { verify: 0, settle: 0, runs: 0 }
const server = Server.create({
  realm: 'multiprocess.test',
  secrets: ['x402-multiprocess-secret-0123456789abcdef'],
  store: new RedisStore({ url: config.redisUrl, keyPrefix: config.keyPrefix }),
  methods: [
    charge({
      chainId: info.chainId,
      currency: info.eip3009Token,
      recipient: config.payTo,
      domain: info.eip3009,
      facilitator: {
        verify: (payload, requirements) => {
          counts.verify++
          return facilitator.verify(payload, requirements)
        },
        settle: (payload, requirements) => {
          counts.settle++
          return facilitator.settle(payload, requirements)
        },
      },
    }),
  ],
  logger: false,
})
const paid = x402(server, { maxTimeoutSeconds: 120 }).protect(
  { offers: [{ method: 'evm', request: { amount: '1300' } }] },
  () => {
    counts.runs++
    return new Response('paid content')
  },
)
const listener = http.createServer(
  toNodeListener(async (request) =>
    new URL(request.url).pathname === '/stats' ? Response.json(counts) : paid(request),
  ),
)
listener.listen(0, '127.0.0.1', () => {
  console.log(`listening ${(listener.address() as { port: number }).port}`)
})
process.once('SIGTERM', () => process.exit(0))
