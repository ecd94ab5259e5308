import { describe, expect, it } from 'vitest'
import * as Connect from './Connect.js'

const accounts = ['acct_1Allowed', 'acct_2Allowed']

describe('problems', () => {
  it('accepts a valid destination charge with a fee', () => {
    expect(
      Connect.problems(
        {
          applicationFeeAmount: 100,
          transferData: { destination: 'acct_1Allowed', amount: 900 },
          transferGroup: 'order_1',
        },
        { amount: 1000, authorizedAccounts: accounts },
      ),
    ).toEqual([])
  })

  it('names every broken MUST', () => {
    expect(
      Connect.problems(
        {
          stripeAccount: 'acct_3Unknown',
          onBehalfOf: 'not-an-account',
          applicationFeeAmount: 1001,
          transferData: { destination: 'acct_1Allowed', amount: -1 },
          transferGroup: 'has space',
        },
        { amount: 1000, authorizedAccounts: accounts },
      ),
    ).toMatchInlineSnapshot(`
      [
        "stripeAccount is not one of the server's connectedAccounts",
        "on_behalf_of is not a Stripe account id",
        "application_fee_amount exceeds the PaymentIntent amount",
        "transfer_data[amount] must be a non-negative integer",
        "transfer_group must be a printable identifier of at most 255 characters",
      ]
    `)
    expect(
      Connect.problems(
        { transferData: {} as never, applicationFeeAmount: 1.5 },
        { amount: 10, authorizedAccounts: [] },
      ),
    ).toEqual([
      'application_fee_amount must be a non-negative integer',
      'transfer_data[destination] is required with transfer_data',
    ])
  })
})

describe('assertConfiguration', () => {
  it('throws a ConfigurationError without amount bounds', () => {
    expect(() => Connect.assertConfiguration({ applicationFeeAmount: 10_000 }, [])).not.toThrow()
    expect(() =>
      Connect.assertConfiguration({ onBehalfOf: 'acct_1Allowed' }, []),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: stripe connect: on_behalf_of is not one of the server's connectedAccounts]`,
    )
  })
})

describe('assertSettlement', () => {
  it('throws a 500 ConnectSettlementError for this payment', () => {
    try {
      Connect.assertSettlement({ applicationFeeAmount: 2000 }, { amount: 1000, authorizedAccounts: [] })
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(Connect.ConnectSettlementError)
      expect((error as Connect.ConnectSettlementError).toProblem()).toMatchInlineSnapshot(`
        {
          "detail": "The server's Stripe Connect settlement parameters are invalid: application_fee_amount exceeds the PaymentIntent amount.",
          "reason": "connect-settlement-invalid",
          "status": 500,
          "title": "Internal Server Error",
          "type": "about:blank",
        }
      `)
    }
  })
})

describe('toStripe', () => {
  it('maps to PaymentIntent params and the Stripe-Account option', () => {
    expect(
      Connect.toStripe({
        stripeAccount: 'acct_1',
        applicationFeeAmount: 5,
        onBehalfOf: 'acct_1',
        transferData: { destination: 'acct_2' },
        transferGroup: 'g',
      }),
    ).toEqual({
      params: {
        application_fee_amount: 5,
        on_behalf_of: 'acct_1',
        transfer_data: { destination: 'acct_2' },
        transfer_group: 'g',
      },
      options: { stripeAccount: 'acct_1' },
    })
    expect(Connect.toStripe(undefined)).toEqual({ params: {}, options: {} })
  })
})
