// @ts-check
// A paid endpoint on Stripe: $0.50 per request, paid with a Shared Payment Token (card).
// Env: STRIPE_SECRET_KEY (the seller's key), STRIPE_API_BASE (omit for api.stripe.com), STRIPE_NETWORK_ID
// (the seller's Stripe profile id), MPP_SECRET (≥ 32 bytes), PORT.
import http from 'node:http'
import { Server, toNodeListener } from '@mppkit/core/server'
import { stripe } from '@mppkit/method-stripe/server'
import Stripe from 'stripe'

const base = process.env.STRIPE_API_BASE ? new URL(process.env.STRIPE_API_BASE) : undefined
const client = new Stripe(/** @type {string} */ (process.env.STRIPE_SECRET_KEY), {
  ...(base
    ? {
        host: base.hostname,
        port: Number(base.port),
        protocol: /** @type {'http' | 'https'} */ (base.protocol.slice(0, -1)),
      }
    : {}),
  timeout: 10_000,
})

const server = Server.create({
  realm: 'stripe-charge.example',
  secrets: [process.env.MPP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef'],
  methods: [
    stripe({ client, networkId: /** @type {string} */ (process.env.STRIPE_NETWORK_ID), currency: 'usd' }),
  ],
})

const report = server.protect(
  { offers: [{ method: 'stripe', request: { amount: '50' } }] },
  (_request, payment) =>
    Response.json({ report: 'Q3 revenue up 12%', paymentIntent: payment.receipt.reference }),
)

const listener = http.createServer(toNodeListener(report))
listener.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(
    `listening on http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (listener.address()).port}/report`,
  )
})
