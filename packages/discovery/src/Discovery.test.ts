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
                "currency": "usd",
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
