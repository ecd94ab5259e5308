import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { ConfigurationError } from '../Errors.js'
import { createTestRail } from '../testing/TestMethod.js'
import { clientWentAway, credentials, readBody } from './Http.js'
import { toNodeListener } from './node.js'
import { create as createServer, type Options } from './Server.js'

const secret = 'http-test-secret-0123456789abcdefghijklmn'
const url = 'https://api.test/r'
const offer = { method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }
const base = 'https://paymentauth.org/problems/'

function setup(options: Partial<Options> = {}) {
  const rail = createTestRail()
  const errors: string[] = []
  const server = createServer({
    realm: 'api.test',
    secrets: [secret],
    methods: [rail.server()],
    onError: (_error, { phase }) => errors.push(phase),
    ...options,
  })
  let runs = 0
  const handler = server.protect({ offers: [offer] }, async (request) => {
    runs++
    return new Response(`read ${(await request.arrayBuffer()).byteLength}`)
  })
  return { rail, server, handler, errors, runs: () => runs }
}

async function authorizationFor(
  rail: ReturnType<typeof createTestRail>,
  handler: (request: Request) => Promise<Response>,
  init: RequestInit = {},
) {
  const unpaid = await handler(new Request(url, init))
  const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
  const { payload, source } = await rail
    .client()
    .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
  return Credential.format({ challenge: challenge!, payload, ...(source ? { source } : {}) })
}

describe('Options.maxBodyBytes', () => {
  const servers: http.Server[] = []
  afterAll(() =>
    Promise.all(
      servers.map((s) => {
        s.closeAllConnections()
        return new Promise((resolve) => s.close(resolve))
      }),
    ),
  )

  it('answers a body over the limit with a 413 problem, paid or not, and never runs the handler', async () => {
    const { rail, handler, runs } = setup({ maxBodyBytes: 1024 })
    const big = new Uint8Array(4096).fill(97)
    // A streamed body without Content-Length: the limit is counted, not declared.
    const streamed = () =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 4; i++) controller.enqueue(big.subarray(i * 1024, (i + 1) * 1024))
          controller.close()
        },
      })
    const unpaid = await handler(
      new Request(url, { method: 'POST', body: streamed(), duplex: 'half' } as RequestInit),
    )
    expect(unpaid.status).toBe(413)
    expect(unpaid.headers.get('content-type')).toBe('application/problem+json')
    expect(unpaid.headers.get('www-authenticate')).toBeNull()
    expect(await unpaid.json()).toMatchInlineSnapshot(`
      {
        "detail": "The request body exceeds 1024 bytes.",
        "reason": "body-too-large",
        "status": 413,
        "title": "Content Too Large",
        "type": "about:blank",
      }
    `)
    const authorization = await authorizationFor(rail, handler, { method: 'POST', body: 'small' })
    const paid = await handler(new Request(url, { method: 'POST', body: big, headers: { authorization } }))
    expect(paid.status).toBe(413)
    expect(runs()).toBe(0)
    // At the limit is fine.
    const exact = await handler(new Request(url, { method: 'POST', body: big.subarray(0, 1024) }))
    expect(exact.status).toBe(402)
  })

  it('refuses a declared Content-Length over the limit over node:http without reading the body', async () => {
    const { handler } = setup({ maxBodyBytes: 1024 })
    const node = http.createServer(toNodeListener(handler))
    servers.push(node)
    node.listen(0, '127.0.0.1')
    await once(node, 'listening')
    const response = await fetch(`http://127.0.0.1:${(node.address() as AddressInfo).port}/r`, {
      method: 'POST',
      body: new Uint8Array(2 * 1024 * 1024),
    })
    expect(response.status).toBe(413)
  })

  it('defaults to 1 MiB and refuses a negative limit', () => {
    expect(setup().server.maxBodyBytes).toBe(1 << 20)
    expect(() => setup({ maxBodyBytes: -1 })).toThrow(ConfigurationError)
  })
})

describe('a body that cannot be read', () => {
  it('does not report a client that closes mid-body over node:http (truncated chunked POST)', async () => {
    const { rail, handler, errors, runs } = setup()
    const authorization = await authorizationFor(rail, handler, { method: 'POST', body: 'abc' })
    const statuses: number[] = []
    let answered = () => {}
    const node = http.createServer(
      toNodeListener(async (request) => {
        const response = await handler(request)
        statuses.push(response.status)
        answered()
        return response
      }),
    )
    node.listen(0, '127.0.0.1')
    await once(node, 'listening')
    try {
      const port = (node.address() as AddressInfo).port
      // Unpaid (challenge) and paid (verify) requests both read the body for the digest binding.
      for (const field of ['', `Authorization: ${authorization}\r\n`]) {
        const handled = new Promise<void>((resolve) => {
          answered = resolve
        })
        const socket = net.connect(port, '127.0.0.1')
        await once(socket, 'connect')
        // A chunk announced as 5 bytes, 3 sent, then the connection closes.
        socket.write(`POST /r HTTP/1.1\r\nHost: x\r\n${field}Transfer-Encoding: chunked\r\n\r\n5\r\nabc`)
        await new Promise((resolve) => setTimeout(resolve, 50))
        socket.destroy()
        await handled
      }
    } finally {
      node.closeAllConnections()
      node.close()
    }
    // Answered as before (nobody is left to read it), but nothing reaches onError.
    expect(statuses).toEqual([503, 503])
    expect(errors).toEqual([])
    expect(runs()).toBe(0)
  })

  it('still reports any other read failure, and answers 503', async () => {
    const { handler, errors } = setup({ logger: false })
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new TypeError('the body source failed'))
      },
    })
    const response = await handler(new Request(url, { method: 'POST', body, duplex: 'half' } as RequestInit))
    expect(response.status).toBe(503)
    expect(errors).toEqual(['challenge'])
  })

  it('treats an aborted request signal, a reset and a premature close as the client going away', () => {
    const request = new Request(url, { method: 'POST', body: 'x' })
    const coded = (code: string) => Object.assign(new Error('aborted'), { code })
    expect(clientWentAway(request, coded('ECONNRESET'))).toBe(true)
    expect(clientWentAway(request, coded('ERR_STREAM_PREMATURE_CLOSE'))).toBe(true)
    expect(clientWentAway(request, coded('EACCES'))).toBe(false)
    expect(clientWentAway(request, new Error('aborted'))).toBe(false)
    expect(clientWentAway(request, undefined)).toBe(false)
    const controller = new AbortController()
    controller.abort()
    const aborted = new Request(url, { method: 'POST', body: 'x', signal: controller.signal })
    expect(clientWentAway(aborted, new Error('whatever'))).toBe(true)
  })
})

describe('protect with an Idempotency-Key', () => {
  it('serves a paid 205 (a bodiless status) once, with a receipt, and replays it', async () => {
    const { rail, server } = setup()
    let runs = 0
    const handler = server.protect({ offers: [offer] }, () => {
      runs++
      return new Response(null, { status: 205 })
    })
    const authorization = await authorizationFor(rail, handler, { method: 'POST', body: 'q' })
    const send = () =>
      handler(
        new Request(url, { method: 'POST', body: 'q', headers: { authorization, 'idempotency-key': 'k' } }),
      )
    const response = await send()
    expect(response.status).toBe(205)
    expect(response.headers.get('payment-receipt')).not.toBeNull()
    const retry = await send()
    expect(retry.status).toBe(205)
    expect(retry.headers.get('payment-receipt')).toBe(response.headers.get('payment-receipt'))
    expect(runs).toBe(1)
    expect(rail.settlements()).toBe(1)
  })
})

describe('readBody', () => {
  it('reads a clone (the handler can still read the body) and treats an empty body as none', async () => {
    const request = new Request(url, { method: 'POST', body: 'hello' })
    expect(new TextDecoder().decode(await readBody(request, 10))).toBe('hello')
    expect(await request.text()).toBe('hello')
    expect(await readBody(new Request(url, { method: 'POST', body: '' }), 10)).toBeUndefined()
    expect(await readBody(new Request(url), 10)).toBeUndefined()
  })
})

describe('credentials', () => {
  it('collects Payment tokens from every named header and ignores other schemes', () => {
    const headers = new Headers({ authorization: 'Bearer key', 'payment-authorization': 'Payment abc' })
    expect(credentials(headers, ['authorization'])).toEqual([])
    expect(credentials(headers, ['authorization', 'payment-authorization'])).toEqual(['abc'])
  })
  it("finds one credential beside another scheme's quoted auth-params (two Authorization fields)", () => {
    const headers = new Headers()
    headers.append('authorization', 'Digest username="a, Payment x", qop="auth"')
    headers.append('authorization', 'Payment abc')
    expect(credentials(headers, ['authorization'])).toEqual(['abc'])
  })
})

describe('deeply nested credentials', () => {
  for (const depth of [3_000, 6_000, 7_000, 7_500, 8_000, 9_000, 12_000, 100_000]) {
    it(`answers an echoed request nested ${depth} levels deep with a 402, never a 5xx`, async () => {
      const { rail, handler, runs, errors } = setup()
      const valid = Credential.parse(await authorizationFor(rail, handler))
      const deep = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
      const echoed = {
        ...valid.challenge,
        request: Buffer.from(deep).toString('base64url'),
      }
      const token = Buffer.from(JSON.stringify({ challenge: echoed, payload: valid.payload })).toString(
        'base64url',
      )
      const response = await handler(new Request(url, { headers: { authorization: `Payment ${token}` } }))
      expect(response.status).toBe(402)
      expect(response.headers.get('www-authenticate')).toMatch(/^Payment /)
      expect((await response.json()).type).toMatch(
        new RegExp(`^${base}(malformed-credential|invalid-challenge)$`),
      )
      expect(runs()).toBe(0)
      expect(errors).toEqual([])
    })
  }
})
