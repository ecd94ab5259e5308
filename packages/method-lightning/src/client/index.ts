import type { Method } from '@mppkit/core/client'
import type { charge } from '../Methods.js'
import { type ChargeClientOptions, chargeClient } from './Charge.js'
import { type SessionClient, type SessionClientOptions, sessionClient } from './Session.js'

export { type ChargeClientOptions, chargeClient } from './Charge.js'
export type { SavedLostTopUp, SavedSession, SessionStore } from './Saved.js'
export {
  type CloseResult,
  type PendingOpen,
  type SessionClient,
  type SessionClientOptions,
  type SessionState,
  type SkippedSession,
  sessionClient,
} from './Session.js'
export { lndWallet, type Wallet } from './Wallet.js'

/**
 * The Lightning client methods: `lightning(options)` pays charges; `lightning.charge` names it explicitly and
 * `lightning.session` keeps sessions (open, bearer, top-up, close).
 *
 * @example
 * ```ts
 * const client = Client.create({ methods: [lightning({ lnd, network: 'regtest' })] })
 * ```
 * @see draft-lightning-charge-00, draft-lightning-session-00
 */
export const lightning: {
  (options: ChargeClientOptions): Method.Client<typeof charge>
  charge(options: ChargeClientOptions): Method.Client<typeof charge>
  session(options: SessionClientOptions): SessionClient
} = Object.assign((options: ChargeClientOptions) => chargeClient(options), {
  charge: chargeClient,
  session: sessionClient,
})
