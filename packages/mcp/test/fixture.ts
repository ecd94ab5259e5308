// Shared set-up of the MCP tests: a real SDK McpServer behind payments, on the core's test rail.

import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import { Client as CoreClient } from '@mppkit/core/client'
import * as Server from '@mppkit/core/server'
import { createTestRail } from '@mppkit/core/testing'
import { z } from 'zod'
import * as Payments from '../src/server/Payments.js'

export const secret = 'mcp-test-secret-0123456789abcdef0123456789'
export const price = { amount: '1000', currency: 'usd', recipient: 'acct_merchant' }

/** A paid MCP server: tool `forecast` and `premium` paid, `echo` free, one paid resource and prompt. */
export function paidServer(options: { verifyDelayMs?: number; failWith?: () => Error | undefined } = {}) {
  const rail = createTestRail()
  const server = Server.create({ realm: 'mcp.example', secrets: [secret], methods: [rail.server(options)] })
  const payments = Payments.create({
    server,
    name: 'weather',
    tools: {
      forecast: [{ method: 'test', request: price, description: 'One forecast' }],
      alerts: [{ method: 'test', request: price, description: 'One forecast' }],
      premium: [{ method: 'test', request: { ...price, amount: '5000' } }],
      hold: [{ method: 'test', request: price }],
      report: [{ method: 'test', request: price }],
    },
    resources: { 'data://premium/market': [{ method: 'test', request: price }] },
    prompts: { expert: [{ method: 'test', request: price }] },
  })
  const calls: { tool: string; meta: unknown }[] = []
  const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
  mcp.registerTool(
    'forecast',
    { description: 'Paid forecast', inputSchema: { city: z.string() } },
    async ({ city }, extra) => {
      calls.push({ tool: 'forecast', meta: extra._meta })
      return { content: [{ type: 'text', text: `sunny in ${city}` }] }
    },
  )
  mcp.registerTool('alerts', { inputSchema: { city: z.string() } }, async ({ city }, extra) => {
    calls.push({ tool: 'alerts', meta: extra._meta })
    return { content: [{ type: 'text', text: `no alerts in ${city}` }] }
  })
  mcp.registerTool('premium', { description: 'Paid premium' }, async (extra) => {
    calls.push({ tool: 'premium', meta: extra._meta })
    return { content: [{ type: 'text', text: 'premium' }] }
  })
  // A paid tool whose calls wait until released: a paid call kept in flight. It answers with its text and
  // the challenge id of the receipt it was handed.
  const held: { requestId: unknown; signal: AbortSignal; release: () => void }[] = []
  mcp.registerTool('hold', { inputSchema: { text: z.string() } }, async ({ text }, extra) => {
    calls.push({ tool: 'hold', meta: extra._meta })
    await new Promise<void>((release) =>
      held.push({ requestId: extra.requestId, signal: extra.signal, release }),
    )
    const receipt = (extra._meta as Record<string, { challengeId?: string }>)['org.paymentauth/receipt']
    return { content: [{ type: 'text', text: `${text} ${receipt?.challengeId}` }] }
  })
  // A paid tool that reports progress to the client before answering.
  mcp.registerTool('report', {}, async (extra) => {
    const progressToken = extra._meta?.progressToken
    if (progressToken !== undefined)
      await extra.sendNotification({
        method: 'notifications/progress',
        params: { progressToken, progress: 1, total: 1 },
      })
    return { content: [{ type: 'text', text: 'reported' }] }
  })
  mcp.registerTool('echo', { inputSchema: { text: z.string() } }, async ({ text }, extra) => {
    calls.push({ tool: 'echo', meta: extra._meta })
    return { content: [{ type: 'text', text }] }
  })
  mcp.registerResource('market', 'data://premium/market', {}, async (uri) => ({
    contents: [{ uri: uri.href, text: 'market data' }],
  }))
  mcp.registerPrompt('expert', { description: 'Paid prompt' }, async () => ({
    messages: [{ role: 'user', content: { type: 'text', text: 'be an expert' } }],
  }))
  return { rail, server, payments, mcp, calls, held }
}

/** The server connected to a real SDK client over the SDK's in-memory transport. */
export async function connected(options: { verifyDelayMs?: number } = {}) {
  const fixture = paidServer(options)
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await fixture.payments.connect(fixture.mcp, serverSide)
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(clientSide)
  const payer = CoreClient.create({ methods: [fixture.rail.client()] })
  return { ...fixture, client, payer, close: () => client.close() }
}

/** Sends raw JSON-RPC messages to a paid server (no SDK client): what a hostile peer can send. */
export async function raw(options: { verifyDelayMs?: number } = {}) {
  const fixture = paidServer(options)
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  const replies = new Map<unknown, any>()
  const waiters = new Map<unknown, (reply: any) => void>()
  /** Every message the server sent, in order (ids may repeat). */
  const received: any[] = []
  const watchers = new Set<() => void>()
  clientSide.onmessage = (message: any) => {
    received.push(message)
    replies.set(message.id, message)
    waiters.get(message.id)?.(message)
    for (const watch of watchers) watch()
  }
  await fixture.payments.connect(fixture.mcp, serverSide)
  await clientSide.start()
  let next = 1
  const request = (message: Record<string, unknown>): Promise<any> => {
    const id = next++
    const reply = new Promise((resolve) => waiters.set(id, resolve))
    void clientSide.send({ jsonrpc: '2.0', id, ...message } as never)
    return reply
  }
  const notify = (message: Record<string, unknown>) =>
    clientSide.send({ jsonrpc: '2.0', ...message } as never)
  /** Sends a message as is (its own id, reused or not). */
  const send = (message: Record<string, unknown>) => clientSide.send({ jsonrpc: '2.0', ...message } as never)
  /** Resolves once `count` messages the server sent match. */
  const until = (match: (message: any) => boolean, count = 1): Promise<any[]> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.delete(watch)
        reject(new Error(`fewer than ${count} matching messages: ${JSON.stringify(received)}`))
      }, 2_000)
      const watch = () => {
        const found = received.filter(match)
        if (found.length < count) return
        watchers.delete(watch)
        clearTimeout(timer)
        resolve(found)
      }
      watchers.add(watch)
      watch()
    })
  const payer = CoreClient.create({ methods: [fixture.rail.client()] })
  return {
    ...fixture,
    request,
    notify,
    send,
    until,
    payer,
    replies,
    received,
    transport: clientSide as Transport,
  }
}

/**
 * The paid server over the SDK's Streamable HTTP transport on a real node HTTP server (port from the
 * OS), with a real SDK client over HTTP: one session, as a single agent opens.
 */
export async function overHttp(options: { verifyDelayMs?: number; liftMeta?: boolean } = {}) {
  const fixture = paidServer(options)
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID() })
  await fixture.payments.connect(fixture.mcp, transport)
  const http = createServer((request, response) => {
    const handle = async () => {
      if (!options.liftMeta || request.method !== 'POST') return transport.handleRequest(request, response)
      // What an application does to accept a root-level `_meta`: parse the body, lift, hand it over.
      const chunks: Buffer[] = []
      for await (const chunk of request) chunks.push(chunk as Buffer)
      let body: unknown
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {}
      return transport.handleRequest(request, response, Payments.liftMeta(body))
    }
    handle().catch(() => {
      response.statusCode = 500
      response.end()
    })
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const { port } = http.address() as AddressInfo
  const url = new URL(`http://127.0.0.1:${port}/mcp`)
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(url))
  const payer = CoreClient.create({ methods: [fixture.rail.client()] })
  const close = async () => {
    await client.close()
    await fixture.mcp.close()
    await new Promise((resolve) => http.close(resolve))
  }
  return { ...fixture, client, payer, url, close }
}
