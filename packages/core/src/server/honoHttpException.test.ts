import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { afterAll, describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { createTestRail } from '../testing/TestMethod.js'
import { payment } from './hono.js'
import { create as createServer, type Phase, type Route } from './Server.js'

const route: Route = {
  offers: [{ method: 'test', request: { amount: '1', currency: 'usd', recipient: 'a' } }],
}
type Rail = ReturnType<typeof createTestRail>

const servers: http.Server[] = []
afterAll(() =>
  Promise.all(
    servers.map((s) => {
      s.closeAllConnections()
      return new Promise((resolve) => s.close(resolve))
    }),
  ),
)

/** A paid Hono route whose handler throws `thrown()` on every run, served on a real socket. */
async function routeThrowing(thrown: () => Error) {
  const rail = createTestRail()
  const errors: { error: unknown; phase: Phase }[] = []
  const server = createServer({
    realm: 'api.test',
    secrets: ['hono-exception-test-secret-0123456789abc'],
    methods: [rail.server()],
    logger: false,
    onError: (error, { phase }) => errors.push({ error, phase }),
  })
  let runs = 0
  const app = new Hono()
  app.get('/r', payment(server, route) as never, () => {
    runs++
    throw thrown()
  })
  const node = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as http.Server
  servers.push(node)
  await once(node, 'listening')
  const url = `http://127.0.0.1:${(node.address() as AddressInfo).port}/r`
  return { rail, errors, url, runs: () => runs }
}

async function authorizationFor(rail: Rail, url: string) {
  const unpaid = await fetch(url)
  expect(unpaid.status).toBe(402)
  const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
  const { payload } = await rail
    .client()
    .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
  return Credential.format({ challenge: challenge!, payload })
}

describe('payment (Hono): a paid route that throws an HTTPException', () => {
  it("delivers a 4xx HTTPException as the app's answer: recorded, replayed by key, not a handler failure", async () => {
    const { rail, errors, url, runs } = await routeThrowing(
      () => new HTTPException(404, { message: 'no such report' }),
    )
    const authorization = await authorizationFor(rail, url)
    const send = () => fetch(url, { headers: { authorization, 'idempotency-key': 'k' } })
    const first = await send()
    expect(first.status).toBe(404)
    expect(await first.text()).toBe('no such report')
    // "Servers MUST NOT return a `Payment-Receipt` header on error responses." (§5.3.1)
    expect(first.headers.get('payment-receipt')).toBeNull()
    const retry = await send()
    expect(retry.status).toBe(404)
    expect(await retry.text()).toBe('no such report')
    expect(runs()).toBe(1)
    expect(rail.settlements()).toBe(1)
    expect(errors).toEqual([])
  })

  it('still answers a 5xx HTTPException as a failed delivery (500 handler-failed), recoverable by key', async () => {
    const cause = new HTTPException(503, { message: 'backend down' })
    const { rail, errors, url, runs } = await routeThrowing(() => cause)
    const authorization = await authorizationFor(rail, url)
    const send = () => fetch(url, { headers: { authorization, 'idempotency-key': 'k' } })
    const first = await send()
    expect(first.status).toBe(500)
    expect(await first.json()).toMatchObject({ type: 'https://paymentauth.org/problems/handler-failed' })
    // Recorded as failed: the retry with the key runs the route again, without charging again.
    const retry = await send()
    expect(retry.status).toBe(500)
    expect(runs()).toBe(2)
    expect(rail.settlements()).toBe(1)
    expect(errors).toEqual([
      { error: cause, phase: 'handler' },
      { error: cause, phase: 'handler' },
    ])
  })
})
