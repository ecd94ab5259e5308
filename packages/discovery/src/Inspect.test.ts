import { afterAll, describe, expect, test } from 'vitest'
import { create } from './Discovery.js'
import { DiscoveryError, formatInspection, inspect } from './Inspect.js'

const fetchOf =
  (respond: (url: string) => Response): typeof fetch =>
  async (input) =>
    respond(String(input))

async function failure(promise: Promise<unknown>): Promise<DiscoveryError> {
  const error = await promise.catch((e: unknown) => e)
  expect(error).toBeInstanceOf(DiscoveryError)
  return error as DiscoveryError
}

describe('inspect', () => {
  test('fetches /openapi.json, validates it and lists every paid operation with its offers', async () => {
    const discovery = create({
      info: { title: 'Weather', version: '1' },
      operations: [
        {
          path: '/weather',
          route: { offers: [{ method: 'tempo', request: { amount: '1000', currency: '0x20c0' } }] },
        },
        { path: '/quote', method: 'post', route: { offers: [{ method: 'stripe', request: () => ({}) }] } },
      ],
    })
    const inspection = await inspect('https://weather.example', {
      fetch: fetchOf((url) => discovery.handle(new Request(url)) ?? new Response(null, { status: 404 })),
    })
    expect(inspection.valid).toBe(true)
    expect(formatInspection(inspection)).toMatchInlineSnapshot(`
      "https://weather.example/openapi.json: valid discovery document
        warning $.paths["/quote"].post: schema-missing: no requestBody schema
      GET /weather
        tempo/charge: 1000 0x20c0
      POST /quote
        stripe/charge: dynamic price"
    `)
  })

  test('hostile documents are a clear error or a list of problems, never a crash', async () => {
    const huge = new Response(
      new ReadableStream({
        pull(controller) {
          controller.enqueue(new Uint8Array(64 * 1024).fill(32))
        },
      }),
    )
    expect(
      (await failure(inspect('https://x.example', { fetch: fetchOf(() => huge) }))).message,
    ).toMatchInlineSnapshot(`"the discovery document is larger than 1048576 bytes"`)
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`
    // Deeply nested JSON parses (V8's parser does not recurse on the stack) and is simply not a document.
    const tooDeep = await inspect('https://x.example', {
      fetch: fetchOf(() => new Response(deep, { headers: { 'content-type': 'application/json' } })),
    })
    expect(tooDeep.problems).toEqual([{ path: '$', message: 'the document must be a JSON object' }])
    const notJson = await failure(
      inspect('https://x.example', { fetch: fetchOf(() => new Response('<html>')) }),
    )
    expect(notJson.message).toMatchInlineSnapshot(`"https://x.example/openapi.json is not a JSON document"`)
    const missing = await failure(
      inspect('https://x.example', { fetch: fetchOf(() => new Response('', { status: 404 })) }),
    )
    expect(missing.message).toMatchInlineSnapshot(`"https://x.example/openapi.json answered 404"`)
    const down = await failure(
      inspect('https://x.example', {
        fetch: async () => {
          throw new TypeError('fetch failed')
        },
      }),
    )
    expect(down.code).toBe('unreachable')
    expect((await failure(inspect('not a url'))).code).toBe('bad-origin')

    const wrongTypes = await inspect('https://x.example', {
      fetch: fetchOf(() =>
        Response.json({ openapi: 3, info: [], paths: { '/a': { get: { 'x-payment-info': 'free' } } } }),
      ),
    })
    expect(wrongTypes.valid).toBe(false)
    expect(formatInspection(wrongTypes)).toMatchInlineSnapshot(`
      "https://x.example/openapi.json: INVALID discovery document
        problem $.openapi: must be an OpenAPI 3.x version string
        problem $.info: must be an object
        problem $.paths["/a"].get.x-payment-info: x-payment-info must be an object
        problem $.paths["/a"].get.responses: a payable operation must declare a 402 response"
    `)
  })
})

describe('inspect: hostile or misconfigured remotes', () => {
  const servers: import('node:http').Server[] = []
  const serve = async (listener: import('node:http').RequestListener) => {
    const { createServer } = await import('node:http')
    const server = createServer(listener)
    server.listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    servers.push(server)
    const { port } = server.address() as import('node:net').AddressInfo
    return `http://127.0.0.1:${port}`
  }
  afterAll(() => {
    for (const server of servers) {
      server.closeAllConnections()
      server.close()
    }
  })
  const valid = JSON.stringify(
    create({
      info: { title: 'T', version: '1' },
      operations: [{ path: '/a', route: { offers: [{ method: 'test', request: { amount: '1' } }] } }],
    }).openapi(),
  )

  test('a redirect to another origin (another host, a private address) is not followed', async () => {
    let reached = 0
    const other = await serve((_req, res) => {
      reached++
      res.writeHead(200, { 'content-type': 'application/json' }).end(valid)
    })
    const origin = await serve((req, res) => {
      if (req.url === '/openapi.json') return void res.writeHead(302, { location: '/v2/openapi.json' }).end()
      if (req.url === '/v2/openapi.json')
        return void res.writeHead(307, { location: `${other}/openapi.json` }).end()
      res.writeHead(404).end()
    })
    const error = await failure(inspect(origin))
    expect(error.code).toBe('redirect')
    expect(error.message.replace(origin, 'ORIGIN')).toMatchInlineSnapshot(
      `"ORIGIN/v2/openapi.json redirects to another origin (not followed)"`,
    )
    expect(reached).toBe(0)
    // Within the origin, redirects are followed (a few).
    const moved = await serve((req, res) => {
      if (req.url === '/openapi.json') return void res.writeHead(301, { location: '/api/openapi.json' }).end()
      res.writeHead(200, { 'content-type': 'application/json' }).end(valid)
    })
    expect((await inspect(moved)).url).toBe(`${moved}/api/openapi.json`)
    const loop = await serve((_req, res) => res.writeHead(302, { location: '/openapi.json' }).end())
    expect((await failure(inspect(loop))).code).toBe('redirect')
  })

  test('an origin with credentials or another scheme is refused before any request, without echoing them', async () => {
    const requests: string[] = []
    const spy: typeof fetch = async (input) => {
      requests.push(String(input))
      return Response.json({})
    }
    for (const origin of ['https://user:hunter2@api.example', 'file:///etc/passwd', 'ftp://api.example']) {
      const error = await failure(inspect(origin, { fetch: spy }))
      expect(error.code, origin).toBe('bad-origin')
      expect(error.message).not.toContain('hunter2')
    }
    expect(requests).toEqual([])
  })

  test('a body that never ends times out, even with a fetch that ignores the signal', async () => {
    const endless: typeof fetch = async () =>
      new Response(new ReadableStream({ pull: () => new Promise(() => {}) }), {
        headers: { 'content-type': 'application/json' },
      })
    const error = await failure(inspect('https://x.example', { fetch: endless, timeoutMs: 100 }))
    expect(error.code).toBe('timeout')
    expect(error.message).toMatchInlineSnapshot(
      `"https://x.example/openapi.json did not answer within 100 ms"`,
    )
    // Over HTTP: a server dripping its body.
    const slow = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{')
      const timer = setInterval(() => res.write(' '), 20)
      res.on('close', () => clearInterval(timer))
    })
    expect((await failure(inspect(slow, { timeoutMs: 200 }))).code).toBe('timeout')
  })

  test('"MUST be served over HTTPS with Content-Type: application/json": otherwise a problem', async () => {
    const as = (type: string | null) =>
      fetchOf(() => new Response(valid, { headers: type === null ? {} : { 'content-type': type } }))
    expect((await inspect('https://x.example', { fetch: as('application/json; charset=utf-8') })).valid).toBe(
      true,
    )
    const html = await inspect('https://x.example', { fetch: as('text/html') })
    expect(html.problems).toEqual([{ path: '$', message: 'not served with Content-Type: application/json' }])
    expect((await inspect('https://x.example', { fetch: as(null) })).valid).toBe(false)
    const plain = await inspect('http://x.example', { fetch: as('application/json') })
    expect(plain.problems).toEqual([{ path: '$', message: 'not served over HTTPS' }])
    // Loopback is a developer's own machine: plain HTTP there is no problem.
    for (const origin of ['http://localhost:8080', 'http://127.0.0.1:1', 'http://[::1]:1'])
      expect((await inspect(origin, { fetch: as('application/json') })).valid, origin).toBe(true)
  })
})
