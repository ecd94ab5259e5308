import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { Server as LowLevelServer } from '@modelcontextprotocol/sdk/server/index.js'
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js'
import { CallToolRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js'
import { ConfigurationError } from '@mppkit/core'
import { Client as CoreClient } from '@mppkit/core/client'
import * as Server from '@mppkit/core/server'
import { createTestRail } from '@mppkit/core/testing'
import { afterEach, describe, expect, test } from 'vitest'
import { z } from 'zod'
import { connected, overHttp, paidServer, price, raw, secret } from '../../test/fixture.js'
import { create } from './Payments.js'

const credentialKey = 'org.paymentauth/credential'
const receiptKey = 'org.paymentauth/receipt'

async function refusal(promise: Promise<unknown>): Promise<McpError> {
  try {
    await promise
  } catch (error) {
    if (error instanceof McpError) return error
    throw error
  }
  throw new Error('expected an McpError')
}

describe('create', () => {
  let close: (() => Promise<void>) | undefined
  afterEach(async () => {
    await close?.()
    close = undefined
  })

  test('an unpaid tool call gets -32042 with the challenges, request as a JSON object', async () => {
    const t = await connected()
    close = t.close
    const error = await refusal(t.client.callTool({ name: 'forecast', arguments: { city: 'Paris' } }))
    expect(error.code).toBe(-32042)
    const data = error.data as any
    expect(data.httpStatus).toBe(402)
    expect(data.challenges).toHaveLength(1)
    const [challenge] = data.challenges
    // "Servers MUST NOT base64url-encode the request when using JSON-RPC transport."
    expect(challenge.request).toEqual({ amount: '1000', currency: 'usd', recipient: 'acct_merchant' })
    expect(Object.keys(challenge).sort()).toMatchInlineSnapshot(`
      [
        "description",
        "digest",
        "expires",
        "id",
        "intent",
        "method",
        "opaque",
        "realm",
        "request",
      ]
    `)
    expect(data.problem.type).toBe('https://paymentauth.org/problems/payment-required')
    expect(t.calls).toEqual([])
  })

  test('a credential in params._meta is settled and the result carries the receipt', async () => {
    const t = await connected()
    close = t.close
    const error = await refusal(t.client.callTool({ name: 'forecast', arguments: { city: 'Paris' } }))
    const payment = await t.payer.pay((error.data as any).challenges, { url: 'mcp://weather/tools/forecast' })
    const result = await t.client.callTool({
      name: 'forecast',
      arguments: { city: 'Paris' },
      _meta: { [credentialKey]: payment.credential },
    })
    expect(result.content).toEqual([{ type: 'text', text: 'sunny in Paris' }])
    const receipt = (result._meta as any)[receiptKey]
    expect(receipt).toMatchObject({
      status: 'success',
      method: 'test',
      challengeId: payment.challenge.id,
      reference: payment.credential.payload.transfer,
    })
    expect(t.rail.settlements()).toBe(1)
    // The handler learns the receipt, never the credential.
    const meta = t.calls[0]!.meta as Record<string, unknown>
    expect(meta[credentialKey]).toBeUndefined()
    expect(meta[receiptKey]).toEqual(receipt)
  })

  test('a replayed credential is refused with -32043 and a fresh challenge', async () => {
    const t = await connected()
    close = t.close
    const error = await refusal(t.client.callTool({ name: 'premium' }))
    const payment = await t.payer.pay((error.data as any).challenges, { url: 'mcp://weather/tools/premium' })
    const params = { name: 'premium', _meta: { [credentialKey]: payment.credential } }
    await t.client.callTool(params)
    const replay = await refusal(t.client.callTool(params))
    expect(replay.code).toBe(-32043)
    const data = replay.data as any
    expect(data.challenges).toHaveLength(1)
    expect(data.challenges[0].id).not.toBe(payment.challenge.id)
    expect(data.problem.type).toBe('https://paymentauth.org/problems/invalid-challenge')
    expect(t.rail.settlements()).toBe(1)
    expect(t.calls).toHaveLength(1)
  })

  test("tool A's challenge never pays for tool B", async () => {
    const t = await connected()
    close = t.close
    // Same price on both sides, so only the operation binding can tell them apart.
    const error = await refusal(t.client.callTool({ name: 'forecast', arguments: { city: 'Paris' } }))
    const payment = await t.payer.pay((error.data as any).challenges, { url: 'mcp://weather/tools/forecast' })
    const other = await refusal(
      t.client.callTool({
        name: 'alerts',
        arguments: { city: 'Paris' },
        _meta: { [credentialKey]: payment.credential },
      }),
    )
    expect(other.code).toBe(-32043)
    expect((other.data as any).problem.detail).toMatchInlineSnapshot(
      `"The challenge opaque does not match this resource."`,
    )
    expect((other.data as any).challenges[0].opaque).not.toBe(payment.challenge.opaque)
    expect(t.rail.settlements()).toBe(0)
    expect(t.calls).toEqual([])
  })

  test('a challenge paid for some arguments does not pay for others', async () => {
    const t = await connected()
    close = t.close
    const error = await refusal(t.client.callTool({ name: 'forecast', arguments: { city: 'Paris' } }))
    const payment = await t.payer.pay((error.data as any).challenges, { url: 'mcp://weather/tools/forecast' })
    const other = await refusal(
      t.client.callTool({
        name: 'forecast',
        arguments: { city: 'Oslo' },
        _meta: { [credentialKey]: payment.credential },
      }),
    )
    expect(other.code).toBe(-32043)
    expect((other.data as any).failure.reason).toBe('digest-mismatch')
    expect(t.calls).toEqual([])
  })

  test('two concurrent submissions of one credential settle once', async () => {
    const t = await connected({ verifyDelayMs: 30 })
    close = t.close
    const error = await refusal(t.client.callTool({ name: 'premium' }))
    const payment = await t.payer.pay((error.data as any).challenges, { url: 'mcp://weather/tools/premium' })
    const params = { name: 'premium', _meta: { [credentialKey]: payment.credential } }
    const outcomes = await Promise.allSettled([t.client.callTool(params), t.client.callTool(params)])
    const fulfilled = outcomes.filter((o) => o.status === 'fulfilled')
    const rejected = outcomes.filter((o) => o.status === 'rejected') as PromiseRejectedResult[]
    expect(fulfilled).toHaveLength(1)
    expect(rejected).toHaveLength(1)
    expect((rejected[0]!.reason as McpError).code).toBe(-32043)
    expect(t.rail.settlements()).toBe(1)
    expect(t.calls).toHaveLength(1)
  })

  test('paid resources and prompts', async () => {
    const t = await connected()
    close = t.close
    const unpaid = await refusal(t.client.readResource({ uri: 'data://premium/market' }))
    expect(unpaid.code).toBe(-32042)
    const payment = await t.payer.pay((unpaid.data as any).challenges, { url: 'mcp://weather/resource' })
    const resource = await t.client.readResource({
      uri: 'data://premium/market',
      _meta: { [credentialKey]: payment.credential },
    })
    expect(resource.contents[0]).toMatchObject({ text: 'market data' })
    expect((resource._meta as any)[receiptKey].challengeId).toBe(payment.challenge.id)

    const prompt = await refusal(t.client.getPrompt({ name: 'expert' }))
    expect(prompt.code).toBe(-32042)
    const paid = await t.payer.pay((prompt.data as any).challenges, { url: 'mcp://weather/prompt' })
    const got = await t.client.getPrompt({ name: 'expert', _meta: { [credentialKey]: paid.credential } })
    expect((got._meta as any)[receiptKey].challengeId).toBe(paid.challenge.id)
  })

  test('free tools ignore a credential and carry no receipt', async () => {
    const t = await connected()
    close = t.close
    const result = await t.client.callTool({
      name: 'echo',
      arguments: { text: 'hi' },
      _meta: { [credentialKey]: 'anything' },
    })
    expect(result.content).toEqual([{ type: 'text', text: 'hi' }])
    // "Servers MUST NOT return receipts for unpaid requests."
    expect((result._meta as any)?.[receiptKey]).toBeUndefined()
  })

  test('a session offer is refused at creation, naming why (MCP has no call for top-up or close)', () => {
    const server = Server.create({ realm: 'r', secrets: [secret], methods: [createTestRail().server()] })
    expect(() =>
      create({ server, tools: { chat: [{ method: 'tempo', intent: 'session', request: { amount: '1' } }] } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: tools/call chat: the session intent is not sold over MCP (no MCP call carries a session's top-up or close); offer a charge here, and sessions on HTTP routes]`,
    )
  })

  test('the payment capability is advertised in InitializeResult', async () => {
    const t = await connected()
    close = t.close
    expect(t.client.getServerCapabilities()?.experimental).toMatchInlineSnapshot(`
      {
        "payment": {
          "methods": {
            "test": {
              "intents": [
                "charge",
              ],
            },
          },
        },
      }
    `)
    expect(t.payments.capability.methods).toEqual({ test: { intents: ['charge'] } })
  })
})

describe('create (raw JSON-RPC)', () => {
  test('a credential in root-level _meta is accepted too', async () => {
    const t = await raw()
    const first = await t.request({ method: 'tools/call', params: { name: 'premium' } })
    expect(first.error.code).toBe(-32042)
    const payment = await t.payer.pay(first.error.data.challenges, { url: 'mcp://weather/tools/premium' })
    const paid = await t.request({
      method: 'tools/call',
      params: { name: 'premium' },
      _meta: { [credentialKey]: payment.credential },
    })
    expect(paid.result._meta[receiptKey].challengeId).toBe(payment.challenge.id)
    expect(t.rail.settlements()).toBe(1)
  })

  test('a paid resource is not read for free under another spelling of its URI', async () => {
    const t = await raw()
    for (const uri of [
      'DATA://premium/market',
      'Data://premium/market',
      'data://premium/./market',
      'data://premium/x/../market',
    ]) {
      const reply = await t.request({ method: 'resources/read', params: { uri } })
      expect([uri, reply.error?.code]).toEqual([uri, -32042])
    }
    // The challenge names the resource the SDK serves, and pays for it under either spelling.
    const first = await t.request({ method: 'resources/read', params: { uri: 'DATA://premium/./market' } })
    const payment = await t.payer.pay(first.error.data.challenges, { url: 'mcp://weather/resource' })
    const paid = await t.request({
      method: 'resources/read',
      params: { uri: 'data://premium/market', _meta: { [credentialKey]: payment.credential } },
    })
    expect(paid.result.contents[0].text).toBe('market data')
    expect(paid.result._meta[receiptKey].challengeId).toBe(payment.challenge.id)
    expect(t.rail.settlements()).toBe(1)
  })

  test('priced URIs served by a resource template, and priced templates, are gated as the SDK matches them', async () => {
    const rail = createTestRail()
    const server = Server.create({ realm: 'mcp.example', secrets: [secret], methods: [rail.server()] })
    const offers = [{ method: 'test', request: price }]
    const payments = create({
      server,
      resources: {
        'https://api.example.com/items/42': offers,
        'data://vault/{id}': offers,
      },
    })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    const read = async (uri: URL) => ({ contents: [{ uri: uri.href, text: `read ${uri.href}` }] })
    mcp.registerResource(
      'items',
      new ResourceTemplate('https://api.example.com/items/{id}', { list: undefined }),
      {},
      read,
    )
    mcp.registerResource('vault', new ResourceTemplate('data://vault/{id}', { list: undefined }), {}, read)
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await mcp.connect(payments.transport(serverSide, mcp))
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    for (const uri of [
      'https://api.example.com/items/42',
      'https://API.EXAMPLE.COM/items/42',
      'https://api.example.com:443/items/42',
      'HTTPS://api.example.com/items/x/../42',
      'data://vault/1',
      'DATA://vault/./2',
    ])
      expect([uri, (await refusal(client.readResource({ uri }))).code]).toEqual([uri, -32042])
    // Unpriced URIs of the same template stay free.
    expect((await client.readResource({ uri: 'https://api.example.com/items/7' })).contents[0]).toMatchObject(
      {
        text: 'read https://api.example.com/items/7',
      },
    )
    // A challenge for one URI of a priced template does not pay for another.
    const unpaid = await refusal(client.readResource({ uri: 'data://vault/1' }))
    const payment = await CoreClient.create({ methods: [rail.client()] }).pay(
      (unpaid.data as any).challenges,
      {
        url: 'mcp://mcp/resource',
      },
    )
    const other = await refusal(
      client.readResource({ uri: 'data://vault/2', _meta: { [credentialKey]: payment.credential } }),
    )
    expect(other.code).toBe(-32043)
    const paid = await client.readResource({
      uri: 'data://vault/1',
      _meta: { [credentialKey]: payment.credential },
    })
    expect((paid._meta as any)[receiptKey].challengeId).toBe(payment.challenge.id)
    expect(rail.settlements()).toBe(1)
    await client.close()
  })

  test('a dynamic resource price reads the URI the SDK serves, not the spelling sent', async () => {
    const rail = createTestRail()
    const server = Server.create({ realm: 'mcp.example', secrets: [secret], methods: [rail.server()] })
    const seen: string[] = []
    const request = async (request: Request) => {
      seen.push(((await request.json()) as { uri: string }).uri)
      return price
    }
    const payments = create({ server, resources: { 'data://premium/market': [{ method: 'test', request }] } })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    mcp.registerResource('market', 'data://premium/market', {}, async (uri) => ({
      contents: [{ uri: uri.href, text: 'market data' }],
    }))
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await mcp.connect(payments.transport(serverSide, mcp))
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    expect((await refusal(client.readResource({ uri: 'DATA://premium/x/../market' }))).code).toBe(-32042)
    expect(seen).toEqual(['data://premium/market'])
    await client.close()
  })

  test('a credential in root-level _meta of a free request is ignored: answered, never in an error', async () => {
    const t = await raw()
    const errors: Error[] = []
    t.mcp.server.onerror = (error) => errors.push(error)
    const credential = { challenge: { id: 'x' }, payload: { signature: 'secret-signature' } }
    const echo = await t.request({
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'hi' } },
      _meta: { [credentialKey]: credential, progressToken: 7 },
    })
    expect(echo.result.content).toEqual([{ type: 'text', text: 'hi' }])
    const list = await t.request({ method: 'tools/list', _meta: { [credentialKey]: credential } })
    expect(list.result.tools.map((tool: { name: string }) => tool.name)).toContain('echo')
    const nested = await t.request({
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'ho' }, _meta: { [credentialKey]: credential } },
    })
    expect(nested.result.content).toEqual([{ type: 'text', text: 'ho' }])
    expect(errors).toEqual([])
    // Other root `_meta` members reach the handler where MCP puts them; the credential never does.
    expect(t.calls.map((call) => call.meta)).toEqual([{ progressToken: 7 }, {}])
    expect(t.rail.settlements()).toBe(0)
  })

  test('malformed credentials get -32602 and the server keeps serving', async () => {
    const t = await raw()
    const first = await t.request({ method: 'tools/call', params: { name: 'premium' } })
    const challenge = first.error.data.challenges[0]
    const { id: _id, ...withoutId } = challenge
    let deep: unknown = {}
    for (let i = 0; i < 20_000; i++) deep = { a: deep }
    const bad: unknown[] = [
      'a string',
      42,
      null,
      [],
      { challenge },
      { challenge, payload: [] },
      { challenge: withoutId, payload: { transfer: 'x' } },
      { challenge: { ...challenge, request: 'not an object' }, payload: { transfer: 'x' } },
      { challenge, payload: deep },
    ]
    const deepArguments = await t.request({
      method: 'tools/call',
      params: { name: 'forecast', arguments: deep },
    })
    expect(deepArguments.error.code).toBe(-32602)
    const codes: number[] = []
    for (const credential of bad) {
      const reply = await t.request({
        method: 'tools/call',
        params: { name: 'premium', _meta: { [credentialKey]: credential } },
      })
      codes.push(reply.error?.code)
      expect(JSON.stringify(reply)).not.toContain('at ')
    }
    // "Use `-32602` for credential structure errors." (§Error Code Mapping): never a crash.
    expect(codes).toMatchInlineSnapshot(`
      [
        -32602,
        -32602,
        -32602,
        -32602,
        -32602,
        -32602,
        -32602,
        -32602,
        -32602,
      ]
    `)
    const again = await t.request({
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'ok' } },
    })
    expect(again.result.content[0].text).toBe('ok')
    expect(t.calls.map((c) => c.tool)).toEqual(['echo'])
  })

  test('paid operations sent as notifications are dropped', async () => {
    const t = await raw()
    const first = await t.request({ method: 'tools/call', params: { name: 'premium' } })
    const payment = await t.payer.pay(first.error.data.challenges, { url: 'mcp://weather/tools/premium' })
    await t.notify({
      method: 'tools/call',
      params: { name: 'premium', _meta: { [credentialKey]: payment.credential } },
    })
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(t.calls).toEqual([])
    expect(t.rail.settlements()).toBe(0)
    // The credential was not consumed: the request form still pays.
    const paid = await t.request({
      method: 'tools/call',
      params: { name: 'premium', _meta: { [credentialKey]: payment.credential } },
    })
    expect(paid.result._meta[receiptKey].challengeId).toBe(payment.challenge.id)
  })
})

describe('create (Streamable HTTP)', () => {
  test('a paid tool call over HTTP: -32042, then a receipt; a replay is refused', async () => {
    const t = await overHttp()
    try {
      const error = await refusal(t.client.callTool({ name: 'forecast', arguments: { city: 'Lima' } }))
      expect(error.code).toBe(-32042)
      const payment = await t.payer.pay((error.data as any).challenges, { url: t.url.href })
      const params = {
        name: 'forecast',
        arguments: { city: 'Lima' },
        _meta: { [credentialKey]: payment.credential },
      }
      const result = await t.client.callTool(params)
      expect(result.content).toEqual([{ type: 'text', text: 'sunny in Lima' }])
      expect((result._meta as any)[receiptKey].challengeId).toBe(payment.challenge.id)
      expect((await refusal(t.client.callTool(params))).code).toBe(-32043)
      expect(t.rail.settlements()).toBe(1)
    } finally {
      await t.close()
    }
  })
  test('a credential in root-level _meta over HTTP, once the body is lifted with liftMeta', async () => {
    const t = await overHttp({ liftMeta: true })
    try {
      const sessionId = (t.client as any)._transport.sessionId
      const post = async (body: unknown) => {
        const response = await fetch(t.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-session-id': sessionId,
            'mcp-protocol-version': '2025-06-18',
          },
          body: JSON.stringify(body),
        })
        const data = (await response.text()).split('\n').find((line) => line.startsWith('data:'))
        return { status: response.status, reply: data && JSON.parse(data.slice(5)) }
      }
      const first = await post({ jsonrpc: '2.0', id: 101, method: 'tools/call', params: { name: 'premium' } })
      expect(first.reply.error.code).toBe(-32042)
      const payment = await t.payer.pay(first.reply.error.data.challenges, { url: t.url.href })
      const paid = await post({
        jsonrpc: '2.0',
        id: 102,
        method: 'tools/call',
        params: { name: 'premium' },
        _meta: { [credentialKey]: payment.credential },
      })
      expect(paid.status).toBe(200)
      expect(paid.reply.result._meta[receiptKey].challengeId).toBe(payment.challenge.id)
      expect(t.rail.settlements()).toBe(1)
    } finally {
      await t.close()
    }
  })
})

describe('create (dynamic prices)', () => {
  test('a price function reads the call (name and arguments) from the request body', async () => {
    const rail = createTestRail()
    const server = Server.create({ realm: 'mcp.example', secrets: [secret], methods: [rail.server()] })
    const payments = create({
      server,
      tools: {
        forecast: [
          {
            method: 'test',
            request: async (request: Request) => {
              const { arguments: args } = (await request.json()) as { arguments: { days: number } }
              return { ...price, amount: String(100 * args.days) }
            },
          },
        ],
      },
    })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    mcp.registerTool('forecast', { inputSchema: { days: z.number() } }, async ({ days }) => ({
      content: [{ type: 'text', text: `${days} days` }],
    }))
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await mcp.connect(payments.transport(serverSide, mcp))
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    const error = await refusal(client.callTool({ name: 'forecast', arguments: { days: 7 } }))
    expect((error.data as any).challenges[0].request.amount).toBe('700')
    const payer = CoreClient.create({ methods: [rail.client()] })
    const payment = await payer.pay((error.data as any).challenges, { url: 'mcp://weather/tools/forecast' })
    const result = await client.callTool({
      name: 'forecast',
      arguments: { days: 7 },
      _meta: { [credentialKey]: payment.credential },
    })
    expect(result.content).toEqual([{ type: 'text', text: '7 days' }])
    expect(rail.settlements()).toBe(1)
    // A replay is priced twice (the echo is checked, then a fresh challenge issued): both read the call.
    const replay = await refusal(
      client.callTool({
        name: 'forecast',
        arguments: { days: 7 },
        _meta: { [credentialKey]: payment.credential },
      }),
    )
    expect(replay.code).toBe(-32043)
    expect((replay.data as any).challenges[0].request.amount).toBe('700')
    await client.close()
  })
})

describe('create (calls the SDK would refuse)', () => {
  test('a paid tool the SDK refuses (disabled, removed, arguments its schema refuses) is never settled', async () => {
    const t = await raw()
    const params = { name: 'forecast', arguments: { city: 'Paris' } }
    const first = await t.request({ method: 'tools/call', params })
    const payment = await t.payer.pay(first.error.data.challenges, { url: 'mcp://weather/tools/forecast' })
    const paid = { ...params, _meta: { [credentialKey]: payment.credential } }
    const tool = (t.mcp as any)._registeredTools.forecast
    tool.disable()
    const disabled = await t.request({ method: 'tools/call', params: paid })
    // What the SDK answers for any disabled tool: an `isError` result, here without a receipt.
    expect(disabled).toMatchInlineSnapshot(`
      {
        "id": 2,
        "jsonrpc": "2.0",
        "result": {
          "content": [
            {
              "text": "MCP error -32602: Tool forecast disabled",
              "type": "text",
            },
          ],
          "isError": true,
        },
      }
    `)
    // The SDK's own answer for a free tool in the same state.
    ;(t.mcp as any)._registeredTools.echo.disable()
    const free = await t.request({ method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } })
    expect(free.result).toEqual({
      ...disabled.result,
      content: [{ type: 'text', text: 'MCP error -32602: Tool echo disabled' }],
    })
    tool.remove()
    const removed = await t.request({ method: 'tools/call', params: paid })
    expect(removed.result.content[0].text).toBe('MCP error -32602: Tool forecast not found')
    // Unpaid, the same call is refused the same way: no challenge to pay for a call that cannot run.
    const unpaid = await t.request({ method: 'tools/call', params })
    expect([unpaid.error, unpaid.result?.isError]).toEqual([undefined, true])
    expect(t.rail.settlements()).toBe(0)
    // The credential was not consumed: once the tool runs again, it pays for it.
    t.mcp.registerTool('forecast', { inputSchema: { city: z.string() } }, async ({ city }) => ({
      content: [{ type: 'text', text: `cloudy in ${city}` }],
    }))
    const served = await t.request({ method: 'tools/call', params: paid })
    expect(served.result.content[0].text).toBe('cloudy in Paris')
    expect(served.result._meta[receiptKey].challengeId).toBe(payment.challenge.id)
    expect(t.rail.settlements()).toBe(1)
  })

  test('arguments the tool schema refuses: no challenge, and an unbound credential is not settled', async () => {
    const t = await raw()
    const invalid = await t.request({
      method: 'tools/call',
      params: { name: 'forecast', arguments: { city: 7 } },
    })
    expect(invalid.error).toBeUndefined()
    expect(invalid.result.isError).toBe(true)
    expect(invalid.result.content[0].text).toMatch(/^MCP error -32602: Input validation error/)
    // With `bindArguments: false` a challenge pays for any arguments: refused ones are not charged.
    const rail = createTestRail()
    const server = Server.create({ realm: 'mcp.example', secrets: [secret], methods: [rail.server()] })
    const payments = create({
      server,
      bindArguments: false,
      tools: { forecast: [{ method: 'test', request: price }] },
    })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    mcp.registerTool('forecast', { inputSchema: { city: z.string() } }, async ({ city }) => ({
      content: [{ type: 'text', text: `sunny in ${city}` }],
    }))
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await payments.connect(mcp, serverSide)
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    const error = await refusal(client.callTool({ name: 'forecast', arguments: { city: 'Oslo' } }))
    const payment = await CoreClient.create({ methods: [rail.client()] }).pay(
      (error.data as any).challenges,
      {
        url: 'mcp://mcp/tools/forecast',
      },
    )
    const meta = { [credentialKey]: payment.credential }
    const refused = await client.callTool({ name: 'forecast', arguments: { city: 7 }, _meta: meta })
    expect(refused.isError).toBe(true)
    expect(refused._meta).toBeUndefined()
    expect(rail.settlements()).toBe(0)
    const served = await client.callTool({ name: 'forecast', arguments: { city: 'Oslo' }, _meta: meta })
    expect(served.content).toEqual([{ type: 'text', text: 'sunny in Oslo' }])
    expect(rail.settlements()).toBe(1)
    await client.close()
  })

  test('paid prompts and resources the SDK refuses get its JSON-RPC error and are never settled', async () => {
    const t = await raw()
    const challenged = await t.request({ method: 'prompts/get', params: { name: 'expert' } })
    const prompt = await t.payer.pay(challenged.error.data.challenges, { url: 'mcp://weather/prompt' })
    const market = await t.request({ method: 'resources/read', params: { uri: 'data://premium/market' } })
    const resource = await t.payer.pay(market.error.data.challenges, { url: 'mcp://weather/resource' })
    const expert = (t.mcp as any)._registeredPrompts.expert
    const data = (t.mcp as any)._registeredResources['data://premium/market']
    expert.disable()
    data.disable()
    const prompted = await t.request({
      method: 'prompts/get',
      params: { name: 'expert', _meta: { [credentialKey]: prompt.credential } },
    })
    const read = await t.request({
      method: 'resources/read',
      params: { uri: 'DATA://premium/market', _meta: { [credentialKey]: resource.credential } },
    })
    expect([prompted.error, read.error]).toMatchInlineSnapshot(`
      [
        {
          "code": -32602,
          "message": "MCP error -32602: Prompt expert disabled",
        },
        {
          "code": -32602,
          "message": "MCP error -32602: Resource data://premium/market disabled",
        },
      ]
    `)
    expect(t.rail.settlements()).toBe(0)
    expert.enable()
    data.enable()
    const served = await t.request({
      method: 'prompts/get',
      params: { name: 'expert', _meta: { [credentialKey]: prompt.credential } },
    })
    expect(served.result._meta[receiptKey].challengeId).toBe(prompt.challenge.id)
    expect(t.rail.settlements()).toBe(1)
  })

  test('prompt arguments, template URIs and methods the SDK has no handler for are refused before payment', async () => {
    const rail = createTestRail()
    const server = Server.create({ realm: 'mcp.example', secrets: [secret], methods: [rail.server()] })
    const offers = [{ method: 'test', request: price }]
    const payments = create({
      server,
      prompts: { brief: offers },
      resources: { 'data://vault/{id}': offers },
      tools: { forecast: offers },
    })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    mcp.registerPrompt('brief', { argsSchema: { topic: z.string() } }, async ({ topic }) => ({
      messages: [{ role: 'user', content: { type: 'text', text: topic } }],
    }))
    const vault = mcp.registerResource(
      'vault',
      new ResourceTemplate('data://vault/{id}', { list: undefined }),
      {},
      async (uri) => ({ contents: [{ uri: uri.href, text: 'gold' }] }),
    )
    mcp.registerTool('forecast', {}, async () => ({ content: [{ type: 'text', text: 'sunny' }] }))
    const connect = async (target: McpServer, through = payments) => {
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
      await through.connect(target, serverSide)
      const client = new Client({ name: 'agent', version: '1.0.0' })
      await client.connect(clientSide)
      return client
    }
    const client = await connect(mcp)
    const payer = CoreClient.create({ methods: [rail.client()] })
    const pay = async (promise: Promise<unknown>) => {
      const challenges = ((await refusal(promise)).data as any).challenges
      return { [credentialKey]: (await payer.pay(challenges, { url: 'mcp://mcp/x' })).credential }
    }
    const read = await pay(client.readResource({ uri: 'data://vault/1' }))
    const call = await pay(client.callTool({ name: 'forecast' }))
    vault.remove()
    // The same price over a server that has no tools: the SDK has no tools/call handler (connected
    // because the price says the tool comes later).
    const late = create({ server, tools: { forecast: offers }, lateRegistration: { tools: ['forecast'] } })
    const bare = await connect(new McpServer({ name: 'bare', version: '1.0.0' }), late)
    const refused = async (promise: Promise<unknown>) => {
      const error = await refusal(promise)
      return { code: error.code, message: error.message }
    }
    expect([
      await refused(client.getPrompt({ name: 'brief', arguments: {} })),
      await refused(client.readResource({ uri: 'data://vault/1', _meta: read })),
      await refused(bare.callTool({ name: 'forecast', _meta: call })),
    ]).toMatchInlineSnapshot(`
      [
        {
          "code": -32602,
          "message": "MCP error -32602: MCP error -32602: Invalid arguments for prompt brief: Invalid input: expected string, received undefined at topic",
        },
        {
          "code": -32602,
          "message": "MCP error -32602: MCP error -32602: Resource data://vault/1 not found",
        },
        {
          "code": -32601,
          "message": "MCP error -32601: Method not found",
        },
      ]
    `)
    expect(rail.settlements()).toBe(0)
    await client.close()
    await bare.close()
  })

  test('transport(t) without the McpServer throws a ConfigurationError: nothing is wrapped or reported', async () => {
    const reported: [unknown, string][] = []
    const server = Server.create({
      realm: 'r',
      secrets: [secret],
      methods: [createTestRail().server()],
      onError: (error, { phase }) => void reported.push([error, phase]),
      logger: false,
    })
    const payments = create({ server, tools: { forecast: [{ method: 'test', request: price }] } })
    const [, serverSide] = InMemoryTransport.createLinkedPair()
    // @ts-expect-error: the McpServer, or `{ unchecked: true }`, is required.
    expect(() => payments.transport(serverSide)).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: payments.transport(t) needs the McpServer connected to it: without it, a paid call the SDK then refuses (an unknown or disabled tool, prompt or resource, arguments its schema refuses) would be settled before the SDK checks it, and that payment lost (MCP carries no Idempotency-Key); use payments.connect(mcp, t) or payments.transport(t, mcp), or, for a server that is not an McpServer (the SDK's low-level Server, one of your own), payments.transport(t, { unchecked: true })]`,
    )
    expect(() => payments.transport(serverSide, null as never)).toThrow(/needs the McpServer connected to it/)
    for (const options of [{ unchecked: false }, { unchecked: 'yes' }, { unchecked: true, name: 'x' }])
      expect(() => payments.transport(serverSide, options as never)).toThrowErrorMatchingInlineSnapshot(
        `[ConfigurationError: payments.transport(t, options) takes { unchecked: true } and nothing else, for a server that is not an McpServer; give an McpServer otherwise (payments.connect(mcp, t) or payments.transport(t, mcp))]`,
      )
    // `connect` has no opt-out: it needs the McpServer it connects.
    for (const mcp of [undefined, { unchecked: true }])
      await expect(payments.connect(mcp as never, serverSide)).rejects.toThrow(/needs an McpServer of/)
    // Nothing was wired to the transport, no secret is in the message, and nothing was reported.
    expect(serverSide.onmessage).toBeUndefined()
    const thrown = (() => {
      try {
        payments.transport(serverSide, undefined as never)
      } catch (error) {
        return error
      }
    })()
    expect(thrown).toBeInstanceOf(ConfigurationError)
    expect((thrown as Error).message).not.toContain(secret)
    expect(reported).toEqual([])
  })

  test('a paid call over a transport wrapped unchecked is not checked (settled first)', async () => {
    const fixture = paidServer()
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await fixture.mcp.connect(fixture.payments.transport(serverSide, { unchecked: true }))
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    const error = await refusal(client.callTool({ name: 'premium' }))
    const payment = await CoreClient.create({ methods: [fixture.rail.client()] }).pay(
      (error.data as any).challenges,
      { url: 'mcp://weather/tools/premium' },
    )
    ;(fixture.mcp as any)._registeredTools.premium.disable()
    const result = await client.callTool({ name: 'premium', _meta: { [credentialKey]: payment.credential } })
    // The documented gap of `payments.transport(t, { unchecked: true })`: the SDK's refusal carries the
    // receipt of a settled payment.
    expect(result.isError).toBe(true)
    expect((result._meta as any)[receiptKey].challengeId).toBe(payment.challenge.id)
    expect(fixture.rail.settlements()).toBe(1)
    await client.close()
  })

  test("{ unchecked: true } serves the SDK's low-level Server: paid once, reported once, as configuration", async () => {
    const rail = createTestRail()
    const reported: [unknown, string][] = []
    const server = Server.create({
      realm: 'mcp.example',
      secrets: [secret],
      methods: [rail.server()],
      onError: (error, { phase }) => void reported.push([error, phase]),
      logger: false,
    })
    const payments = create({ server, tools: { forecast: [{ method: 'test', request: price }] } })
    const lowLevel = new LowLevelServer(
      { name: 'weather', version: '1.0.0' },
      { capabilities: { tools: {} } },
    )
    const runs: unknown[] = []
    lowLevel.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      runs.push(extra._meta?.[receiptKey])
      return { content: [{ type: 'text', text: `sunny (${request.params.name})` }] }
    })
    // Given as if it were an McpServer, it is refused, pointing at the explicit opt-out.
    expect(() => payments.transport(InMemoryTransport.createLinkedPair()[1], lowLevel as never)).toThrow(
      /; for a server that is not one, payments\.transport\(t, \{ unchecked: true \}\) checks nothing/,
    )
    expect(reported).toEqual([])
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await lowLevel.connect(payments.transport(serverSide, { unchecked: true }))
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    const unpaid = await refusal(client.callTool({ name: 'forecast' }))
    expect(unpaid.code).toBe(-32042)
    const payment = await CoreClient.create({ methods: [rail.client()] }).pay(
      (unpaid.data as any).challenges,
      {
        url: 'mcp://weather/tools/forecast',
      },
    )
    const paid = await client.callTool({ name: 'forecast', _meta: { [credentialKey]: payment.credential } })
    expect(paid.content).toEqual([{ type: 'text', text: 'sunny (forecast)' }])
    expect((paid._meta as any)[receiptKey].challengeId).toBe(payment.challenge.id)
    expect(runs).toEqual([expect.objectContaining({ challengeId: payment.challenge.id })])
    expect(rail.settlements()).toBe(1)
    // One Streamable HTTP session after another: said once.
    for (let i = 0; i < 3; i++)
      payments.transport(InMemoryTransport.createLinkedPair()[1], { unchecked: true })
    expect(reported).toHaveLength(1)
    const [error, phase] = reported[0]!
    expect(phase).toBe('configuration')
    expect(error).toBeInstanceOf(ConfigurationError)
    expect((error as Error).message).toMatchInlineSnapshot(
      `"payments.transport(t, { unchecked: true }) checks no McpServer: a paid call the server then refuses (an unknown or disabled tool, prompt or resource, arguments its schema refuses) is settled first and its payment lost; with an McpServer, use payments.connect(mcp, t) or payments.transport(t, mcp)"`,
    )
    await client.close()
  })

  test('transport(t, mcp) reports nothing; an unchecked transport is reported once, as configuration', () => {
    const reported: [unknown, string][] = []
    const server = Server.create({
      realm: 'r',
      secrets: [secret],
      methods: [createTestRail().server()],
      onError: (error, { phase }) => void reported.push([error, phase]),
    })
    const payments = create({ server, tools: { forecast: [{ method: 'test', request: price }] } })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    mcp.registerTool('forecast', {}, async () => ({ content: [] }))
    payments.transport(InMemoryTransport.createLinkedPair()[1], mcp)
    expect(reported).toEqual([])
    // One Streamable HTTP session after another: said once.
    for (let i = 0; i < 3; i++)
      payments.transport(InMemoryTransport.createLinkedPair()[1], { unchecked: true })
    expect(reported).toHaveLength(1)
    const [error, phase] = reported[0]!
    expect(phase).toBe('configuration')
    expect(error).toMatchObject({ name: 'ConfigurationError' })
    expect(String((error as Error).message)).toContain('payments.connect(mcp, t)')
  })

  test('transport(t, mcp) refuses something that is not an McpServer of this SDK', () => {
    const server = Server.create({ realm: 'r', secrets: [secret], methods: [createTestRail().server()] })
    const payments = create({ server, tools: { forecast: [{ method: 'test', request: price }] } })
    const [, serverSide] = InMemoryTransport.createLinkedPair()
    expect(() => payments.transport(serverSide, {} as McpServer)).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: payments.transport(t, mcp) needs an McpServer of @modelcontextprotocol/sdk 1.32.x (its tool, prompt and resource registries are read to settle only calls the SDK will run); for a server that is not one, payments.transport(t, { unchecked: true }) checks nothing (calls it refuses are settled first)]`,
    )
  })
})

describe('create (configuration checks)', () => {
  const serverWith = (onError?: Server.Options['onError']) =>
    Server.create({
      realm: 'r',
      secrets: [secret],
      methods: [createTestRail().server()],
      ...(onError ? { onError, logger: false as const } : {}),
    })

  test('refuses an unknown option, naming the nearest one (a `tool:` section left every tool free)', () => {
    const server = serverWith()
    expect(() =>
      create({ server, tool: { forecast: [{ method: 'test', request: price }] } } as never),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: unknown option "tool" (did you mean tools?): known options are server, tools, resources, prompts, name, bindArguments, onDroppedNotification, lateRegistration]`,
    )
    expect(() => create({ server, tools: [] as never })).toThrow('tools must be an object of prices by name')
    expect(() => create({ tools: {} } as never)).toThrow(/server must be an mppkit server/)
  })

  test('checks every priced entry as protect does: an unknown method or a bad request fails at create', () => {
    const server = serverWith()
    expect(() =>
      create({ server, tools: { forecast: [{ method: 'tset', request: price }] } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: tools/call forecast: route offers tset/charge, which is not registered]`,
    )
    expect(() =>
      create({ server, prompts: { brief: [{ method: 'test', request: { ...price, amount: '0.5' } }] } }),
    ).toThrow(/^prompts\/get brief: route offer test\/charge: request\.amount does not fit/)
    expect(() =>
      create({ server, resources: { 'data://items/{id}': [{ method: 'tset', request: price }] } }),
    ).toThrow(/^resources\/read data:\/\/items\/\{id\}: route offers tset\/charge/)
  })
})

describe('create (priced targets the McpServer does not serve)', () => {
  const offers = [{ method: 'test', request: price }]
  const setup = () => {
    const rail = createTestRail()
    const reported: [unknown, string][] = []
    const server = Server.create({
      realm: 'mcp.example',
      secrets: [secret],
      methods: [rail.server()],
      onError: (error, { phase }) => void reported.push([error, phase]),
      logger: false,
    })
    const told = () => reported.map(([error, phase]) => `${phase}: ${(error as Error).message}`)
    return { rail, server, reported, told }
  }

  test('connect throws, naming every priced tool, prompt or resource the McpServer does not serve', async () => {
    const { server, reported } = setup()
    const payments = create({
      server,
      tools: { forcast: offers, echo: offers },
      prompts: { brief: offers },
      resources: {
        'data://vault/a': offers,
        'data://items/{id}': offers,
        'data://served/{id}': offers,
      },
    })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    const runs: string[] = []
    mcp.registerTool('forecast', {}, async () => {
      runs.push('forecast')
      return { content: [] }
    })
    mcp.registerTool('echo', {}, async () => ({ content: [] }))
    mcp.registerPrompt('expert', {}, async () => ({ messages: [] }))
    mcp.registerResource('served', 'data://served/1', {}, async (uri) => ({
      contents: [{ uri: uri.href, text: '' }],
    }))
    mcp.registerResource(
      'items',
      new ResourceTemplate('data://items/{id}', { list: undefined }),
      {},
      async (uri) => ({ contents: [{ uri: uri.href, text: '' }] }),
    )
    // A misspelt `forcast` would leave `forecast` free: refused before anything is served.
    await expect(
      payments.connect(mcp, InMemoryTransport.createLinkedPair()[1]),
    ).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: payments price tools/call "forcast", resources/read "data://vault/a", prompts/get "brief", which the McpServer does not serve: such a price never applies (a misspelt name leaves the real one free); register it before connecting, fix the name, or name it in lateRegistration if it is registered after connect]`,
    )
    expect(mcp.isConnected()).toBe(false)
    expect(() => payments.transport(InMemoryTransport.createLinkedPair()[1], mcp)).toThrow(ConfigurationError)
    expect(reported).toEqual([])
    expect(runs).toEqual([])
    // Served as priced: connects, nothing reported.
    mcp.registerTool('forcast', {}, async () => ({ content: [] }))
    mcp.registerPrompt('brief', {}, async () => ({ messages: [] }))
    mcp.registerResource('vault', 'data://vault/a', {}, async (uri) => ({
      contents: [{ uri: uri.href, text: '' }],
    }))
    await payments.connect(mcp, InMemoryTransport.createLinkedPair()[1])
    expect(mcp.isConnected()).toBe(true)
    expect(reported).toEqual([])
    await mcp.close()
  })

  test('lateRegistration names priced keys: anything else is a ConfigurationError, and unnamed ones are still checked', async () => {
    const { server } = setup()
    const tools = { forecast: offers, later: offers }
    expect(() =>
      create({ server, tools, lateRegistration: { tools: ['forcast'] } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: lateRegistration names tools "forcast", which tools does not price]`,
    )
    expect(() => create({ server, tools, lateRegistration: { prompts: ['forecast'] } })).toThrow(
      'lateRegistration names prompts "forecast", which prompts does not price',
    )
    const shape = 'lateRegistration must be true, or { tools, prompts, resources } lists of priced keys'
    for (const lateRegistration of [
      'yes',
      ['forecast'],
      { tool: ['forecast'] },
      { tools: 'forecast' },
      { tools: [1] },
    ])
      expect(() => create({ server, tools, lateRegistration: lateRegistration as never })).toThrow(shape)
    const payments = create({
      server,
      tools,
      lateRegistration: { tools: ['later'], prompts: undefined } as never,
    })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    mcp.registerTool('ping', {}, async () => ({ content: [] }))
    await expect(payments.connect(mcp, InMemoryTransport.createLinkedPair()[1])).rejects.toThrow(
      /^payments price tools\/call "forecast", which the McpServer does not serve/,
    )
  })

  test('with lateRegistration, a target registered after connect is refused until then, then paid like any other', async () => {
    const { rail, server, told } = setup()
    const payments = create({
      server,
      tools: { later: offers },
      prompts: { brief: offers },
      resources: { 'data://vault/{id}': offers },
      lateRegistration: { tools: ['later'], prompts: ['brief'], resources: ['data://vault/{id}'] },
    })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    // The SDK installs a kind's handlers with its first target and refuses that after connect: one of each.
    mcp.registerTool('ping', {}, async () => ({ content: [{ type: 'text', text: 'pong' }] }))
    mcp.registerPrompt('hello', {}, async () => ({ messages: [] }))
    mcp.registerResource('about', 'data://about', {}, async (uri) => ({
      contents: [{ uri: uri.href, text: 'about' }],
    }))
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await payments.connect(mcp, serverSide)
    expect(told()).toEqual([])
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)

    // Not registered yet: the SDK's not-found, no challenge, nothing settled; told once per target.
    for (let i = 0; i < 2; i++) {
      expect(await client.callTool({ name: 'later' })).toEqual({
        content: [{ type: 'text', text: 'MCP error -32602: Tool later not found' }],
        isError: true,
      })
      expect((await refusal(client.getPrompt({ name: 'brief' }))).code).toBe(-32602)
      expect((await refusal(client.readResource({ uri: 'data://vault/1' }))).code).toBe(-32602)
    }
    expect(rail.settlements()).toBe(0)
    expect(told()).toMatchInlineSnapshot(`
      [
        "configuration: payments price tools/call "later" (lateRegistration), which the McpServer still does not serve when it is called: such calls are refused, as the SDK refuses an unknown target, until it is registered",
        "configuration: payments price prompts/get "brief" (lateRegistration), which the McpServer still does not serve when it is called: such calls are refused, as the SDK refuses an unknown target, until it is registered",
        "configuration: payments price resources/read "data://vault/{id}" (lateRegistration), which the McpServer still does not serve when it is called: such calls are refused, as the SDK refuses an unknown target, until it is registered",
      ]
    `)

    const runs: string[] = []
    mcp.registerTool('later', {}, async () => {
      runs.push('later')
      return { content: [{ type: 'text', text: 'served' }] }
    })
    mcp.registerPrompt('brief', {}, async () => {
      runs.push('brief')
      return { messages: [{ role: 'user', content: { type: 'text', text: 'brief' } }] }
    })
    mcp.registerResource(
      'vault',
      new ResourceTemplate('data://vault/{id}', { list: undefined }),
      {},
      async (uri) => {
        runs.push('vault')
        return { contents: [{ uri: uri.href, text: 'gold' }] }
      },
    )
    const payer = CoreClient.create({ methods: [rail.client()] })
    const paid = async <T extends { _meta?: unknown }>(
      send: (meta?: Record<string, unknown>) => Promise<T>,
    ) => {
      const challenge = await refusal(send())
      expect(challenge.code).toBe(-32042)
      const payment = await payer.pay((challenge.data as any).challenges, { url: 'mcp://mcp/x' })
      const result = await send({ [credentialKey]: payment.credential })
      expect((result._meta as any)[receiptKey].challengeId).toBe(payment.challenge.id)
      return result
    }
    const tool = await paid((_meta) => client.callTool({ name: 'later', ...(_meta && { _meta }) }))
    expect(tool.content).toEqual([{ type: 'text', text: 'served' }])
    await paid((_meta) => client.getPrompt({ name: 'brief', ...(_meta && { _meta }) }))
    await paid((_meta) => client.readResource({ uri: 'data://vault/7', ...(_meta && { _meta }) }))
    // Each handler ran once, paid; nothing more was told.
    expect(runs).toEqual(['later', 'brief', 'vault'])
    expect(rail.settlements()).toBe(3)
    expect(told()).toHaveLength(3)
    await client.close()
  })

  test('lateRegistration: true lets any priced target come later, and tells once at connect what is not served', async () => {
    const { rail, server, told } = setup()
    const payments = create({ server, tools: { forcast: offers }, lateRegistration: true })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    mcp.registerTool('forecast', {}, async () => ({ content: [{ type: 'text', text: 'sunny' }] }))
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await payments.connect(mcp, serverSide)
    payments.transport(InMemoryTransport.createLinkedPair()[1], mcp)
    expect(told()).toMatchInlineSnapshot(`
      [
        "configuration: payments price tools/call "forcast", which the McpServer does not serve yet (lateRegistration: true): calls to it are refused until it is registered, and a misspelt name leaves the real one free; name the targets registered later in lateRegistration instead of true",
      ]
    `)
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    expect((await client.callTool({ name: 'forcast' })).isError).toBe(true)
    expect(rail.settlements()).toBe(0)
    expect(told()).toHaveLength(2)
    expect(told()[1]).toContain(
      'tools/call "forcast" (lateRegistration), which the McpServer still does not serve',
    )
    await client.close()
  })
})

describe('create (request ids)', () => {
  const paidCall = async (t: Awaited<ReturnType<typeof raw>>, text: string) => {
    const params = { name: 'hold', arguments: { text } }
    const first = await t.request({ method: 'tools/call', params })
    const payment = await t.payer.pay(first.error.data.challenges, { url: 'mcp://weather/tools/hold' })
    return { params: { ...params, _meta: { [credentialKey]: payment.credential } }, payment }
  }
  const held = async (t: Awaited<ReturnType<typeof raw>>, count: number) => {
    while (t.held.length < count) await new Promise((resolve) => setTimeout(resolve, 2))
  }

  test('a client reusing a paid call’s id mid-call cannot take its receipt', async () => {
    const t = await raw()
    const { params, payment } = await paidCall(t, 'paid')
    await t.send({ id: 'x', method: 'tools/call', params })
    await held(t, 1)
    // The same id, for a free call, while the paid call runs.
    await t.send({ id: 'x', method: 'tools/call', params: { name: 'echo', arguments: { text: 'free' } } })
    const [free] = await t.until((message) => message.id === 'x')
    expect(free.result).toEqual({ content: [{ type: 'text', text: 'free' }] })
    t.held[0]!.release()
    const [, paid] = await t.until((message) => message.id === 'x', 2)
    expect(paid.result.content[0].text).toBe(`paid ${payment.challenge.id}`)
    expect(paid.result._meta[receiptKey].challengeId).toBe(payment.challenge.id)
    expect(t.rail.settlements()).toBe(1)
  })

  test('two paid calls under one id each get their own receipt', async () => {
    const t = await raw()
    const a = await paidCall(t, 'a')
    const b = await paidCall(t, 'b')
    await t.send({ id: 9, method: 'tools/call', params: a.params })
    await held(t, 1)
    await t.send({ id: 9, method: 'tools/call', params: b.params })
    await held(t, 2)
    t.held[0]!.release()
    await t.until((message) => message.id === 9)
    t.held[1]!.release()
    const replies = await t.until((message) => message.id === 9, 2)
    expect(
      replies.map((reply) => [reply.result.content[0].text, reply.result._meta[receiptKey].challengeId]),
    ).toEqual([
      [`a ${a.payment.challenge.id}`, a.payment.challenge.id],
      [`b ${b.payment.challenge.id}`, b.payment.challenge.id],
    ])
    expect(t.rail.settlements()).toBe(2)
    // The ids the SDK ran them under never reach the client.
    expect(t.received.filter((message) => String(message.id).startsWith('org.paymentauth/'))).toEqual([])
  })

  test('the id a paid call runs under is refused to a peer that sends it', async () => {
    const t = await raw()
    const { params, payment } = await paidCall(t, 'paid')
    await t.send({ id: 5, method: 'tools/call', params })
    await held(t, 1)
    const inner = t.held[0]!.requestId
    expect(inner).not.toBe(5)
    await t.send({ id: inner, method: 'tools/call', params: { name: 'echo', arguments: { text: 'guess' } } })
    const [refused] = await t.until((message) => message.id === inner)
    expect(refused.error).toMatchInlineSnapshot(`
      {
        "code": -32600,
        "message": "Invalid Request: request id in use",
      }
    `)
    t.held[0]!.release()
    const [paid] = await t.until((message) => message.id === 5)
    expect(paid.result._meta[receiptKey].challengeId).toBe(payment.challenge.id)
  })

  test('a cancellation names the client’s id and reaches the paid call', async () => {
    const t = await raw()
    const { params } = await paidCall(t, 'paid')
    await t.send({ id: 'c', method: 'tools/call', params })
    await held(t, 1)
    await t.notify({
      method: 'notifications/cancelled',
      params: { requestId: 'c', reason: 'changed my mind' },
    })
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(t.held[0]!.signal.aborted).toBe(true)
    // "The sender of the cancellation notification SHOULD ignore any response" (MCP): the SDK sends none.
    t.held[0]!.release()
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(t.received.filter((message) => message.id === 'c' || message.id === t.held[0]!.requestId)).toEqual(
      [],
    )
  })

  test('progress of a paid call over Streamable HTTP reaches the client’s request', async () => {
    const t = await overHttp()
    try {
      const error = await refusal(t.client.callTool({ name: 'report' }))
      const payment = await t.payer.pay((error.data as any).challenges, { url: t.url.href })
      const progress: unknown[] = []
      const result = await t.client.callTool(
        { name: 'report', _meta: { [credentialKey]: payment.credential } },
        undefined,
        { onprogress: (update) => progress.push(update) },
      )
      expect(result.content).toEqual([{ type: 'text', text: 'reported' }])
      expect((result._meta as any)[receiptKey].challengeId).toBe(payment.challenge.id)
      expect(progress).toEqual([{ progress: 1, total: 1 }])
    } finally {
      await t.close()
    }
  })
})
