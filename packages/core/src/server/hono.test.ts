import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { afterAll, describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { createTestRail } from '../testing/TestMethod.js'
import { payment } from './hono.js'
import { create as createServer, type Route } from './Server.js'

const route: Route = {
  offers: [{ method: 'test', request: { amount: '1', currency: 'usd', recipient: 'a' } }],
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

// @hono/node-server replaces the global Response with its own lazily built one: the responses the
// middleware builds go through it, as in production.
async function listen(app: Hono) {
  const node = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as http.Server
  servers.push(node)
  await once(node, 'listening')
  return `http://127.0.0.1:${(node.address() as AddressInfo).port}/r`
}

async function authorizationFor(rail: ReturnType<typeof createTestRail>, url: string, init: RequestInit) {
  const unpaid = await fetch(url, init)
  const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
  const { payload } = await rail
    .client()
    .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
  return Credential.format({ challenge: challenge!, payload })
}

describe('payment (Hono)', () => {
  it('serves a paid 205 once, with a receipt, and replays it', async () => {
    const rail = createTestRail()
    const server = createServer({
      realm: 'api.test',
      secrets: ['hono-test-secret-0123456789abcdefghijklmn'],
      methods: [rail.server()],
    })
    let runs = 0
    const app = new Hono()
    app.post('/r', payment(server, route) as never, (c) => {
      runs++
      return c.body(null, 205)
    })
    app.onError((error, c) => c.text(`onError: ${(error as Error).message}`, 500))
    const url = await listen(app)
    const authorization = await authorizationFor(rail, url, { method: 'POST', body: 'q' })
    const send = () =>
      fetch(url, { method: 'POST', body: 'q', headers: { authorization, 'idempotency-key': 'h' } })
    const response = await send()
    expect(await response.text()).toBe('')
    expect(response.status).toBe(205)
    expect(response.headers.get('payment-receipt')).not.toBeNull()
    const retry = await send()
    expect(retry.status).toBe(205)
    expect(retry.headers.get('payment-receipt')).toBe(response.headers.get('payment-receipt'))
    expect(runs).toBe(1)
    expect(rail.settlements()).toBe(1)
  })
})
