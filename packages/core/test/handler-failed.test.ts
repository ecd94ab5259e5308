// A paid request whose handler fails after the payment settled: the paying client sends an
// Idempotency-Key on every paid request (GET included) and, on the server's 500 `handler-failed`,
// resends the same credential with the same key once, which the server serves from its record without
// settling again. A second failure is a typed error saying the payment may have settled, never a second
// payment. Real node:http servers, the core's test rail, the client's own (global) fetch.
import { createServer as createHttpServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { create, mayHaveSettled, PaymentFailedError, receipt } from '../src/client/Client.js'
import type * as Method from '../src/Method.js'
import { toNodeListener } from '../src/server/node.js'
import { create as createServer, type Handler, type Route } from '../src/server/Server.js'
import { createTestRail } from '../src/testing/TestMethod.js'

const secret = 'handler-failed-secret-0123456789abcdefghij'
const route: Route = {
  offers: [{ method: 'test', request: { amount: '100', currency: 'usd', recipient: 'merchant' } }],
}

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

/** What the server received on one request (never the credential itself: only whether it repeated). */
type Seen = { method: string; credential: string | null; key: string | null }

async function serve(handler: Handler, options: { expiresIn?: number } = {}) {
  const rail = createTestRail()
  const server = createServer({
    realm: 'api.test',
    secrets: [secret],
    methods: [rail.server()],
    logger: false,
    onError: () => {},
    ...options,
  })
  const seen: Seen[] = []
  const protectedHandler = server.protect(route, handler)
  const http = createHttpServer(
    toNodeListener((request) => {
      seen.push({
        method: request.method,
        credential: request.headers.get('authorization'),
        key: request.headers.get('idempotency-key'),
      })
      return protectedHandler(request)
    }),
  )
  servers.push(http)
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/resource`
  const paid = () => seen.filter((s) => s.credential !== null)
  return { rail, url, seen, paid }
}

/** A handler that throws its first `failures` times, then answers with `answer`. */
function flaky(failures: number, answer: (request: Request) => Response | Promise<Response>) {
  const state = { calls: 0, delivered: 0 }
  const handler: Handler = async (request) => {
    state.calls++
    if (state.calls <= failures) throw new Error('database connection reset')
    state.delivered++
    return answer(request)
  }
  return { handler, state }
}

describe('a paid request whose handler fails once, then succeeds', () => {
  for (const method of ['GET', 'POST'] as const) {
    it(`${method}: one payment, one settlement, one delivery, 200 to the app`, async () => {
      const { handler, state } = flaky(1, async (request) =>
        Response.json({ data: 'paid content', body: await request.text() }),
      )
      const { rail, url, seen, paid } = await serve(handler)
      const client = create({ methods: [rail.client()] })
      const init = method === 'POST' ? { method, body: 'order-1' } : {}
      const response = await client.fetch(url, init)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({
        data: 'paid content',
        body: method === 'POST' ? 'order-1' : '',
      })
      expect(receipt(response)).toMatchObject({ status: 'success', method: 'test' })
      expect(rail.transfers.size).toBe(1)
      expect(rail.settlements()).toBe(1)
      expect(state).toEqual({ calls: 2, delivered: 1 })
      // The unpaid request, the paid one, and its one resend: same credential, same key, both present.
      expect(seen).toHaveLength(3)
      const [first, resend] = paid()
      expect(first!.method).toBe(method)
      expect(first!.key).toMatch(/^[0-9a-f-]{36}$/)
      expect(resend!.key).toBe(first!.key)
      expect(resend!.credential).toBe(first!.credential)
      expect(client.ledger.spent('usd')).toBe(100n)
    })
  }

  it('HEAD: the key goes on it too, and the server serves its record again without settling', async () => {
    const { handler, state } = flaky(1, () => new Response(null, { headers: { 'x-paid': 'yes' } }))
    const { rail, url, paid } = await serve(handler)
    const client = create({ methods: [rail.client()] })
    // A HEAD answer has no body, so the client cannot read `handler-failed` from it: the 500 is the
    // app's, as before (a known gap).
    const response = await client.fetch(url, { method: 'HEAD' })
    expect(response.status).toBe(500)
    const [first] = paid()
    expect(paid()).toHaveLength(1)
    expect(first!.method).toBe('HEAD')
    expect(first!.key).toMatch(/^[0-9a-f-]{36}$/)
    // The server kept the record under that key: the same credential and key are served, not charged.
    const again = await fetch(url, {
      method: 'HEAD',
      headers: { authorization: first!.credential!, 'idempotency-key': first!.key! },
    })
    expect(again.status).toBe(200)
    expect(again.headers.get('x-paid')).toBe('yes')
    expect(again.headers.has('payment-receipt')).toBe(true)
    expect(rail.settlements()).toBe(1)
    expect(state).toEqual({ calls: 2, delivered: 1 })
  })

  it("a handler's own 4xx on the resend is the app's answer, never a stale refusal paid afresh", async () => {
    const { handler, state } = flaky(1, () =>
      Response.json(
        { type: 'https://example.test/problems/gone', status: 410 },
        { status: 410, headers: { 'content-type': 'application/problem+json' } },
      ),
    )
    const { rail, url, paid } = await serve(handler)
    // A method that reads every refusal as its own stale state would pay the fresh challenge again.
    const method: Method.Client = { ...rail.client(), retryRefused: () => true }
    const client = create({ methods: [method] })
    const response = await client.fetch(url)
    expect(response.status).toBe(410)
    expect(rail.transfers.size).toBe(1)
    expect(rail.settlements()).toBe(1)
    expect(state).toEqual({ calls: 2, delivered: 1 })
    expect(paid()).toHaveLength(2)
  })
})

describe('a paid request whose handler always fails', () => {
  for (const method of ['GET', 'POST'] as const) {
    it(`${method}: one settlement, one resend, then a typed error saying the payment may have settled`, async () => {
      const { handler, state } = flaky(Number.POSITIVE_INFINITY, () => new Response('never'))
      const { rail, url, paid } = await serve(handler)
      const client = create({ methods: [rail.client()], policy: { currencies: ['usd'], budget: 150n } })
      const init = method === 'POST' ? { method, body: 'order-1' } : {}
      const error = await client.fetch(url, init).catch((e) => e)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error).toMatchObject({ code: 'handler-failed', mayHaveSettled: true })
      expect(mayHaveSettled(error)).toBe(true)
      expect(error.challenge.id).toEqual(expect.any(String))
      expect(error.response.status).toBe(500)
      expect((await error.response.json()).type).toBe('https://paymentauth.org/problems/handler-failed')
      expect(error.message).toMatch(
        /resent with the same Idempotency-Key, failed too \(HTTP 500 handler-failed\)/,
      )
      // Nothing secret in the error: neither the credential nor the key.
      const [first, resend] = paid()
      expect(resend!.credential).toBe(first!.credential)
      expect(resend!.key).toBe(first!.key)
      const text = `${error.message} ${JSON.stringify(error)}`
      expect(text).not.toContain(first!.credential!.slice('Payment '.length))
      expect(text).not.toContain(first!.key!)
      expect(paid()).toHaveLength(2)
      expect(state.calls).toBe(2)
      expect(rail.transfers.size).toBe(1)
      expect(rail.settlements()).toBe(1)
      // The payment stays booked: paying again would pass the budget, so the policy refuses it.
      expect(client.ledger.spent('usd')).toBe(100n)
      await expect(client.fetch(url, init)).rejects.toMatchObject({ reason: 'budget' })
      expect(rail.transfers.size).toBe(1)
    })
  }

  it('without an Idempotency-Key (keys off): the resend is refused as used, and that is the typed error', async () => {
    const { handler, state } = flaky(Number.POSITIVE_INFINITY, () => new Response('never'))
    const { rail, url, paid } = await serve(handler)
    const client = create({ methods: [rail.client()], idempotencyKeys: false })
    const error = await client.fetch(url).catch((e) => e)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error).toMatchObject({ code: 'handler-failed', mayHaveSettled: true })
    expect(error.response.status).toBe(402)
    expect(error.message).toMatch(/the same credential, resent, failed too \(HTTP 402 invalid-challenge\)/)
    expect(paid().map((s) => s.key)).toEqual([null, null])
    expect(state.calls).toBe(1)
    expect(rail.transfers.size).toBe(1)
    expect(rail.settlements()).toBe(1)
  })

  it('is not resent once its challenge has expired: the typed error at once', async () => {
    const { rail, url, paid } = await serve(
      async () => {
        // Outlives the challenge (expiresIn 2 s: `expires` is whole seconds, so at most 2 s away).
        await new Promise((resolve) => setTimeout(resolve, 2_100))
        throw new Error('slow, then failed')
      },
      { expiresIn: 2 },
    )
    const client = create({ methods: [rail.client()] })
    const error = await client.fetch(url).catch((e) => e)
    expect(error).toMatchObject({ code: 'handler-failed', mayHaveSettled: true })
    expect(error.message).toMatch(/its challenge expired before the credential could be resent/)
    expect(paid()).toHaveLength(1)
    expect(rail.settlements()).toBe(1)
  })
})

describe('an unpaid 500', () => {
  it('is returned as is, never retried (no credential was sent)', async () => {
    const rail = createTestRail()
    let requests = 0
    const http = createHttpServer((_req, res) => {
      requests++
      res.writeHead(500, { 'content-type': 'application/problem+json' })
      res.end(
        JSON.stringify({
          type: 'https://paymentauth.org/problems/handler-failed',
          title: 'Resource Delivery Failed',
          status: 500,
        }),
      )
    })
    servers.push(http)
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    const client = create({ methods: [rail.client()] })
    const response = await client.fetch(`http://127.0.0.1:${(http.address() as AddressInfo).port}/`)
    expect(response.status).toBe(500)
    expect(requests).toBe(1)
    expect(rail.transfers.size).toBe(0)
  })
})
