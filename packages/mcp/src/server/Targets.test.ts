import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js'
import { GetPromptRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import { describe, expect, test } from 'vitest'
import { z } from 'zod'
import * as Targets from './Targets.js'

/**
 * A real McpServer with tools, prompts and resources in every state, connected with no payments: what
 * it answers to a call is what the check must predict.
 */
async function served() {
  const mcp = new McpServer({ name: 'targets', version: '1.0.0' }, { maxToolInputElements: 5 })
  const ran: string[] = []
  const text = (value: string) => ({ content: [{ type: 'text' as const, text: value }] })
  mcp.registerTool('plain', {}, async () => {
    ran.push('plain')
    return text('plain')
  })
  mcp.registerTool('typed', { inputSchema: { city: z.string().min(2) } }, async ({ city }) => {
    ran.push('typed')
    return text(city)
  })
  mcp.registerTool('off', {}, async () => text('off')).disable()
  // A tool declaring task support without a task handler: the SDK refuses every call of it.
  const tasked = mcp.registerTool('tasked', {}, async () => text('tasked'))
  ;(tasked as { execution?: unknown }).execution = { taskSupport: 'required' }
  mcp.registerPrompt('brief', { argsSchema: { topic: z.string() } }, async ({ topic }) => {
    ran.push('brief')
    return { messages: [{ role: 'user', content: { type: 'text', text: topic } }] }
  })
  mcp.registerPrompt('quiet', {}, async () => ({ messages: [] })).disable()
  const contents = (uri: URL) => {
    ran.push(uri.href)
    return { contents: [{ uri: uri.href, text: 'x' }] }
  }
  mcp.registerResource('market', 'data://premium/market', {}, async (uri) => contents(uri))
  mcp.registerResource('closed', 'data://premium/closed', {}, async (uri) => contents(uri)).disable()
  mcp
    .registerResource(
      'vault',
      new ResourceTemplate('data://vault/{id}', { list: undefined }),
      {},
      async (uri) => contents(uri),
    )
    .disable()
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  await mcp.connect(serverSide)
  const replies = new Map<unknown, any>()
  clientSide.onmessage = (message: any) => replies.get(message.id)?.(message)
  await clientSide.start()
  let next = 1
  /** What the SDK answers to a raw call. */
  const answer = (method: string, params: unknown): Promise<any> => {
    const id = next++
    const reply = new Promise((resolve) => replies.set(id, resolve))
    void clientSide.send({ jsonrpc: '2.0', id, method, params } as never)
    return reply
  }
  return { mcp, ran, answer }
}

describe('of', () => {
  test('predicts every refusal of the SDK, exactly as it answers it, and nothing it serves', async () => {
    const { mcp, ran, answer } = await served()
    const targets = Targets.of(mcp)
    const calls: [Targets.Call['method'], unknown][] = [
      ['tools/call', { name: 'plain' }],
      ['tools/call', { name: 'typed', arguments: { city: 'Oslo' } }],
      ['tools/call', { name: 'typed', arguments: { city: 'O' } }],
      ['tools/call', { name: 'typed' }],
      ['tools/call', { name: 'typed', arguments: { city: 'Oslo', a: [1, 2, 3, 4, 5] } }],
      ['tools/call', { name: 'typed', arguments: 'not an object' }],
      ['tools/call', { name: 'missing' }],
      ['tools/call', { name: 'constructor' }],
      ['tools/call', { name: 'off' }],
      ['tools/call', { name: 'tasked' }],
      ['prompts/get', { name: 'brief', arguments: { topic: 'x' } }],
      ['prompts/get', { name: 'brief', arguments: { topic: 7 } }],
      ['prompts/get', { name: 'quiet' }],
      ['prompts/get', { name: 'missing' }],
      ['resources/read', { uri: 'data://premium/market' }],
      ['resources/read', { uri: 'DATA://premium/./market' }],
      ['resources/read', { uri: 'data://premium/closed' }],
      ['resources/read', { uri: 'data://vault/1' }],
      ['resources/read', { uri: 'data://nothing/here' }],
      ['resources/read', { uri: 'not a url' }],
      ['resources/read', { uri: `data://vault/${'x'.repeat(1_000_001)}` }],
    ]
    const seen: unknown[] = []
    for (const [method, params] of calls) {
      const before = ran.length
      const refusal = await targets.refusal({ jsonrpc: '2.0', id: 0, method, params })
      const sdk = await answer(method, params)
      const servedIt = ran.length > before
      // The check refuses exactly what the SDK does not run, with the SDK's own answer.
      expect([method, params, servedIt ? undefined : { error: sdk.error, result: sdk.result }]).toEqual([
        method,
        params,
        refusal && { error: undefined, result: undefined, ...refusal },
      ])
      const kind = servedIt ? 'served' : refusal && 'error' in refusal ? 'error' : 'isError'
      seen.push(`${method} ${JSON.stringify(params).slice(0, 50)}: ${kind}`)
    }
    expect(seen).toMatchInlineSnapshot(`
      [
        "tools/call {"name":"plain"}: served",
        "tools/call {"name":"typed","arguments":{"city":"Oslo"}}: served",
        "tools/call {"name":"typed","arguments":{"city":"O"}}: isError",
        "tools/call {"name":"typed"}: isError",
        "tools/call {"name":"typed","arguments":{"city":"Oslo","a":[1,: isError",
        "tools/call {"name":"typed","arguments":"not an object"}: error",
        "tools/call {"name":"missing"}: isError",
        "tools/call {"name":"constructor"}: isError",
        "tools/call {"name":"off"}: isError",
        "tools/call {"name":"tasked"}: isError",
        "prompts/get {"name":"brief","arguments":{"topic":"x"}}: served",
        "prompts/get {"name":"brief","arguments":{"topic":7}}: error",
        "prompts/get {"name":"quiet"}: error",
        "prompts/get {"name":"missing"}: error",
        "resources/read {"uri":"data://premium/market"}: served",
        "resources/read {"uri":"DATA://premium/./market"}: served",
        "resources/read {"uri":"data://premium/closed"}: error",
        "resources/read {"uri":"data://vault/1"}: served",
        "resources/read {"uri":"data://nothing/here"}: error",
        "resources/read {"uri":"not a url"}: error",
        "resources/read {"uri":"data://vault/xxxxxxxxxxxxxxxxxxxxxxxxxxxxx: error",
      ]
    `)
  })

  test('a method with no handler is -32601; one with a handler of the application’s own is not checked', async () => {
    const bare = new McpServer({ name: 'bare', version: '1.0.0' })
    expect(await Targets.of(bare).refusal({ method: 'prompts/get', params: { name: 'x' } })).toEqual({
      error: { code: -32601, message: 'Method not found' },
    })
    bare.server.registerCapabilities({ prompts: {} })
    bare.server.setRequestHandler(GetPromptRequestSchema, async () => ({ messages: [] }))
    expect(await Targets.of(bare).refusal({ method: 'prompts/get', params: { name: 'x' } })).toBeUndefined()
  })

  test('something that is not an McpServer of this SDK is a ConfigurationError', () => {
    expect(() => Targets.of({} as McpServer)).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: payments.transport(t, mcp) needs an McpServer of @modelcontextprotocol/sdk 1.32.x (its tool, prompt and resource registries are read to settle only calls the SDK will run); for a server that is not one, payments.transport(t, { unchecked: true }) checks nothing (calls it refuses are settled first)]`,
    )
  })
})
