import type { Method } from '@mppkit/core'
import type { charge } from '../Methods.js'
import { type ChargeOptions, chargeServer } from './Charge.js'

export { type ChargeOptions, chargeServer, type SplitOption } from './Charge.js'

/**
 * The Solana server method: `solana(options)` is the charge method (`solana.charge` names it).
 *
 * @example
 * ```ts
 * const server = Server.create({ realm, secrets, methods: [solana({ rpcUrl, network: 'localnet', currency: mint, decimals: 6, recipient })] })
 * ```
 * @see draft-solana-charge-00
 */
export const solana: {
  (options: ChargeOptions): Method.Server<typeof charge>
  charge(options: ChargeOptions): Method.Server<typeof charge>
} = Object.assign((options: ChargeOptions) => chargeServer(options) as Method.Server<typeof charge>, {
  charge: (options: ChargeOptions) => chargeServer(options) as Method.Server<typeof charge>,
})
