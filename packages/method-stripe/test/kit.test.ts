import { describeMethod } from '@mppkit/core/testing'
import { issuedTokens, stripe as stripeClient } from '../src/client/index.js'
import { stripe as stripeServer } from '../src/server/index.js'
import { sdk, startStripe } from './helpers.js'

// The core conformance kit on the Stripe rail, against the devnet simulator: round trip, receipt shape,
// tampered id, expiry, replay, malformed payload, wrong amount (an SPT limited below the price), concurrent
// double submission, and a Stripe outage (503s injected before execution; settlements counted as
// succeeded PaymentIntents at Stripe). Outages that lose an answer after execution are in outcomes.test.ts.

describeMethod({
  name: 'stripe/charge',
  async setup() {
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
  },
})
