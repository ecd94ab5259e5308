import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type StripeDevnet, startStripe } from '../src/stripe/index.js'

// The same SPT flows run against the simulator and, when STRIPE_SECRET_KEY=sk_test_… is set, against
// Stripe's real test mode, so the simulator's behaviour can be checked against the real API.
// Only outcomes both sides document are asserted (statuses, error classes, replay header); the
// simulator-specific SPT error codes are not.

const liveKey = process.env.STRIPE_SECRET_KEY
const liveReason =
  liveKey === undefined || !liveKey.startsWith('sk_test_')
    ? 'STRIPE_SECRET_KEY=sk_test_… is not set: the real Stripe test-mode run is skipped'
    : undefined
if (liveReason) console.warn(`[skip] ${liveReason}`)

/** SPTs are a preview API: real Stripe needs a `.preview` version for `shared_payment_granted_token`. */
const previewVersion = '2026-04-22.preview'

type Target = { name: string; skip: string | undefined; client: () => Stripe }

let node: StripeDevnet | undefined
const targets: Target[] = [
  {
    name: 'simulator',
    skip: undefined,
    client: () => {
      const { host, port, protocol, secretKey } = (node as StripeDevnet).info
      return new Stripe(secretKey, {
        host,
        port,
        protocol,
        apiVersion: previewVersion as Stripe.LatestApiVersion,
      })
    },
  },
  {
    name: 'stripe test mode',
    skip: liveReason,
    client: () => new Stripe(liveKey as string, { apiVersion: previewVersion as Stripe.LatestApiVersion }),
  },
]

beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})

async function grant(stripe: Stripe, paymentMethod: string, maxAmount: number): Promise<string> {
  const token = await stripe.rawRequest('POST', '/v1/test_helpers/shared_payment/granted_tokens', {
    payment_method: paymentMethod,
    usage_limits: { currency: 'usd', max_amount: maxAmount, expires_at: Math.floor(Date.now() / 1000) + 600 },
  })
  return token.id as string
}

function charge(spt: string, amount: number): Stripe.PaymentIntentCreateParams {
  return {
    amount,
    currency: 'usd',
    confirm: true,
    automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
    shared_payment_granted_token: spt,
  } as Stripe.PaymentIntentCreateParams
}

for (const target of targets) {
  describe(`SPT flows against ${target.name}`, () => {
    it.skipIf(!!target.skip)('settles once, replays on the same key, refuses reuse', async () => {
      const stripe = target.client()
      const spt = await grant(stripe, 'pm_card_visa', 1000)
      const key = `live_${spt}`
      const pi = await stripe.paymentIntents.create(charge(spt, 1000), { idempotencyKey: key })
      expect(pi.status).toBe('succeeded')
      const replay = await stripe.paymentIntents.create(charge(spt, 1000), { idempotencyKey: key })
      expect(replay.id).toBe(pi.id)
      expect(replay.lastResponse.headers['idempotent-replayed']).toBe('true')
      await expect(stripe.paymentIntents.create(charge(spt, 1000))).rejects.toBeInstanceOf(
        Stripe.errors.StripeError,
      )
      const refund = await stripe.refunds.create({ payment_intent: pi.id })
      expect(refund.amount).toBe(1000)
    })

    it.skipIf(!!target.skip)('declines with a StripeCardError', async () => {
      const stripe = target.client()
      const spt = await grant(stripe, 'pm_card_visa_chargeDeclined', 1000)
      const error = await stripe.paymentIntents.create(charge(spt, 1000)).catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(Stripe.errors.StripeCardError)
      expect((error as Stripe.errors.StripeCardError).code).toBe('card_declined')
    })
  })
}
