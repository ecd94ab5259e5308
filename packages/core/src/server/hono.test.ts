import { once } from 'node:events'
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { type Context, Hono } from 'hono'
import { afterAll, describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { createTestRail } from '../testing/TestMethod.js'
import { payment } from './hono.js'
import { create as createServer, type Options, type Route } from './Server.js'

const route: Route = {
  offers: [{ method: 'test', request: { amount: '1', currency: 'usd', recipient: 'a' } }],
}
/** A server for `rail` (and `options`) in realm `api.test`. */
const serverFor = (rail: ReturnType<typeof createTestRail>, options: Partial<Options> = {}) =>
  createServer({
    realm: 'api.test',
    secrets: ['hono-test-secret-0123456789abcdefghijklmn'],
    methods: [rail.server()],
    ...options,
  })
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
    const server = serverFor(rail)
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

  /** A request with `body` (and the credential when given). */
  type Send = (authorization?: string) => RequestInit

  /**
   * A route whose middleware reads the body before `payment` (`read`), answering `paid <answer(c)>`: the
   * challenge binds the body, a credential for `paid` is refused with each of `others`
   * ("When verifying a credential with a `digest` parameter, servers MUST: […] Reject the credential if
   * the digests do not match", §5.1.4), and pays once with `paid` itself.
   */
  async function expectBodyBound(
    read: (c: Context) => Promise<unknown>,
    answer: (c: Context) => Promise<unknown>,
    paid: Send,
    others: Send[],
  ) {
    const rail = createTestRail()
    const server = serverFor(rail)
    const app = new Hono()
    app.post(
      '/r',
      async (c, next) => {
        await read(c)
        await next()
      },
      payment(server, route) as never,
      async (c) => c.text(`paid ${await answer(c)}`),
    )
    const url = await listen(app)
    const unpaid = await fetch(url, paid())
    expect(unpaid.status).toBe(402)
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
    expect(challenge!.digest).toMatch(/^sha-256=:/)
    const authorization = await authorizationFor(rail, url, paid())
    for (const other of others) {
      const refused = await fetch(url, other(authorization))
      expect(refused.status).toBe(402)
      expect(await refused.json()).toMatchObject({ reason: 'digest-mismatch' })
    }
    const served = await fetch(url, paid(authorization))
    expect(served.status, await served.clone().text()).toBe(200)
    expect(served.headers.get('payment-receipt')).not.toBeNull()
    expect(await served.text()).toBe('paid 1')
    expect(rail.settlements()).toBe(1)
  }

  it('binds and checks the body that a middleware before it read (a validator), never a 503', async () => {
    const json =
      (n: number): Send =>
      (authorization) => ({
        method: 'POST',
        body: JSON.stringify({ n }),
        headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      })
    await expectBodyBound(
      (c) => c.req.json(),
      async (c) => (await c.req.json()).n,
      json(1),
      [json(2)],
    )
  })

  it('binds a form a middleware before it read as FormData (Hono re-encodes it with a fresh boundary)', async () => {
    // Each form encoded once, and the same bytes sent every time (as the paying client does).
    const encoded = async (n: string, file = 'abc'): Promise<Send> => {
      const form = new FormData()
      form.append('n', n)
      form.append('upload', new Blob([file], { type: 'text/plain' }), 'a.txt')
      const wire = new Response(form)
      const body = new Uint8Array(await wire.arrayBuffer())
      const type = wire.headers.get('content-type')!
      return (authorization) => ({
        method: 'POST',
        body,
        headers: { 'content-type': type, ...(authorization ? { authorization } : {}) },
      })
    }
    // Another value, or another file, is another body.
    await expectBodyBound(
      (c) => c.req.formData(),
      async (c) => (await c.req.formData()).get('n'),
      await encoded('1'),
      [await encoded('2'), await encoded('1', 'abd')],
    )
  })

  it('refuses a misconfigured route when the middleware is created, not with a 500 per request', () => {
    const server = serverFor(createTestRail())
    expect(() => payment(server, { offers: [{ method: 'nope' }] })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: route offers nope/charge, which is not registered]`,
    )
    expect(() => payment(server, { offers: [] })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: a route needs at least one offer]`,
    )
  })
})
