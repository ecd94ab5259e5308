import { Receipt } from '@mppkit/core'
import { Client, PaymentFailedError } from '@mppkit/core/client'
import { Server } from '@mppkit/core/server'
import { describe, expect, it } from 'vitest'
import { stripe as stripeClient } from '../src/client/index.js'
import { type ChargeOptions, type StripeClient, stripe, withHeaderTokens } from '../src/server/index.js'
import { problem, realm, secret, url } from './helpers.js'

// PaymentIntents that do not settle at once (an asynchronous payment method answers `processing`). The
// simulator settles every confirmed intent at once, so these cases use a fake Stripe that behaves like
// Stripe's idempotency layer: a create replays its first answer for the same key, whatever the intent's
// status has become since.

const spt = 'spt_processingToken123'

type Intent = { id: string; status: string; amount: number }

function fakeStripe(options: { create?: (intent: Intent) => void; cancel?: () => unknown } = {}) {
  const replays = new Map<string, Intent>()
  const intents = new Map<string, Intent>()
  const calls: string[] = []
  const client: StripeClient = {
    paymentIntents: {
      async create(params: { amount: number }, request: { idempotencyKey: string }) {
        calls.push('create')
        const replay = replays.get(request.idempotencyKey)
        if (replay) return { ...replay }
        const intent = { id: `pi_fake${intents.size + 1}`, status: 'processing', amount: params.amount }
        options.create?.(intent)
        intents.set(intent.id, intent)
        replays.set(request.idempotencyKey, { ...intent })
        return { ...intent }
      },
      async retrieve(id: string) {
        calls.push(`retrieve ${id}`)
        return { ...intents.get(id) }
      },
      async cancel(id: string) {
        calls.push(`cancel ${id}`)
        throw options.cancel?.() ?? new Error('unexpected cancel')
      },
    },
    refunds: {
      async create() {
        throw new Error('unexpected refund')
      },
    },
    // The granted token, for the pre-check: spent once a PaymentIntent uses it.
    async rawRequest(method: string, path: string) {
      if (method !== 'GET' || !path.startsWith('/v1/shared_payment/granted_tokens/'))
        throw new Error('unexpected request')
      calls.push('precheck')
      return {
        deactivated_reason: intents.size > 0 ? 'consumed' : null,
        usage_limits: { currency: 'usd', max_amount: 1000 },
      }
    },
  }
  return { client, intents, calls }
}

function setup(
  fake: ReturnType<typeof fakeStripe>,
  options: Partial<ChargeOptions> = {},
  // These cases drive the retries by hand (`retry`): the client's own resend after a 402 + Retry-After
  // is off unless a case turns it on.
  retries = 0,
) {
  const reported: unknown[] = []
  const server = Server.create({
    realm,
    secrets: [secret],
    methods: [stripe({ client: fake.client, networkId: 'profile_fake', currency: 'usd', ...options })],
    onError: (error) => reported.push(error),
  })
  let served = 0
  const handler = server.protect({ offers: [{ method: 'stripe', request: { amount: '1000' } }] }, () => {
    served++
    return Response.json({ paid: true })
  })
  let authorization = ''
  const client = Client.create({
    methods: [stripeClient({ createToken: async () => spt })],
    retries,
    fetch: ((input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      authorization = request.headers.get('authorization') ?? authorization
      return handler(request)
    }) as typeof fetch,
  })
  const retry = () => handler(new Request(url, { headers: { authorization } }))
  // The client's fetch: the server's 402 + Retry-After ends it with `outcome-pending` (no resend here),
  // that answer attached.
  const pending = async () => {
    const error = await client.fetch(url).then(
      () => undefined,
      (caught: unknown) => caught,
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error).toMatchObject({ code: 'outcome-pending', mayHaveSettled: true })
    return (error as PaymentFailedError).response!
  }
  return { client, retry, pending, handler, reported, served: () => served }
}

describe('stripe charge with a PaymentIntent left processing', () => {
  it('asks for a retry of the same credential, then serves once when the intent has succeeded', async () => {
    const fake = fakeStripe()
    const r = setup(fake)
    const first = await r.pending()
    expect(first.status).toBe(402)
    expect((await problem(first)).reason).toBe('payment-intent-processing')
    expect(first.headers.get('retry-after')).toBe('5')
    // The operator learns which intent is pending, and never its token.
    expect(r.reported).toHaveLength(1)
    expect(r.reported[0]).toMatchObject({ code: 'stripe_payment_intent_pending' })
    expect(String((r.reported[0] as Error).message)).toContain('pi_fake1')
    expect(JSON.stringify(r.reported) + String((r.reported[0] as Error).message)).not.toContain('spt_')

    // Still processing: the same answer, read from the intent (not a replayed create).
    const pending = await r.retry()
    expect(pending.status).toBe(402)
    expect((await problem(pending)).reason).toBe('payment-intent-processing')

    fake.intents.get('pi_fake1')!.status = 'succeeded'
    const paid = await r.retry()
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(Receipt.parse(paid.headers.get('payment-receipt')!).reference).toBe('pi_fake1')
    expect(r.served()).toBe(1)
    expect(fake.calls).toEqual(['create', 'retrieve pi_fake1', 'retrieve pi_fake1'])

    // Settled once: the credential cannot be served again.
    const again = await r.retry()
    expect(again.status).toBe(402)
    expect(r.served()).toBe(1)
  })

  it('the paying client resends the same credential after the 402 + Retry-After, and never pays a second token', async () => {
    const fake = fakeStripe()
    let tokens = 0
    const r = setup(fake, {}, 2)
    const client = Client.create({
      methods: [
        stripeClient({
          createToken: async () => {
            tokens++
            return spt
          },
        }),
      ],
      fetch: ((input: RequestInfo | URL, init?: RequestInit) => {
        // The intent completes while the client waits out the Retry-After.
        const intent = fake.intents.get('pi_fake1')
        if (intent) intent.status = 'succeeded'
        return r.handler(new Request(input, init))
      }) as typeof fetch,
    })
    const paid = await client.fetch(url)
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(Receipt.parse(paid.headers.get('payment-receipt')!).reference).toBe('pi_fake1')
    expect(tokens).toBe(1)
    expect(r.served()).toBe(1)
    expect(fake.calls).toEqual(['create', 'retrieve pi_fake1'])
  }, 20_000)

  it('the paying client, the intent still processing when its resends are over, rejects outcome-pending: one token, one intent, the payment kept booked', async () => {
    const fake = fakeStripe()
    const r = setup(fake)
    let tokens = 0
    const sent: string[] = []
    const client = Client.create({
      methods: [
        stripeClient({
          createToken: async () => {
            tokens++
            return spt
          },
        }),
      ],
      policy: { currencies: ['usd'], maxAmount: 1000n, budget: 5000n },
      retries: 1,
      fetch: ((input: RequestInfo | URL, init?: RequestInit) => {
        const request = new Request(input, init)
        const authorization = request.headers.get('authorization')
        if (authorization) sent.push(authorization)
        return r.handler(request)
      }) as typeof fetch,
    })
    const error = await client.fetch(url).catch((caught: unknown) => caught)
    // Never a plain 402 that reads as "unpaid" (fetching again would issue a second token and intent).
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error).toMatchObject({ code: 'outcome-pending', mayHaveSettled: true })
    expect((error as Error).message).toMatchInlineSnapshot(
      `"the server has not finished the payment (HTTP 402 payment-intent-processing with Retry-After) and the client stopped resending its credential (after 1 resend(s)); the payment may have gone through: check before paying again"`,
    )
    expect((error as Error).message).not.toContain('spt_')
    expect((await problem((error as PaymentFailedError).response!)).reason).toBe('payment-intent-processing')
    // The same credential twice (the resend read the intent), one token, one intent, booked.
    expect(sent).toHaveLength(2)
    expect(sent[0]).toBe(sent[1])
    expect(tokens).toBe(1)
    expect([...fake.intents.keys()]).toEqual(['pi_fake1'])
    expect(client.ledger.spent('usd')).toBe(1000n)
    expect(r.served()).toBe(0)
  }, 20_000)

  it('with precheck, the retry reads the intent instead of refusing the token it spent', async () => {
    const fake = fakeStripe()
    const r = setup(fake, { precheck: true })
    expect((await r.pending()).status).toBe(402)
    fake.intents.get('pi_fake1')!.status = 'succeeded'
    const paid = await r.retry()
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(r.served()).toBe(1)
    expect(fake.calls).toEqual(['precheck', 'create', 'retrieve pi_fake1'])
  })

  it('refuses the retry when the intent failed or was canceled meanwhile', async () => {
    const fake = fakeStripe()
    const r = setup(fake)
    expect((await r.pending()).status).toBe(402)
    fake.intents.get('pi_fake1')!.status = 'canceled'
    const refused = await r.retry()
    expect(refused.status).toBe(402)
    expect((await problem(refused)).reason).toBe('payment-intent-canceled')
    expect(refused.headers.get('retry-after')).toBeNull()
    expect(r.served()).toBe(0)
  })
})

describe('withHeaderTokens and a PaymentIntent left processing', () => {
  it('a retry with the same header token reads the intent, and serves once it has succeeded', async () => {
    const fake = fakeStripe()
    const server = Server.create({
      realm,
      secrets: [secret],
      methods: [stripe({ client: fake.client, networkId: 'profile_fake', currency: 'usd' })],
      onError: () => {},
    })
    let served = 0
    const handler = withHeaderTokens({
      server,
      route: { offers: [{ method: 'stripe', request: { amount: '1000' } }] },
      handler: () => {
        served++
        return Response.json({ paid: true })
      },
    })
    const send = () => handler(new Request(url, { headers: { 'x-payment-token': spt } }))
    const first = await send()
    expect(first.status).toBe(402)
    expect((await problem(first)).reason).toBe('payment-intent-processing')
    expect(first.headers.get('retry-after')).toBe('5')

    // The token was spent on pi_fake1: the retry must read that intent, not mint a challenge the
    // token is refused on (the payment would succeed and never be served).
    fake.intents.get('pi_fake1')!.status = 'succeeded'
    const paid = await send()
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(Receipt.parse(paid.headers.get('payment-receipt')!).reference).toBe('pi_fake1')
    expect(served).toBe(1)
    expect(fake.calls).toEqual(['create', 'retrieve pi_fake1'])

    const again = await send()
    expect((await problem(again)).reason).toBe('spt-already-used')
    expect(served).toBe(1)
  })
})

describe('stripe charge hardening', () => {
  it('reports a failed cancel without the SDK error, which carries the PaymentIntent and its SPT', async () => {
    const sdkError = Object.assign(new Error('You cannot cancel this PaymentIntent.'), {
      type: 'StripeInvalidRequestError',
      code: 'payment_intent_unexpected_state',
      statusCode: 400,
      requestId: 'req_123',
      raw: { payment_intent: { id: 'pi_fake1', shared_payment_granted_token: spt } },
      payment_intent: { id: 'pi_fake1', shared_payment_granted_token: spt },
    })
    const fake = fakeStripe({
      create: (intent) => {
        intent.status = 'requires_action'
      },
      cancel: () => sdkError,
    })
    const r = setup(fake)
    const response = await r.client.fetch(url)
    expect((await problem(response)).reason).toBe('requires_action')
    const reported = r.reported.find((error) => (error as { code?: string }).code === 'stripe_cancel_failed')
    expect((reported as Error).cause).toEqual({
      type: 'StripeInvalidRequestError',
      code: 'payment_intent_unexpected_state',
      statusCode: 400,
      requestId: 'req_123',
    })
  })

  it('refuses an sptReplayTtlSeconds that is not a positive finite number', () => {
    const { client } = fakeStripe()
    for (const sptReplayTtlSeconds of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '60' as never])
      expect(() => stripe({ client, networkId: 'profile_fake', sptReplayTtlSeconds })).toThrowError(
        expect.objectContaining({
          name: 'ConfigurationError',
          message: 'stripe: sptReplayTtlSeconds must be a positive finite number of seconds',
        }),
      )
  })
})
