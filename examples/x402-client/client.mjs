// An mppkit agent paying an x402 service: the core client with the x402 protocol plug reads
// PAYMENT-REQUIRED, applies its spend policy (decimals given explicitly: x402 offers carry none), signs
// an EIP-3009 authorization and sends PAYMENT-SIGNATURE; PAYMENT-RESPONSE becomes its receipt.
// Env: MPPKIT_PRIVATE_KEY, MPPKIT_TOKEN. Usage: node client.mjs <url>
import { Client, Protocol, receipt } from '@mppkit/core/client'
import { charge, x402 } from '@mppkit/x402-compat/client'
import { privateKeyToAccount } from 'viem/accounts'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure('x402-client', 'is the server up? `node examples/x402-client/run.mjs` runs both')
requireEnv('MPPKIT_PRIVATE_KEY', 'MPPKIT_TOKEN')

const token = /** @type {string} */ (process.env.MPPKIT_TOKEN)
const client = Client.create({
  methods: [
    charge({ account: privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_PRIVATE_KEY)) }),
  ],
  protocols: [
    Protocol.mpp,
    /** @type {any} */ (
      x402({ decimals: { [token]: 6 }, onSkip: ({ reason }) => console.log('skipped offer:', reason) })
    ),
  ],
  policy: { currencies: [token], maxAmount: { [token]: 10_000n }, budget: { [token]: 100_000n } },
})
const response = await client.fetch(process.argv[2] ?? 'http://127.0.0.1:3000/weather')
console.log('x402 service', response.status, await response.json())
console.log('receipt', receipt(response))
if (!response.ok) process.exitCode = 1
