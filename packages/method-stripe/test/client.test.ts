import { PolicyError } from '@mppkit/core'
import { PaymentFailedError } from '@mppkit/core/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chargeClient } from '../src/client/index.js'
import { rig, type StripeDevnet, startStripe, url } from './helpers.js'

// The client side: the spend policy runs before any token exists, a token granting more (or other) than
// the challenge asks is never sent, and challenges for another payment method type are skipped.

let node: StripeDevnet
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})

describe('chargeClient', () => {
  it('the spend policy refuses before any token is created', async () => {
    const r = rig(node, { policy: { maxAmount: { usd: 999n } } })
    await expect(r.client.fetch(url)).rejects.toBeInstanceOf(PolicyError)
    expect(r.issued).toHaveLength(0)
    const currency = rig(node, { policy: { currencies: ['eur'] } })
    await expect(currency.client.fetch(url)).rejects.toThrowErrorMatchingInlineSnapshot(
      `[PolicyError: currency usd is not allowed by the spend policy]`,
    )
    expect(currency.issued).toHaveLength(0)
  })

  it('skips a challenge that does not accept its payment method type', async () => {
    const r = rig(node, { server: { paymentMethodTypes: ['link'] } })
    await expect(r.client.fetch(url)).rejects.toThrowErrorMatchingInlineSnapshot(
      `[PolicyError: the challenge does not accept card (it lists link)]`,
    )
    expect(r.issued).toHaveLength(0)
  })

  for (const [name, token] of [
    ['currency', { usage_limits: { currency: 'eur', max_amount: 1000 } }],
    ['max amount', { usage_limits: { currency: 'usd', max_amount: 1001 } }],
    ['network', { seller_details: { network_business_profile: 'profile_test_other' } }],
    ['expiry', { usage_limits: { expires_at: null } }],
  ] as const) {
    it(`never sends a token whose ${name} differs from what it asked for`, async () => {
      let sent = false
      const r = rig(node, {
        client: { createToken: async () => ({ id: 'spt_granted0000000000000', ...token }) },
      })
      const client = r.clientWith(async (request) => {
        if (request.headers.get('authorization')) sent = true
        return r.handler(request)
      })
      await expect(client.fetch(url)).rejects.toBeInstanceOf(PaymentFailedError)
      expect(sent).toBe(false)
    })
  }

  it('refuses a createToken that returns something other than an SPT id', async () => {
    const r = rig(node, { client: { createToken: async () => 'pm_card_visa' } })
    await expect(r.client.fetch(url)).rejects.toThrowErrorMatchingInlineSnapshot(
      `[PaymentFailedError: stripe client: createToken did not return an SPT id (spt_…)]`,
    )
  })

  it('asks for the challenge amount, currency, network and an expiry no later than the challenge', async () => {
    const asked: unknown[] = []
    const r = rig(node, {
      offer: { request: { amount: '1234', externalId: 'order_9' } },
      client: {
        createToken: async (request) => {
          asked.push({ ...request, challenge: undefined })
          return 'spt_unused000000000000000'
        },
      },
    })
    await r.client.fetch(url)
    const [request] = asked as [Record<string, unknown>]
    expect(request).toMatchObject({
      amount: 1234,
      currency: 'usd',
      networkId: node.info.networkId,
      externalId: 'order_9',
      paymentMethodTypes: ['card'],
    })
    expect(request.expiresAt as number).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 300)
  })

  it('needs a createToken function', () => {
    expect(() => chargeClient({} as never)).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: stripe client: createToken is required]`,
    )
  })
})
