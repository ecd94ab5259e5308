// @ts-check
// Client quickstart: pay for a resource, within a spend policy, and read the receipt.
// Env: MPPKIT_PRIVATE_KEY (a funded Tempo account), MPPKIT_RPC_URL. Usage: node client.mjs <url>
import { Client, receipt } from '@mppkit/core/client'
import { tempo } from '@mppkit/method-tempo/client'
import { privateKeyToAccount } from 'viem/accounts'

// A failure is one line and a hint, never a stack trace.
process.on('uncaughtException', (error) => {
  console.error(`client: ${/** @type {Error | undefined} */ (error.cause)?.message ?? error.message}`)
  console.error('hint: `npm run demo` prints the server URL, a dev MPPKIT_PRIVATE_KEY and MPPKIT_RPC_URL')
  process.exit(1)
})
if (!/^0x[0-9a-fA-F]{64}$/.test(process.env.MPPKIT_PRIVATE_KEY ?? ''))
  throw new Error('MPPKIT_PRIVATE_KEY must be a 0x-prefixed 32-byte private key')

const alphaUsd = '0x20c0000000000000000000000000000000000001'
const client = Client.create({
  methods: [
    tempo({
      account: privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_PRIVATE_KEY)),
      rpcUrl: /** @type {string} */ (process.env.MPPKIT_RPC_URL),
    }),
  ],
  // Base units of AlphaUSD (6 decimals): at most 0.10 per request, 1.00 in all.
  policy: { currencies: [alphaUsd], maxAmount: { [alphaUsd]: 100_000n }, budget: { [alphaUsd]: 1_000_000n } },
})

const response = await client.fetch(process.argv[2] ?? 'http://127.0.0.1:3000/weather')
console.log(response.status, await response.json())
console.log('receipt', receipt(response))
