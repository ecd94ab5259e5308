import { Challenge, PaymentError, Receipt } from '@mppkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { StripeRefundError, stripe } from '../src/server/index.js'
import { problem, rig, type StripeDevnet, sdk, startStripe, url } from './helpers.js'

// Stripe Connect settlement parameters come from server configuration only, are validated as the spec's
// MUSTs say, and reach the PaymentIntent; they never appear in a challenge.

let node: StripeDevnet
let connected: string
let second: string
beforeAll(async () => {
  node = await startStripe()
  ;[connected, second] = node.info.accounts.connected as [string, string]
})
afterAll(async () => {
  await node?.stop()
})

describe('stripe charge with Connect', () => {
  it('destination charge with a platform fee and a transfer group derived from the order', async () => {
    const r = rig(node, {
      offer: { request: { amount: '1000', externalId: 'order_77' } },
      server: {
        connectedAccounts: [connected],
        connect: ({ request }) => ({
          applicationFeeAmount: 100,
          transferData: { destination: connected, amount: 850 },
          transferGroup: `order:${request.externalId}`,
        }),
      },
    })
    const unpaid = await r.handler(new Request(url))
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate') ?? '')
    // "Servers MUST NOT include Connect settlement parameters in the MPP challenge."
    expect(JSON.stringify(challenge?.request)).not.toMatch(/acct_|transfer|fee/)
    const response = await r.client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    const pi = await r.stripe.paymentIntents.retrieve(
      Receipt.parse(response.headers.get('payment-receipt')!).reference,
    )
    expect(pi).toMatchObject({
      application_fee_amount: 100,
      transfer_data: { destination: connected, amount: 850 },
      transfer_group: 'order:order_77',
    })
  })

  it('direct charge on a connected account (Stripe-Account) with on_behalf_of', async () => {
    const r = rig(node, {
      server: {
        networkId: node.info.accounts.profiles[connected] as string,
        connectedAccounts: [connected],
        connect: { stripeAccount: connected, onBehalfOf: connected, applicationFeeAmount: 30 },
      },
    })
    const response = await r.client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    const pi = await r.stripe.paymentIntents.retrieve(receipt.reference, {}, { stripeAccount: connected })
    expect(pi).toMatchObject({ status: 'succeeded', on_behalf_of: connected, application_fee_amount: 30 })
    // The refund helper refunds on the same account.
    expect((await r.method.refund(receipt)).amount).toBe(1000)
  })

  it('refunds a direct charge routed by a connect function on the account it names', async () => {
    const r = rig(node, {
      server: {
        networkId: node.info.accounts.profiles[connected] as string,
        connectedAccounts: [connected],
        connect: () => ({ stripeAccount: connected }),
      },
    })
    const response = await r.client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    // The account of each payment is the function's choice: the refund cannot guess it.
    await expect(r.method.refund(receipt)).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: stripe refund: with a connect function, pass options.stripeAccount (the connected account the receipt was paid on, or null for the platform)]`,
    )
    await expect(
      r.method.refund(receipt, undefined, { stripeAccount: 'acct_unknown' }),
    ).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: stripe refund: stripeAccount is not one of the server's connectedAccounts]`,
    )
    // On the platform the PaymentIntent does not exist: a typed refund failure, not a 402 payment problem.
    const missing = await r.method
      .refund(receipt, undefined, { stripeAccount: null })
      .catch((error: unknown) => error)
    expect(missing).toBeInstanceOf(StripeRefundError)
    expect(PaymentError.is(missing)).toBe(false)
    expect(missing).toMatchObject({
      code: 'stripe_refund_failed',
      statusCode: 404,
      stripeCode: 'resource_missing',
    })
    expect((await r.method.refund(receipt, 400, { stripeAccount: connected })).amount).toBe(400)
    const pi = await r.stripe.paymentIntents.retrieve(receipt.reference, {}, { stripeAccount: connected })
    expect(pi.status).toBe('succeeded')
  })

  it('refuses configurations that break a MUST', () => {
    const client = sdk(node)
    const networkId = node.info.networkId
    expect(() =>
      stripe({ client, networkId, connect: { transferData: { destination: connected } } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: stripe connect: transfer_data[destination] is not one of the server's connectedAccounts]`,
    )
    expect(() =>
      stripe({ client, networkId, connectedAccounts: [connected], connect: { applicationFeeAmount: -5 } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: stripe connect: application_fee_amount must be a non-negative integer]`,
    )
    expect(() =>
      stripe({ client, networkId, connect: { transferData: { amount: 5 } as never } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: stripe connect: transfer_data[destination] is required with transfer_data]`,
    )
  })

  it('a fee above the amount of this payment is a 500 before any PaymentIntent, and the challenge is released', async () => {
    const r = rig(node, {
      offer: { request: { amount: '500' } },
      server: {
        connectedAccounts: [second],
        connect: { applicationFeeAmount: 600, transferData: { destination: second } },
      },
    })
    const before = (await r.stripe.paymentIntents.list({ limit: 100 })).data.length
    const authorization = await r.credential()
    const response = await r.submit(authorization)
    expect(response.status).toBe(500)
    expect((await problem(response)).reason).toBe('connect-settlement-invalid')
    expect(response.headers.get('payment-receipt')).toBeNull()
    expect((await r.stripe.paymentIntents.list({ limit: 100 })).data.length).toBe(before)
    // Released: the same credential is not "already used" (it fails the same way until the server is fixed).
    expect((await r.submit(authorization)).status).toBe(500)
  })

  it('a connect function naming an unauthorized account is refused per request', async () => {
    const r = rig(node, {
      server: { connectedAccounts: [connected], connect: () => ({ onBehalfOf: second }) },
    })
    const response = await r.client.fetch(url)
    expect(response.status).toBe(500)
    expect((await problem(response)).detail).toMatchInlineSnapshot(
      `"The server's Stripe Connect settlement parameters are invalid: on_behalf_of is not one of the server's connectedAccounts."`,
    )
  })
})
