import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import express from 'express'
import { Hono } from 'hono'
import { afterAll, describe, expect, it } from 'vitest'
import * as Binding from '../src/Binding.js'
import * as Challenge from '../src/Challenge.js'
import * as Credential from '../src/Credential.js'
import { create as createClient, receipt as receiptOf } from '../src/client/Client.js'
import {
  ConfigurationError,
  PolicyError,
  ServiceUnavailableError,
  StoreUnavailableError,
} from '../src/Errors.js'
import { MemoryStore } from '../src/MemoryStore.js'
import * as Receipt from '../src/Receipt.js'
import type { Store } from '../src/Store.js'
import { payment as expressPayment } from '../src/server/express.js'
import { payment as honoPayment } from '../src/server/hono.js'
import { toNodeListener } from '../src/server/node.js'
import { create as createServer, type Route } from '../src/server/Server.js'
import { createTestRail, describeMethod } from '../src/testing/index.js'

const secret = 'server-test-secret-0123456789abcdefghij'
const oldSecret = 'server-test-old-secret-0123456789abcdefghij'
const offer = { method: 'test', request: { amount: '1000', currency: 'usd', recipient: 'merchant' } }
const route: Route = { offers: [offer] }
const problem = async (r: Response) => (await r.json()) as { type: string; status: number; detail?: string }
const base = 'https://paymentauth.org/problems/'

function setup(
  options: { store?: Store; failWith?: () => Error | undefined; secrets?: string[]; now?: () => number } = {},
) {
  const rail = createTestRail()
  const server = createServer({
    realm: 'api.test',
    secrets: options.secrets ?? [secret],
    methods: [rail.server(options.failWith ? { failWith: options.failWith } : {})],
    ...(options.store ? { store: options.store } : {}),
    ...(options.now ? { now: options.now } : {}),
  })
  let runs = 0
  const handler = server.protect(route, async (request, payment) => {
    runs++
    const body = request.method === 'POST' ? await request.text() : ''
    return Response.json({ run: runs, body, reference: payment.receipt.reference })
  })
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) =>
    handler(new Request(input, init))) as typeof fetch
  const client = createClient({ methods: [rail.client()], fetch: fetcher })
  return { rail, server, handler, client, runs: () => runs }
}

/** Gets a valid Authorization header for the route without submitting it. */
async function credentialFor(
  rail: ReturnType<typeof createTestRail>,
  handler: (r: Request) => Promise<Response>,
  init: RequestInit = {},
) {
  let authorization = ''
  const client = createClient({
    methods: [rail.client()],
    idempotencyKeys: false,
    fetch: (async (input: RequestInfo | URL, i?: RequestInit) => {
      const request = new Request(input, i)
      const auth = request.headers.get('authorization')
      if (!auth) return handler(request)
      authorization = auth
      return new Response(null, { status: 204 })
    }) as typeof fetch,
  })
  await client.fetch('https://api.test/resource', init)
  return authorization
}

describeMethod({
  name: 'test/charge (core test rail)',
  setup: async () => {
    const rail = createTestRail()
    return { server: rail.server(), client: rail.client(), offer }
  },
})

describe('Server.create', () => {
  it('rejects secrets shorter than 32 bytes and duplicate methods', () => {
    const rail = createTestRail()
    expect(() => createServer({ realm: 'a', secrets: ['short'], methods: [rail.server()] })).toThrow(
      ConfigurationError,
    )
    expect(() =>
      createServer({ realm: 'a', secrets: [secret], methods: [rail.server(), rail.server()] }),
    ).toThrow(/duplicate method test\/charge/)
    const server = createServer({ realm: 'a', secrets: [secret], methods: [rail.server()] })
    expect(() => server.protect({ offers: [{ method: 'nope' }] }, () => new Response())).toThrow(
      ConfigurationError,
    )
  })
})

describe('Server.protect', () => {
  it('answers an unpaid request with 402, challenges, problem+json and no-store', async () => {
    const { handler, runs } = setup()
    const response = await handler(new Request('https://api.test/resource'))
    expect(response.status).toBe(402)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(response.headers.get('payment-receipt')).toBeNull()
    expect(await problem(response)).toMatchObject({ type: `${base}payment-required`, status: 402 })
    const [challenge] = Challenge.parseAll(response.headers.get('www-authenticate')!)
    expect(challenge).toMatchObject({
      realm: 'api.test',
      method: 'test',
      intent: 'charge',
      request: offer.request,
    })
    expect(Date.parse(challenge!.expires!) - Date.now()).toBeGreaterThan(290_000)
    expect(runs()).toBe(0)
  })

  it('pays, runs the handler once, and returns the decoded receipt', async () => {
    const { client, runs, rail } = setup()
    const response = await client.fetch('https://api.test/resource')
    expect(response.status).toBe(200)
    expect(runs()).toBe(1)
    expect(rail.settlements()).toBe(1)
    const receipt = receiptOf(response)!
    expect(receipt).toMatchObject({ status: 'success', method: 'test' })
    expect(rail.transfers.has(receipt.reference)).toBe(true)
    expect(Receipt.parse(response.headers.get('payment-receipt')!)).toEqual(receipt)
  })

  it('rejects malformed credentials with malformed-credential and a fresh challenge', async () => {
    const { handler } = setup()
    for (const authorization of ['Payment !!!', 'Payment e30', 'Payment W10', 'Payment']) {
      const response = await handler(new Request('https://api.test/resource', { headers: { authorization } }))
      expect(response.status).toBe(402)
      expect(response.headers.get('www-authenticate')).toMatch(/^Payment /)
      expect((await problem(response)).type).toBe(`${base}malformed-credential`)
    }
  })

  it('rejects a payload that fails the method schema as malformed-credential', async () => {
    const { handler, rail } = setup()
    const authorization = await credentialFor(rail, handler)
    const credential = Credential.parse(authorization)
    credential.payload = { transfer: 42 }
    const response = await handler(
      new Request('https://api.test/resource', { headers: { authorization: Credential.format(credential) } }),
    )
    expect((await problem(response)).type).toBe(`${base}malformed-credential`)
  })

  it('rejects an unknown method with 400 method-unsupported', async () => {
    const { handler, rail } = setup()
    const credential = Credential.parse(await credentialFor(rail, handler))
    credential.challenge.method = 'other'
    const response = await handler(
      new Request('https://api.test/resource', { headers: { authorization: Credential.format(credential) } }),
    )
    expect(response.status).toBe(400)
    expect((await problem(response)).type).toBe(`${base}method-unsupported`)
  })

  it('rejects two Payment credentials in one request with 400', async () => {
    const { handler, rail } = setup()
    const a = await credentialFor(rail, handler)
    const headers = new Headers()
    headers.append('authorization', a)
    headers.append('authorization', a)
    const response = await handler(new Request('https://api.test/resource', { headers }))
    expect(response.status).toBe(400)
  })

  it('rejects a credential whose pinned request no longer matches the route (price change)', async () => {
    const { rail } = setup()
    const store = new MemoryStore()
    const make = (amount: string) =>
      createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()], store }).protect(
        { offers: [{ method: 'test', request: { ...offer.request, amount } }] },
        () => new Response('ok'),
      )
    const authorization = await credentialFor(rail, make('1000'))
    const response = await make('2000')(
      new Request('https://api.test/resource', { headers: { authorization } }),
    )
    expect(response.status).toBe(402)
    expect(await problem(response)).toMatchObject({
      type: `${base}invalid-challenge`,
      detail: expect.stringContaining('amount'),
    })
  })

  it('verifies challenges signed with a rotated-out secret, and signs new ones with the first', async () => {
    const rail = createTestRail()
    const store = new MemoryStore()
    const original = createServer({
      realm: 'api.test',
      secrets: [oldSecret],
      methods: [rail.server()],
      store,
    }).protect(route, () => new Response('ok'))
    const rotated = createServer({
      realm: 'api.test',
      secrets: [secret, oldSecret],
      methods: [rail.server()],
      store,
    }).protect(route, () => new Response('ok'))
    const removed = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [rail.server()],
      store,
    }).protect(route, () => new Response('ok'))
    const authorization = await credentialFor(rail, original)
    expect(
      (await removed(new Request('https://api.test/resource', { headers: { authorization } }))).status,
    ).toBe(402)
    expect(
      (await rotated(new Request('https://api.test/resource', { headers: { authorization } }))).status,
    ).toBe(200)
    const fresh = Challenge.parse(
      (await rotated(new Request('https://api.test/resource'))).headers.get('www-authenticate')!,
    )
    expect(fresh.id).toBe(Binding.computeId(fresh, secret))
  })

  it('binds the request body with an RFC 9530 digest and rejects a different body', async () => {
    const { handler, rail, runs } = setup()
    const response = await handler(
      new Request('https://api.test/resource', { method: 'POST', body: '{"hello": "world"}' }),
    )
    const challenge = Challenge.parse(response.headers.get('www-authenticate')!)
    expect(challenge.digest).toBe('sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:')
    const authorization = await credentialFor(rail, handler, { method: 'POST', body: '{"hello":"world"}' })
    const swapped = await handler(
      new Request('https://api.test/resource', {
        method: 'POST',
        body: '{"hello":"mallory"}',
        headers: { authorization },
      }),
    )
    expect(swapped.status).toBe(402)
    expect((await problem(swapped)).type).toBe(`${base}verification-failed`)
    const ok = await handler(
      new Request('https://api.test/resource', {
        method: 'POST',
        body: '{"hello":"world"}',
        headers: { authorization },
      }),
    )
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { body: string }).body).toBe('{"hello":"world"}')
    expect(runs()).toBe(1)
  })

  it('filters and orders offers by Accept-Payment', async () => {
    const a = createTestRail()
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [a.server(), { ...a.server(), definition: { ...a.server().definition, intent: 'session' } }],
    })
    const handler = server.protect(
      { offers: [{ ...offer }, { ...offer, intent: 'session' }] },
      () => new Response('ok'),
    )
    const offered = async (accept?: string) =>
      Challenge.parseAll(
        (
          await handler(
            new Request('https://api.test/r', accept ? { headers: { 'accept-payment': accept } } : {}),
          )
        ).headers.get('www-authenticate')!,
      ).map((c) => c.intent)
    expect(await offered()).toEqual(['charge', 'session'])
    expect(await offered('test/session, test/charge;q=0.5')).toEqual(['session', 'charge'])
    expect(await offered('test/*, test/charge;q=0')).toEqual(['session'])
    expect(await offered('other/charge')).toEqual(['charge', 'session'])
  })

  it('replays the original response for a retried Idempotency-Key without settling again', async () => {
    const { handler, rail, runs } = setup()
    const authorization = await credentialFor(rail, handler, { method: 'POST', body: 'x' })
    const send = () =>
      handler(
        new Request('https://api.test/resource', {
          method: 'POST',
          body: 'x',
          headers: { authorization, 'idempotency-key': 'order-1' },
        }),
      )
    const first = await send()
    const firstBody = await first.text()
    const second = await send()
    expect(second.status).toBe(200)
    expect(await second.text()).toBe(firstBody)
    expect(second.headers.get('payment-receipt')).toBe(first.headers.get('payment-receipt'))
    expect(runs()).toBe(1)
    expect(rail.settlements()).toBe(1)
    // Without the key the same credential is a replay.
    const replay = await handler(
      new Request('https://api.test/resource', { method: 'POST', body: 'x', headers: { authorization } }),
    )
    expect((await problem(replay)).type).toBe(`${base}invalid-challenge`)
  })

  it('keeps a settled payment recoverable when the handler fails', async () => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
    let fail = true
    let runs = 0
    const handler = server.protect(route, () => {
      runs++
      if (fail) throw new Error('database down')
      return new Response('delivered')
    })
    const authorization = await credentialFor(rail, handler, { method: 'POST', body: 'x' })
    const send = () =>
      handler(
        new Request('https://api.test/r', {
          method: 'POST',
          body: 'x',
          headers: { authorization, 'idempotency-key': 'k' },
        }),
      )
    const failed = await send()
    expect(failed.status).toBe(500)
    expect(failed.headers.get('payment-receipt')).toBeNull()
    fail = false
    const recovered = await send()
    expect(recovered.status).toBe(200)
    expect(await recovered.text()).toBe('delivered')
    expect(rail.settlements()).toBe(1)
    expect(runs).toBe(2)
  })

  it('answers 503 + Retry-After when the store is down, and charges nothing', async () => {
    const down: Store = {
      putIfAbsent: async () => {
        throw new StoreUnavailableError()
      },
      get: async () => {
        throw new StoreUnavailableError()
      },
      set: async () => {},
      delete: async () => {},
      compareAndSet: async () => false,
      increment: async () => ({ applied: false, value: 0n }),
    }
    const { handler, rail, runs } = setup({ store: down })
    const authorization = await credentialFor(rail, handler)
    const response = await handler(new Request('https://api.test/r', { headers: { authorization } }))
    expect(response.status).toBe(503)
    expect(response.headers.get('retry-after')).toBe('1')
    expect(response.headers.get('payment-receipt')).toBeNull()
    expect(rail.settlements()).toBe(0)
    expect(runs()).toBe(0)
  })

  it('answers 503 + Retry-After when the rail is down, then accepts the same credential once', async () => {
    let down = true
    const { handler, rail, runs } = setup({
      failWith: () => (down ? new ServiceUnavailableError({ retryAfter: 2 }) : undefined),
    })
    const authorization = await credentialFor(rail, handler)
    const submit = () => handler(new Request('https://api.test/r', { headers: { authorization } }))
    const unavailable = await submit()
    expect(unavailable.status).toBe(503)
    expect(unavailable.headers.get('retry-after')).toBe('2')
    down = false
    expect((await submit()).status).toBe(200)
    expect((await submit()).status).toBe(402)
    expect(rail.settlements()).toBe(1)
    expect(runs()).toBe(1)
  })

  it('maps an unexpected rail exception to 503, never 500', async () => {
    const { handler, rail } = setup({ failWith: () => new TypeError('socket hang up') })
    const authorization = await credentialFor(rail, handler)
    const response = await handler(new Request('https://api.test/r', { headers: { authorization } }))
    expect(response.status).toBe(503)
    expect(await response.text()).not.toContain('socket hang up')
  })

  it('lets a method waive challenge consumption for payloads it keeps single-use itself', async () => {
    const rail = createTestRail()
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [{ ...rail.server(), reusesChallenge: () => true }],
    })
    let runs = 0
    const handler = server.protect(route, () => {
      runs++
      return new Response('ok')
    })
    const authorization = await credentialFor(rail, handler)
    const submit = () => handler(new Request('https://api.test/r', { headers: { authorization } }))
    expect((await submit()).status).toBe(200)
    // The challenge is not consumed, so the method sees the replay, and its own proof check refuses it.
    const replay = await submit()
    expect(replay.status).toBe(402)
    expect(await problem(replay)).toMatchObject({
      type: `${base}verification-failed`,
      reason: 'replayed-proof',
    })
    expect(runs).toBe(1)
    expect(rail.settlements()).toBe(1)
  })

  it('consumes a credential exactly once under 1,000 concurrent submissions (memory store)', async () => {
    // A verify that yields to the event loop, so submissions really interleave between consume and settle.
    const rail = createTestRail()
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [rail.server({ verifyDelayMs: 1 })],
    })
    let runs = 0
    const handler = server.protect(route, () => {
      runs++
      return new Response('ok')
    })
    const authorization = await credentialFor(rail, handler)
    const responses = await Promise.all(
      Array.from({ length: 1000 }, () =>
        handler(new Request('https://api.test/r', { headers: { authorization } })),
      ),
    )
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
    const refused = responses.filter((r) => r.status !== 200)
    expect(refused).toHaveLength(999)
    for (const r of refused.slice(0, 50)) {
      expect(r.status).toBe(402)
      expect(((await r.json()) as { type: string }).type).toBe(`${base}invalid-challenge`)
      expect(r.headers.get('payment-receipt')).toBeNull()
    }
    expect(runs).toBe(1)
    expect(rail.settlements()).toBe(1)
  })
})

describe('framework adapters', () => {
  const servers: http.Server[] = []
  afterAll(() => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))))
  const listen = async (server: http.Server) => {
    servers.push(server)
    if (!server.listening) {
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
    }
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  const payOver = async (url: string, rail: ReturnType<typeof createTestRail>) => {
    const client = createClient({ methods: [rail.client()] })
    const unpaid = await fetch(url)
    expect(unpaid.status).toBe(402)
    const response = await client.fetch(url, { method: 'POST', body: 'payload' })
    expect(response.status).toBe(200)
    expect(receiptOf(response)?.method).toBe('test')
    return response
  }

  it('node:http', async () => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
    const url = await listen(
      http.createServer(
        toNodeListener(server.protect(route, async (r) => new Response(`node ${await r.text()}`))),
      ),
    )
    expect(await (await payOver(url, rail)).text()).toBe('node payload')
  })

  it('Express', async () => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
    const app = express()
    app.all('/', express.text({ type: '*/*' }), expressPayment(server, route), (req, res) => {
      res.status(200).send(`express ${req.body}`)
    })
    const url = await listen(http.createServer(app))
    expect(await (await payOver(url, rail)).text()).toBe('express payload')
  })

  it('Hono', async () => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
    const app = new Hono()
    app.all('/', honoPayment(server, route) as any, async (c) => c.text(`hono ${await c.req.text()}`))
    const node = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as http.Server
    await once(node, 'listening')
    const url = await listen(node)
    expect(await (await payOver(url, rail)).text()).toBe('hono payload')
  })
})

describe('Client policy', () => {
  const rail = createTestRail()
  const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
  const handler = server.protect(route, () => new Response('ok'))
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) =>
    handler(new Request(input, init))) as typeof fetch
  const spy = () => {
    let created = 0
    const base = rail.client()
    return {
      method: {
        ...base,
        createPayload: async (ctx: any) => {
          created++
          return base.createPayload(ctx)
        },
      },
      created: () => created,
    }
  }

  it.each([
    [{ maxAmount: 999n }, 'max-amount'],
    [{ budget: 500n }, 'budget'],
    [{ methods: ['stripe'] }, 'method'],
    [{ currencies: ['eur'] }, 'currency'],
    [{ realms: ['other.test'] }, 'realm'],
  ])('refuses %o with a typed PolicyError before creating a payload', async (policy, reason) => {
    const { method, created } = spy()
    const client = createClient({ methods: [method], policy, fetch: fetcher })
    const error = await client.fetch('https://api.test/r').catch((e) => e)
    expect(error).toBeInstanceOf(PolicyError)
    expect(error.reason).toBe(reason)
    expect(created()).toBe(0)
  })

  it('refuses to send a credential over plain http to a non-loopback host', async () => {
    const { method, created } = spy()
    const client = createClient({ methods: [method], fetch: fetcher })
    // A `*.localhost` name is resolved by the system resolver (DNS without a hosts entry): not loopback.
    for (const url of ['http://api.test/r', 'http://api.localhost/r', 'http://127.0.0.1.nip.io/r']) {
      const error = await client.fetch(url).catch((e) => e)
      expect(error, url).toBeInstanceOf(PolicyError)
      expect(error.reason).toBe('insecure-transport')
    }
    expect(created()).toBe(0)
    const allowed = createClient({ methods: [method], fetch: fetcher, allowInsecureTransport: true })
    expect((await allowed.fetch('http://api.test/r')).status).toBe(200)
  })

  it('never pays a 402 reached through a cross-origin redirect', async () => {
    const other = http.createServer(toNodeListener(handler))
    other.listen(0, '127.0.0.1')
    await once(other, 'listening')
    const target = `http://127.0.0.1:${(other.address() as AddressInfo).port}/r`
    const redirector = http.createServer((_req, res) => res.writeHead(302, { location: target }).end())
    redirector.listen(0, 'localhost')
    await once(redirector, 'listening')
    try {
      const { method, created } = spy()
      const client = createClient({ methods: [method] })
      const error = await client
        .fetch(`http://localhost:${(redirector.address() as AddressInfo).port}/start`)
        .catch((e) => e)
      expect(error).toBeInstanceOf(PolicyError)
      expect(error.reason).toBe('cross-origin-redirect')
      expect(created()).toBe(0)
    } finally {
      other.close()
      redirector.close()
    }
  })

  it('tracks the budget across payments', async () => {
    const { method, created } = spy()
    const client = createClient({ methods: [method], policy: { budget: { usd: 2500n } }, fetch: fetcher })
    expect((await client.fetch('https://api.test/r')).status).toBe(200)
    expect((await client.fetch('https://api.test/r')).status).toBe(200)
    await expect(client.fetch('https://api.test/r')).rejects.toBeInstanceOf(PolicyError)
    expect(client.ledger.spent('usd')).toBe(2000n)
    expect(created()).toBe(2)
  })

  it('never pays a challenge whose request fails the method schema', async () => {
    const { method, created } = spy()
    const bad = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [
        {
          ...rail.server(),
          definition: {
            ...rail.server().definition,
            request: { safeParse: (v: unknown) => ({ success: true as const, data: v as any }) },
          },
        },
      ],
    })
    const badHandler = bad.protect(
      { offers: [{ method: 'test', request: { amount: '-5', currency: 'usd', recipient: 'x' } }] },
      () => new Response('ok'),
    )
    const client = createClient({
      methods: [method],
      fetch: (async (i: RequestInfo | URL, n?: RequestInit) => badHandler(new Request(i, n))) as typeof fetch,
    })
    const response = await client.fetch('https://api.test/r')
    expect(response.status).toBe(402)
    expect(created()).toBe(0)
  })
})
