import { ConfigurationError } from '@mppkit/core'
import type { CreateToken, IssuedToken } from './Charge.js'

/** The part of a `stripe` SDK client the issuer calls (the SDK has no Shared Payment methods yet). */
export type StripeRawClient = {
  rawRequest(method: string, path: string, params?: any, options?: any): Promise<any>
}

/** Options of {@link issuedTokens}. */
export type IssuedTokensOptions = {
  /** The agent platform's Stripe client (its own secret key, not the seller's). */
  client: StripeRawClient
  /** The PaymentMethod the platform shares (`pm_…`, saved for the customer). */
  paymentMethod: string
  /** Issue from a connected account of the platform (`Stripe-Account`). */
  stripeAccount?: string
  /** `Stripe-Version` for the call; SPTs are a preview API on real Stripe (e.g. `2026-04-22.preview`). */
  apiVersion?: string
}

/**
 * A ready {@link CreateToken}: creates a SharedPaymentIssuedToken with `POST
 * /v1/shared_payment/issued_tokens`, limited to the challenge's currency and amount, expiring with the
 * challenge, and granted to the seller's Stripe profile (the challenge's `networkId`).
 *
 * @example
 * ```ts
 * const createToken = issuedTokens({ client: new Stripe(process.env.PLATFORM_STRIPE_KEY!), paymentMethod: 'pm_…' })
 * const client = Client.create({ methods: [stripe({ createToken })] })
 * ```
 * @see draft-stripe-charge-00 §"Request Schema" (the client fulfills a challenge by creating an SPT)
 */
export function issuedTokens(options: IssuedTokensOptions): CreateToken {
  if (typeof options.client?.rawRequest !== 'function')
    throw new ConfigurationError('stripe issuedTokens: pass a Stripe client as `client`')
  if (typeof options.paymentMethod !== 'string' || options.paymentMethod === '')
    throw new ConfigurationError('stripe issuedTokens: paymentMethod is required')
  const requestOptions = {
    ...(options.stripeAccount !== undefined ? { stripeAccount: options.stripeAccount } : {}),
    ...(options.apiVersion !== undefined ? { apiVersion: options.apiVersion } : {}),
  }
  return async (request) => {
    const token = (await options.client.rawRequest(
      'POST',
      '/v1/shared_payment/issued_tokens',
      {
        payment_method: options.paymentMethod,
        usage_limits: {
          currency: request.currency,
          max_amount: request.amount,
          expires_at: request.expiresAt,
        },
        seller_details: { network_business_profile: request.networkId },
      },
      // One token per challenge even if the SDK retries the call.
      { ...requestOptions, idempotencyKey: `mppkit_spt_${request.challenge.id}` },
    )) as IssuedToken
    return token
  }
}
