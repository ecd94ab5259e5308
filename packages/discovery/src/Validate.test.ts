import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { validate } from './Validate.js'

// The example document of draft-payment-discovery-00 §Example OpenAPI Document (abridged: schemas cut).
const specExample = {
  openapi: '3.1.0',
  info: { title: 'Example AI API', version: '1.0.0' },
  'x-service-info': {
    categories: ['compute'],
    docs: { homepage: 'https://api.example.com/docs', llms: 'https://api.example.com/llms.txt' },
  },
  paths: {
    '/v1/chat/completions': {
      post: {
        summary: 'Chat completions',
        'x-payment-info': {
          offers: [
            { intent: 'charge', method: 'tempo', amount: '500', currency: '0x20c0' },
            { intent: 'charge', method: 'tempo', amount: '500', currency: '0x20c1', description: 'Alt' },
          ],
        },
        requestBody: { content: { 'application/json': { schema: { type: 'object' } } } },
        responses: { '200': { description: 'ok' }, '402': { description: 'Payment Required' } },
      },
    },
    '/v1/embeddings': {
      post: {
        'x-payment-info': { intent: 'charge', method: 'tempo', amount: null, currency: '0x20c0' },
        requestBody: { content: { 'application/json': { schema: { type: 'object' } } } },
        responses: { '200': { description: 'ok' }, '402': { description: 'Payment Required' } },
      },
    },
  },
}

describe('validate', () => {
  test("the spec's example is valid; the single-offer shorthand is one offer", () => {
    const report = validate(specExample)
    expect(report.problems).toEqual([])
    expect(report.operations.map((o) => [o.method, o.path, o.offers.length])).toEqual([
      ['POST', '/v1/chat/completions', 2],
      ['POST', '/v1/embeddings', 1],
    ])
    expect(report.operations[1]!.offers[0]!.amount).toBeNull()
  })

  test('every MUST broken is reported at its path', () => {
    const broken = structuredClone(specExample) as any
    delete broken.info.version
    broken['x-service-info'].categories = 'compute'
    broken['x-service-info'].docs.homepage = 'not a uri'
    const post = broken.paths['/v1/chat/completions'].post
    post['x-payment-info'].offers[0].amount = '0500'
    post['x-payment-info'].offers[1].intent = 'subscribe'
    post['x-payment-info'].offers[1].extra = true
    delete post.responses['402']
    broken.paths['/v1/embeddings'].post['x-payment-info'] = { offers: [] }
    expect(validate(broken).problems).toMatchInlineSnapshot(`
      [
        {
          "message": "must be a string",
          "path": "$.info.version",
        },
        {
          "message": "must be an array of strings",
          "path": "$.x-service-info.categories",
        },
        {
          "message": "must be a URI",
          "path": "$.x-service-info.docs.homepage",
        },
        {
          "message": "must be null or base units as ASCII digits without leading zeros",
          "path": "$.paths["/v1/chat/completions"].post.x-payment-info.offers[0].amount",
        },
        {
          "message": "must be "charge" or "session"",
          "path": "$.paths["/v1/chat/completions"].post.x-payment-info.offers[1].intent",
        },
        {
          "message": "is not an offer field",
          "path": "$.paths["/v1/chat/completions"].post.x-payment-info.offers[1].extra",
        },
        {
          "message": "a payable operation must declare a 402 response",
          "path": "$.paths["/v1/chat/completions"].post.responses",
        },
        {
          "message": "must be an array of one or more offers",
          "path": "$.paths["/v1/embeddings"].post.x-payment-info.offers",
        },
      ]
    `)
  })

  test('never throws, whatever the input', () => {
    const cyclic: any = { openapi: '3.1.0', info: { title: 't', version: '1' }, paths: {} }
    cyclic.paths['/a'] = { get: { 'x-payment-info': cyclic, responses: cyclic } }
    expect(validate(cyclic).valid).toBe(false)
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const report = validate({ openapi: '3.1.0', info: { title: 't', version: '1' }, paths: value })
        expect(typeof report.valid).toBe('boolean')
        validate(value)
      }),
    )
    fc.assert(
      fc.property(fc.anything(), (info) => {
        validate({ ...specExample, paths: { '/x': { get: { 'x-payment-info': info, responses: {} } } } })
      }),
    )
  })
})

describe('validate: what the spec forbids and what it allows', () => {
  const withDocs = (homepage: string) =>
    validate({ ...specExample, 'x-service-info': { docs: { homepage } } }).problems.map((p) => p.path)

  test('"All URI values MUST conform to RFC 3986": what WHATWG URL parsing repairs is refused', () => {
    for (const uri of [
      'https://api.example.com/docs page',
      'https:\\\\api.example.com\\docs',
      'https://api.example.com/<docs>',
      'https://api.example.com/d%zzocs',
      'https://api.example.com/\u00e9',
      'docs',
    ])
      expect(withDocs(uri), uri).toEqual(['$.x-service-info.docs.homepage'])
    for (const uri of [
      'https://api.example.com/docs?lang=en#top',
      'https://api.example.com/%C3%A9',
      'urn:isbn:0451450523',
      'mailto:docs@api.example.com',
    ])
      expect(withDocs(uri), uri).toEqual([])
  })

  test('a path that does not start with "/" is no OpenAPI path', () => {
    const document = structuredClone(specExample) as any
    document.paths['v1/chat'] = document.paths['/v1/chat/completions']
    expect(validate(document).problems).toEqual([
      { path: '$.paths["v1/chat"]', message: 'a path must start with "/"' },
    ])
  })
})
