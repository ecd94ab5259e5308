import { Challenge, Credential } from '@mppkit/core'
import { Server } from '@mppkit/core/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stripe } from '../src/server/index.js'
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

// Every outcome of the issue, each through the real server pipeline and the simulator: declines,
// requires_action, SPTs that cannot pay, and Stripe outages (5xx, 429, timeouts) that answer 503 with
// Retry-After, release the challenge, and settle once when the same credential is retried.

let node: StripeDevnet
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})

const problemBase = 'https://paymentauth.org/problems/'

/** Issues an SPT with explicit limits (bypassing the client's own checks) and returns its id. */
async function rawToken(params: {
  currency?: string
  maxAmount?: number
  expiresAt?: number
  networkId?: string
  paymentMethod?: string
}): Promise<string> {
  const token = await sdk(node).rawRequest('POST', '/v1/shared_payment/issued_tokens', {
    payment_method: params.paymentMethod ?? 'pm_card_visa',
    usage_limits: {
      currency: params.currency ?? 'usd',
      max_amount: params.maxAmount ?? 1000,
      ...(params.expiresAt !== undefined ? { expires_at: params.expiresAt } : {}),
    },
    seller_details: { network_business_profile: params.networkId ?? node.info.networkId },
  })
  return token.id as string
}

/** Asserts a 402 that carries a fresh challenge, no receipt, and the given problem; returns the body. */
async function expectRefused(response: Response, type: string, reason: string, spt?: string) {
  const text = await response.clone().text()
  expect(response.status, text).toBe(402)
  expect(response.headers.get('payment-receipt')).toBeNull()
  expect(Challenge.parseAll(response.headers.get('www-authenticate') ?? '')).toHaveLength(1)
  const body = await problem(response)
  expect(body.type).toBe(problemBase + type)
  expect(body.reason).toBe(reason)
  // "Never put a credential, preimage, SPT or private key in an error message"
  if (spt) expect(text).not.toContain(spt)
  expect(text).not.toMatch(/spt_[A-Za-z0-9]{4}/)
  return body
}

describe('card outcomes', () => {
  it('card declined: 402 with a fresh challenge, reason generic_decline', async () => {
    const r = rig(node, { paymentMethod: 'pm_card_chargeDeclined' })
    const response = await r.client.fetch(url)
    const body = await expectRefused(response, 'verification-failed', 'generic_decline', r.issued[0])
    expect(body).toMatchObject({ declineCode: 'generic_decline', stripeCode: 'card_declined' })
    expect(body.detail).toMatchInlineSnapshot(`"Your card was declined."`)
    expect(r.runs()).toBe(0)
  })

  it('insufficient funds: reason insufficient_funds', async () => {
    const r = rig(node, { paymentMethod: 'pm_card_chargeDeclinedInsufficientFunds' })
    const body = await expectRefused(await r.client.fetch(url), 'verification-failed', 'insufficient_funds')
    expect(body.detail).toMatchInlineSnapshot(`"Your card has insufficient funds."`)
  })

  it('requires_action: 402 that says so, and the PaymentIntent is canceled', async () => {
    const r = rig(node, { paymentMethod: 'pm_card_threeDSecureRequired' })
    const authorization = await r.credential()
    const response = await r.submit(authorization)
    const body = await expectRefused(response, 'verification-failed', 'requires_action')
    expect(body.detail).toContain('3-D Secure')
    const [pi] = await intentsFor(r.stripe, Credential.parse(authorization).challenge.id)
    expect(pi?.status).toBe('canceled')
  })
})

describe('requires_action cleanup', () => {
  it("a failed cancel is reported to the server's onError, and the client still gets its 402", async () => {
    const errors: unknown[] = []
    const r = rig(node, { paymentMethod: 'pm_card_threeDSecureRequired' })
    const method = stripe({
      client: sdk(node),
      networkId: node.info.networkId,
      currency: 'usd',
      maxNetworkRetries: 0,
    })
    const server = Server.create({
      realm,
      secrets: [secret],
      methods: [method],
      onError: (error) => errors.push(error),
    })
    const handler = server.protect({ offers: [{ method: 'stripe', request: { amount: '1000' } }] }, () =>
      Response.json({ ok: true }),
    )
    node.injectFault({ kind: 500, path: '/v1/payment_intents/' })
    const response = await r.clientWith(handler).fetch(url)
    await expectRefused(response, 'verification-failed', 'requires_action')
    expect(String((errors[0] as Error)?.message)).toMatch(
      /^stripe: canceling PaymentIntent pi_\w+ \(requires_action\) failed$/,
    )
  })
})

describe('SPTs that cannot pay', () => {
  const withToken = (make: () => Promise<string>) =>
    rig(node, { client: { createToken: async () => make() } })

  it('expired', async () => {
    const r = withToken(async () => {
      const id = await rawToken({ expiresAt: Math.floor(Date.now() / 1000) + 60 })
      node.advanceClock(120)
      return id
    })
    try {
      await expectRefused(await r.client.fetch(url), 'verification-failed', 'spt-expired')
    } finally {
      node.advanceClock(-120)
    }
  })

  it('over its max amount', async () => {
    const r = withToken(() => rawToken({ maxAmount: 999 }))
    const body = await expectRefused(await r.client.fetch(url), 'verification-failed', 'spt-amount-exceeded')
    expect(body.detail).toMatchInlineSnapshot(
      `"The amount exceeds the Shared Payment Token's usage_limits[max_amount]."`,
    )
  })

  it('in another currency', async () => {
    const r = withToken(() => rawToken({ currency: 'eur' }))
    await expectRefused(await r.client.fetch(url), 'verification-failed', 'spt-currency-mismatch')
  })

  it('issued to another network (seller profile)', async () => {
    const other = node.info.accounts.profiles[node.info.accounts.connected[0]!]
    const r = withToken(() => rawToken({ networkId: other as string }))
    const body = await expectRefused(await r.client.fetch(url), 'verification-failed', 'spt-wrong-network')
    expect(body.detail).toMatchInlineSnapshot(
      `"The Shared Payment Token was issued to another seller's Stripe profile (networkId)."`,
    )
  })

  it('already used here (the Store refuses it before Stripe) and at another server (Stripe refuses it)', async () => {
    const spent: string[] = []
    const r = withToken(async () => {
      const id = spent[0] ?? (await rawToken({}))
      spent.push(id)
      return id
    })
    expect((await r.client.fetch(url)).status).toBe(200)
    const before = (await r.stripe.paymentIntents.list({ limit: 100 })).data.length
    await expectRefused(await r.client.fetch(url), 'verification-failed', 'spt-already-used')
    expect((await r.stripe.paymentIntents.list({ limit: 100 })).data.length).toBe(before)
    // A second server (its own store) sends it to Stripe, which refuses the reuse.
    const elsewhere = withToken(async () => spent[0] as string)
    await expectRefused(await elsewhere.client.fetch(url), 'verification-failed', 'spt-already-used')
  })

  it('unknown token id', async () => {
    const r = withToken(async () => 'spt_doesnotexist000000000000')
    await expectRefused(await r.client.fetch(url), 'verification-failed', 'spt-unknown')
  })

  it('precheck answers the same problems without creating a PaymentIntent', async () => {
    const r = rig(node, {
      server: { precheck: true },
      client: { createToken: () => rawToken({ currency: 'eur' }) },
    })
    const before = (await r.stripe.paymentIntents.list({ limit: 100 })).data.length
    await expectRefused(await r.client.fetch(url), 'verification-failed', 'spt-currency-mismatch')
    expect((await r.stripe.paymentIntents.list({ limit: 100 })).data.length).toBe(before)
    const ok = rig(node, { server: { precheck: true } })
    expect((await ok.client.fetch(url)).status).toBe(200)
  })
})

describe('Stripe outages: 503 + Retry-After, challenge released, one PaymentIntent on retry', () => {
  const cases = [
    { name: '500 after the PaymentIntent was created', fault: { kind: 500, when: 'after' }, created: true },
    { name: '503 before anything happened', fault: { kind: 503, when: 'before' }, created: false },
    { name: '429 rate limit', fault: { kind: 429, when: 'before' }, created: false },
    {
      name: 'timeout after the PaymentIntent was created',
      fault: { kind: 'timeout', when: 'after', holdMs: 10_000 },
      created: true,
    },
  ] as const

  for (const { name, fault, created } of cases) {
    it(name, async () => {
      // Generous enough for a loaded CI machine; only the timeout case waits for it.
      const r = rig(node, { server: { timeout: 2_000 } })
      const authorization = await r.credential()
      const challengeId = Credential.parse(authorization).challenge.id
      node.injectFault(fault)
      const failed = await r.submit(authorization)
      const body = await problem(failed)
      expect(failed.status, JSON.stringify(body)).toBe(503)
      expect(Number(failed.headers.get('retry-after'))).toBeGreaterThan(0)
      expect(failed.headers.get('payment-receipt')).toBeNull()
      expect(body.type).toBe(`${problemBase}service-unavailable`)
      expect(JSON.stringify(body)).not.toMatch(/spt_[A-Za-z0-9]{4}/)
      expect(r.runs()).toBe(0)
      const during = await intentsFor(r.stripe, challengeId)
      expect(during).toHaveLength(created ? 1 : 0)

      // The challenge was released: the same credential settles, answered by Stripe's idempotent replay
      // when the intent already existed.
      const retried = await r.submit(authorization)
      expect(retried.status, await retried.clone().text()).toBe(200)
      expect(r.runs()).toBe(1)
      const intents = await intentsFor(r.stripe, challengeId)
      expect(intents).toHaveLength(1)
      expect(intents[0]?.status).toBe('succeeded')
      if (created) expect(intents[0]?.id).toBe(during[0]?.id)
      // And it is consumed now.
      expect((await r.submit(authorization)).status).toBe(402)
    })
  }

  it('a 429 passes Stripe Retry-After through', async () => {
    const r = rig(node)
    const authorization = await r.credential()
    node.injectFault({ kind: 429 })
    const failed = await r.submit(authorization)
    expect(failed.status).toBe(503)
    expect(failed.headers.get('retry-after')).toBe('1')
    expect((await problem(failed)).reason).toBe('stripe-rate-limited')
  })

  it('with the SDK retrying on its own, a lost answer is recovered inside one request', async () => {
    const r = rig(node, { server: { maxNetworkRetries: 2 } })
    const authorization = await r.credential()
    node.injectFault({ kind: 500, when: 'after' })
    const response = await r.submit(authorization)
    expect(response.status).toBe(200)
    expect(await intentsFor(r.stripe, Credential.parse(authorization).challenge.id)).toHaveLength(1)
  })
})

describe('a Stripe 500 saved against the idempotency key: consumed, never retried', () => {
  // Stripe "saves the status code and body of the first request made with a given idempotency key after
  // endpoint execution begins. Retries with the same key return the saved response, including 500 errors"
  // (docs.stripe.com/api/idempotent_requests): the intent may be paid, and no resend can tell.
  it('the simulator: the intent is created and paid, the key replays the 500, Stripe-Should-Retry: false', async () => {
    const stripe = sdk(node)
    const spt = await rawToken({})
    const params = {
      amount: 1000,
      currency: 'usd',
      confirm: true,
      shared_payment_granted_token: spt,
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      metadata: { probe: spt },
    } as never
    const fault = node.injectFault({ kind: 500, when: 'saved' })
    const attempts = []
    for (let i = 0; i < 2; i++)
      attempts.push(
        await stripe.paymentIntents
          .create(params, { idempotencyKey: `saved_${spt}` })
          .then(() => 'answered')
          .catch((error: { statusCode?: number; headers?: Record<string, string> }) => ({
            status: error.statusCode,
            shouldRetry: error.headers?.['stripe-should-retry'],
            replayed: error.headers?.['idempotent-replayed'] ?? null,
          })),
      )
    expect(attempts).toEqual([
      { status: 500, shouldRetry: 'false', replayed: null },
      { status: 500, shouldRetry: 'false', replayed: 'true' },
    ])
    expect(fault.remaining()).toBe(0)
    const paid = (await stripe.paymentIntents.list({ limit: 100 })).data.filter(
      (pi) => pi.metadata.probe === spt,
    )
    expect(paid.map((pi) => pi.status)).toEqual(['succeeded'])
    expect(() => node.injectFault({ kind: 429, when: 'saved' })).toThrow(/a "saved" fault is a 5xx/)
  })

  for (const retries of [0, 2]) {
    it(`503 without Retry-After, reported, and the same credential refused as used (SDK retries: ${retries})`, async () => {
      const errors: unknown[] = []
      const r = rig(node, {
        server: { maxNetworkRetries: retries },
        onError: (e) => errors.push(e),
      })
      const authorization = await r.credential()
      const challengeId = Credential.parse(authorization).challenge.id
      node.injectFault({ kind: 500, when: 'saved', times: 5 })
      const failed = await r.submit(authorization)
      node.clearFaults()
      const text = await failed.clone().text()
      expect(failed.status, text).toBe(503)
      expect(failed.headers.get('retry-after')).toBeNull()
      expect(failed.headers.get('payment-receipt')).toBeNull()
      expect(await problem(failed)).toMatchObject({
        type: `${problemBase}service-unavailable`,
        reason: 'stripe-outcome-unknown',
      })
      expect(text).not.toMatch(/spt_[A-Za-z0-9]{4}/)
      expect(r.runs()).toBe(0)
      // Stripe executed it: one paid intent (the SDK did not resend what Stripe said it would replay).
      const intents = await intentsFor(r.stripe, challengeId)
      expect(intents.map((pi) => pi.status)).toEqual(['succeeded'])

      // Reported for reconciliation, with what finds the intent and nothing of the token.
      expect(errors).toHaveLength(1)
      const reported = errors[0] as { consumed?: boolean; cause?: Record<string, unknown> }
      expect(reported.consumed).toBe(true)
      expect(reported.cause).toMatchObject({ challengeId, statusCode: 500, type: 'StripeAPIError' })
      expect(JSON.stringify(reported.cause)).not.toMatch(/spt_/)

      // The same credential is refused as used; Stripe sees nothing more.
      const again = await r.submit(authorization)
      expect(again.status).toBe(402)
      expect((await problem(again)).type).toBe(`${problemBase}invalid-challenge`)
      expect(r.runs()).toBe(0)
      expect(await intentsFor(r.stripe, challengeId)).toHaveLength(1)
    })
  }
})

describe('concurrency', () => {
  it('a credential submitted 12 times at once settles once: one PaymentIntent, one charge', async () => {
    const r = rig(node)
    const authorization = await r.credential()
    const responses = await Promise.all(Array.from({ length: 12 }, () => r.submit(authorization)))
    expect(responses.filter((response) => response.status === 200)).toHaveLength(1)
    for (const response of responses.filter((x) => x.status !== 200)) {
      expect(response.status).toBe(402)
      expect(response.headers.get('payment-receipt')).toBeNull()
    }
    expect(r.runs()).toBe(1)
    expect(await intentsFor(r.stripe, Credential.parse(authorization).challenge.id)).toHaveLength(1)
  })
})
