// A paid MCP tool on Tempo: `forecast` costs 0.001 PathUSD per call, `ping` is free. MCP Streamable HTTP,
// one session per agent; the payment pipeline and Store are the same as for HTTP routes.
// Env: MPPKIT_RPC_URL, MPPKIT_CHAIN_ID, MPPKIT_RECIPIENT, MPP_SECRET (≥ 32 bytes), PORT.
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { Server } from '@mppkit/core/server'
import { McpServer as Payments } from '@mppkit/mcp'
import { tempo } from '@mppkit/method-tempo/server'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'mcp-paid-tool server',
  'run `node examples/mcp-paid-tool/run.mjs`, or set MPPKIT_RPC_URL, MPPKIT_CHAIN_ID and MPPKIT_RECIPIENT',
)
requireEnv('MPPKIT_RPC_URL', 'MPPKIT_RECIPIENT')

const server = Server.create({
  realm: 'mcp-paid-tool.example',
  secrets: [process.env.MPP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef'],
  methods: [
    tempo({
      rpcUrl: /** @type {string} */ (process.env.MPPKIT_RPC_URL),
      chainId: Number(process.env.MPPKIT_CHAIN_ID ?? 4217),
      currency: '0x20c0000000000000000000000000000000000000', // PathUSD
      recipient: /** @type {`0x${string}`} */ (process.env.MPPKIT_RECIPIENT),
    }),
  ],
})

// What is paid: by tool name (resources by URI and prompts by name work the same way).
const payments = Payments.create({
  server,
  name: 'weather',
  tools: { forecast: [{ method: 'tempo', request: { amount: '1000' }, description: 'One forecast' }] },
})

function mcpServer() {
  const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
  mcp.registerTool('forecast', { description: 'Tomorrow in Paris (paid)' }, async (extra) => {
    // The handler runs only once paid; the receipt is in extra._meta (the credential never is).
    const receipt = /** @type {{ reference?: string } | undefined} */ (
      extra._meta?.['org.paymentauth/receipt']
    )
    return { content: [{ type: 'text', text: `Paris: sunny, 21 °C (paid in ${receipt?.reference})` }] }
  })
  mcp.registerTool('ping', { description: 'Free' }, async () => ({
    content: [{ type: 'text', text: 'pong' }],
  }))
  return mcp
}

const sessions = new Map()
const listener = http.createServer(async (request, response) => {
  const id = request.headers['mcp-session-id']
  let transport = typeof id === 'string' ? sessions.get(id) : undefined
  if (!transport) {
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: /** @type {(session: string) => void} */ (
        (session) => sessions.set(session, transport)
      ),
    })
    transport.onclose = () => sessions.delete(transport.sessionId)
    // connect (not transport alone): a call the SDK would refuse is neither challenged nor charged.
    await payments.connect(mcpServer(), transport)
  }
  await transport.handleRequest(request, response)
})
listener.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(
    `listening on http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (listener.address()).port}/mcp`,
  )
})
