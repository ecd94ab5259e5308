// A scripted MCP server on the SDK's low-level `Server`: it answers paid operations with whatever
// challenges a test hands it (for another tool, other arguments, huge, unencodable…), as a hostile or
// broken server would, and records every call it receives.

import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import {
  CallToolRequestSchema,
  GetPromptRequestSchema,
  McpError,
  ReadResourceRequestSchema,
} from '@modelcontextprotocol/sdk/types.js'
import { Client as CoreClient } from '@mppkit/core/client'
import { createTestRail } from '@mppkit/core/testing'

type Params = { _meta?: Record<string, unknown>; [key: string]: unknown }

/** What the scripted server answers an operation: challenges (a -32042), or a result. */
export type Script = (
  method: 'tools/call' | 'resources/read' | 'prompts/get',
  params: Params,
  attempt: number,
) => Reply | Promise<Reply>

type Reply = { challenges: unknown[]; code?: number; data?: Record<string, unknown> } | { result: Params }

export const price = { amount: '1000', currency: 'usd', recipient: 'acct_merchant' }

/** A test-rail challenge as the server would send it (no HMAC: the client cannot check one anyway). */
export function challenge(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `ch_${Math.random().toString(36).slice(2)}`,
    realm: 'hostile.example',
    method: 'test',
    intent: 'charge',
    request: price,
    ...fields,
  }
}

/** The scripted server connected to a real SDK client; `payer` pays on the core's test rail. */
export async function hostile(script: Script) {
  const rail = createTestRail()
  const calls: { method: string; params: Params }[] = []
  const server = new Server(
    { name: 'hostile', version: '1.0.0' },
    { capabilities: { tools: {}, resources: {}, prompts: {} } },
  )
  const answer =
    (method: 'tools/call' | 'resources/read' | 'prompts/get') =>
    async (request: { params: Params }): Promise<any> => {
      calls.push({ method, params: request.params })
      const attempt = calls.filter((call) => call.method === method).length
      const reply = await script(method, request.params, attempt)
      if ('result' in reply) return reply.result
      throw new McpError(reply.code ?? -32042, 'Payment Required', {
        httpStatus: 402,
        challenges: reply.challenges,
        ...reply.data,
      })
    }
  server.setRequestHandler(CallToolRequestSchema, answer('tools/call') as never)
  server.setRequestHandler(ReadResourceRequestSchema, answer('resources/read') as never)
  server.setRequestHandler(GetPromptRequestSchema, answer('prompts/get') as never)
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await server.connect(serverSide)
  const client = new Client({ name: 'agent', version: '1.0.0' })
  await client.connect(clientSide)
  const payer = CoreClient.create({ methods: [rail.client()] })
  return { rail, calls, client, payer, close: () => client.close() }
}

/** A successful result carrying a receipt for the credential's challenge, when there is one. */
export function paidResult(params: Params, content: Params = { content: [] }): { result: Params } {
  const credential = params._meta?.['org.paymentauth/credential'] as
    | { challenge?: { id?: string } }
    | undefined
  return {
    result: {
      ...content,
      ...(credential
        ? {
            _meta: {
              'org.paymentauth/receipt': {
                status: 'success',
                method: 'test',
                timestamp: new Date().toISOString(),
                reference: 'ref',
                challengeId: credential.challenge?.id,
              },
            },
          }
        : {}),
    },
  }
}
