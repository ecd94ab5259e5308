import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import express from 'express'
import { afterAll, describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { createTestRail } from '../testing/TestMethod.js'
import { keepRawBody, payment } from './express.js'
import { create as createServer, type Options, type Route } from './Server.js'

const route: Route = {
  offers: [{ method: 'test', request: { amount: '1', currency: 'usd', recipient: 'a' } }],
}
/** A server for `rail` (and `options`) in realm `api.test`. */
const serverFor = (rail: ReturnType<typeof createTestRail>, options: Partial<Options> = {}) =>
  createServer({
    realm: 'api.test',
    secrets: ['express-test-secret-0123456789abcdefghijk'],
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

async function listen(app: express.Express) {
  const node = http.createServer(app)
  servers.push(node)
  node.listen(0, '127.0.0.1')
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

describe('payment (Express)', () => {
  it('streams an SSE response as written, with a receipt, and never replays it', async () => {
    const rail = createTestRail()
    const server = serverFor(rail)
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    let runs = 0
    const app = express()
    app.post('/r', payment(server, route), async (_req, res) => {
      runs++
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.flushHeaders()
      res.write('data: first\n\n')
      await gate
      res.end('data: last\n\n')
    })
    const url = await listen(app)
    const authorization = await authorizationFor(rail, url, { method: 'POST', body: 'q' })
    const send = () =>
      fetch(url, { method: 'POST', body: 'q', headers: { authorization, 'idempotency-key': 's' } })
    const response = await send()
    expect(response.status).toBe(200)
    expect(response.headers.get('payment-receipt')).not.toBeNull()
    const reader = response.body!.getReader()
    const first = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no first event')), 2_000)),
    ])
    expect(new TextDecoder().decode(first.value)).toBe('data: first\n\n')
    release()
    let rest = ''
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      rest += new TextDecoder().decode(chunk.value)
    expect(rest).toBe('data: last\n\n')
    const retry = await send()
    expect(retry.status).toBe(410)
    expect(runs).toBe(1)
    expect(rail.settlements()).toBe(1)
  })

  for (const [name, answer] of [
    ['res.status(205).end()', (res: express.Response) => res.status(205).end()],
    ['res.sendStatus(205)', (res: express.Response) => res.sendStatus(205)],
    ['a 204 with a Content-Type', (res: express.Response) => res.type('json').status(204).end()],
  ] as const) {
    it(`serves a bodiless paid answer (${name}) once, with a receipt, and replays it`, async () => {
      const rail = createTestRail()
      const server = serverFor(rail)
      let runs = 0
      const app = express()
      app.post('/r', payment(server, route), (_req, res) => {
        runs++
        answer(res)
      })
      const url = await listen(app)
      const authorization = await authorizationFor(rail, url, { method: 'POST', body: 'q' })
      const send = () =>
        fetch(url, { method: 'POST', body: 'q', headers: { authorization, 'idempotency-key': 'b' } })
      const response = await send()
      const status = name.includes('204') ? 204 : 205
      expect(response.status).toBe(status)
      expect(response.headers.get('payment-receipt')).not.toBeNull()
      expect(await response.text()).toBe('')
      const retry = await send()
      expect(retry.status).toBe(status)
      expect(retry.headers.get('payment-receipt')).toBe(response.headers.get('payment-receipt'))
      expect(runs).toBe(1)
      expect(rail.settlements()).toBe(1)
    })
  }

  it('keeps every Set-Cookie of a streamed response', async () => {
    const rail = createTestRail()
    const server = serverFor(rail)
    const app = express()
    app.post('/r', payment(server, route), (_req, res) => {
      res.cookie('a', '1')
      res.cookie('b', '2')
      res.setHeader('content-type', 'text/event-stream')
      res.write('data: x\n\n')
      res.end()
    })
    const url = await listen(app)
    const authorization = await authorizationFor(rail, url, { method: 'POST', body: 'q' })
    const response = await fetch(url, { method: 'POST', body: 'q', headers: { authorization } })
    expect(response.status).toBe(200)
    expect(response.headers.get('payment-receipt')).not.toBeNull()
    expect(response.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; Path=/'])
    expect(await response.text()).toBe('data: x\n\n')
  })

  for (const [name, answer] of [
    [
      'res.json() then res.end()',
      (res: express.Response) => {
        res.json({ paid: true })
        res.end()
      },
    ],
    [
      'res.end() then res.write()',
      (res: express.Response) => {
        res.type('json').end('{"paid":true}')
        res.write('late')
      },
    ],
    [
      'res.send() then res.setHeader() and res.flushHeaders()',
      (res: express.Response) => {
        res.json({ paid: true })
        res.setHeader('cache-control', 'public, max-age=600')
        res.setHeader('x-late', '1')
        res.flushHeaders()
      },
    ],
  ] as const) {
    it(`delivers the paid response with its receipt when the route writes after ending (${name})`, async () => {
      const unhandled: unknown[] = []
      const onUnhandled = (reason: unknown) => unhandled.push(reason)
      process.on('unhandledRejection', onUnhandled)
      try {
        const rail = createTestRail()
        const server = serverFor(rail)
        let runs = 0
        const app = express()
        app.post('/r', payment(server, route), (_req, res) => {
          runs++
          answer(res)
        })
        const url = await listen(app)
        const authorization = await authorizationFor(rail, url, { method: 'POST', body: 'q' })
        const send = () =>
          fetch(url, { method: 'POST', body: 'q', headers: { authorization, 'idempotency-key': 'twice' } })
        const response = await send()
        expect(response.status).toBe(200)
        expect(response.headers.get('payment-receipt')).not.toBeNull()
        expect(response.headers.get('cache-control')).toBe('private')
        // What the route set after ending its answer is not part of it (nor of its replay).
        expect(response.headers.get('x-late')).toBeNull()
        expect(await response.json()).toEqual({ paid: true })
        const retry = await send()
        expect(retry.status).toBe(200)
        expect(await retry.json()).toEqual({ paid: true })
        expect(runs).toBe(1)
        expect(rail.settlements()).toBe(1)
        await new Promise((resolve) => setTimeout(resolve, 50))
        // ERR_HTTP_HEADERS_SENT from the late call would otherwise be an unhandled rejection (a crash).
        expect(unhandled).toEqual([])
      } finally {
        process.off('unhandledRejection', onUnhandled)
      }
    })
  }

  it('answers a paid route that ends with a status no Response can carry as a failed delivery, recoverable by key', async () => {
    const rail = createTestRail()
    const server = serverFor(rail, { logger: false })
    let runs = 0
    const app = express()
    app.post('/r', payment(server, route), (_req, res) => {
      runs++
      if (runs === 1) res.status(600).send('odd')
      else res.send('ok')
    })
    const url = await listen(app)
    const authorization = await authorizationFor(rail, url, { method: 'POST', body: 'q' })
    const send = () =>
      fetch(url, { method: 'POST', body: 'q', headers: { authorization, 'idempotency-key': 'odd' } })
    const failed = await send()
    expect(failed.status).toBe(500)
    expect(failed.headers.get('payment-receipt')).toBeNull()
    expect(await failed.json()).toMatchObject({ type: 'https://paymentauth.org/problems/handler-failed' })
    const retry = await send()
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('ok')
    expect(rail.settlements()).toBe(1)
  })

  it("answers a body over the server's maxBodyBytes with 413", async () => {
    const rail = createTestRail()
    const server = serverFor(rail, { maxBodyBytes: 1024 })
    const app = express()
    app.post('/r', payment(server, route), (_req, res) => {
      res.send('ok')
    })
    const url = await listen(app)
    const response = await fetch(url, { method: 'POST', body: new Uint8Array(64 * 1024) })
    expect(response.status).toBe(413)
    expect(await response.json()).toMatchObject({ status: 413, reason: 'body-too-large' })
  })

  it('binds the body a parser given keepRawBody read before it, and hands the handler the parsed body', async () => {
    const rail = createTestRail()
    const server = serverFor(rail)
    const seen: unknown[] = []
    const app = express()
    app.use(express.json({ verify: keepRawBody }))
    app.post('/r', payment(server, route), (req, res) => {
      seen.push(req.body)
      res.send('ok')
    })
    const url = await listen(app)
    const init = (body: string) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body })
    const unpaid = await fetch(url, init('{"q":1}'))
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
    expect(challenge!.digest).toMatch(/^sha-256=:/)
    const authorization = await authorizationFor(rail, url, init('{"q":1}'))
    // "When verifying a credential with a `digest` parameter, servers MUST: […] Reject the credential
    // if the digests do not match" (§5.1.4)
    const other = await fetch(url, { ...init('{"q":2}'), headers: { ...init('').headers, authorization } })
    expect(other.status).toBe(402)
    expect(await other.json()).toMatchObject({ reason: 'digest-mismatch' })
    const paid = await fetch(url, { ...init('{"q":1}'), headers: { ...init('').headers, authorization } })
    expect(paid.status).toBe(200)
    expect(paid.headers.get('payment-receipt')).not.toBeNull()
    expect(seen).toEqual([{ q: 1 }])
  })

  it('tells onError once when a parser without keepRawBody read the body first (the body cannot be bound)', async () => {
    const rail = createTestRail()
    const reported: [unknown, string][] = []
    const server = serverFor(rail, {
      onError: (error, { phase }) => reported.push([error, phase]),
      logger: false,
    })
    const app = express()
    app.use(express.json())
    app.post('/r', payment(server, route), (_req, res) => {
      res.send('ok')
    })
    const url = await listen(app)
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"q":1}' }
    const first = await fetch(url, init)
    expect(first.status).toBe(402)
    const [challenge] = Challenge.parseAll(first.headers.get('www-authenticate')!)
    expect(challenge!.digest).toBeUndefined()
    expect((await fetch(url, init)).status).toBe(402)
    expect(reported).toHaveLength(1)
    const [error, phase] = reported[0]!
    expect(phase).toBe('configuration')
    expect(error).toMatchObject({ name: 'ConfigurationError' })
    expect(String((error as Error).message)).toContain('keepRawBody')
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
