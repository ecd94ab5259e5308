// A payment-server process of stale-claim.test.ts that dies (SIGKILL) right after its wallet's settlement
// of the one x402 payment it is given is mined: what a crash, an OOM kill or a deploy's hard stop does
// mid-settlement. Its claim of the authorization stays in the shared Redis, `settling`.
import { create as createServer } from '@mppkit/core/server'
import { RedisStore } from '@mppkit/store-redis'
import { createWalletClient, defineChain, publicActions, http as rpc } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { charge, x402 } from '../../src/server/index.js'

const config = JSON.parse(process.env.STALE_CLAIM_CHILD ?? '{}') as {
  info: {
    rpcUrl: string
    chainId: number
    eip3009Token: `0x${string}`
    eip3009: { name: string; version: string }
    accounts: { address: `0x${string}`; privateKey: `0x${string}` }[]
  }
  gasIndex: number
  payTo: `0x${string}`
  redisUrl: string
  keyPrefix: string
  url: string
  header: string
  amount: string
}
const { info } = config
const chain = defineChain({
  id: info.chainId,
  name: 'devnet',
  nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 },
  rpcUrls: { default: { http: [info.rpcUrl] } },
})
const base = createWalletClient({
  account: privateKeyToAccount(info.accounts[config.gasIndex]!.privateKey),
  chain,
  transport: rpc(info.rpcUrl, { timeout: 10_000 }),
}).extend(publicActions)
const wallet = new Proxy(base, {
  get(target, property, receiver) {
    if (property === 'sendTransaction')
      return async (args: never) => {
        const hash = await target.sendTransaction(args)
        await target.waitForTransactionReceipt({ hash })
        console.log('mined')
        process.kill(process.pid, 'SIGKILL')
        return hash
      }
    return Reflect.get(target, property, receiver)
  },
})
const server = createServer({
  realm: 'localhost',
  secrets: ['x402-compat-test-secret-0123456789abcdef'],
  store: new RedisStore({ url: config.redisUrl, keyPrefix: config.keyPrefix }),
  methods: [
    charge({
      chainId: info.chainId,
      currency: info.eip3009Token,
      recipient: config.payTo,
      domain: info.eip3009,
      wallet: wallet as never,
    }),
  ],
  logger: false,
})
const handler = x402(server, { maxTimeoutSeconds: 120 }).protect(
  { offers: [{ method: 'evm', request: { amount: config.amount } }] },
  () => new Response('paid content'),
)
const response = await handler(new Request(config.url, { headers: { 'payment-signature': config.header } }))
// Never reached when the settlement was broadcast: the process is killed first.
console.log(`answered ${response.status}`)
process.exit(0)
