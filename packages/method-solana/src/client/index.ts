import type { Method } from '@mppkit/core/client'
import type { charge } from '../Methods.js'
import { type ChargeClientOptions, chargeClient } from './Charge.js'

export { type ChargeClientOptions, chargeClient } from './Charge.js'

/**
 * The Solana client method: `solana(options)` pays charges (`solana.charge` names it).
 *
 * @example
 * ```ts
 * const client = Client.create({ methods: [solana({ signer, rpcUrl, network: 'localnet' })] })
 * ```
 * @see draft-solana-charge-00
 */
export const solana: {
  (options: ChargeClientOptions): Method.Client<typeof charge>
  charge(options: ChargeClientOptions): Method.Client<typeof charge>
} = Object.assign((options: ChargeClientOptions) => chargeClient(options), { charge: chargeClient })
