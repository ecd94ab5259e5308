import { once } from 'node:events'
import http from 'node:http'
import http2 from 'node:http2'
import net, { type AddressInfo } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { createTestRail } from '../testing/TestMethod.js'
import { toNodeListener, writeResponse } from './node.js'
import { create as createServer, type Phase, type Route } from './Server.js'

const route: Route = {
  offers: [{ method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }],
}

type Rail = ReturnType<typeof createTestRail>

const serverFor = (rail: Rail) => {
  const errors: { error: unknown; phase: Phase }[] = []
  const server = createServer({
    realm: 'api.test',
    secrets: ['write-response-test-secret-0123456789abcd'],
    methods: [rail.server()],
    logger: false,
    onError: (error, { phase }) => errors.push({ error, phase }),
  })
  return { server, errors }
}

const closers: (() => void)[] = []
afterAll(() => {
  for (const close of closers) close()
})

async function listen(node: http.Server | http2.Http2Server) {
  closers.push(() => {
    if (node instanceof http.Server) node.closeAllConnections()
    node.close()
  })
  node.listen(0, '127.0.0.1')
  await once(node, 'listening')
  return (node.address() as AddressInfo).port
}

/** A body that sends one chunk, then fails (a database cursor dying, an upstream reset). */
const failingBody = (cause: Error) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"rows":[1,2,3'))
    },
    pull(controller) {
      return new Promise<void>((resolve) =>
        setTimeout(() => {
          controller.error(cause)
          resolve()
        }, 20),
      )
    },
  })

/** The Authorization of a paid credential for the route's challenge at `url`. */
async function authorizationFor(rail: Rail, challengeHeader: string, url: string) {
  const [challenge] = Challenge.parseAll(challengeHeader)
  const { payload } = await rail
    .client()
    .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
  return Credential.format({ challenge: challenge!, payload })
}

/** A GET over HTTP/1.1: its status and receipt, the bytes that came, and how the body ended. */
function get(port: number, headers: Record<string, string> = {}) {
  return new Promise<{
    status: number
    headers: http.IncomingHttpHeaders
    body: string
    ended: 'end' | 'aborted'
  }>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/r', headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      const done = (ended: 'end' | 'aborted') => () =>
        resolve({ status: res.statusCode!, headers: res.headers, body, ended })
      res.on('end', done('end'))
      res.on('error', done('aborted'))
    })
    req.on('error', reject)
  })
}

describe('writeResponse: a paid body that fails after its status was sent', () => {
  it('aborts the HTTP/1.1 response (never a complete 200 with a receipt) and tells onError once', async () => {
    const rail = createTestRail()
    const { server, errors } = serverFor(rail)
    const cause = new Error('cursor died')
    const handler = server.protect(
      route,
      () => new Response(failingBody(cause), { headers: { 'content-type': 'application/json' } }),
    )
    // No `{ server }` given: a handler of `protect` reports to its own server.
    const port = await listen(http.createServer(toNodeListener(handler)))
    const unpaid = await get(port)
    expect(unpaid.status).toBe(402)
    const authorization = await authorizationFor(
      rail,
      unpaid.headers['www-authenticate'] as string,
      `http://127.0.0.1:${port}/r`,
    )
    const paid = await get(port, { authorization })
    expect(rail.settlements()).toBe(1)
    expect(paid.status).toBe(200)
    expect(paid.headers['transfer-encoding']).toBe('chunked')
    expect(paid.body).toBe('{"rows":[1,2,3')
    // The payer learns the body is incomplete: the connection closes before the last chunk.
    expect(paid.ended).toBe('aborted')
    expect(errors).toEqual([{ error: cause, phase: 'handler' }])
  })

  it('resets the HTTP/2 stream with INTERNAL_ERROR (not a clean end) and tells onError once', async () => {
    const rail = createTestRail()
    const { server, errors } = serverFor(rail)
    const cause = new Error('upstream reset')
    const handler = server.protect(route, () => new Response(failingBody(cause)))
    const port = await listen(http2.createServer(toNodeListener(handler, { server }) as never))
    const client = http2.connect(`http://127.0.0.1:${port}`)
    closers.push(() => client.close())
    const request = (headers: http2.OutgoingHttpHeaders) =>
      new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string; ended: string }>(
        (resolve) => {
          const stream = client.request({ ':path': '/r', ':authority': 'api.test', ...headers })
          let response: http2.IncomingHttpHeaders = {}
          let body = ''
          stream.setEncoding('utf8')
          stream.on('response', (h) => {
            response = h
          })
          stream.on('data', (chunk: string) => {
            body += chunk
          })
          const done = (ended: string) =>
            resolve({ status: Number(response[':status']), headers: response, body, ended })
          stream.on('end', () => done('end'))
          stream.on('error', (error) => done(error.message))
        },
      )
    const unpaid = await request({})
    expect(unpaid.status).toBe(402)
    const authorization = await authorizationFor(
      rail,
      unpaid.headers['www-authenticate'] as string,
      'http://api.test/r',
    )
    const paid = await request({ authorization })
    expect(rail.settlements()).toBe(1)
    expect(paid.status).toBe(200)
    expect(paid.body).toBe('{"rows":[1,2,3')
    expect(paid.ended).toMatch(/NGHTTP2_INTERNAL_ERROR/)
    expect(errors).toEqual([{ error: cause, phase: 'handler' }])
  })

  it('still ends a body that completes, through backpressure (4 MiB in 64 KiB chunks)', async () => {
    const chunk = new Uint8Array(64 * 1024).fill(97)
    let sent = 0
    const body = () =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent === 64) return controller.close()
          sent++
          controller.enqueue(chunk)
        },
      })
    const port = await listen(http.createServer(toNodeListener(() => new Response(body()))))
    const response = await get(port)
    expect(response.status).toBe(200)
    expect(response.ended).toBe('end')
    expect(response.body.length).toBe(64 * 64 * 1024)
  })
})

/** A promise (`fired`) and what resolves it (`fire`). */
function signal() {
  let fire!: () => void
  const fired = new Promise<void>((resolve) => {
    fire = resolve
  })
  return { fired, fire }
}

describe('writeResponse: a client that stops reading and disconnects', () => {
  it('cancels the body and settles the write loop (no writer left waiting for a drain)', async () => {
    const rail = createTestRail()
    const { server, errors } = serverFor(rail)
    const cancelled = signal()
    const settled = signal()
    const blocked = signal()
    let writes = 0
    const chunk = new Uint8Array(64 * 1024)
    const port = await listen(
      http.createServer((_req, res) => {
        const original = res.write.bind(res)
        res.write = ((...args: Parameters<typeof res.write>) => {
          const ok = original(...args)
          writes++
          if (!ok) blocked.fire()
          return ok
        }) as typeof res.write
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            controller.enqueue(chunk)
          },
          cancel() {
            cancelled.fire()
          },
        })
        void writeResponse(res, new Response(body), { server }).finally(settled.fire)
      }),
    )
    const socket = net.connect(port, '127.0.0.1')
    await once(socket, 'connect')
    socket.pause() // never reads: the server's writes back up
    socket.write('GET /r HTTP/1.1\r\nHost: api.test\r\n\r\n')
    // The writer is waiting for a drain (a write was refused) when the client goes away.
    await blocked.fired
    socket.destroy()
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('timed out'), 5_000))
    expect(
      await Promise.race([Promise.all([cancelled.fired, settled.fired]).then(() => 'settled'), timeout]),
    ).toBe('settled')
    expect(writes).toBeGreaterThan(0)
    // The client going away is no server fault.
    expect(errors).toEqual([])
  })
})
