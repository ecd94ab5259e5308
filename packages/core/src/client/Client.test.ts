import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import * as Base64url from '../Base64url.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import {
  ConfigurationError,
  PolicyError,
  ServiceUnavailableError,
  VerificationFailedError,
} from '../Errors.js'
import type * as Method from '../Method.js'
import * as Receipt from '../Receipt.js'
import { create as createServer, type Route } from '../server/Server.js'
import { createTestRail, testCharge } from '../testing/TestMethod.js'
import { create, mayHaveSettled, PaymentFailedError, receipt } from './Client.js'
import { mpp, type Protocol } from './Protocol.js'

const secret = 'client-test-secret-0123456789abcdefghij'
const cents: Route = {
  offers: [{ method: 'test', request: { amount: '100', currency: 'usd', recipient: 'merchant' } }],
}
const sats: Route = {
  offers: [{ method: 'other', request: { amount: '100000', currency: 'sat', recipient: 'merchant' } }],
}
// A second rail: the test rail under another method name, paying in sats.
const renamed = { ...testCharge, name: 'other' }
const asOther = <m extends { definition: unknown }>(method: m): m => ({ ...method, definition: renamed })

function setup() {
  const usd = createTestRail()
  const sat = createTestRail()
  const server = createServer({
    realm: 'api.test',
    secrets: [secret],
    methods: [usd.server(), asOther(sat.server()) as never],
  })
  const handlers = {
    '/cents': server.protect(cents, () => new Response('cents')),
    '/sats': server.protect(sats, () => new Response('sats')),
  }
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    return handlers[new URL(request.url).pathname as keyof typeof handlers](request)
  }) as typeof fetch
  // Payloads take a while, so concurrent payments interleave between reserve and retry.
  const slow = (method: Method.Client): Method.Client => ({
    ...method,
    createPayload: async (context) => {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20))
      return method.createPayload(context)
    },
  })
  const methods = [slow(usd.client()), slow(asOther(sat.client()))]
  const settlements = () => usd.settlements() + sat.settlements()
  return { server, fetcher, methods, settlements }
}

// USD prices: a cent is 1/100, a sat 1/100 000 (a caller's fixed rate).
const price = (quote: Method.Quote) =>
  quote.currency === 'usd'
    ? { numerator: quote.amount, denominator: 100n }
    : quote.currency === 'sat'
      ? { numerator: quote.amount, denominator: 100_000n }
      : undefined

const challengesOf = async (response: Response) =>
  Challenge.parseAll(response.headers.get('www-authenticate') ?? '')

describe('create', () => {
  it('validates the policy when the client is created', () => {
    const { methods } = setup()
    expect(() =>
      create({ methods, policy: { maxAmount: 100n, currencies: ['usd', 'sat'] } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: a scalar maxAmount is in one currency's base units, but currencies lists 2: give a limit per currency ({ [currency]: amount })]`,
    )
    expect(() => create({ methods, protocols: [] })).toThrow(ConfigurationError)
  })

  it('refuses a scalar limit without a pinned currency when the methods span several rails', () => {
    const { methods } = setup()
    const other: Method.Client = {
      ...methods[0]!,
      definition: { ...methods[0]!.definition, name: 'otherrail' },
    }
    expect(() =>
      create({ methods: [methods[0]!, other], policy: { maxAmount: 1_000_000n } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: a scalar spend limit is in one currency's base units, but this client pays on 2 rails (test, otherrail): give limits per currency ({ [currency]: amount }) or pin one with currencies: [currency]]`,
    )
    // Pinned to one currency, or limits per currency: unambiguous.
    expect(() =>
      create({ methods: [methods[0]!, other], policy: { maxAmount: 1_000_000n, currencies: ['usd'] } }),
    ).not.toThrow()
    expect(() =>
      create({ methods: [methods[0]!, other], policy: { maxAmount: { usd: 100n, sat: 1_000n } } }),
    ).not.toThrow()
    // One rail: the scalar pins itself to the first currency paid, as before.
    expect(() => create({ methods: [methods[0]!], policy: { maxAmount: 1_000_000n } })).not.toThrow()
  })

  it('never lets concurrent payments across rails overrun the cross-rail budget', async () => {
    const { fetcher, methods, settlements } = setup()
    const client = create({
      methods,
      fetch: fetcher,
      policy: {
        maxAmount: { usd: 100n, sat: 100_000n },
        crossRail: { unit: 'USD', budget: 10, price },
      },
    })
    // 60 payments of 1 USD each, half in cents and half in sats, all in flight at once.
    const outcomes = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        client.fetch(`https://api.test/${i % 2 ? 'sats' : 'cents'}`).then(
          (r) => r.status,
          (e) => (e instanceof PolicyError ? e.reason : String(e)),
        ),
      ),
    )
    expect(outcomes.filter((o) => o === 200)).toHaveLength(10)
    expect(outcomes.filter((o) => o === 'cross-rail-budget')).toHaveLength(50)
    expect(settlements()).toBe(10)
    expect(client.ledger.spentTotal).toEqual({ numerator: 10n, denominator: 1n })
    expect(client.ledger.spent('usd') * 1_000n + client.ledger.spent('sat')).toBe(10n * 100_000n)
  })
})

describe('Client.pay', () => {
  it('pays challenges from any transport under the same ledger as fetch', async () => {
    const { fetcher, methods, settlements } = setup()
    const seen: Receipt.Receipt[] = []
    const client = create({
      methods,
      fetch: fetcher,
      policy: { budget: { usd: 200n } },
      onReceipt: (r) => seen.push(r),
    })
    expect((await client.fetch('https://api.test/cents')).status).toBe(200)
    // Challenges as a JSON-RPC error would carry them: plain objects.
    const first = await fetcher('https://api.test/cents')
    const challenges = JSON.parse(JSON.stringify(await challengesOf(first)))
    const payment = await client.pay(challenges, { url: 'mcp://api.test/tools/cents' })
    expect(payment.header).toBe('Authorization')
    expect(payment.quote).toEqual({ amount: 100n, currency: 'usd' })
    expect(Credential.parse(payment.authorization).challenge.id).toBe(challenges[0].id)
    const paid = await fetcher('https://api.test/cents', {
      headers: { authorization: payment.authorization },
    })
    expect(paid.status).toBe(200)
    payment.receipt(Receipt.parse(paid.headers.get('payment-receipt')!))
    payment.receipt(Receipt.parse(paid.headers.get('payment-receipt')!))
    expect(seen).toHaveLength(2)
    expect(settlements()).toBe(2)
    // fetch and pay share the budget: a third payment is refused before any payload exists.
    const third = JSON.parse(JSON.stringify(await challengesOf(await fetcher('https://api.test/cents'))))
    await expect(client.pay(third, { url: 'mcp://api.test/tools/cents' })).rejects.toMatchObject({
      reason: 'budget',
    })
    expect(client.ledger.spent('usd')).toBe(200n)
  })

  it('refuses an amount sent as a JSON number past 2^53 (it no longer says what the server asked)', async () => {
    const definition = {
      ...testCharge,
      name: 'numeric',
      request: z.object({ amount: z.number(), currency: z.string() }),
    }
    let created = 0
    const numeric: Method.Client = {
      definition,
      async createPayload() {
        created++
        return { payload: { transfer: 'tx' } }
      },
    }
    const client = create({ methods: [numeric], policy: { maxAmount: { usd: 2n ** 53n } } })
    const request = Base64url.encode('{"amount":9007199254740993,"currency":"usd"}')
    const header = `Payment id="n1", realm="api.test", method="numeric", intent="charge", request="${request}"`
    const error = await client.pay(Challenge.parseAll(header), { url: 'mcp://x' }).catch((e) => e)
    expect(error).toBeInstanceOf(PolicyError)
    expect(error.reason).toBe('quote')
    expect(created).toBe(0)
    // A safe integer is read as it is.
    const safe = Base64url.encode('{"amount":1000,"currency":"usd"}')
    const payment = await client.pay(Challenge.parseAll(header.replace(request, safe)), { url: 'mcp://x' })
    expect(payment.quote).toEqual({ amount: 1000n, currency: 'usd' })
  })

  it('throws a typed error when no challenge names a method it pays with', async () => {
    const { methods } = setup()
    const client = create({ methods })
    const foreign = { id: 'x', realm: 'r', method: 'stripe', intent: 'charge', request: {} }
    const error = await client.pay([foreign, { bogus: true } as never], { url: 'mcp://x' }).catch((e) => e)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.code).toBe('no-payable-challenge')
  })

  it('pays another offer when a method meets a limit while preparing (nothing signed); a person declining is final', async () => {
    const usd = createTestRail()
    const sat = createTestRail()
    let reason = 'max-locked'
    // A session-like rail that finds, while preparing, that a new deposit would pass a limit.
    const limited: Method.Client = {
      ...usd.client(),
      async createPayload() {
        throw new PolicyError(reason, 'a new deposit would pass maxLocked')
      },
    }
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [usd.server(), asOther(sat.server()) as never],
    })
    const both = server.protect({ offers: [...cents.offers, ...sats.offers] }, () => new Response('either'))
    const client = create({
      methods: [limited, asOther(sat.client())],
      fetch: ((input: RequestInfo | URL, init?: RequestInit) =>
        both(new Request(input, init))) as typeof fetch,
      policy: { budget: { usd: 1_000n, sat: 1_000_000n } },
    })
    const response = await client.fetch('https://api.test/both')
    expect(response.status).toBe(200)
    expect(sat.settlements()).toBe(1)
    // The refused offer's booking was given back; the one paid stays booked.
    expect(client.ledger.spent('usd')).toBe(0n)
    expect(client.ledger.spent('sat')).toBe(100_000n)
    reason = 'declined'
    await expect(client.fetch('https://api.test/both')).rejects.toMatchObject({ reason: 'declined' })
    expect(sat.settlements()).toBe(1)
  })

  it('books side payments a method makes through context.spend', async () => {
    const { fetcher } = setup()
    const rail = createTestRail()
    const sides: (() => void)[] = []
    const topping: Method.Client = {
      ...rail.client(),
      async createPayload(context) {
        // e.g. a session top-up of 150 cents the method makes before answering.
        sides.push(context.spend!({ amount: 150n, currency: 'usd' }))
        return rail.client().createPayload(context)
      },
    }
    const client = create({ methods: [topping], fetch: fetcher, policy: { budget: { usd: 300n } } })
    const challenges = await challengesOf(await fetcher('https://api.test/cents'))
    await client.pay(challenges, { url: 'https://api.test/cents' })
    expect(client.ledger.spent('usd')).toBe(250n)
    // 100 + 150 more would pass 300: the side payment is refused, and the request's booking undone.
    await expect(client.pay(challenges, { url: 'https://api.test/cents' })).rejects.toBeInstanceOf(
      PolicyError,
    )
    expect(client.ledger.spent('usd')).toBe(250n)
    sides[0]!()
    expect(client.ledger.spent('usd')).toBe(100n)
  })
})

describe('Client.fetch', () => {
  // A server that names the credential header in its challenge (conformance vector
  // credential_with_payment_authorization_header).
  const namingServer = (header: string) => {
    const rail = createTestRail()
    const challenge: Challenge.Challenge = {
      id: 'ch_header',
      realm: 'api.test',
      method: 'test',
      intent: 'charge',
      request: { amount: '5', currency: 'usd', recipient: 'merchant' },
      header,
    }
    const received: Record<string, string | null>[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const named = /^[A-Za-z-]+$/.test(header) ? request.headers.get(header) : null
      const credential = named ?? request.headers.get('authorization')
      received.push({ named, authorization: request.headers.get('authorization') })
      if (!credential)
        return new Response(null, {
          status: 402,
          headers: { 'www-authenticate': Challenge.format(challenge) },
        })
      // The echo must carry `header` (the id binds it): read it from the wire.
      const echoed = JSON.parse(Base64url.decodeText(credential.slice('Payment '.length))) as {
        challenge: { header?: string }
        payload: { transfer: string }
      }
      const transfer = rail.transfers.get(echoed.payload.transfer)
      return new Response(JSON.stringify({ header: echoed.challenge.header, amount: transfer?.amount }))
    }) as typeof fetch
    return { rail, fetcher, received }
  }

  it('sends the credential in the header the challenge names', async () => {
    const { rail, fetcher, received } = namingServer('Payment-Authorization')
    const client = create({ methods: [rail.client()], fetch: fetcher })
    const response = await client.fetch('https://api.test/named')
    expect(await response.json()).toEqual({ header: 'Payment-Authorization', amount: '5' })
    expect(received[1]).toMatchObject({ authorization: null })
    expect(received[1]!.named).toMatch(/^Payment /)
  })

  it('never pays a challenge naming a header that cannot carry a credential', async () => {
    for (const header of ['Cookie', 'Sec-Payment', 'Host', 'bad header']) {
      const { rail, fetcher } = namingServer(header)
      const client = create({ methods: [rail.client()], fetch: fetcher })
      expect((await client.fetch('https://api.test/named')).status).toBe(402)
      expect(rail.transfers.size).toBe(0)
    }
  })

  it('reads challenges through protocol plugs and sends credentials where they say', async () => {
    // A plug for an x402-style server: offers in a base64 JSON `PAYMENT-REQUIRED` header, the payment
    // back in `PAYMENT-SIGNATURE`.
    const rail = createTestRail()
    const offer = { id: 'x402-1', realm: 'api.test', method: 'test', intent: 'charge' }
    const request = { amount: '7', currency: 'usd', recipient: 'merchant' }
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const signature = new Request(input, init).headers.get('payment-signature')
      if (!signature)
        return new Response(null, {
          status: 402,
          headers: {
            'payment-required': Base64url.encode(JSON.stringify({ accepts: [{ ...offer, request }] })),
          },
        })
      const { payload } = JSON.parse(Base64url.decodeText(signature)) as { payload: { transfer: string } }
      const transfer = rail.transfers.get(payload.transfer)
      return Response.json({ paid: transfer?.amount, binding: transfer?.binding })
    }) as typeof fetch
    const plug: Protocol = {
      name: 'x402-like',
      challenges: (response) =>
        (
          JSON.parse(Base64url.decodeText(response.headers.get('payment-required') ?? 'e30')) as {
            accepts?: Challenge.Challenge[]
          }
        ).accepts ?? [],
      headers: (payment) => ({
        'payment-signature': Base64url.encode(JSON.stringify({ payload: payment.credential.payload })),
      }),
    }
    const client = create({ methods: [rail.client()], fetch: fetcher, protocols: [mpp, plug] })
    const response = await client.fetch('https://api.test/x402')
    expect(await response.json()).toEqual({ paid: '7', binding: 'x402-1' })
    expect(client.ledger.spent('usd')).toBe(7n)
  })
})

describe('errors never carry the credential', () => {
  it('when a protocol plug writes a header fetch refuses (a pretty-printed JSON value)', async () => {
    const { fetcher, methods, settlements } = setup()
    const plug: Protocol = {
      ...mpp,
      name: 'pretty',
      headers: (payment) => ({
        'x-payment': JSON.stringify({ authorization: payment.authorization }, null, 2),
      }),
    }
    const client = create({ methods, fetch: fetcher, protocols: [plug], policy: { budget: { usd: 100n } } })
    const error = await client.fetch('https://api.test/cents').catch((e) => e)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.code).toBe('invalid-credential-header')
    // The payload exists: the money may have moved, and the payment stays booked.
    expect(error.mayHaveSettled).toBe(true)
    expect(client.ledger.spent('usd')).toBe(100n)
    expect(settlements()).toBe(0)
    const seen = new Set<unknown>()
    const text = (value: unknown): string => {
      if (value === null || typeof value !== 'object' || seen.has(value)) return String(value)
      seen.add(value)
      const { message, stack, cause } = value as Error
      return `${message} ${stack} ${text(cause)} ${JSON.stringify(value)}`
    }
    expect(text(error)).not.toMatch(/Payment ey/)
  })
})

describe('Client.fetch retries', () => {
  // A rail that is down for the first `outages` settlement attempts: the server answers 503 +
  // Retry-After, releases the challenge and settles nothing.
  const flaky = (outages: number, retryAfter = 0) => {
    const rail = createTestRail()
    let attempts = 0
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [
        rail.server({
          failWith: () =>
            ++attempts <= outages
              ? new ServiceUnavailableError({ detail: 'rail down', retryAfter })
              : undefined,
        }),
      ],
    })
    const handler = server.protect(cents, () => new Response('cents'))
    const sent: (string | null)[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      sent.push(request.headers.get('authorization'))
      return handler(request)
    }) as typeof fetch
    return { rail, fetcher, sent, attempts: () => attempts }
  }

  it('sends the same credential again after a 503 + Retry-After, and it is charged once', async () => {
    const { rail, fetcher, sent } = flaky(2)
    const client = create({ methods: [rail.client()], fetch: fetcher })
    const response = await client.fetch('https://api.test/cents')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('cents')
    // One unpaid request, then one credential sent three times.
    expect(sent).toHaveLength(4)
    expect(new Set(sent.slice(1)).size).toBe(1)
    expect(rail.settlements()).toBe(1)
    expect(client.ledger.spent('usd')).toBe(100n)
  })

  it('does not resend a credential whose 503 consumed the challenge (no Retry-After)', async () => {
    // The rail sent the transfer, then could not confirm it: the method marks the failure consumed.
    const rail = createTestRail()
    const base = rail.server()
    let settles = 0
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [
        {
          ...base,
          async settle() {
            settles++
            throw new ServiceUnavailableError({ detail: 'sent, then the RPC went away', consumed: true })
          },
        },
      ],
      logger: false,
    })
    const handler = server.protect(cents, () => new Response('cents'))
    const sent: (string | null)[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      sent.push(request.headers.get('authorization'))
      return handler(request)
    }) as typeof fetch
    const client = create({ methods: [rail.client()], fetch: fetcher })
    const response = await client.fetch('https://api.test/cents')
    expect(response.status).toBe(503)
    expect(response.headers.get('retry-after')).toBeNull()
    // One unpaid request, one paid one: never resent into an `invalid-challenge`.
    expect(sent).toHaveLength(2)
    expect(settles).toBe(1)
  })

  it('sends the same credential again after a 402 + Retry-After (a payment not finished yet), never a second payment', async () => {
    // The rail took the payment but has not finished it (a PaymentIntent `processing`): 402 + Retry-After
    // with a fresh challenge; the same credential, sent again, is then served.
    const { rail, fetcher, sent } = (() => {
      const rail = createTestRail()
      let attempts = 0
      const server = createServer({
        realm: 'api.test',
        secrets: [secret],
        methods: [
          rail.server({
            failWith: () =>
              ++attempts <= 1
                ? new VerificationFailedError({ detail: 'still processing', retryAfter: 0 })
                : undefined,
          }),
        ],
      })
      const handler = server.protect(cents, () => new Response('cents'))
      const sent: (string | null)[] = []
      const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
        const request = new Request(input, init)
        sent.push(request.headers.get('authorization'))
        return handler(request)
      }) as typeof fetch
      return { rail, fetcher, sent }
    })()
    const client = create({ methods: [rail.client()], fetch: fetcher })
    const response = await client.fetch('https://api.test/cents')
    expect(response.status).toBe(200)
    // One unpaid request, then one credential sent twice: the fresh challenge of the 402 is not paid.
    expect(sent).toHaveLength(3)
    expect(sent[1]).toBe(sent[2])
    expect(rail.settlements()).toBe(1)
    expect(client.ledger.spent('usd')).toBe(100n)
  })

  for (const status of [503, 402])
    it(`never resends a credential after its challenge expired (${status} + Retry-After)`, async () => {
      // "Clients MUST NOT submit credentials for expired challenges." (§5.1.2) The challenge lives one to
      // two seconds (`expires` has whole seconds); the server asks to retry in two.
      const rail = createTestRail()
      let attempts = 0
      const server = createServer({
        realm: 'api.test',
        secrets: [secret],
        expiresIn: 2,
        methods: [
          rail.server({
            failWith: () =>
              ++attempts <= 1
                ? status === 503
                  ? new ServiceUnavailableError({ detail: 'rail down', retryAfter: 2 })
                  : new VerificationFailedError({ detail: 'still processing', retryAfter: 2 })
                : undefined,
          }),
        ],
        logger: false,
      })
      const handler = server.protect(cents, () => new Response('cents'))
      const late: string[] = []
      let sent = 0
      const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
        const request = new Request(input, init)
        const authorization = request.headers.get('authorization')
        if (authorization) {
          sent++
          const { expires } = Credential.parse(authorization).challenge
          if (expires !== undefined && Date.parse(expires) <= Date.now()) late.push(expires)
        }
        return handler(request)
      }) as typeof fetch
      const client = create({ methods: [rail.client()], fetch: fetcher })
      const error = await client.fetch('https://api.test/cents').catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error).toMatchObject({ code: 'outcome-pending', mayHaveSettled: true })
      expect((error as PaymentFailedError).response?.status).toBe(status)
      expect((error as Error).message).toContain('its challenge expires before the wait is over')
      expect(late).toEqual([])
      expect(sent).toBe(1)
      expect(rail.settlements()).toBe(0)
      // The credential exists: the payment stays booked.
      expect(client.ledger.spent('usd')).toBe(100n)
    })

  it('gives up after `retries`, and never waits longer than maxRetryDelay', async () => {
    const down = flaky(10)
    const client = create({ methods: [down.rail.client()], fetch: down.fetcher, retries: 1 })
    await expect(client.fetch('https://api.test/cents')).rejects.toMatchObject({
      code: 'outcome-pending',
      message: expect.stringContaining('(after 1 resend(s))'),
    })
    expect(down.sent).toHaveLength(3)
    const slow = flaky(1, 60)
    const patient = create({ methods: [slow.rail.client()], fetch: slow.fetcher })
    await expect(patient.fetch('https://api.test/cents')).rejects.toMatchObject({
      code: 'outcome-pending',
      message: expect.stringContaining('not a wait of at most maxRetryDelay (5 s)'),
    })
    expect(slow.sent).toHaveLength(2)
    expect(slow.rail.settlements()).toBe(0)
    expect(() => create({ methods: [slow.rail.client()], retries: -1 })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: retries must be a non-negative integer]`,
    )
  })

  // A rail that takes the payment and has not finished it by the end of the client's resends (a Stripe
  // PaymentIntent `processing`): every paid request is answered 402 + Retry-After, with a fresh challenge.
  const unfinished = () => {
    const rail = createTestRail()
    let attempts = 0
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [
        rail.server({
          failWith: () => {
            attempts++
            return new VerificationFailedError({
              detail: 'still processing',
              reason: 'payment-intent-processing',
              retryAfter: 0,
            })
          },
        }),
      ],
      logger: false,
    })
    const handler = server.protect(cents, () => new Response('cents'))
    const sent: (string | null)[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      sent.push(request.headers.get('authorization'))
      return handler(request)
    }) as typeof fetch
    return { rail, fetcher, sent, attempts: () => attempts }
  }

  it('rejects outcome-pending, the booking kept, when a 402 + Retry-After outlasts the resends: a second fetch cannot pay past the budget', async () => {
    const { rail, fetcher, sent, attempts } = unfinished()
    const client = create({
      methods: [rail.client()],
      fetch: fetcher,
      policy: { currencies: ['usd'], budget: 150n },
    })
    const error = await client.fetch('https://api.test/cents').catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(mayHaveSettled(error)).toBe(true)
    const failed = error as PaymentFailedError
    expect(failed.code).toBe('outcome-pending')
    expect(failed.message).toMatchInlineSnapshot(
      `"the server has not finished the payment (HTTP 402 payment-intent-processing with Retry-After) and the client stopped resending its credential (after 2 resend(s)); the payment may have gone through: check before paying again"`,
    )
    // The server's last answer, unread, for the caller to read its problem; the challenge paid.
    const answer = failed.response!
    expect(answer.status).toBe(402)
    expect(answer.headers.get('retry-after')).toBe('0')
    expect(((await answer.json()) as { reason?: string }).reason).toBe('payment-intent-processing')
    expect(failed.challenge?.id).toBe(Credential.parse(sent[1]!).challenge.id)
    // One unpaid request, then one credential sent three times (the default two resends), never another.
    expect(sent).toHaveLength(4)
    expect(new Set(sent.slice(1)).size).toBe(1)
    expect(attempts()).toBe(3)
    // Kept booked: the payment may complete. Fetching again is refused by the budget, nothing created.
    expect(client.ledger.spent('usd')).toBe(100n)
    await expect(client.fetch('https://api.test/cents')).rejects.toBeInstanceOf(PolicyError)
    expect(sent).toHaveLength(5)
    expect(rail.settlements()).toBe(0)
  })

  it('a 402 + Retry-After is never taken for a stale refusal to pay afresh, even by a method that would retry it', async () => {
    const { rail, fetcher, sent } = unfinished()
    // A method that reads every 402 as its own stale state (as a session's bearer may).
    const eager = { ...rail.client(), retryRefused: () => true }
    const client = create({ methods: [eager], fetch: fetcher, retries: 0 })
    await expect(client.fetch('https://api.test/cents')).rejects.toMatchObject({ code: 'outcome-pending' })
    // One unpaid request and one paid one: no fresh challenge paid.
    expect(sent).toHaveLength(2)
    expect(client.ledger.spent('usd')).toBe(100n)
  })

  it('with retries off, the first 402 + Retry-After rejects outcome-pending; a 402 without it is a refusal, returned', async () => {
    const pendingRail = unfinished()
    const client = create({ methods: [pendingRail.rail.client()], fetch: pendingRail.fetcher, retries: 0 })
    await expect(client.fetch('https://api.test/cents')).rejects.toMatchObject({
      code: 'outcome-pending',
      mayHaveSettled: true,
      message: expect.stringContaining('(retries are off)'),
    })
    expect(pendingRail.sent).toHaveLength(2)

    // A definite refusal (no Retry-After): returned as the 402 it is, for the caller to read.
    const rail = createTestRail()
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [rail.server({ failWith: () => new VerificationFailedError({ detail: 'declined' }) })],
      logger: false,
    })
    const handler = server.protect(cents, () => new Response('cents'))
    const refusing = create({
      methods: [rail.client()],
      fetch: (async (input: RequestInfo | URL, init?: RequestInit) =>
        handler(new Request(input, init))) as typeof fetch,
    })
    const refused = await refusing.fetch('https://api.test/cents')
    expect(refused.status).toBe(402)
    expect(refused.headers.get('retry-after')).toBeNull()
    expect(receipt(refused)).toBeUndefined()
  })
})

describe('receipts', () => {
  // The real server behind a fetch whose answers to paid requests `tamper` may rewrite (a cache, a
  // proxy or a server that replays another payment's receipt).
  const served = (tamper: (response: Response, paid: number) => Response) => {
    const { fetcher, methods, settlements } = setup()
    let paid = 0
    const proxied = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const response = await fetcher(request)
      return request.headers.has('authorization') ? tamper(response, ++paid) : response
    }) as typeof fetch
    return { fetcher: proxied, methods, settlements }
  }
  const withReceipt = (response: Response, header: string | null, status = response.status) => {
    const headers = new Headers(response.headers)
    if (header === null) headers.delete('payment-receipt')
    else headers.set('payment-receipt', header)
    return new Response(response.body, { status, headers })
  }

  it('never credits a receipt of another challenge than the one paid', async () => {
    let first: string | null = null
    const { fetcher, methods, settlements } = served((response, paid) => {
      if (paid === 1) first = response.headers.get('payment-receipt')
      // The second paid answer carries the first payment's receipt.
      return paid === 1 ? response : withReceipt(response, first)
    })
    const credited: string[] = []
    const client = create({ methods, fetch: fetcher, onReceipt: (r) => credited.push(r.challengeId!) })
    const one = await client.fetch('https://api.test/cents')
    const two = await client.fetch('https://api.test/cents')
    expect([one.status, two.status]).toEqual([200, 200])
    expect(settlements()).toBe(2)
    expect(credited).toHaveLength(1)
    expect(receipt(one)?.challengeId).toBe(credited[0])
    expect(receipt(two)).toBeUndefined()
  })

  it('never hands out, through receipt(), a receipt the client refused (a 402 carrying one)', async () => {
    let genuine: string | null = null
    const { fetcher, methods } = served((response) => {
      genuine = response.headers.get('payment-receipt')
      // "Servers MUST NOT return a `Payment-Receipt` header on error responses." (§5.3.1)
      return withReceipt(response, genuine, 402)
    })
    const credited: Receipt.Receipt[] = []
    const client = create({ methods, fetch: fetcher, onReceipt: (r) => credited.push(r) })
    const response = await client.fetch('https://api.test/cents')
    expect(response.status).toBe(402)
    expect(genuine).toMatch(/^ey/)
    expect(credited).toEqual([])
    expect(receipt(response)).toBeUndefined()
    // Nor from the header of a non-2xx response the client did not return.
    const elsewhere = new Response(null, { status: 402, headers: { 'payment-receipt': genuine! } })
    expect(receipt(elsewhere)).toBeUndefined()
    expect(receipt(new Response(null, { headers: { 'payment-receipt': genuine! } }))?.method).toBe('test')
  })

  it('never credits, through a Payment from pay(), a receipt of another challenge', async () => {
    const { fetcher, methods } = setup()
    const credited: Receipt.Receipt[] = []
    const client = create({ methods, fetch: fetcher, onReceipt: (r) => credited.push(r) })
    const challenges = await challengesOf(await fetcher('https://api.test/cents'))
    const payment = await client.pay(challenges, { url: 'mcp://api.test/cents' })
    const stranger = {
      status: 'success',
      method: 'test',
      timestamp: new Date().toISOString(),
      reference: 'x',
    } as const
    payment.receipt({ ...stranger, challengeId: 'ch_someone_else' })
    expect(credited).toEqual([])
    payment.receipt({ ...stranger, challengeId: payment.challenge.id })
    expect(credited).toHaveLength(1)
  })

  it('returns the paid response even when onReceipt throws (never a paid answer lost)', async () => {
    const { fetcher, methods, settlements } = setup()
    const client = create({
      methods,
      fetch: fetcher,
      onReceipt: () => {
        throw new TypeError('bookkeeping failed')
      },
    })
    const response = await client.fetch('https://api.test/cents')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('cents')
    expect(receipt(response)?.method).toBe('test')
    expect(settlements()).toBe(1)
  })
})

describe('a payment that may have settled', () => {
  // A rail that fails after the money may have moved (push mode: broadcast, then no confirmation in
  // time) on its first payment, and before anything was sent on the second.
  const unconfirmed = (rail: Method.Client, settled: boolean[]) => {
    let calls = 0
    const method: Method.Client = {
      ...rail,
      async createPayload(context) {
        const maybe = settled[calls++]
        if (maybe === undefined) return rail.createPayload(context)
        throw new PaymentFailedError('test: the transfer was sent but not confirmed in time', {
          mayHaveSettled: maybe,
        })
      },
    }
    return { method, calls: () => calls }
  }

  it('stays booked, so the budget refuses paying again', async () => {
    const { fetcher, methods } = setup()
    const { method, calls } = unconfirmed(methods[0]!, [true])
    const client = create({ methods: [method], fetch: fetcher, policy: { budget: { usd: 100n } } })
    const error = await client.fetch('https://api.test/cents').catch((e) => e)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.mayHaveSettled).toBe(true)
    expect(mayHaveSettled(error)).toBe(true)
    expect(client.ledger.spent('usd')).toBe(100n)
    // The retry is refused by the policy before the rail is asked to pay again.
    await expect(client.fetch('https://api.test/cents')).rejects.toMatchObject({ reason: 'budget' })
    expect(calls()).toBe(1)
    // Through `pay` (other transports) too.
    const challenges = await challengesOf(await fetcher('https://api.test/cents'))
    await expect(client.pay(challenges, { url: 'mcp://api.test/cents' })).rejects.toMatchObject({
      reason: 'budget',
    })
    expect(calls()).toBe(1)
  })

  it('says so when the paid request failed after the credential left (the answer was lost)', async () => {
    const { fetcher, methods, settlements } = setup()
    // The server settles and serves; the connection drops before the answer arrives.
    const lossy = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const response = await fetcher(request)
      if (request.headers.has('authorization')) throw new TypeError('fetch failed')
      return response
    }) as typeof fetch
    const client = create({ methods, fetch: lossy })
    const error = await client.fetch('https://api.test/cents').catch((e) => e)
    expect(settlements()).toBe(1)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error).toMatchObject({ code: 'outcome-unknown', mayHaveSettled: true })
    expect(error.cause).toBeInstanceOf(TypeError)
    expect(mayHaveSettled(error)).toBe(true)
    expect(client.ledger.spent('usd')).toBe(100n)
  })

  it('is released when the rail failed before anything was sent', async () => {
    const { fetcher, methods } = setup()
    const { method, calls } = unconfirmed(methods[0]!, [false])
    const client = create({ methods: [method], fetch: fetcher, policy: { budget: { usd: 100n } } })
    const error = await client.fetch('https://api.test/cents').catch((e) => e)
    expect(mayHaveSettled(error)).toBe(false)
    expect(client.ledger.spent('usd')).toBe(0n)
    expect((await client.fetch('https://api.test/cents')).status).toBe(200)
    expect(calls()).toBe(2)
    expect(client.ledger.spent('usd')).toBe(100n)
  })
})

describe('Client.fetch redirects after payment', () => {
  const servers: Server[] = []
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })
  const listen = async (handler: (req: IncomingMessage, res: ServerResponse, body: string) => void) => {
    const server = createHttpServer(async (req, res) => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      handler(req, res, Buffer.concat(chunks).toString())
    })
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }
  const forged = Receipt.format({
    status: 'success',
    method: 'test',
    timestamp: new Date().toISOString(),
    reference: 'forged',
  })

  /**
   * An API that asks for payment (the credential in `header`, when given) and answers the paid request
   * with `status` to `location`; `seen` records what each origin received.
   */
  const world = async (options: { header?: string; status?: number; method?: string }) => {
    const seen: {
      origin: string
      path: string
      method: string
      credential: string | undefined
      body: string
    }[] = []
    const credentialOf = (req: IncomingMessage) => {
      const value = req.headers[(options.header ?? 'authorization').toLowerCase()]
      return typeof value === 'string' ? value : undefined
    }
    const other = await listen((req, res, body) => {
      seen.push({ origin: 'other', path: req.url!, method: req.method!, credential: credentialOf(req), body })
      res.writeHead(200, { 'payment-receipt': forged })
      res.end('other origin')
    })
    const api = await listen((req, res, body) => {
      const credential = credentialOf(req)
      seen.push({ origin: 'api', path: req.url!, method: req.method!, credential, body })
      if (req.url === '/old') {
        res.writeHead(302, { location: '/paid/same' })
        return res.end()
      }
      if (req.url === '/final') {
        res.writeHead(credential ? 200 : 402, credential ? { 'payment-receipt': forged } : {})
        return res.end('final')
      }
      if (!credential) {
        const challenge: Challenge.Challenge = {
          id: `ch_${seen.length}`,
          realm: 'api.test',
          method: 'test',
          intent: 'charge',
          request: { amount: '5', currency: 'usd', recipient: 'merchant' },
          ...(options.header ? { header: options.header } : {}),
        }
        res.writeHead(402, { 'www-authenticate': Challenge.format(challenge) })
        return res.end()
      }
      const target = req.url === '/paid/same' ? '/final' : `${other}/collect`
      res.writeHead(options.status ?? 307, { location: target })
      res.end()
    })
    const rail = createTestRail()
    const receipts: Receipt.Receipt[] = []
    const client = create({ methods: [rail.client()], onReceipt: (r) => receipts.push(r) })
    return { api, other, seen, client, receipts, rail }
  }

  for (const header of [undefined, 'Payment-Credential'])
    it(`never sends the credential (${header ?? 'Authorization'}) to another origin, nor takes its receipt`, async () => {
      const { api, other, seen, client, receipts, rail } = await world(header ? { header } : {})
      const response = await client.fetch(`${api}/paid/elsewhere`)
      // The redirect is handed back unfollowed: the caller sees where the server pointed.
      expect(response.status).toBe(307)
      expect(response.headers.get('location')).toBe(`${other}/collect`)
      expect(seen.filter((s) => s.origin === 'other')).toEqual([])
      expect(receipts).toEqual([])
      expect(rail.transfers.size).toBe(1)
      expect(client.ledger.spent('usd')).toBe(5n)
    })

  it('follows a redirect within the origin with the credential, and takes that receipt', async () => {
    const { api, seen, client, receipts } = await world({ header: 'Payment-Credential', status: 308 })
    const response = await client.fetch(`${api}/paid/same`, { method: 'PUT', body: 'payload' })
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('final')
    const final = seen.at(-1)!
    expect(final).toMatchObject({ origin: 'api', path: '/final', method: 'PUT', body: 'payload' })
    expect(final.credential).toBe(seen.at(-2)!.credential)
    expect(final.credential).toMatch(/^Payment /)
    expect(receipts.map((r) => r.reference)).toEqual(['forged'])
  })

  it('turns a paid POST answered 303 into a GET without body, as fetch does', async () => {
    const { api, seen, client } = await world({ status: 303 })
    const response = await client.fetch(`${api}/paid/same`, {
      method: 'POST',
      body: '{"a":1}',
      headers: { 'content-type': 'application/json' },
    })
    expect(response.status).toBe(200)
    expect(seen.at(-1)).toMatchObject({ path: '/final', method: 'GET', body: '' })
    expect(seen.at(-1)!.credential).toMatch(/^Payment /)
  })

  it('pays a 402 reached through a redirect within the origin, and follows it again when paid', async () => {
    // A moved path (a trailing slash, a renamed route) answers before authentication, paid or not.
    const { api, seen, client, receipts } = await world({})
    const response = await client.fetch(`${api}/old`)
    expect(response.status).toBe(200)
    expect(seen.map((s) => [s.path, s.credential !== undefined])).toEqual([
      ['/old', false],
      ['/paid/same', false],
      ['/old', true],
      ['/paid/same', true],
      ['/final', true],
    ])
    expect(receipts).toHaveLength(1)
  })
})

describe('Client.fetch, a refusal the method reads as its own stale state', () => {
  // A server whose first paid answer is a 410 problem (it lost what the method's state relied on), then
  // serves: the test rail's client with a retryRefused hook that says which refusals are stale state.
  const staleSetup = (
    refusals: number,
    type = 'https://example.test/problems/channel-not-found',
    status = 410,
  ) => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
    const paid = server.protect(cents, () => new Response('cents'))
    let refused = 0
    let paidRequests = 0
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      if (!request.headers.has('authorization')) return paid(request)
      paidRequests++
      if (refused < refusals) {
        refused++
        return Response.json(
          { type, title: 'Gone', status },
          {
            status,
            headers: { 'content-type': 'application/problem+json' },
          },
        )
      }
      return paid(request)
    }) as typeof fetch
    const seen: Method.Refusal[] = []
    const method: Method.Client = {
      ...rail.client(),
      retryRefused(refusal) {
        seen.push(refusal)
        return refusal.status === status && String(refusal.problem?.type).endsWith('/channel-not-found')
      },
    }
    return { rail, fetcher, method, seen, paidRequests: () => paidRequests }
  }

  it('pays the fresh challenge once more within the same fetch and returns the paid answer', async () => {
    const { rail, fetcher, method, seen, paidRequests } = staleSetup(1)
    const client = create({ methods: [method], fetch: fetcher })
    const response = await client.fetch('https://api.test/cents')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('cents')
    expect(receipt(response)).toMatchObject({ status: 'success', method: 'test' })
    expect(seen).toEqual([
      {
        status: 410,
        problem: expect.objectContaining({ type: 'https://example.test/problems/channel-not-found' }),
      },
    ])
    expect(paidRequests()).toBe(2)
    // Two payloads were made (the refused one stays booked); the server settled one.
    expect(rail.settlements()).toBe(1)
  })

  it('retries at most once per fetch, and not at all when the method does not say so', async () => {
    const twice = staleSetup(2)
    const client = create({ methods: [twice.method], fetch: twice.fetcher })
    expect((await client.fetch('https://api.test/cents')).status).toBe(410)
    expect(twice.paidRequests()).toBe(2)
    expect(twice.seen).toHaveLength(1)

    const other = staleSetup(1, 'https://example.test/problems/something-else')
    const plain = create({ methods: [other.method], fetch: other.fetcher })
    expect((await plain.fetch('https://api.test/cents')).status).toBe(410)
    expect(other.paidRequests()).toBe(1)

    // A method without the hook: the refusal is the caller's, as before.
    const bare = staleSetup(1)
    const { retryRefused: _, ...withoutHook } = bare.method
    const old = create({ methods: [withoutHook], fetch: bare.fetcher })
    expect((await old.fetch('https://api.test/cents')).status).toBe(410)
    expect(bare.paidRequests()).toBe(1)
  })

  it('asks about a 402 too (a credential that moved nothing, refused for stale state): paid once more, once', async () => {
    const { rail, fetcher, method, seen, paidRequests } = staleSetup(
      1,
      'https://example.test/problems/channel-not-found',
      402,
    )
    const client = create({ methods: [method], fetch: fetcher, retries: 0 })
    const response = await client.fetch('https://api.test/cents')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('cents')
    expect(seen).toEqual([
      {
        status: 402,
        problem: expect.objectContaining({ type: 'https://example.test/problems/channel-not-found' }),
      },
    ])
    expect(paidRequests()).toBe(2)
    expect(rail.settlements()).toBe(1)

    // Refused again: at most once per fetch, the second 402 is the caller's.
    const twice = staleSetup(2, 'https://example.test/problems/channel-not-found', 402)
    const again = create({ methods: [twice.method], fetch: twice.fetcher, retries: 0 })
    expect((await again.fetch('https://api.test/cents')).status).toBe(402)
    expect(twice.paidRequests()).toBe(2)
    expect(twice.seen).toHaveLength(1)

    // A method without the hook: the 402 is the caller's, as before.
    const bare = staleSetup(1, 'https://example.test/problems/channel-not-found', 402)
    const { retryRefused: _, ...withoutHook } = bare.method
    const old = create({ methods: [withoutHook], fetch: bare.fetcher, retries: 0 })
    expect((await old.fetch('https://api.test/cents')).status).toBe(402)
    expect(bare.paidRequests()).toBe(1)
  })

  it('never asks about a 5xx or a success, and survives a throwing hook', async () => {
    for (const status of [500, 503]) {
      const rail = createTestRail()
      const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
      const paid = server.protect(cents, () => new Response('cents'))
      const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
        const request = new Request(input, init)
        if (!request.headers.has('authorization')) return paid(request)
        return Response.json({ type: 'about:blank', status }, { status })
      }) as typeof fetch
      let asked = 0
      const method: Method.Client = {
        ...rail.client(),
        retryRefused: () => {
          asked++
          return true
        },
      }
      const client = create({ methods: [method], fetch: fetcher, retries: 0 })
      expect((await client.fetch('https://api.test/cents')).status).toBe(status)
      expect(asked).toBe(0)
    }
    const throwing = staleSetup(1)
    const method: Method.Client = {
      ...throwing.method,
      retryRefused: () => {
        throw new TypeError('bug')
      },
    }
    const client = create({ methods: [method], fetch: throwing.fetcher })
    expect((await client.fetch('https://api.test/cents')).status).toBe(410)
  })
})
