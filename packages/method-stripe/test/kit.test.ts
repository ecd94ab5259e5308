import { describeMethod } from '@mppkit/core/testing'
import { issuedTokens, stripe as stripeClient } from '../src/client/index.js'
import { stripe as stripeServer } from '../src/server/index.js'
import { sdk, startStripe } from './helpers.js'

// The core conformance kit on the Stripe rail: round trip, receipt shape, tampered id, expiry, replay and
// concurrent double submission, against the devnet simulator.

describeMethod({
  name: 'stripe/charge',
  async setup() {
    const node = await startStripe()
    return {
      server: stripeServer({ client: sdk(node), networkId: node.info.networkId, currency: 'usd' }),
      client: stripeClient({
        createToken: issuedTokens({ client: sdk(node), paymentMethod: 'pm_card_visa' }),
      }),
      offer: { method: 'stripe', request: { amount: '1000' } },
      teardown: () => node.stop(),
    }
  },
})
