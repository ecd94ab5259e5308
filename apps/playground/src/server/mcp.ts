// A paid MCP tool in the playground: an MCP server (the official SDK) behind @mppkit/mcp's payments,
// served over Streamable HTTP (the SDK's web-standard transport, JSON responses) at /api/demo/mcp.
// `fortune` costs 0.001 PathUSD on Tempo (paid from the page with a devnet key), `ping` is free.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import { Server } from '@mppkit/core/server'
import type { DevnetTempoInfo } from '@mppkit/devnet'
import { McpServer as Payments } from '@mppkit/mcp'
import { tempo } from '@mppkit/method-tempo/server'
import { tempoRoles } from './demo.js'

/** The tool's price in base units of PathUSD (6 decimals): 0.001. */
export const mcpPrice = '1000'

export const mcpPath = '/api/demo/mcp'

export type McpPlayground = {
  config: { path: string; tool: string; price: string }
  route(path: string): ((request: Request) => Promise<Response>) | undefined
  close(): Promise<void>
}

type FullTempo = Extract<DevnetTempoInfo, { escrow: string }>

/** The paid MCP server, or undefined without a Tempo node. */
export function mcpPlayground(
  tempoInfo: FullTempo | undefined,
  options: { secret: string },
): McpPlayground | undefined {
  if (!tempoInfo) return undefined
  const server = Server.create({
    realm: 'playground.mcp',
    secrets: [options.secret],
    methods: [
      tempo({
        rpcUrl: tempoInfo.rpcUrl,
        chainId: tempoInfo.chainId,
        currency: tempoInfo.tokens.pathUsd,
        recipient: tempoInfo.accounts[tempoRoles.payee]!.address,
      }),
    ],
  })
  // What is paid, by tool name: the same payment pipeline as the HTTP routes.
  const payments = Payments.create({
    server,
    name: 'fortunes',
    tools: { fortune: [{ method: 'tempo', request: { amount: mcpPrice }, description: 'One fortune' }] },
  })
  const mcpServer = () => {
    const mcp = new McpServer({ name: 'fortunes', version: '1.0.0' })
    mcp.registerTool('fortune', { description: 'A fortune (paid)' }, async (extra) => {
      // The handler runs only once paid; the receipt is in extra._meta (the credential never is).
      const receipt = extra._meta?.['org.paymentauth/receipt'] as { reference?: string } | undefined
      return {
        content: [{ type: 'text', text: `Your tools will be paid for. (paid in ${receipt?.reference})` }],
      }
    })
    mcp.registerTool('ping', { description: 'Free' }, async () => ({
      content: [{ type: 'text', text: 'pong' }],
    }))
    return mcp
  }

  // One transport per MCP session (the Mcp-Session-Id header names it), at most 100 kept.
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>()
  const handle = async (request: Request) => {
    const id = request.headers.get('mcp-session-id')
    let transport = id ? sessions.get(id) : undefined
    if (!transport) {
      if (id)
        return Response.json(
          { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } },
          { status: 404 },
        )
      const created = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => crypto.randomUUID(),
        enableJsonResponse: true,
        onsessioninitialized: (session) => {
          if (sessions.size >= 100) {
            const [oldest] = sessions.keys()
            void sessions.get(oldest!)?.close()
            sessions.delete(oldest!)
          }
          sessions.set(session, created)
        },
      })
      created.onclose = () => {
        if (created.sessionId) sessions.delete(created.sessionId)
      }
      await payments.connect(mcpServer(), created)
      transport = created
    }
    return transport.handleRequest(request)
  }

  return {
    config: { path: mcpPath, tool: 'fortune', price: mcpPrice },
    route: (path) => (path === mcpPath ? handle : undefined),
    close: async () => {
      await Promise.all([...sessions.values()].map((transport) => transport.close()))
      sessions.clear()
      await server.close()
    },
  }
}
