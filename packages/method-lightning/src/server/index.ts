import type { Method } from '@mppkit/core'
import type { charge } from '../Methods.js'
import { type ChargeOptions, chargeServer } from './Charge.js'
import { type SessionOptions, type SessionServer, sessionServer } from './Session.js'

export { type ChargeOptions, chargeServer } from './Charge.js'
export { type SessionMeter, type SessionOptions, type SessionServer, sessionServer } from './Session.js'
export type { RefundFailure } from './session/Refund.js'

/**
 * The Lightning server methods: `lightning(options)` is the charge method; `lightning.charge` names it
 * explicitly and `lightning.session` creates the session method.
 *
 * @example
 * ```ts
 * const server = Server.create({ realm, secrets, methods: [lightning({ lnd })] })
 * ```
 * @see draft-lightning-charge-00, draft-lightning-session-00
 */
export const lightning: {
  (options: ChargeOptions): Method.Server<typeof charge>
  charge(options: ChargeOptions): Method.Server<typeof charge>
  session(options: SessionOptions): SessionServer
} = Object.assign((options: ChargeOptions) => chargeServer(options) as Method.Server<typeof charge>, {
  charge: (options: ChargeOptions) => chargeServer(options) as Method.Server<typeof charge>,
  session: sessionServer,
})
