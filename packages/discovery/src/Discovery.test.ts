import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type * as Server from '@mppkit/core/server'
import { createTestRail } from '@mppkit/core/testing'
import { Validator } from '@seriousme/openapi-schema-validator'
import express from 'express'
import { Hono } from 'hono'
import { describe, expect, test } from 'vitest'
import { hono, node, withDiscovery } from './Adapters.js'
import { create } from './Discovery.js'
import type { Operation } from './Document.js'
import { validate } from './Validate.js'

const rail = createTestRail()
const method = { ...rail.server(), defaults: { currency: 'usd', recipient: 'acct_1' } }
const weather: Server.Route = {
  offers: [{ method: 'test', request: { amount: '1000' }, description: 'per call' }],
}
const dynamic: Server.Route = {
  offers: [
    { method: 'test', request: { amount: '500', currency: 'eur' } },
    { method: 'test', request: async () => ({ amount: '7' }) },
  ],
}
const operations: Operation[] = [
  { path: '/weather', route: weather, summary: 'Weather' },
  {
    path: '/chat',
    method: 'post',
    route: dynamic,
    requestBody: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] },
  },
  { path: '/health', summary: 'free' },
]
const options = {
  info: { title: 'Weather API', version: '1.0.0' },
  service: { categories: ['data'], docs: { homepage: 'https://weather.example/docs' } },
  operations,
  methods: [method],
}

describe('create', () => {
  test('the OpenAPI document: x-payment-info (multi-offer, dynamic as null), 402, input schema', () => {
    const document = create(options).openapi() as any
    expect(document.paths['/weather'].get['x-payment-info']).toMatchInlineSnapshot(`
      {
        "offers": [
          {
            "amount": "1000",
            "currency": "usd",
            "description": "per call",
            "intent": "charge",
            "method": "test",
          },
        ],
      }
    `)
    expect(document.paths['/chat'].post['x-payment-info'].offers.map((o: any) => o.amount)).toEqual([
      '500',
      null,
    ])
    expect(document.paths['/chat'].post.responses['402']).toEqual({ description: 'Payment Required' })
    expect(document.paths['/chat'].post.requestBody.content['application/json'].schema.required).toEqual([
      'prompt',
    ])
    expect(document.paths['/health'].get['x-payment-info']).toBeUndefined()
    expect(document.paths['/health'].get.responses['402']).toBeUndefined()
    expect(validate(document)).toMatchObject({ valid: true, problems: [] })
  })

  test('the document is valid OpenAPI 3.1 for an independent validator from npm', async () => {
    const validator = new Validator()
    const result = await validator.validate(create(options).openapi() as never)
    expect(result.errors).toBeUndefined()
    expect(result.valid).toBe(true)
    expect(validator.version).toBe('3.1')
  })

  test('a route change shows up in every declaration', () => {
    const route: Server.Route = { offers: [{ method: 'test', request: { amount: '10' } }] }
    const ops: Operation[] = [{ path: '/a', route }]
    const discovery = create({ ...options, operations: ops })
    const amounts = () => [
      (discovery.openapi() as any).paths['/a'].get['x-payment-info'].offers.map((o: any) => o.amount),
      discovery.manifest().endpoints[0]!.offers.map((o) => o.amount),
    ]
    expect(amounts()).toEqual([['10'], ['10']])
    ;(route as { offers: Server.Offer[] }).offers = [{ method: 'test', request: { amount: '20' } }]
    ops.push({ path: '/b', method: 'put', route })
    expect(amounts()).toEqual([['20'], ['20']])
    expect(discovery.manifest().endpoints.map((e) => `${e.method} ${e.path}`)).toEqual(['GET /a', 'PUT /b'])
    expect(Object.keys((discovery.openapi() as any).paths)).toEqual(['/a', '/b'])
    expect(discovery.agent().payments.mpp.methods).toEqual({ test: { intents: ['charge'] } })
  })

  test('the manifest and ai-agent.json', () => {
    const discovery = create(options)
    expect(discovery.manifest()).toMatchInlineSnapshot(`
      {
        "endpoints": [
          {
            "method": "GET",
            "offers": [
              {
                "amount": "1000",
                "currency": "usd",
                "description": "per call",
                "intent": "charge",
                "method": "test",
              },
            ],
            "path": "/weather",
          },
          {
            "method": "POST",
            "offers": [
              {
                "amount": "500",
                "currency": "eur",
                "intent": "charge",
                "method": "test",
              },
              {
                "amount": null,
                "intent": "charge",
                "method": "test",
              },
            ],
            "path": "/chat",
          },
        ],
        "methods": {
          "test": {
            "intents": [
              "charge",
            ],
          },
        },
        "name": "Weather API",
        "openapi": "/openapi.json",
        "version": 1,
      }
    `)
    expect(discovery.agent()).toMatchInlineSnapshot(`
      {
        "name": "Weather API",
        "payments": {
          "mpp": {
            "manifest": "/.well-known/mpp.json",
            "methods": {
              "test": {
                "intents": [
                  "charge",
                ],
              },
            },
            "openapi": "/openapi.json",
          },
        },
      }
    `)
  })

  test('handle serves the documents with JSON, 5-minute caching and CORS; nothing else', async () => {
    const discovery = create(options)
    const response = discovery.handle(new Request('https://weather.example/openapi.json'))!
    expect(response.headers.get('content-type')).toBe('application/json')
    expect(response.headers.get('cache-control')).toBe('max-age=300')
    expect(response.headers.get('access-control-allow-origin')).toBe('*')
    expect(await response.json()).toEqual(discovery.openapi())
    expect(discovery.handle(new Request('https://weather.example/openapi.json', { method: 'POST' }))).toBe(
      undefined,
    )
    expect(discovery.handle(new Request('https://weather.example/weather'))).toBe(undefined)
  })
})

const paidHandler = () => new Response('paid', { status: 200 })

describe('adapters', () => {
  test('node:http: documents, and the Link header on every other response', async () => {
    const discovery = create(options)
    const middleware = node(discovery)
    const server = createServer((req, res) => middleware(req, res, () => res.end('app')))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const manifest = await fetch(`${base}/.well-known/mpp.json`)
      expect(manifest.headers.get('cache-control')).toBe('max-age=300')
      expect(await manifest.json()).toEqual(discovery.manifest())
      const other = await fetch(`${base}/weather`)
      expect(await other.text()).toBe('app')
      expect(other.headers.get('link')).toBe('</openapi.json>; rel="mpp-endpoint"')
    } finally {
      server.close()
    }
  })

  test('Express', async () => {
    const discovery = create(options)
    const app = express()
    app.use(node(discovery))
    app.get('/weather', (_req, res) => {
      res.send('app')
    })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const agent = await fetch(`${base}/.well-known/ai-agent.json`)
      expect((await agent.json()).payments.mpp.openapi).toBe('/openapi.json')
      const other = await fetch(`${base}/weather`)
      expect(other.headers.get('link')).toBe('</openapi.json>; rel="mpp-endpoint"')
    } finally {
      server.close()
    }
  })

  test('Hono and Fetch handlers', async () => {
    const discovery = create(options)
    const app = new Hono()
    app.use(hono(discovery) as never)
    app.get('/weather', (c) => c.text('app'))
    const document = await app.request('/openapi.json')
    expect(document.headers.get('content-type')).toBe('application/json')
    expect(validate(await document.json()).valid).toBe(true)
    expect((await app.request('/weather')).headers.get('link')).toBe('</openapi.json>; rel="mpp-endpoint"')

    const handler = withDiscovery(discovery, paidHandler)
    expect((await handler(new Request('http://x/weather'))).headers.get('link')).toContain('mpp-endpoint')
    expect((await handler(new Request('http://x/openapi.json'))).headers.get('cache-control')).toBe(
      'max-age=300',
    )
  })
})

describe('create: what discovery advertises is what the server asks for', () => {
  // Every offer of every paid operation, compared with the challenges the real @mppkit/core server
  // issues on that route: "If discovery indicates payment offer details that differ from the 402
  // challenge, including method, intent, amount, or currency, the 402 challenge takes precedence" —
  // a difference misleads the agents that choose a service from its discovery document.
  const session = { ...rail.server(), definition: { ...rail.server().definition, intent: 'session' } }
  const methods = [
    { ...rail.server(), defaults: { currency: 'usd', recipient: 'acct_1', amount: '3' } },
    { ...session, defaults: { currency: 'usd', recipient: 'acct_1' } },
  ]
  const routes: Record<string, Server.Route> = {
    '/fixed': {
      offers: [{ method: 'test', request: { amount: '1000', currency: 'eur' }, description: 'x' }],
    },
    // No request: the method's defaults alone (amount included) are the price.
    '/defaults': { offers: [{ method: 'test' }] },
    // A price function that names its own currency: the default currency is not what it asks for.
    '/dynamic': { offers: [{ method: 'test', request: () => ({ amount: '9', currency: 'jpy' }) }] },
    '/both': {
      offers: [
        { method: 'test', intent: 'session', request: { amount: '25' } },
        { method: 'test', request: { amount: '750' } },
      ],
    },
  }

  test('every offer agrees with the 402 challenges of the route', async () => {
    const { Server: Core } = await import('@mppkit/core/server')
    const { Challenge } = await import('@mppkit/core')
    const server = Core.create({
      realm: 'api.test',
      secrets: ['discovery-secret-0123456789abcdefghij'],
      methods,
    })
    const discovery = create({
      info: { title: 'API', version: '1' },
      operations: Object.entries(routes).map(([path, route]) => ({ path, route })),
      methods,
    })
    for (const endpoint of discovery.manifest().endpoints) {
      const handler = server.protect(routes[endpoint.path]!, () => new Response('ok'))
      const response = await handler(new Request(`https://api.test${endpoint.path}`))
      expect(response.status).toBe(402)
      const challenges = Challenge.parseAll(response.headers.get('www-authenticate')!)
      expect(challenges.length, endpoint.path).toBe(endpoint.offers.length)
      endpoint.offers.forEach((offer, i) => {
        const challenge = challenges[i]!
        const request = challenge.request as Record<string, unknown>
        const advertised = { method: offer.method, intent: offer.intent, description: offer.description }
        expect(advertised, endpoint.path).toEqual({
          method: challenge.method,
          intent: challenge.intent,
          description: challenge.description,
        })
        // A fixed price is the challenge's; a dynamic one is null, and claims no currency it may not use.
        if (offer.amount !== null) expect(offer.amount, endpoint.path).toBe(request.amount)
        if (offer.currency !== undefined) expect(offer.currency, endpoint.path).toBe(request.currency)
      })
    }
    expect(discovery.manifest().endpoints.map((e) => e.offers.map((o) => o.amount))).toEqual([
      ['1000'],
      ['3'],
      [null],
      ['25', '750'],
    ])
  })
})

describe('create: operations as OpenAPI requires them', () => {
  const paid: Server.Route = { offers: [{ method: 'test', request: { amount: '5' } }] }

  test('path parameters (`:id` or `{id}`) are one templated path with its parameters declared', async () => {
    const discovery = create({
      info: { title: 'API', version: '1' },
      operations: [
        { path: '/users/:id/posts/{post}', route: paid },
        { path: '/users/:id/posts/{post}', method: 'DELETE' },
      ],
    })
    const document = discovery.openapi() as any
    expect(Object.keys(document.paths)).toEqual(['/users/{id}/posts/{post}'])
    // "Each template expression in the path MUST correspond to a path parameter" (OpenAPI 3.1 §4.8.2)
    expect(document.paths['/users/{id}/posts/{post}'].get.parameters).toEqual([
      { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
      { name: 'post', in: 'path', required: true, schema: { type: 'string' } },
    ])
    expect(document.paths['/users/{id}/posts/{post}'].delete.parameters).toHaveLength(2)
    expect(discovery.manifest().endpoints.map((e) => e.path)).toEqual(['/users/{id}/posts/{post}'])
    const validator = new Validator()
    expect((await validator.validate(document)).valid).toBe(true)
    expect(validate(document).valid).toBe(true)
  })

  test('an operation OpenAPI cannot describe is a ConfigurationError at create, not a broken document', () => {
    const make = (operation: Operation) => () =>
      create({ info: { title: 'API', version: '1' }, operations: [operation] })
    expect(make({ path: 'weather', route: paid })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: discovery: the path "weather" must start with "/" (a URL path: segments, ":name" or "{name}" parameters)]`,
    )
    expect(make({ path: '/weather?city=paris', route: paid })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: discovery: the path "/weather?city=paris" must start with "/" (a URL path: segments, ":name" or "{name}" parameters)]`,
    )
    expect(make({ path: '/files/*', route: paid })).toThrow(/the path "\/files\/\*"/)
    expect(make({ path: '/a/:id/:id', route: paid })).toThrow(/parameter "id" twice/)
    expect(make({ path: '/weather', method: 'all', route: paid })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: discovery: GET, PUT, POST, DELETE, OPTIONS, HEAD, PATCH or TRACE, not "all" (/weather)]`,
    )
    expect(() =>
      create({
        info: { title: 'API', version: '1' },
        operations: [
          { path: '/users/:id', route: paid },
          { path: '/users/{id}', method: 'GET' },
        ],
      }),
    ).toThrowErrorMatchingInlineSnapshot(`[ConfigurationError: discovery: GET /users/{id} is listed twice]`)
  })

  test('a fixed amount is published only in base units, as the spec and the 402 spell it', () => {
    // "When non-null, the value MUST be a string of ASCII digits … Leading zeros MUST NOT be used"
    for (const amount of ['01', '1.5', '', ' 5', 1000, 1e21, -1])
      expect(
        () =>
          create({
            info: { title: 'API', version: '1' },
            operations: [{ path: '/a', route: { offers: [{ method: 'test', request: { amount } }] } }],
          }),
        String(amount),
      ).toThrow(/base units/)
    const route: Server.Route = { offers: [{ method: 'test', request: { amount: '0' } }] }
    const discovery = create({ info: { title: 'API', version: '1' }, operations: [{ path: '/a', route }] })
    expect(discovery.manifest().endpoints[0]!.offers[0]!.amount).toBe('0')
  })
})
