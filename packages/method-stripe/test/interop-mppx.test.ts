import { Receipt } from '@mppkit/core'
import { Client } from '@mppkit/core/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { issuedTokens, stripe as stripeClient } from '../src/client/index.js'
import { rig, type StripeDevnet, sdk, startStripe, url } from './helpers.js'

// Interop with the reference SDK (mppx@0.11.0, unmodified) on the same Stripe simulator, both directions:
// the mppx client pays our server, our client pays an mppx server (which takes a `stripe` client pointed
// at the simulator).
const mppxClient = await import('mppx/client').catch(() => undefined)
const mppxServer = await import('mppx/server').catch(() => undefined)
const reason = mppxClient && mppxServer ? undefined : 'mppx is not installed'
if (reason) console.warn(`[skip] ${reason}`)

let node: StripeDevnet
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})

describe.skipIf(!!reason)('stripe/charge ↔ mppx@0.11.0', () => {
  for (const externalId of [undefined, 'order_42']) {
    it(`the mppx client pays our server${externalId ? ' (request-bound externalId)' : ''}`, async () => {
      const r = rig(node, { offer: { request: { amount: '1250', ...(externalId ? { externalId } : {}) } } })
      const platform = sdk(node)
      const mppx = mppxClient!.Mppx.create({
        polyfill: false,
        fetch: ((input: RequestInfo, init?: RequestInit) =>
          r.handler(new Request(input, init))) as typeof fetch,
        methods: [
          mppxClient!.stripe.charge({
            paymentMethod: 'pm_card_visa',
            // The agent platform issues the token the mppx client asks for (amount, currency, network, expiry).
            createToken: async ({ amount, currency, networkId, expiresAt, paymentMethod }) => {
              const token = await platform.rawRequest('POST', '/v1/shared_payment/issued_tokens', {
                payment_method: paymentMethod,
                usage_limits: { currency, max_amount: Number(amount), expires_at: expiresAt },
                seller_details: { network_business_profile: networkId },
              })
              return token.id as string
            },
          }),
        ],
      })
      const response = await mppx.fetch(url)
      expect(response.status, await response.clone().text()).toBe(200)
      const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
      expect(receipt.reference).toMatch(/^pi_/)
      expect(receipt.externalId).toBe(externalId)
      const pi = await r.stripe.paymentIntents.retrieve(receipt.reference)
      expect(pi).toMatchObject({ status: 'succeeded', amount: 1250, currency: 'usd' })
      expect(r.runs()).toBe(1)
    })
  }

  it('our client pays an mppx server', async () => {
    const seller = sdk(node)
    const mppx = mppxServer!.Mppx.create({
      realm: 'interop.test',
      secretKey: 'stripe-interop-secret-0123456789abcdefghij',
      methods: [
        mppxServer!.stripe.charge({
          client: seller as never,
          networkId: node.info.networkId,
          paymentMethodTypes: ['card'],
          currency: 'usd',
          decimals: 2,
        }),
      ],
    })
    const route = mppx['stripe/charge']({ amount: '12.50', externalId: 'mppx_order_1' })
    const handler = async (request: Request) => {
      const result = await route(request)
      if (result.status === 402) return result.challenge
      return result.withReceipt(Response.json({ paid: true }))
    }
    const issued: string[] = []
    const createToken = issuedTokens({ client: sdk(node), paymentMethod: 'pm_card_visa' })
    const client = Client.create({
      methods: [
        stripeClient({
          createToken: async (request) => {
            const token = await createToken(request)
            issued.push(typeof token === 'string' ? token : token.id)
            return token
          },
        }),
      ],
      policy: { maxAmount: { usd: 2_000n } },
      fetch: ((input: RequestInfo, init?: RequestInit) => handler(new Request(input, init))) as typeof fetch,
    })
    const response = await client.fetch('https://interop.test/paid')
    expect(response.status, await response.clone().text()).toBe(200)
    expect(await response.json()).toEqual({ paid: true })
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    const pi = await seller.paymentIntents.retrieve(receipt.reference)
    expect(pi).toMatchObject({ status: 'succeeded', amount: 1250, shared_payment_granted_token: issued[0] })
    expect(receipt.externalId).toBe('mppx_order_1')
  })
})
