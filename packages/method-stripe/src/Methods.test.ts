import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { SptId, StripeChargePayload, StripeChargeRequest } from './Methods.js'

const valid = {
  amount: '5000',
  currency: 'usd',
  description: 'Premium API access for 1 month',
  externalId: 'order_12345',
  methodDetails: { networkId: 'profile_1MqDcVKA5fEO2tZvKQm9g8Yj', paymentMethodTypes: ['card', 'link'] },
}

describe('StripeChargeRequest', () => {
  it('parses the spec example', () => {
    expect(StripeChargeRequest.parse(valid)).toEqual(valid)
  })

  it('requires networkId and paymentMethodTypes, positive integer amounts and ISO currencies', () => {
    const bad = [
      { ...valid, methodDetails: { paymentMethodTypes: ['card'] } },
      { ...valid, methodDetails: { networkId: 'p', paymentMethodTypes: [] } },
      { ...valid, amount: '0' },
      { ...valid, amount: '01' },
      { ...valid, amount: '1.5' },
      { ...valid, amount: 5000 },
      { ...valid, amount: '1234567890123456' },
      { ...valid, currency: 'usdc' },
      { ...valid, methodDetails: { ...valid.methodDetails, metadata: { challenge_id: 'x' } } },
    ]
    for (const request of bad) expect(StripeChargeRequest.safeParse(request).success).toBe(false)
  })

  it('property: never throws, and an accepted amount is an exact safe integer', () => {
    fc.assert(
      fc.property(fc.anything(), fc.string(), (noise, amount) => {
        for (const input of [noise, { ...valid, amount }, { ...valid, methodDetails: noise }]) {
          const result = StripeChargeRequest.safeParse(input)
          if (result.success) expect(Number.isSafeInteger(Number(result.data.amount))).toBe(true)
        }
      }),
    )
  })
})

describe('SptId', () => {
  it('accepts spt_ ids only', () => {
    expect(SptId.safeParse('spt_1N4Zv32eZvKYlo2CPhVPkJlW').success).toBe(true)
    for (const id of ['spt_', 'spt_a/b', 'pi_123', ' spt_1', 'spt_1\n'])
      expect(SptId.safeParse(id).success).toBe(false)
  })

  it('property: an accepted id is a path-safe token', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        if (SptId.safeParse(text).success) expect(text).toMatch(/^spt_[A-Za-z0-9_]+$/)
      }),
    )
  })
})

describe('StripeChargePayload', () => {
  it('keeps spt and externalId and drops anything else', () => {
    expect(
      StripeChargePayload.parse({
        spt: 'spt_1',
        externalId: 'o',
        application_fee_amount: 1,
        stripeAccount: 'acct_1',
      }),
    ).toEqual({ spt: 'spt_1', externalId: 'o' })
  })

  it('property: never throws on any input', () => {
    fc.assert(
      fc.property(fc.anything(), (input) => {
        expect(() => StripeChargePayload.safeParse(input)).not.toThrow()
      }),
    )
  })
})
