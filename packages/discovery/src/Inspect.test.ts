import { describe, expect, test } from 'vitest'
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
    const tooDeep = await inspect('https://x.example', { fetch: fetchOf(() => new Response(deep)) })
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
