import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import express from 'express'
import { Hono } from 'hono'
import { afterAll, describe, expect, it } from 'vitest'
import * as Challenge from '../src/Challenge.js'
import * as Credential from '../src/Credential.js'
import { StoreUnavailableError, VerificationFailedError } from '../src/Errors.js'
import { MemoryStore } from '../src/MemoryStore.js'
import type { Store } from '../src/Store.js'
import { payment as expressPayment } from '../src/server/express.js'
import { payment as honoPayment } from '../src/server/hono.js'
import { toNodeListener } from '../src/server/node.js'
import { create as createServer, type Handler, type Route } from '../src/server/Server.js'
import { createTestRail } from '../src/testing/index.js'

// Regression tests for defects found by an audit of the server pipeline.

const secret = 'hardening-test-secret-0123456789abcdefghij'
const url = 'https://api.test/r'
const offer = { method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }
const base = 'https://paymentauth.org/problems/'
const problem = async (r: Response) => (await r.json()) as { type: string; status: number; detail?: string }

function setup(
  options: { handler?: Handler; route?: Route; store?: Store; now?: () => number; lease?: number } = {},
) {
  const rail = createTestRail()
  const server = createServer({
    realm: 'api.test',
    secrets: [secret],
    methods: [rail.server()],
    ...(options.store ? { store: options.store } : {}),
    ...(options.now ? { now: options.now } : {}),
    ...(options.lease ? { idempotencyLease: options.lease } : {}),
  })
  const route = options.route ?? { offers: [offer] }
  let runs = 0
  const handler = server.protect(route, async (request, payment) => {
    runs++
    if (options.handler) return options.handler(request, payment)
    return new Response(`body=${await request.text()}`)
  })
  return { rail, server, route, handler, runs: () => runs }
}

/** The challenges a route issues for a request like `init`. */
async function challengesFor(handler: (r: Request) => Promise<Response>, init: RequestInit = {}) {
  const response = await handler(new Request(url, init))
  expect(response.status).toBe(402)
  return Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
}

/** A valid Authorization value for a challenge. */
async function pay(rail: ReturnType<typeof createTestRail>, challenge: Challenge.Challenge) {
  const { payload, source } = await rail
    .client()
    .createPayload({ challenge, request: challenge.request } as any)
  return Credential.format({ challenge, payload, ...(source !== undefined ? { source } : {}) })
}

const post = (body: string, headers: Record<string, string>) =>
  new Request(url, { method: 'POST', body, headers })

describe('Idempotency-Key retries', () => {
  it('never serves a retry whose body differs from the one the challenge bound', async () => {
    let fail = true
    const { rail, handler, runs } = setup({
      handler: async (request) => {
        if (fail) {
          fail = false
          throw new Error('database down')
        }
        return new Response(`served ${await request.text()}`)
      },
    })
    const [challenge] = await challengesFor(handler, { method: 'POST', body: 'a' })
    const authorization = await pay(rail, challenge!)
    const headers = { authorization, 'idempotency-key': 'k' }
    expect((await handler(post('a', headers))).status).toBe(500)
    const evil = await handler(post('EVIL', headers))
    expect(evil.status).toBe(402)
    expect(await problem(evil)).toMatchObject({ type: `${base}verification-failed` })
    expect(runs()).toBe(1)
    // The real retry still recovers the paid response.
    const retry = await handler(post('a', headers))
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('served a')
    expect(rail.settlements()).toBe(1)
  })

  it('never replays a stored response to a credential other than the one that paid', async () => {
    const { rail, handler, runs } = setup()
    const [challenge] = await challengesFor(handler, { method: 'POST', body: 'a' })
    const authorization = await pay(rail, challenge!)
    const first = await handler(post('a', { authorization, 'idempotency-key': 'k' }))
    expect(first.status).toBe(200)
    const forged = Credential.format({ challenge: challenge!, payload: { transfer: 'bogus' } })
    const replay = await handler(post('a', { authorization: forged, 'idempotency-key': 'k' }))
    expect(replay.status).toBe(402)
    expect(replay.headers.get('payment-receipt')).toBeNull()
    expect(await problem(replay)).toMatchObject({ type: `${base}invalid-challenge` })
    // The paying credential still gets its stored response.
    const again = await handler(post('a', { authorization, 'idempotency-key': 'k' }))
    expect(again.status).toBe(200)
    expect(await again.text()).toBe('body=a')
    expect(runs()).toBe(1)
  })

  it('refuses a failed record to a forged credential instead of re-running the handler', async () => {
    let fail = true
    const { rail, handler, runs } = setup({
      handler: () => {
        if (fail) {
          fail = false
          throw new Error('database down')
        }
        return new Response('delivered')
      },
    })
    const [challenge] = await challengesFor(handler, { method: 'POST', body: 'a' })
    const authorization = await pay(rail, challenge!)
    expect((await handler(post('a', { authorization, 'idempotency-key': 'k' }))).status).toBe(500)
    const forged = Credential.format({ challenge: challenge!, payload: { transfer: 'bogus' } })
    const stolen = await handler(post('a', { authorization: forged, 'idempotency-key': 'k' }))
    expect(stolen.status).toBe(402)
    expect(runs()).toBe(1)
  })
})

/** A MemoryStore whose consume (the `consumed:` putIfAbsent) fails `failures` times, and optionally its deletes. */
function flakyStore(failures: number, options: { failDeletes?: boolean } = {}) {
  const inner = new MemoryStore()
  let left = failures
  const store: Store = {
    putIfAbsent: async (key, value, ttl) => {
      if (key.includes('consumed:') && left-- > 0) throw new StoreUnavailableError()
      return inner.putIfAbsent(key, value, ttl)
    },
    get: (key) => inner.get(key),
    set: (key, value, ttl) => inner.set(key, value, ttl),
    delete: async (key) => {
      if (options.failDeletes) throw new StoreUnavailableError()
      return inner.delete(key)
    },
    compareAndSet: (key, expected, value, ttl) => inner.compareAndSet(key, expected, value, ttl),
    increment: (...args) => inner.increment(...args),
  }
  return store
}

describe('Idempotency-Key after a store failure', () => {
  it('releases the key when the store fails before anything is consumed', async () => {
    const { rail, handler, runs } = setup({ store: flakyStore(1) })
    const [challenge] = await challengesFor(handler, { method: 'POST', body: 'a' })
    const headers = { authorization: await pay(rail, challenge!), 'idempotency-key': 'k' }
    const flake = await handler(post('a', headers))
    expect(flake.status).toBe(503)
    expect(flake.headers.get('retry-after')).toBe('1')
    const retry = await handler(post('a', headers))
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('body=a')
    expect(rail.settlements()).toBe(1)
    expect(runs()).toBe(1)
  })

  it('lets a retry take back a pending key its own process could not release (not a 409 until the lease ends)', async () => {
    let clock = Date.now()
    const store = flakyStore(1, { failDeletes: true })
    const { rail, handler, runs } = setup({ store, now: () => clock, lease: 10 })
    const [challenge] = await challengesFor(handler, { method: 'POST', body: 'a' })
    const headers = { authorization: await pay(rail, challenge!), 'idempotency-key': 'k' }
    // The key could not even be released: it stays pending in the store.
    expect((await handler(post('a', headers))).status).toBe(503)
    // This process knows its request ended without settling: the retry takes the key back at once.
    const retry = await handler(post('a', headers))
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('body=a')
    clock += 11_000
    const replay = await handler(post('a', headers))
    expect(replay.status).toBe(200)
    expect(replay.headers.get('payment-receipt')).toBe(retry.headers.get('payment-receipt'))
    expect(rail.settlements()).toBe(1)
    expect(runs()).toBe(1)
  })
})

describe('handler failures behind framework adapters', () => {
  const servers: http.Server[] = []
  afterAll(() => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))))

  it('Fetch: a 5xx from the handler is retried with the Idempotency-Key, not replayed', async () => {
    let status = 503
    const { rail, handler, runs } = setup({ handler: () => new Response(`status ${status}`, { status }) })
    const [challenge] = await challengesFor(handler, { method: 'POST', body: 'a' })
    const headers = { authorization: await pay(rail, challenge!), 'idempotency-key': 'k' }
    const failed = await handler(post('a', headers))
    expect(failed.status).toBe(503)
    expect(failed.headers.get('payment-receipt')).toBeNull()
    status = 200
    const retry = await handler(post('a', headers))
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('status 200')
    expect(retry.headers.get('payment-receipt')).not.toBeNull()
    expect(runs()).toBe(2)
    expect(rail.settlements()).toBe(1)
  })

  it('Hono: a throwing route is a failed delivery that a retry recovers', async () => {
    const { rail, server, route, handler } = setup()
    let fail = true
    const app = new Hono()
    app.onError((_error, c) => c.text('internal error', 500))
    app.post('/r', honoPayment(server, route) as any, (c) => {
      if (fail) {
        fail = false
        throw new Error('database down')
      }
      return c.text('served')
    })
    const [challenge] = await challengesFor(handler, { method: 'POST', body: 'a' })
    const headers = { authorization: await pay(rail, challenge!), 'idempotency-key': 'k' }
    const failed = await app.fetch(post('a', headers))
    expect(failed.status).toBe(500)
    expect(await problem(failed)).toMatchObject({ type: `${base}handler-failed` })
    const retry = await app.fetch(post('a', headers))
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('served')
    expect(rail.settlements()).toBe(1)
  })

  it('Express: a throwing route is a failed delivery that a retry recovers', async () => {
    const { rail, server, route, handler } = setup()
    let fail = true
    const app = express()
    app.post('/r', expressPayment(server, route), (_req, res) => {
      if (fail) {
        fail = false
        throw new Error('database down')
      }
      res.send('served')
    })
    const node = http.createServer(app)
    servers.push(node)
    node.listen(0, '127.0.0.1')
    await once(node, 'listening')
    const target = `http://127.0.0.1:${(node.address() as AddressInfo).port}/r`
    const [challenge] = await challengesFor(handler, { method: 'POST', body: 'a' })
    const headers = { authorization: await pay(rail, challenge!), 'idempotency-key': 'k' }
    const send = () => fetch(target, { method: 'POST', body: 'a', headers })
    const failed = await send()
    expect(failed.status).toBe(500)
    await failed.text()
    const retry = await send()
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('served')
    expect(retry.headers.get('payment-receipt')).not.toBeNull()
    expect(rail.settlements()).toBe(1)
  })
})

describe('handler results', () => {
  for (const [name, result] of [
    ['Response.error()', () => Response.error()],
    ['a non-Response value', () => 'not a response' as unknown as Response],
  ] as const) {
    it(`treats ${name} as a failed delivery that a retry recovers`, async () => {
      let bad = true
      const { rail, handler, runs } = setup({
        handler: () => {
          if (bad) {
            bad = false
            return result()
          }
          return new Response('delivered')
        },
      })
      const [challenge] = await challengesFor(handler, { method: 'POST', body: 'a' })
      const headers = { authorization: await pay(rail, challenge!), 'idempotency-key': 'k' }
      const failed = await handler(post('a', headers))
      expect(failed.status).toBe(500)
      expect(failed.headers.get('payment-receipt')).toBeNull()
      expect(await problem(failed)).toMatchObject({ type: `${base}handler-failed` })
      const retry = await handler(post('a', headers))
      expect(retry.status).toBe(200)
      expect(await retry.text()).toBe('delivered')
      expect(runs()).toBe(2)
      expect(rail.settlements()).toBe(1)
    })

    it(`answers ${name} without an Idempotency-Key with a 500 problem, not a crash or a bare 200`, async () => {
      const { rail, handler } = setup({ handler: result })
      const [challenge] = await challengesFor(handler)
      const failed = await handler(
        new Request(url, { headers: { authorization: await pay(rail, challenge!) } }),
      )
      expect(failed.status).toBe(500)
      expect(failed.headers.get('payment-receipt')).toBeNull()
      expect(await problem(failed)).toMatchObject({ type: `${base}handler-failed` })
    })
  }
})

describe('malformed Host header', () => {
  const servers: http.Server[] = []
  afterAll(() => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))))

  /** Sends a raw HTTP/1.1 request (fetch cannot send an invalid Host) and returns the raw answer. */
  const raw = async (server: http.Server, host: string) => {
    servers.push(server)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1')
    socket.write(`GET /r HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    let out = ''
    for await (const chunk of socket) out += chunk
    return out
  }

  for (const host of ['a b', '[::']) {
    it(`node:http answers Host "${host}" with 400 problem+json`, async () => {
      const { handler } = setup()
      const out = await raw(http.createServer(toNodeListener(handler)), host)
      expect(out).toMatch(/^HTTP\/1\.1 400 /)
      expect(out).toMatch(/content-type: application\/problem\+json/i)
    })

    it(`Express answers Host "${host}" with 400 problem+json and no stack trace`, async () => {
      const { server, route } = setup()
      const app = express()
      app.get('/r', expressPayment(server, route), (_req, res) => res.send('ok'))
      const out = await raw(http.createServer(app), host)
      expect(out).toMatch(/^HTTP\/1\.1 400 /)
      expect(out).toMatch(/content-type: application\/problem\+json/i)
      expect(out).not.toMatch(/\bat .*\.(ts|js):\d+/)
    })
  }
})

describe('challenge issuance failures', () => {
  const failingQuote = () => {
    throw new VerificationFailedError({ detail: 'quote failed' })
  }

  it('offers the challenges that could be issued when one offer fails', async () => {
    const { handler } = setup({
      route: { offers: [{ method: 'test', request: failingQuote }, offer] },
    })
    const response = await handler(new Request(url))
    expect(response.status).toBe(402)
    const challenges = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
    expect(challenges).toHaveLength(1)
    expect(challenges[0]!.request).toMatchObject(offer.request)
  })

  for (const [name, fail] of [
    ['a 402 PaymentError', failingQuote],
    [
      'an unexpected error',
      () => {
        throw new Error('price feed down')
      },
    ],
  ] as const) {
    it(`never answers a challenge-less 402 when the only offer fails with ${name}`, async () => {
      const { handler } = setup({ route: { offers: [{ method: 'test', request: fail }] } })
      const response = await handler(new Request(url))
      expect(response.status).toBe(503)
      expect(response.headers.get('www-authenticate')).toBeNull()
      expect(response.headers.get('retry-after')).toBe('1')
      expect(response.headers.get('content-type')).toBe('application/problem+json')
    })
  }
})

describe('several offers of one method on a route', () => {
  const eur = { method: 'test', request: { amount: '90', currency: 'eur', recipient: 'acct' } }

  it('accepts a credential for any of them', async () => {
    const { rail, handler, runs } = setup({ route: { offers: [offer, eur] } })
    const challenges = await challengesFor(handler)
    expect(challenges.map((c) => c.request.currency)).toEqual(['usd', 'eur'])
    for (const challenge of [challenges[1]!, challenges[0]!]) {
      const response = await handler(
        new Request(url, { headers: { authorization: await pay(rail, challenge) } }),
      )
      expect(response.status).toBe(200)
    }
    expect(runs()).toBe(2)
    expect(rail.settlements()).toBe(2)
  })

  it('still refuses a credential that matches none of them', async () => {
    const other = setup({ route: { offers: [{ ...offer, request: { ...offer.request, amount: '1' } }] } })
    const { handler, runs } = setup({ route: { offers: [offer, eur] } })
    // Same secret and realm: only the pinned amount tells the routes apart.
    const [cheap] = await challengesFor(other.handler)
    const response = await handler(
      new Request(url, { headers: { authorization: await pay(other.rail, cheap!) } }),
    )
    expect(response.status).toBe(402)
    expect(await problem(response)).toMatchObject({ type: `${base}invalid-challenge` })
    expect(runs()).toBe(0)
  })
})

describe('credential echo of the challenge request', () => {
  // A server may send a request that is not in JCS form (key order here): its id binds that string.
  const raw = Buffer.from('{"recipient":"acct","currency":"usd","amount":"100"}').toString('base64url')
  const header = `Payment id="abc", realm="api.test", method="test", intent="charge", request="${raw}", expires="2999-01-01T00:00:00Z", opaque="eyJub25jZSI6IngifQ"`
  const echoed = (authorization: string) =>
    JSON.parse(Buffer.from(authorization.slice('Payment '.length), 'base64url').toString()).challenge as {
      request: string
      opaque: string
    }

  it('echoes the request string exactly as the server sent it', () => {
    const challenge = Challenge.parse(header)
    const wire = echoed(Credential.format({ challenge, payload: { transfer: 't' } }))
    expect(wire.request).toBe(raw)
    expect(wire.opaque).toBe('eyJub25jZSI6IngifQ')
    expect(Challenge.parseAll(header)[0]).toEqual(challenge)
  })

  it('re-encodes a request that was changed after parsing', () => {
    const challenge = Challenge.parse(header)
    challenge.request.amount = '1'
    const wire = echoed(Credential.format({ challenge, payload: { transfer: 't' } }))
    expect(wire.request).toBe(Challenge.encodeRequest({ amount: '1', currency: 'usd', recipient: 'acct' }))
  })
})

describe('multiple credentials', () => {
  it('answers 400 with a problem type that is not the 402 malformed-credential', async () => {
    const { rail, handler, runs } = setup()
    const [challenge] = await challengesFor(handler)
    const authorization = await pay(rail, challenge!)
    const headers = new Headers()
    headers.append('authorization', authorization)
    headers.append('authorization', authorization)
    const response = await handler(new Request(url, { headers }))
    expect(response.status).toBe(400)
    expect(response.headers.get('www-authenticate')).toBeNull()
    expect(await response.json()).toMatchObject({
      type: 'about:blank',
      title: 'Bad Request',
      status: 400,
      reason: 'multiple-credentials',
    })
    expect(runs()).toBe(0)
  })
})
