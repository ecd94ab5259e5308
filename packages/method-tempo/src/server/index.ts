import { ConfigurationError, type Method } from '@mppkit/core'
import {
  checkAccount,
  checkAddress,
  checkAmount,
  checkChainId,
  checkConnection,
  checkMilliseconds,
  checkNumber,
  checkOptionalAddress,
  checkSeconds,
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

/** The v1 escrow's `CLOSE_GRACE_PERIOD` (15 minutes) in ms. */
const closeGracePeriodMs = 900_000
/**
 * The shortest `stateTtlSeconds`: the close grace period (15 minutes), which is also above the core's
 * default challenge lifetime (300 s) a voucher credential may be resent within.
 */
const minStateTtlSeconds = 900
/** The default `stateTtlSeconds` (30 days, as in `Session.ts`). */
const defaultStateTtlSeconds = 30 * 86_400

/**
 * Creates the server side of `tempo/session` (v1 escrow) after checking its options: a bad address,
 * chain id, amount, account, timer (whole ms, 1 to 2^31 − 1) or state lifetime (`stateTtlSeconds` at
 * least 900) is a `ConfigurationError` naming the field, thrown here rather than on the first request.
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
  // Timers (`settleInterval` is a setInterval, `voucherTimeout` a setTimeout, `timeout` viem's RPC
  // timeout): 0 spins the settlement timer or turns the RPC timeout off, and past 2^31 − 1 ms a timer
  // overflows and fires at once.
  for (const field of ['settleInterval', 'voucherTimeout', 'timeout'] as const)
    checkMilliseconds(scope, field, options[field])
  // The cached channel state is trusted this long: a forced close seen later than the escrow's close
  // grace period leaves nothing to settle ("The grace period allows the payee time to submit any
  // outstanding vouchers before forced closure"), and the payer withdraws what was served.
  checkMilliseconds(
    scope,
    'channelStateTtl',
    options.channelStateTtl,
    closeGracePeriodMs - 1,
    " (below the escrow's 15-minute close grace period)",
  )
  // The store's memory of what each channel's vouchers already paid for: once it expires, a voucher
  // presented again (on its own reused challenge, or re-wrapped in a fresh one) is served again down to
  // the amount settled on chain, and the server can no longer settle it. So it must outlive the close
  // grace period (a forced close noticed is settled from these keys) and the core's default challenge
  // lifetime (300 s), and the settlement interval below.
  checkSeconds(
    scope,
    'stateTtlSeconds',
    options.stateTtlSeconds,
    minStateTtlSeconds,
    ' (what vouchers paid for must be remembered until it is settled)',
  )
  const stateTtlMs = (options.stateTtlSeconds ?? defaultStateTtlSeconds) * 1000
  if (options.settleInterval !== undefined && options.settleInterval >= stateTtlMs)
    throw new ConfigurationError(
      `${scope}: settleInterval (${options.settleInterval} ms) must be shorter than stateTtlSeconds (${stateTtlMs / 1000} s): served vouchers would be forgotten before they are settled`,
    )
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
