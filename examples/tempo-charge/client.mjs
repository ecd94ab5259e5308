// @ts-check
// Pays the charge server twice: once in pull mode (the server broadcasts), once in push mode (we do).
// Env: MPPKIT_PRIVATE_KEY, MPPKIT_RPC_URL. Usage: node client.mjs <url>
import { Client, receipt } from '@mppkit/core/client'
import { tempo } from '@mppkit/method-tempo/client'
import { privateKeyToAccount } from 'viem/accounts'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'tempo-charge client',
  'is the server up? `node examples/tempo-charge/run.mjs` runs both; set MPPKIT_PRIVATE_KEY and MPPKIT_RPC_URL',
)
requireEnv('MPPKIT_PRIVATE_KEY', 'MPPKIT_RPC_URL')

const pathUsd = '0x20c0000000000000000000000000000000000000'
const account = privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_PRIVATE_KEY))
const url = process.argv[2] ?? 'http://127.0.0.1:3000/quote'
for (const mode of /** @type {const} */ (['pull', 'push'])) {
  const client = Client.create({
    methods: [tempo({ account, rpcUrl: /** @type {string} */ (process.env.MPPKIT_RPC_URL), mode })],
    policy: { currencies: [pathUsd], maxAmount: { [pathUsd]: 10_000n } }, // base units
  })
  const response = await client.fetch(url)
  console.log(mode, response.status, await response.json())
  console.log(mode, 'receipt', receipt(response))
}
