import { Challenge, Receipt } from '@mppkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { intentsFor, rig, type StripeDevnet, startStripe, url } from './helpers.js'

// stripe/charge end to end through Server.create / Client.create, on the devnet Stripe simulator driven
// by the unmodified `stripe` SDK.

let node: StripeDevnet
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})

describe('stripe charge: happy path', () => {
  it('issues a challenge with the spec request fields', async () => {
    const { handler } = rig(node, {
      offer: { request: { amount: '2500', description: 'Premium API access', externalId: 'order_12345' } },
      server: { metadata: { plan: 'pro' } },
    })
    const response = await handler(new Request(url))
    expect(response.status).toBe(402)
    const [challenge] = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
    expect(challenge?.method).toBe('stripe')
    expect(challenge?.intent).toBe('charge')
    expect(challenge?.request).toEqual({
      amount: '2500',
      currency: 'usd',
      description: 'Premium API access',
      externalId: 'order_12345',
      methodDetails: {
        networkId: node.info.networkId,
        paymentMethodTypes: ['card'],
        metadata: { plan: 'pro' },
      },
    })
  })

  it('pays: one succeeded PaymentIntent with the spec parameters, its id in the receipt', async () => {
    const { client, stripe, issued, runs } = rig(node, {
      offer: { request: { amount: '2500', externalId: 'order_1' } },
      server: { metadata: { plan: 'pro' } },
    })
    const response = await client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ method: 'stripe', status: 'success', externalId: 'order_1' })
    expect(receipt.reference).toMatch(/^pi_/)
    const pi = await stripe.paymentIntents.retrieve(receipt.reference)
    expect(pi).toMatchObject({
      status: 'succeeded',
      amount: 2500,
      currency: 'usd',
      automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
      shared_payment_granted_token: issued[0],
    })
    expect(pi.metadata.plan).toBe('pro')
    const challengeId = pi.metadata.challenge_id as string
    expect(await intentsFor(stripe, challengeId)).toHaveLength(1)
    // The token is spent: a second payment needs a new one.
    const token = await stripe.rawRequest('GET', `/v1/shared_payment/granted_tokens/${issued[0]}`)
    expect(token.deactivated_reason).toBe('consumed')
  })

  it('issues SPTs limited to the challenge: amount, currency, network, expiry', async () => {
    const { client, stripe, issued } = rig(node, { offer: { request: { amount: '777', currency: 'eur' } } })
    expect((await client.fetch(url)).status).toBe(200)
    const token = await stripe.rawRequest('GET', `/v1/shared_payment/issued_tokens/${issued[0]}`)
    expect(token.usage_limits.currency).toBe('eur')
    expect(token.usage_limits.max_amount).toBe(777)
    expect(token.seller_details.network_business_profile).toBe(node.info.networkId)
    expect(token.usage_limits.expires_at).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 300)
  })

  it('refunds a receipt in part, then in full', async () => {
    const { client, method, stripe } = rig(node)
    const response = await client.fetch(url)
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    const part = await method.refund(receipt, 400)
    expect(part).toMatchObject({ amount: 400, status: 'succeeded' })
    const rest = await method.refund(receipt)
    expect(rest.amount).toBe(600)
    const charge = await stripe.charges.retrieve(
      (await stripe.paymentIntents.retrieve(receipt.reference)).latest_charge as string,
    )
    expect(charge.refunded).toBe(true)
    await expect(method.refund({ ...receipt, method: 'tempo' })).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: stripe refund: the receipt is not a Stripe charge receipt]`,
    )
  })
})
