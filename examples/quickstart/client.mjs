// Client quickstart: pay for a resource, within a spend policy, and read the receipt.
// Env: MPPKIT_PRIVATE_KEY (a funded Tempo account), MPPKIT_RPC_URL. Usage: node client.mjs <url>
import { Client, receipt } from '@mppkit/core/client'
import { tempo } from '@mppkit/method-tempo/client'
import { privateKeyToAccount } from 'viem/accounts'

const client = Client.create({
  methods: [
    tempo({
      account: privateKeyToAccount(process.env.MPPKIT_PRIVATE_KEY),
      rpcUrl: process.env.MPPKIT_RPC_URL,
    }),
  ],
  policy: { maxAmount: 100_000n, budget: 1_000_000n }, // base units: at most 0.10 per request, 1.00 in all
})

const response = await client.fetch(process.argv[2] ?? 'http://127.0.0.1:3000/weather')
console.log(response.status, await response.json())
console.log('receipt', receipt(response))
