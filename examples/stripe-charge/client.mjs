// @ts-check
// An agent paying the Stripe server: its platform issues an SPT limited to each challenge (amount,
// currency, seller network, expiry) from a saved card. Then the same with a card that is declined.
// Env: STRIPE_SECRET_KEY (the agent platform's key), STRIPE_API_BASE. Usage: node client.mjs <url>
import { Client, receipt } from '@mppkit/core/client'
import { issuedTokens, stripe } from '@mppkit/method-stripe/client'
import Stripe from 'stripe'

const base = process.env.STRIPE_API_BASE ? new URL(process.env.STRIPE_API_BASE) : undefined
const platform = new Stripe(/** @type {string} */ (process.env.STRIPE_SECRET_KEY), {
  ...(base
    ? {
        host: base.hostname,
        port: Number(base.port),
        protocol: /** @type {'http' | 'https'} */ (base.protocol.slice(0, -1)),
      }
    : {}),
})
const url = process.argv[2] ?? 'http://127.0.0.1:3000/report'

for (const paymentMethod of ['pm_card_visa', 'pm_card_chargeDeclinedInsufficientFunds']) {
  const client = Client.create({
    methods: [stripe({ createToken: issuedTokens({ client: platform, paymentMethod }) })],
    policy: { maxAmount: { usd: 100n }, budget: { usd: 1_000n } },
  })
  const response = await client.fetch(url)
  if (response.ok) {
    console.log(response.status, JSON.stringify(await response.json()))
    console.log('receipt', receipt(response))
  } else {
    const problem = await response.json()
    console.log(response.status, problem.reason, '-', problem.detail)
  }
}
