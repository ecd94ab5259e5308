import { Receipt } from '@mppkit/core'
import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { problem, rig, type StripeDevnet, startStripe, url } from './helpers.js'

// The rail's core flows against the simulator and, when STRIPE_SECRET_KEY=sk_test_… is set, against
// Stripe's real test mode. Tokens come from Stripe's documented test helper (a seller receiving an SPT),
// which both targets serve. Only outcomes both document are asserted.

const liveKey = process.env.STRIPE_SECRET_KEY
const liveReason =
  liveKey === undefined || !liveKey.startsWith('sk_test_')
    ? 'STRIPE_SECRET_KEY=sk_test_… is not set: the stripe/charge run against real Stripe test mode is skipped'
    : undefined
if (liveReason) console.warn(`[skip] ${liveReason}`)

/** SPTs are a preview API: real Stripe needs a `.preview` version for `shared_payment_granted_token`. */
const previewVersion = '2026-04-22.preview' as Stripe.LatestApiVersion

let node: StripeDevnet | undefined
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})

type Target = { name: string; skip: string | undefined; stripe: () => Stripe; networkId: () => string }
const targets: Target[] = [
  {
    name: 'simulator',
    skip: undefined,
    stripe: () => {
      const { host, port, protocol, secretKey } = node!.info
      return new Stripe(secretKey, { host, port, protocol, apiVersion: previewVersion, maxNetworkRetries: 0 })
    },
    networkId: () => node!.info.networkId,
  },
  {
    name: 'stripe test mode',
    skip: liveReason,
    stripe: () => new Stripe(liveKey as string, { apiVersion: previewVersion }),
    networkId: () => process.env.STRIPE_NETWORK_ID ?? 'profile_test_unset',
  },
]

for (const target of targets) {
  describe(`stripe/charge against ${target.name}`, () => {
    const grantedTokens =
      (stripe: Stripe, paymentMethod: string) =>
      async (request: { amount: number; currency: string; expiresAt: number }) => {
        const token = await stripe.rawRequest('POST', '/v1/test_helpers/shared_payment/granted_tokens', {
          payment_method: paymentMethod,
          usage_limits: {
            currency: request.currency,
            max_amount: request.amount,
            expires_at: request.expiresAt,
          },
        })
        return token.id as string
      }

    it.skipIf(!!target.skip)(
      'pays with a granted SPT; the receipt names the succeeded PaymentIntent',
      async () => {
        const stripe = target.stripe()
        const r = rig(node!, {
          stripe,
          server: { networkId: target.networkId() },
          client: { createToken: grantedTokens(stripe, 'pm_card_visa') },
        })
        const response = await r.client.fetch(url)
        expect(response.status, await response.clone().text()).toBe(200)
        const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
        expect((await stripe.paymentIntents.retrieve(receipt.reference)).status).toBe('succeeded')
        const refund = await r.method.refund(receipt)
        expect(refund.amount).toBe(1000)
      },
    )

    it.skipIf(!!target.skip)(
      'a declined card is a 402 with a fresh challenge and the decline code',
      async () => {
        const stripe = target.stripe()
        const r = rig(node!, {
          stripe,
          server: { networkId: target.networkId() },
          client: { createToken: grantedTokens(stripe, 'pm_card_chargeDeclined') },
        })
        const response = await r.client.fetch(url)
        expect(response.status).toBe(402)
        expect(response.headers.get('www-authenticate')).toMatch(/^Payment /)
        expect((await problem(response)).reason).toBe('generic_decline')
      },
    )
  })
}
