import type { Method } from '@mppkit/core'
import type { charge } from '../Methods.js'
import { type ChargeOptions, chargeServer } from './Charge.js'
import { type SessionOptions, type SessionServer, sessionServer } from './Session.js'

export {
  type ChargeOptions,
  chargeServer,
  cosign,
  type SponsorPolicy,
  verifyChargeReceipt,
} from './Charge.js'
export { type SessionMeter, type SessionOptions, type SessionServer, sessionServer } from './Session.js'

/**
 * The Tempo server methods: `tempo(options)` is the charge method; `tempo.charge` names it explicitly and
 * `tempo.session` creates the session method (v1 escrow).
 *
 * @example
 * ```ts
 * const server = Server.create({ realm, secrets, methods: [tempo({ currency, recipient, rpcUrl }), tempo.session({ rpcUrl, currency, account, escrow })] })
 * ```
 * @see draft-tempo-charge-00, draft-tempo-session-00
 */
export const tempo: {
  (options: ChargeOptions): Method.Server<typeof charge>
  charge(options: ChargeOptions): Method.Server<typeof charge>
  session(options: SessionOptions): SessionServer
} = Object.assign((options: ChargeOptions) => chargeServer(options) as Method.Server<typeof charge>, {
  charge: (options: ChargeOptions) => chargeServer(options) as Method.Server<typeof charge>,
  session: sessionServer,
})
