import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import { create as createClient } from '../client/Client.js'
import { ConfigurationError } from '../Errors.js'
import type * as Method from '../Method.js'
import { createTestRail, testCharge } from '../testing/TestMethod.js'
import { create as createServer } from './Server.js'

// A challenge whose request the method's own request schema refuses would be refused when its
// credential comes back (the core parses every echoed request with that schema), after the payer paid.
// Such an offer is never issued: a static one is a ConfigurationError when its route is compiled; a
// priced or prepared one is left out of the 402 it would have been in, and reported (phase `challenge`).

const secret = 'issuance-schema-test-secret-0123456789abcdef'
const url = 'https://api.test/r'
const request = { amount: '100', currency: 'usd', recipient: 'acct' }

type Report = { phase: string; error: unknown }

/** `testCharge` whose request schema counts its runs. */
function counted() {
  let parses = 0
  const schema = testCharge.request
  const definition = {
    ...testCharge,
    request: Object.assign(Object.create(schema), {
      safeParse: (value: unknown) => {
        parses++
        return schema.safeParse(value)
      },
    }),
  } as typeof testCharge
  return { definition, parses: () => parses }
}

function setup(methods: Method.Server[]) {
  const reports: Report[] = []
  const server = createServer({
    realm: 'api.test',
    secrets: [secret],
    methods,
    logger: false,
    onError: (error, { phase }) => reports.push({ phase, error }),
  })
  return { server, reports }
}

const challengesOf = (response: Response) =>
  Challenge.parseAll(response.headers.get('www-authenticate') ?? '')

describe('Issuance.issuer: requests the method schema refuses', () => {
  it('leaves out a priced offer whose request the schema refuses, reports it once, and offers the others', async () => {
    const rail = createTestRail()
    const session = {
      ...rail.server(),
      definition: { ...testCharge, intent: 'session' as string } as typeof testCharge,
    }
    const { server, reports } = setup([rail.server(), session])
    let price = '1.5'
    const handler = server.protect(
      {
        offers: [
          { method: 'test', request: () => ({ ...request, amount: price }) },
          { method: 'test', intent: 'session', request },
        ],
      },
      () => new Response('ok'),
    )
    const response = await handler(new Request(url))
    expect(response.status).toBe(402)
    expect(challengesOf(response).map((c) => [c.intent, c.request.amount])).toEqual([['session', '100']])
    expect(reports).toHaveLength(1)
    expect(reports[0]!.phase).toBe('challenge')
    expect(reports[0]!.error).toBeInstanceOf(ConfigurationError)
    expect(reports[0]!.error).toMatchInlineSnapshot(
      `[ConfigurationError: route offer test/charge: the priced request.amount does not fit the method's request schema: Invalid string: must match pattern /^\\d+$/; the offer was left out of the 402 (its payment would be refused)]`,
    )
    // The price function is asked again for each request: a good price is offered again.
    price = '150'
    const later = await handler(new Request(url))
    expect(challengesOf(later).map((c) => [c.intent, c.request.amount])).toEqual([
      ['charge', '150'],
      ['session', '100'],
    ])
    expect(reports).toHaveLength(1)
  })

  it('answers 503 when no offer remains, as when pricing fails: nothing a payer could pay and then be refused', async () => {
    const rail = createTestRail()
    const { server, reports } = setup([rail.server()])
    const handler = server.protect(
      { offers: [{ method: 'test', request: () => ({ amount: '100', currency: 'usd' }) }] },
      () => new Response('ok'),
    )
    const response = await handler(new Request(url))
    expect(response.status).toBe(503)
    expect(response.headers.get('www-authenticate')).toBeNull()
    expect(response.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(reports.map((r) => [r.phase, (r.error as Error).message])).toEqual([
      [
        'challenge',
        "route offer test/charge: the priced request.recipient does not fit the method's request schema: Invalid input: expected string, received undefined; the offer was left out of the 402 (its payment would be refused)",
      ],
    ])
    // As data for JSON transports (MCP): the same problem, no challenge.
    const problem = await server.issueChallenges({
      route: { offers: [{ method: 'test', request: () => ({ ...request, amount: 'ten' }) }] },
      request: new Request(url),
    })
    expect(problem.error.status).toBe(503)
    expect(problem.challenges).toEqual([])
  })

  it('leaves out a prepared offer whose prepare makes a request the schema refuses; a client pays only what can be verified', async () => {
    const rail = createTestRail()
    // A rail whose prepare writes a field its own schema refuses (an amount in another unit).
    const broken: Method.Server<typeof testCharge> = {
      ...rail.server(),
      definition: { ...testCharge, intent: 'broken' as string } as typeof testCharge,
      prepare: ({ request }) => ({ ...request, amount: `${request.amount}.00` }),
    }
    const { server, reports } = setup([broken, rail.server()])
    let served = 0
    const handler = server.protect(
      {
        offers: [
          { method: 'test', intent: 'broken', request },
          { method: 'test', request },
        ],
      },
      () => {
        served++
        return new Response('ok')
      },
    )
    const response = await handler(new Request(url))
    expect(challengesOf(response).map((c) => c.intent)).toEqual(['charge'])
    expect(reports.map((r) => [r.phase, (r.error as Error).message])).toEqual([
      [
        'challenge',
        "route offer test/broken: the prepared request.amount does not fit the method's request schema: Invalid string: must match pattern /^\\d+$/; the offer was left out of the 402 (its payment would be refused)",
      ],
    ])
    const fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof globalThis.fetch
    const client = createClient({ methods: [rail.client()], fetch })
    expect((await client.fetch(url)).status).toBe(200)
    expect(served).toBe(1)
    expect(rail.transfers.size).toBe(1)
  })

  it('checks a static offer once, when its route is compiled: a refused one is a ConfigurationError, a good one issues without parsing', async () => {
    const rail = createTestRail()
    const { definition, parses } = counted()
    const { server, reports } = setup([{ ...rail.server(), definition }])
    expect(() =>
      server.protect(
        { offers: [{ method: 'test', request: { ...request, amount: '1.5' } }] },
        () => new Response(),
      ),
    ).toThrow(ConfigurationError)
    const before = parses()
    const handler = server.protect({ offers: [{ method: 'test', request }] }, () => new Response('ok'))
    expect(parses()).toBe(before + 1)
    for (let i = 0; i < 3; i++) expect((await handler(new Request(url))).status).toBe(402)
    // The fast path: static challenges are issued from their template, with no schema run.
    expect(parses()).toBe(before + 1)
    // A priced offer is held against the schema at each issuance.
    const priced = server.protect(
      { offers: [{ method: 'test', request: () => request }] },
      () => new Response(),
    )
    for (let i = 0; i < 2; i++) expect((await priced(new Request(url))).status).toBe(402)
    expect(parses()).toBe(before + 3)
    expect(reports).toEqual([])
  })
})
