import { type ChargeOptions, type ChargeServer, chargeServer } from './Charge.js'

export {
  type ChargeOptions,
  type ChargeServer,
  type ConnectContext,
  chargeServer,
  type RefundOptions,
  type StripeClient,
} from './Charge.js'

/**
 * The Stripe server method: `stripe(options)` is the charge method (`stripe.charge` names it
 * explicitly).
 *
 * @example
 * ```ts
 * const server = Server.create({ realm, secrets, methods: [stripe({ client, networkId, currency: 'usd' })] })
 * ```
 * @see draft-stripe-charge-00
 */
export const stripe: {
  (options: ChargeOptions): ChargeServer
  charge(options: ChargeOptions): ChargeServer
} = Object.assign((options: ChargeOptions) => chargeServer(options), { charge: chargeServer })

export { type StripeErrorSummary, StripeRefundError } from '../internal/stripeErrors.js'
export { type HeaderTokensOptions, readHeaderToken, withHeaderTokens } from './HeaderTokens.js'
