// Stripe view: the page pays with a Shared Payment Token the playground's server issues on the Stripe
// simulator from a test card (the platform's secret key stays on the server).
import type { TokenRequest } from '@mppkit/method-stripe/client'
import { stripe } from '@mppkit/method-stripe/client'
import { display, h } from './dom.js'
import { type Config, getJson, type View } from './main.js'
import { paymentView } from './payment.js'

export function stripeView(config: Config): View[] {
  const s = config.stripe!
  const card = h(
    'select',
    { id: 'stripe-card' },
    ...Object.entries(s.cards).map(([id, label]) => h('option', { value: id }, label)),
  )
  const createToken = async (request: TokenRequest) => {
    const response = await fetch('/api/stripe/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        paymentMethod: card.value,
        amount: request.amount,
        currency: request.currency,
        networkId: request.networkId,
        expiresAt: request.expiresAt,
      }),
    })
    if (!response.ok) throw new Error(`issuing an SPT failed: ${response.status}`)
    return response.json()
  }
  const view = paymentView({
    id: 'stripe',
    title: 'Stripe charge',
    intro: `GET /api/demo/stripe/charge costs $${display(config.prices.stripeCharge, 2, 2)}, paid with a Shared Payment Token issued from a test card on the devnet's Stripe simulator.`,
    url: '/api/demo/stripe/charge',
    units: { decimals: 2, symbol: 'USD', minDecimals: 2 },
    policy: { maxAmount: '1.00', budget: '5.00' },
    controls: [h('label', {}, 'Test card', card)],
    currency: 'usd',
    methods: () => [stripe({ createToken })],
    balances: async () => {
      const b = (await getJson('/api/balances')).stripe as {
        received: number
        succeeded: number
        notSucceeded: number
      }
      return {
        'payee received (USD)': display(String(b.received), 2, 2),
        'succeeded PaymentIntents': String(b.succeeded),
        'other PaymentIntents': String(b.notSucceeded),
      }
    },
    record: (reference) => getJson(`/api/record/stripe/${reference}`),
  })
  return [view]
}
