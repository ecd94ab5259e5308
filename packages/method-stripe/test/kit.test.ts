import { randomUUID } from 'node:crypto'
import { describeMethod, type MethodFixture } from '@mppkit/core/testing'
import { RedisStore } from '../../store-redis/src/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { issuedTokens, stripe as stripeClient } from '../src/client/index.js'
import { stripe as stripeServer } from '../src/server/index.js'
import { sdk, startStripe } from './helpers.js'

// The core conformance kit on the Stripe rail, against the devnet simulator: round trip, receipt shape,
// tampered id, expiry, replay, malformed payload, wrong amount (an SPT limited below the price), an SPT
// in another currency or granted to another seller (the Stripe payee is the seller's Business Network
// profile, `methodDetails.networkId`: the request's optional `recipient` moves no money), concurrent double
// submission, a Stripe outage (503s injected before execution; settlements counted as succeeded
// PaymentIntents at Stripe), and a failure after payment (Stripe's own 500 once the PaymentIntent was
// created and paid, saved against the idempotency key, so a resend only replays it). Outages that lose an
// answer after execution, which a resend recovers, are in outcomes.test.ts.

async function fixture(): Promise<MethodFixture> {
  const node = await startStripe()
  const stripe = sdk(node)
  const succeeded = async () => {
    let count = 0
    for await (const pi of stripe.paymentIntents.list({ limit: 100 })) if (pi.status === 'succeeded') count++
    return count
  }
  // Another seller on the simulator: a connected account's Stripe profile.
  const otherSeller = node.info.accounts.profiles[node.info.accounts.connected[0] as string] as string
  let fault: { clear(): void } | undefined
  let afterPayment: { clear(): void } | undefined
  return {
    server: stripeServer({ client: stripe, networkId: node.info.networkId, currency: 'usd' }),
    client: stripeClient({
      createToken: issuedTokens({ client: sdk(node), paymentMethod: 'pm_card_visa' }),
    }),
    offer: { method: 'stripe', request: { amount: '1000' } },
    problems: {
      wrongAmount: { type: 'verification-failed', reason: 'spt-amount-exceeded' },
      wrongCurrency: { type: 'verification-failed', reason: 'spt-currency-mismatch' },
      wrongRecipient: { type: 'verification-failed', reason: 'spt-wrong-network' },
    },
    // The client pays what it is shown: an SPT limited to EUR, or granted to another seller's profile
    // ("Servers MUST verify that the credential corresponds to the exact challenge issued. This includes
    // validating: […] Currency, Business Network (if specified)", draft-stripe-charge-00).
    // Stripe refuses both tokens for this PaymentIntent, and the server says why.
    wrongCurrency: (request) => ({ ...request, currency: request.currency === 'eur' ? 'usd' : 'eur' }),
    wrongRecipient: (request) => ({
      ...request,
      methodDetails: { ...(request.methodDetails as object), networkId: otherSeller },
    }),
    outage: {
      start: () => {
        fault = node.injectFault({ kind: 503, times: 1_000 })
      },
      stop: () => fault?.clear(),
      settlements: succeeded,
    },
    outageAfterPayment: {
      start: () => {
        afterPayment = node.injectFault({ kind: 500, when: 'saved', times: 1_000 })
      },
      stop: () => afterPayment?.clear(),
      settlements: succeeded,
    },
    teardown: () => node.stop(),
  }
}

describeMethod({ name: 'stripe/charge', setup: fixture })

// The same kit over a shared Redis Store (what several server processes use).
const redisReason = await redisUnavailableReason()
describeMethod({
  name: 'stripe/charge on Redis',
  skip: redisReason,
  store: () => new RedisStore({ url: redisUrl, keyPrefix: `mppkit-stripe-kit:${randomUUID()}:` }),
  setup: fixture,
})
