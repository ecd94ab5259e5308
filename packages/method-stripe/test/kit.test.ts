import { randomUUID } from 'node:crypto'
import { describeMethod, type MethodFixture } from '@mppkit/core/testing'
import { RedisStore } from '../../store-redis/src/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { issuedTokens, stripe as stripeClient } from '../src/client/index.js'
import { stripe as stripeServer } from '../src/server/index.js'
import { sdk, startStripe } from './helpers.js'

// The core conformance kit on the Stripe rail, against the devnet simulator: round trip, receipt shape,
// tampered id, expiry, replay, malformed payload, wrong amount (an SPT limited below the price), concurrent
// double submission, and a Stripe outage (503s injected before execution; settlements counted as
// succeeded PaymentIntents at Stripe). Outages that lose an answer after execution are in outcomes.test.ts.

async function fixture(): Promise<MethodFixture> {
  const node = await startStripe()
  const stripe = sdk(node)
  const succeeded = async () =>
    (await stripe.paymentIntents.list({ limit: 100 })).data.filter((pi) => pi.status === 'succeeded').length
  let fault: { clear(): void } | undefined
  return {
    server: stripeServer({ client: stripe, networkId: node.info.networkId, currency: 'usd' }),
    client: stripeClient({
      createToken: issuedTokens({ client: sdk(node), paymentMethod: 'pm_card_visa' }),
    }),
    offer: { method: 'stripe', request: { amount: '1000' } },
    problems: { wrongAmount: { type: 'verification-failed', reason: 'spt-amount-exceeded' } },
    outage: {
      start: () => {
        fault = node.injectFault({ kind: 503, times: 1_000 })
      },
      stop: () => fault?.clear(),
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
