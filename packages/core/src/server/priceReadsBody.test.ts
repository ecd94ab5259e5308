import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import express from 'express'
import { Hono } from 'hono'
import { afterAll, describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { createTestRail } from '../testing/TestMethod.js'
import { payment as expressPayment } from './express.js'
import { payment as honoPayment } from './hono.js'
import { toNodeListener } from './node.js'
import { create as createServer, type Route } from './Server.js'

// A price per requested item: the price function reads the request body, which `protect` and the
// adapters then hand the route handler.
const perItem = (currency: string) => async (request: Request) => {
  const { items } = (await request.json()) as { items: number }
  return { amount: String(items * 100), currency, recipient: 'merchant' }
}
const route: Route = { offers: [{ method: 'test', request: perItem('usd') }] }

type Rail = ReturnType<typeof createTestRail>

const serverFor = (rail: Rail, method = rail.server()) => {
  const errors: unknown[] = []
  const server = createServer({
    realm: 'api.test',
    secrets: ['price-body-test-secret-0123456789abcdefgh'],
    methods: [method],
    logger: false,
    onError: (error) => errors.push(error),
  })
  return { server, errors }
}

const servers: http.Server[] = []
afterAll(() =>
  Promise.all(
    servers.map((s) => {
      s.closeAllConnections()
      return new Promise((resolve) => s.close(resolve))
    }),
  ),
)

async function listening(node: http.Server) {
  servers.push(node)
  if (!node.listening) await once(node, 'listening')
  return `http://127.0.0.1:${(node.address() as AddressInfo).port}/order`
}

const order = (items: number, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  body: JSON.stringify({ items }),
  headers: { 'content-type': 'application/json', ...headers },
})

/** Pays the challenge of `index` in the 402 for `init` (the rail records the transfer). */
async function authorizationFor(rail: Rail, url: string, init: RequestInit, index = 0) {
  const unpaid = await fetch(url, init)
  expect(unpaid.status).toBe(402)
  const challenge = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)[index]!
  const { payload } = await rail
    .client()
    .createPayload({ challenge, request: challenge.request as never, url })
  return { authorization: Credential.format({ challenge, payload }), challenge }
}

/**
 * Pays an order of 3 items at `url` and retries it with the same Idempotency-Key: the challenge is
 * priced from the body (300), the paid request is served once (200, the handler read the whole body)
 * and settled once, and the retry replays the same answer.
 */
async function expectServedOnce(rail: Rail, url: string, deliveries: () => number, errors: unknown[]) {
  const { authorization, challenge } = await authorizationFor(rail, url, order(3))
  expect(challenge.request.amount).toBe('300')
  const paid = () => fetch(url, order(3, { authorization, 'idempotency-key': 'order-1' }))
  const served = await paid()
  expect(served.status, await served.clone().text()).toBe(200)
  expect(served.headers.get('payment-receipt')).not.toBeNull()
  expect(await served.json()).toEqual({ items: 3 })
  const retry = await paid()
  expect(retry.status).toBe(200)
  expect(await retry.json()).toEqual({ items: 3 })
  expect(rail.settlements()).toBe(1)
  expect(deliveries()).toBe(1)
  expect(errors).toEqual([])
}

describe('a price function that reads the request body', () => {
  it('leaves the body whole for the handler (node:http, protect)', async () => {
    const rail = createTestRail()
    const { server, errors } = serverFor(rail)
    let deliveries = 0
    const handler = server.protect(route, async (request) => {
      const { items } = (await request.json()) as { items: number }
      deliveries++
      return Response.json({ items })
    })
    const url = await listening(http.createServer(toNodeListener(handler)).listen(0, '127.0.0.1'))
    await expectServedOnce(rail, url, () => deliveries, errors)
  })

  it('leaves the body whole for the handler (Express)', async () => {
    const rail = createTestRail()
    const { server, errors } = serverFor(rail)
    let deliveries = 0
    const app = express()
    app.post('/order', expressPayment(server, route), (req, res) => {
      const { items } = JSON.parse((req.body as Buffer).toString('utf8')) as { items: number }
      deliveries++
      res.json({ items })
    })
    const url = await listening(http.createServer(app).listen(0, '127.0.0.1'))
    await expectServedOnce(rail, url, () => deliveries, errors)
  })

  it('gives each dynamic offer of one method its own copy (the second offer pays)', async () => {
    const rail = createTestRail()
    const { server, errors } = serverFor(rail)
    const twoCurrencies: Route = {
      offers: [
        { method: 'test', request: perItem('usd') },
        { method: 'test', request: perItem('eur') },
      ],
    }
    let deliveries = 0
    const handler = server.protect(twoCurrencies, async (request) => {
      const { items } = (await request.json()) as { items: number }
      deliveries++
      return Response.json({ items })
    })
    const url = await listening(http.createServer(toNodeListener(handler)).listen(0, '127.0.0.1'))
    // The credential pays the eur offer: the usd offer's price function runs (and reads) first.
    const { authorization, challenge } = await authorizationFor(rail, url, order(2), 1)
    expect(challenge.request).toMatchObject({ amount: '200', currency: 'eur' })
    const served = await fetch(url, order(2, { authorization }))
    expect(served.status, await served.clone().text()).toBe(200)
    expect(await served.json()).toEqual({ items: 2 })
    expect(rail.settlements()).toBe(1)
    expect(deliveries).toBe(1)
    expect(errors).toEqual([])
  })

  it("gives a method's prepare its own copy too, and leaves the caller's request readable", async () => {
    const rail = createTestRail()
    const base = rail.server()
    // A method whose prepare reads the body as well (e.g. to describe what is paid for).
    const { server, errors } = serverFor(rail, {
      ...base,
      async prepare({ request, httpRequest }) {
        const { items } = (await httpRequest.json()) as { items: number }
        return { ...request, description: `${items} items` } as typeof request
      },
    })
    const request = new Request('https://api.test/order', order(4))
    const issued = await server.issueChallenges({ route, request })
    expect(issued.error.status).toBe(402)
    expect(issued.challenges.map((c) => c.challenge.request)).toEqual([
      { amount: '400', currency: 'usd', recipient: 'merchant', description: '4 items' },
    ])
    expect(await request.json()).toEqual({ items: 4 })
    expect(errors).toEqual([])
  })

  // Last: @hono/node-server replaces the global Response for the rest of this file.
  it('leaves the body whole for the handler (Hono)', async () => {
    const rail = createTestRail()
    const { server, errors } = serverFor(rail)
    let deliveries = 0
    const app = new Hono()
    app.post('/order', honoPayment(server, route) as never, async (c) => {
      const { items } = (await c.req.json()) as { items: number }
      deliveries++
      return c.json({ items })
    })
    const url = await listening(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as http.Server)
    await expectServedOnce(rail, url, () => deliveries, errors)
  })
})
