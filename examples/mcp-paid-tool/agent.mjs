// An agent calling the paid MCP tool: the first call gets -32042, the wrapper pays it with the same
// methods and spend policy as HTTP, retries once, and hands back the receipt.
// Env: MPPKIT_PRIVATE_KEY, MPPKIT_RPC_URL. Usage: node agent.mjs <url>

import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { Client as Payer } from '@mppkit/core/client'
import { McpClient } from '@mppkit/mcp'
import { tempo } from '@mppkit/method-tempo/client'
import { privateKeyToAccount } from 'viem/accounts'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'mcp-paid-tool agent',
  'is the server up? `node examples/mcp-paid-tool/run.mjs` runs both; set MPPKIT_PRIVATE_KEY and MPPKIT_RPC_URL',
)
requireEnv('MPPKIT_PRIVATE_KEY', 'MPPKIT_RPC_URL')

const pathUsd = '0x20c0000000000000000000000000000000000000'
const url = new URL(process.argv[2] ?? 'http://127.0.0.1:3000/mcp')
const mcp = new Client({ name: 'agent', version: '1.0.0' })
await mcp.connect(new StreamableHTTPClientTransport(url))
console.log('payment capability', JSON.stringify(mcp.getServerCapabilities()?.experimental?.payment))

const payer = Payer.create({
  methods: [
    tempo({
      account: privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_PRIVATE_KEY)),
      rpcUrl: /** @type {string} */ (process.env.MPPKIT_RPC_URL),
    }),
  ],
  policy: { currencies: [pathUsd], maxAmount: { [pathUsd]: 10_000n } }, // base units
})
const paid = McpClient.wrap(mcp, { client: payer })
console.log('ping', /** @type {any} */ (await paid.callTool({ name: 'ping' })).content[0].text)
const result = /** @type {any} */ (await paid.callTool({ name: 'forecast' }))
console.log('forecast', result.content[0].text)
console.log('receipt', result.receipt)
await mcp.close()
