import { ConfigurationError, type Method } from '@mppkit/core'
import {
  checkAccount,
  checkAddress,
  checkAmount,
  checkChainId,
  checkConnection,
  checkNumber,
  checkOptionalAddress,
} from '../internal/options.js'
import type { charge } from '../Methods.js'
import { type ChargeOptions, chargeServer } from './Charge.js'
import { sessionServer as createSessionServer, type SessionOptions, type SessionServer } from './Session.js'

export {
  type ChargeOptions,
  chargeServer,
  cosign,
  type SponsorPolicy,
  verifyChargeReceipt,
} from './Charge.js'
export type { SessionMeter, SessionOptions, SessionServer } from './Session.js'

/**
 * Creates the server side of `tempo/session` (v1 escrow) after checking its options: a bad address,
 * chain id, amount or account is a `ConfigurationError` naming the field, thrown here rather than on
 * the first request.
 *
 * @example
 * ```ts
 * const sessions = sessionServer({ rpcUrl, currency: pathUsd, account: payee, escrow })
 * ```
 * @see draft-tempo-session-00
 */
export function sessionServer(options: SessionOptions): SessionServer {
  const scope = 'tempo session'
  if (!options || typeof options !== 'object') throw new ConfigurationError(`${scope}: options are required`)
  checkConnection(scope, { rpcUrl: options.rpcUrl })
  checkChainId(scope, options.chainId)
  checkAddress(scope, 'currency', options.currency, 'a TIP-20 token address')
  checkAccount(scope, 'account', options.account, true)
  checkAddress(scope, 'escrow', options.escrow, 'the escrow contract address')
  checkAmount(scope, 'suggestedDeposit', options.suggestedDeposit)
  checkAmount(scope, 'minVoucherDelta', options.minVoucherDelta)
  checkNumber(scope, 'unitsPerRequest', options.unitsPerRequest, true)
  for (const field of [
    'settleInterval',
    'voucherTimeout',
    'channelStateTtl',
    'stateTtlSeconds',
    'timeout',
  ] as const)
    checkNumber(scope, field, options[field])
  checkAccount(scope, 'feePayer', options.feePayer, false)
  checkOptionalAddress(scope, 'feeToken', options.feeToken)
  return createSessionServer(options)
}

/**
 * The Tempo server methods: `tempo(options)` is the charge method; `tempo.charge` names it explicitly and
 * `tempo.session` creates the session method (v1 escrow). Options are checked when these are called.
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
