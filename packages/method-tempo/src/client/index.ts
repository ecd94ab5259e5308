import type { Method } from '@mppkit/core'
import type { charge } from '../Methods.js'
import { type ChargeClientOptions, chargeClient } from './Charge.js'
import { type SessionClient, type SessionClientOptions, sessionClient } from './Session.js'

export { knownEscrows } from '../internal/escrows.js'
export { type FindChannelsOptions, findOpenChannels, type OpenChannel } from './Channels.js'
export { type ChargeClientOptions, chargeClient } from './Charge.js'
export { type Reclaim, type ReclaimOptions, reclaimChannel } from './Reclaim.js'
export type { ChannelStore, SavedChannel } from './Saved.js'
export {
  type ChannelState,
  type CloseAllOptions,
  type CloseResult,
  type SessionClient,
  type SessionClientOptions,
  type SideRequestOptions,
  type SkippedChannel,
  sessionClient,
  type TopUpIntent,
} from './Session.js'

/**
 * The Tempo client methods: `tempo(options)` pays charges; `tempo.charge` names it explicitly and
 * `tempo.session` pays sessions (v1 escrow).
 *
 * @example
 * ```ts
 * const client = Client.create({ methods: [tempo({ account, rpcUrl }), tempo.session({ account, rpcUrl })] })
 * ```
 * @see draft-tempo-charge-00, draft-tempo-session-00
 */
export const tempo: {
  (options: ChargeClientOptions): Method.Client<typeof charge>
  charge(options: ChargeClientOptions): Method.Client<typeof charge>
  session(options: SessionClientOptions): SessionClient
} = Object.assign((options: ChargeClientOptions) => chargeClient(options), {
  charge: chargeClient,
  session: sessionClient,
})
