import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { Hono } from 'hono'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigurationError } from '../Errors.js'
import { createTestRail } from '../testing/TestMethod.js'
import { cors, corsHeaders } from './Cors.js'
import { cors as expressCors, payment as expressPayment } from './express.js'
import { cors as honoCors, payment as honoPayment } from './hono.js'
import { toNodeListener } from './node.js'
import { create as createServer, type Route } from './Server.js'

const origin = 'https://app.example'
const route: Route = {
  offers: [{ method: 'test', request: { amount: '1', currency: 'usd', recipient: 'a' } }],
}
const server = createServer({
  realm: 'api.test',
  secrets: ['cors-test-secret-0123456789abcdefghijklmno'],
  methods: [createTestRail().server()],
})
const preflight = {
  method: 'OPTIONS',
  headers: {
    origin,
    'access-control-request-method': 'POST',
    'access-control-request-headers': 'authorization, idempotency-key',
  },
}

/** Checks a preflight answer and a 402 answer of any adapter. */
async function expectCors(send: (init: RequestInit) => Promise<Response>) {
  const pre = await send(preflight)
  expect(pre.status).toBe(204)
  expect(pre.headers.get('access-control-allow-origin')).toBe(origin)
  expect(pre.headers.get('access-control-allow-headers')).toMatchInlineSnapshot(
    `"Authorization, Payment-Authorization, Idempotency-Key, Accept-Payment, X-Payment, Payment-Signature, Content-Type"`,
  )
  const unpaid = await send({ headers: { origin } })
  expect(unpaid.status).toBe(402)
  expect(unpaid.headers.get('access-control-allow-origin')).toBe(origin)
  expect(unpaid.headers.get('access-control-expose-headers')).toMatchInlineSnapshot(
    `"WWW-Authenticate, Payment-Receipt, Payment-Required, Payment-Response, Retry-After"`,
  )
  // Another origin gets no grant.
  const other = await send({ headers: { origin: 'https://evil.example' } })
  expect(other.headers.get('access-control-allow-origin')).toBeNull()
  expect(other.headers.get('vary')).toMatch(/Origin/)
}

describe('cors', () => {
  const handler = cors(
    server.protect(route, () => new Response('ok')),
    { origins: [origin] },
  )

  it('answers preflights and exposes the payment headers of a Fetch handler', async () => {
    await expectCors((init) => handler(new Request('https://api.test/r', init)))
  })

  it('refuses credentials with every origin and origins with a path', () => {
    expect(() => cors(handler, { origins: '*', credentials: true })).toThrow(ConfigurationError)
    expect(() => cors(handler, { origins: ['https://app.example/'] })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: CORS: an origin is scheme://host[:port] without a path: https://app.example/]`,
    )
  })

  it('answers * without credentials', () => {
    const { headers } = corsHeaders('GET', new Headers({ origin }), { origins: '*' })
    expect(Object.fromEntries(headers)['access-control-allow-origin']).toBe('*')
  })
})

describe('cors adapters', () => {
  const servers: http.Server[] = []
  afterAll(() =>
    Promise.all(
      servers.map((s) => {
        s.closeAllConnections()
        return new Promise((resolve) => s.close(resolve))
      }),
    ),
  )
  const listen = async (node: http.Server) => {
    servers.push(node)
    node.listen(0, '127.0.0.1')
    await once(node, 'listening')
    const url = `http://127.0.0.1:${(node.address() as AddressInfo).port}/r`
    return (init: RequestInit) => fetch(url, init)
  }

  it('node:http through toNodeListener(cors(...))', async () => {
    const handler = cors(
      server.protect(route, () => new Response('ok')),
      { origins: [origin] },
    )
    await expectCors(await listen(http.createServer(toNodeListener(handler))))
  })

  it('Express', async () => {
    const app = express()
    app.use(expressCors({ origins: [origin] }))
    app.all('/r', expressPayment(server, route), (_req, res) => {
      res.send('ok')
    })
    await expectCors(await listen(http.createServer(app)))
  })

  it('Hono', async () => {
    const app = new Hono()
    app.use('*', honoCors({ origins: [origin] }) as never)
    app.all('/r', honoPayment(server, route) as never, (c) => c.text('ok'))
    await expectCors(async (init) => app.fetch(new Request('https://api.test/r', init)))
  })
})
