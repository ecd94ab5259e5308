import { type ChargeClient, type ChargeClientOptions, chargeClient } from './Charge.js'

export {
  type ChargeClient,
  type ChargeClientOptions,
  type CreateToken,
  chargeClient,
  type IssuedToken,
  type TokenRequest,
} from './Charge.js'
export { type IssuedTokensOptions, issuedTokens, type StripeRawClient } from './IssuedTokens.js'

/**
 * The Stripe client method: `stripe(options)` pays charges with SPTs (`stripe.charge` names it
 * explicitly).
 *
 * @example
 * ```ts
 * const client = Client.create({ methods: [stripe({ createToken: issuedTokens({ client, paymentMethod }) })] })
 * ```
 * @see draft-stripe-charge-00
 */
export const stripe: {
  (options: ChargeClientOptions): ChargeClient
  charge(options: ChargeClientOptions): ChargeClient
} = Object.assign((options: ChargeClientOptions) => chargeClient(options), { charge: chargeClient })
