import { Challenge, Credential, MemoryStore, Receipt } from '@mppkit/core'
import { Server } from '@mppkit/core/server'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type ChargeOptions, type StripeClient, stripe } from '../src/server/index.js'
import {
  intentsFor,
  problem,
  realm,
  rig,
  type StripeDevnet,
  sdk,
  secret,
  startStripe,
  url,
} from './helpers.js'

// A credential whose settlement began before its challenge expired (the PaymentIntent create executed
// and its answer was lost in an outage longer than the challenge's life, or the intent stayed
// `processing` past it) may have charged the payer: its retry is resumed after the expiry instead of a
// `payment-expired`. An expired credential whose settlement did not begin is refused as before, and a
// settled one is never settled again.

let node: StripeDevnet
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})
afterEach(() => node.clearFaults())

/** Challenges live 300 s by default. */
const past = 10 * 60_000

/** A paid route on a server whose clock (and Store's) the test moves. */
function clocked(
  client: StripeClient,
  options: Partial<ChargeOptions> = {},
  networkId = node.info.networkId,
) {
  let clock = Date.now()
  const reported: unknown[] = []
  const server = Server.create({
    realm,
    secrets: [secret],
    now: () => clock,
    store: new MemoryStore({ now: () => clock }),
    methods: [stripe({ client, networkId, currency: 'usd', timeout: 300, maxNetworkRetries: 0, ...options })],
    onError: (error) => reported.push(error),
    logger: false,
  })
  let runs = 0
  const handler = server.protect(
    { offers: [{ method: 'stripe', request: { amount: '1000' } }] },
    (_r, payment) => {
      runs++
      return Response.json({ reference: payment.receipt.reference })
    },
  )
  const submit = (authorization: string) => handler(new Request(url, { headers: { authorization } }))
  return {
    handler,
    submit,
    reported,
    runs: () => runs,
    advance: (ms: number) => {
      clock += ms
    },
  }
}

/** A credential for `handler` built by the simulator-backed client of `rig` (token issued, not sent). */
async function credentialFor(handler: (request: Request) => Promise<Response>): Promise<string> {
  let authorization = ''
  await rig(node)
    .clientWith(async (request) => {
      const header = request.headers.get('authorization')
      if (!header) return handler(request)
      authorization = header
      return new Response(null, { status: 204 })
    })
    .fetch(url)
  return authorization
}

describe('an expired credential whose settlement began', () => {
  it('a create whose answer was lost, Stripe out past the expiry: the retry is served by that intent, reported meanwhile', async () => {
    const s = clocked(sdk(node))
    const authorization = await credentialFor(s.handler)
    const challengeId = Credential.parse(authorization).challenge.id
    node.injectFault({
      kind: 'timeout',
      when: 'after',
      method: 'POST',
      path: '/v1/payment_intents',
      holdMs: 20_000,
    })
    const failed = await s.submit(authorization)
    expect(failed.status, await failed.clone().text()).toBe(503)
    const [charged] = await intentsFor(sdk(node), challengeId)
    expect(charged?.status).toBe('succeeded')
    // The operator learns at once that this challenge's payment may have happened, never the token.
    expect(s.reported).toHaveLength(1)
    expect(s.reported[0]).toMatchObject({
      code: 'stripe_outcome_unknown',
      cause: expect.objectContaining({ challengeId }),
    })
    expect(JSON.stringify(s.reported) + (s.reported[0] as Error).message).not.toContain('spt_')

    s.advance(past)
    const retried = await s.submit(authorization)
    expect(retried.status, await retried.clone().text()).toBe(200)
    expect(Receipt.parse(retried.headers.get('payment-receipt')!).reference).toBe(charged?.id)
    expect(s.runs()).toBe(1)
    expect((await intentsFor(sdk(node), challengeId)).map((pi) => pi.id)).toEqual([charged?.id])

    // Settled: the token's binding says so, and the expired credential is never resumed again.
    for (const later of [0, 60 * 60_000]) {
      s.advance(later)
      const again = await s.submit(authorization)
      expect(again.status).toBe(402)
      expect((await problem(again)).type).toBe('https://paymentauth.org/problems/payment-expired')
    }
    expect(s.runs()).toBe(1)
  })

  it('a retry that settled before the expiry: never resumed later, once the challenge is no longer kept used', async () => {
    const s = clocked(sdk(node))
    const authorization = await credentialFor(s.handler)
    node.injectFault({
      kind: 'timeout',
      when: 'after',
      method: 'POST',
      path: '/v1/payment_intents',
      holdMs: 20_000,
    })
    expect((await s.submit(authorization)).status).toBe(503)
    expect((await s.submit(authorization)).status).toBe(200)
    // Past the challenge's expiry plus the 60 s its consumed mark lives: the token's binding says it settled.
    s.advance(past)
    const later = await s.submit(authorization)
    expect(later.status).toBe(402)
    expect((await problem(later)).type).toBe('https://paymentauth.org/problems/payment-expired')
    expect(s.runs()).toBe(1)
  })

  it('is not resumed past the window (sptReplayTtlSeconds)', async () => {
    const s = clocked(sdk(node), { sptReplayTtlSeconds: 3600 })
    const authorization = await credentialFor(s.handler)
    node.injectFault({
      kind: 'timeout',
      when: 'after',
      method: 'POST',
      path: '/v1/payment_intents',
      holdMs: 20_000,
    })
    expect((await s.submit(authorization)).status).toBe(503)
    s.advance(2 * 3600_000)
    const late = await s.submit(authorization)
    expect(late.status).toBe(402)
    expect((await problem(late)).type).toBe('https://paymentauth.org/problems/payment-expired')
    expect(s.runs()).toBe(0)
  })
})

describe('an expired credential whose settlement did not begin', () => {
  it('is refused payment-expired without a call to Stripe', async () => {
    const s = clocked(sdk(node))
    const authorization = await credentialFor(s.handler)
    const challengeId = Credential.parse(authorization).challenge.id
    s.advance(past)
    const refused = await s.submit(authorization)
    expect(refused.status).toBe(402)
    expect((await problem(refused)).type).toBe('https://paymentauth.org/problems/payment-expired')
    expect(await intentsFor(sdk(node), challengeId)).toHaveLength(0)
    expect(s.runs()).toBe(0)
  })

  it('is refused when its token settled for another challenge', async () => {
    const s = clocked(sdk(node))
    const first = await credentialFor(s.handler)
    expect((await s.submit(first)).status).toBe(200)
    // The same token echoed on a second challenge that expires unpaid: its settlement never began.
    const second = Credential.parse(await credentialFor(s.handler))
    const { spt } = Credential.parse(first).payload as { spt: string }
    const reused = Credential.format({ challenge: second.challenge, payload: { spt } })
    s.advance(past)
    const refused = await s.submit(reused)
    expect(refused.status).toBe(402)
    expect((await problem(refused)).type).toBe('https://paymentauth.org/problems/payment-expired')
    expect(await intentsFor(sdk(node), second.challenge.id)).toHaveLength(0)
    expect(s.runs()).toBe(1)
  })
})

describe('a PaymentIntent left processing past the challenge expiry', () => {
  // The simulator settles every intent at once: a fake Stripe whose intents answer `processing`, and
  // whose create replays its first answer for the same idempotency key.
  function fakeStripe() {
    const replays = new Map<string, { id: string; status: string }>()
    const intents = new Map<string, { id: string; status: string }>()
    const client: StripeClient = {
      paymentIntents: {
        async create(_params: unknown, request: { idempotencyKey: string }) {
          const replay = replays.get(request.idempotencyKey)
          if (replay) return { ...replay }
          const intent = { id: `pi_fake${intents.size + 1}`, status: 'processing' }
          intents.set(intent.id, intent)
          replays.set(request.idempotencyKey, { ...intent })
          return { ...intent }
        },
        async retrieve(id: string) {
          return { ...intents.get(id) }
        },
        async cancel() {
          throw new Error('unexpected cancel')
        },
      },
      refunds: {
        async create() {
          throw new Error('unexpected refund')
        },
      },
      async rawRequest() {
        throw new Error('unexpected request')
      },
    }
    return { client, intents }
  }

  it('the retry reads the intent: still processing asks again, succeeded is served once', async () => {
    const fake = fakeStripe()
    const s = clocked(fake.client, {}, 'profile_fake')
    const unpaid = await s.handler(new Request(url))
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate') ?? '')
    if (!challenge) throw new Error('no challenge')
    const authorization = Credential.format({ challenge, payload: { spt: 'spt_processingToken123' } })
    const first = await s.submit(authorization)
    expect((await problem(first)).reason).toBe('payment-intent-processing')
    expect(s.reported[0]).toMatchObject({
      code: 'stripe_payment_intent_pending',
      cause: expect.objectContaining({ challengeId: challenge.id, paymentIntent: 'pi_fake1' }),
    })

    s.advance(past)
    const still = await s.submit(authorization)
    expect((await problem(still)).reason).toBe('payment-intent-processing')
    expect(still.headers.get('retry-after')).toBe('5')

    fake.intents.get('pi_fake1')!.status = 'succeeded'
    const paid = await s.submit(authorization)
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(Receipt.parse(paid.headers.get('payment-receipt')!).reference).toBe('pi_fake1')
    expect((await s.submit(authorization)).status).toBe(402)
    expect(s.runs()).toBe(1)
    expect([...fake.intents.keys()]).toEqual(['pi_fake1'])
  })
})
