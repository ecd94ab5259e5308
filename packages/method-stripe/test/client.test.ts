import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ConfigurationError, PolicyError } from '@mppkit/core'
import { PaymentFailedError } from '@mppkit/core/client'
import { Server, toNodeListener } from '@mppkit/core/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pay } from '../src/cli.js'
import { chargeClient } from '../src/client/index.js'
import { stripe } from '../src/server/index.js'
import { realm, rig, type StripeDevnet, sdk, secret, startStripe, url } from './helpers.js'

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
    // Granted to any seller, in any currency, or with an expiry that compares as no time at all.
    ['network (null: any seller)', { seller_details: { network_business_profile: null } }],
    ['currency (null)', { usage_limits: { currency: null, max_amount: 1000 } }],
    ['expiry (NaN)', { usage_limits: { currency: 'usd', max_amount: 1000, expires_at: Number.NaN } }],
    ['expiry (a string)', { usage_limits: { currency: 'usd', max_amount: 1000, expires_at: '4102444800' } }],
    // No limits at all, or any seller: a whole object returned as null grants more than any null field.
    ['limits (null: no limits at all)', { usage_limits: null }],
    ['seller (null: any seller)', { seller_details: null }],
  ] as const) {
    it(`never sends a token whose ${name} differs from what it asked for`, async () => {
      let sent = false
      const r = rig(node, {
        client: { createToken: async () => ({ id: 'spt_granted0000000000000', ...token }) as never },
      })
      const client = r.clientWith(async (request) => {
        if (request.headers.get('authorization')) sent = true
        return r.handler(request)
      })
      const error = await client.fetch(url).catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error).toMatchObject({ code: 'token-mismatch', mayHaveSettled: false })
      expect(sent).toBe(false)
    })
  }

  it('refuses options that would unbound or break the token expiry, when it is created', () => {
    const createToken = async () => 'spt_unused000000000000000'
    const refusal = (options: Record<string, unknown>) => {
      try {
        chargeClient({ createToken, ...options } as never)
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigurationError)
        return (error as Error).message
      }
      return undefined
    }
    // NaN once asked for a NaN expiry and let any granted expiry through; '600' (an env var) asked for one
    // ~57,000 years away.
    for (const maxValiditySeconds of [Number.NaN, '600', -5, 0, 1.5, Number.POSITIVE_INFINITY, 2 ** 60])
      expect(refusal({ maxValiditySeconds }), String(maxValiditySeconds)).toBe(
        'stripe client: maxValiditySeconds must be a positive whole number of seconds',
      )
    for (const paymentMethodType of [5, ''])
      expect(refusal({ paymentMethodType }), String(paymentMethodType)).toBe(
        'stripe client: paymentMethodType must be a payment method type such as card',
      )
    expect(refusal({ externalId: 42 })).toBe('stripe client: externalId must be a non-empty string')
    expect(
      refusal({ maxValiditySeconds: 600, paymentMethodType: 'link', externalId: 'order_1' }),
    ).toBeUndefined()
  })

  it('asks no token for a challenge whose expiry is no time (a method used outside the client)', async () => {
    let asked = 0
    const method = chargeClient({
      createToken: async () => {
        asked++
        return 'spt_unused000000000000000'
      },
    })
    const request = {
      amount: '500',
      currency: 'usd',
      methodDetails: { networkId: 'profile_shop', paymentMethodTypes: ['card'] },
    }
    const challenge = { id: 'c1', realm, method: 'stripe', intent: 'charge', request, expires: 'never' }
    await expect(method.createPayload({ challenge, request, url })).rejects.toMatchObject({
      name: 'PaymentFailedError',
      code: 'token-mismatch',
      message: 'stripe client: the challenge expiry is not a time; no token was created',
    })
    expect(asked).toBe(0)
  })

  it('names the Stripe profile the token is granted to as the payee; the free-text recipient is only a quoted label', async () => {
    const method = chargeClient({ createToken: async () => 'spt_unused000000000000000' })
    expect(
      method.payee({ methodDetails: { networkId: 'profile_shop' }, recipient: 'Trusted Shop Inc.' }),
    ).toBe('Stripe profile profile_shop')
    // What `mppkit pay` shows before paying (the guard of @mppkit/core/cli), against the simulator: the
    // server's `recipient` could name anyone, the token can only be charged by `networkId`.
    const server = Server.create({
      realm,
      secrets: [secret],
      methods: [stripe({ client: sdk(node), networkId: node.info.networkId, currency: 'usd' })],
    })
    const handler = server.protect(
      {
        offers: [
          {
            method: 'stripe',
            request: { amount: '50', recipient: 'Trusted Shop") (realm bank.example\u001b[2K' },
          },
        ],
      },
      () => new Response('paid'),
    )
    const http = createHttpServer(toNodeListener(handler))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    let stderr = ''
    try {
      const code = await pay(
        [
          `http://127.0.0.1:${(http.address() as AddressInfo).port}/x`,
          ...[
            '--stripe-key',
            node.info.secretKey,
            '--api-base',
            node.info.apiBase,
            '--payment-method',
            'pm_card_visa',
          ],
        ],
        { stdout: () => {}, stderr: (text) => (stderr += text) },
      )
      expect(code, stderr).toBe(0)
    } finally {
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
    }
    expect(stderr.split('\n')[0]).toBe(
      `mppkit pay: stripe/charge: pay 0.5 USD (50 base units) to Stripe profile ${node.info.networkId} ` +
        `(the server calls it "Trusted Shop\\") (realm bank.example?[2K") (realm ${realm})`,
    )
  })

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
