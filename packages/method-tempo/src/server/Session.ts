import { ConfigurationError, type Method } from '@mppkit/core'
import type { Address, Hex, LocalAccount } from 'viem'
import { type Connection, defaultChainId, publicClientFor } from '../internal/rpc.js'
import { session, type TempoSessionPayload, type TempoSessionRequest } from '../Methods.js'
import { checkSponsorPolicyOptions, type SponsorPolicy } from './Charge.js'
import { createSessionChain } from './session/Chain.js'
import { createChannelStore } from './session/ChannelStore.js'
import { sessionProblem } from './session/problems.js'
import { createSettle } from './session/Settle.js'
import { createSettlement, createSettlementSchedule } from './session/Settlement.js'
import { createVerify, type Verified } from './session/Verify.js'

export type { SessionMeter } from './session/Meter.js'
export type { Verified } from './session/Verify.js'

/** Options of {@link sessionServer}. */
export type SessionOptions = Omit<Connection, 'client'> & {
  /** JSON-RPC URL of the Tempo node (the payee sends settle/close transactions through it). */
  rpcUrl: string
  /** TIP-20 token of the channels (`currency`). */
  currency: Address
  /** The payee: the `recipient` of challenges, and the signer of settle/close transactions. */
  account: LocalAccount
  /** The v1 escrow contract (`methodDetails.escrowContract`). */
  escrow: Address
  /** `suggestedDeposit` in base units. */
  suggestedDeposit?: bigint
  /** `minVoucherDelta` in base units. */
  minVoucherDelta?: bigint
  /** `unitType`, e.g. `llm_token`. */
  unitType?: string
  /**
   * Units charged before the handler runs (default 1; the route's `amount` is the price per unit). Set 0
   * when the handler meters itself (SSE per chunk through `payment.context`).
   */
  unitsPerRequest?: number
  /**
   * Batch-settle consumed vouchers on chain every this many ms, and once more when the server closes
   * (default: only on `settleChannels()`). Whole ms from 1 to 2^31 − 1, shorter than `stateTtlSeconds`.
   * The first batch of each server, and one a minute after, also settles the channels that the store's
   * index lists as served by any process (one that stopped without closing, say).
   */
  settleInterval?: number
  /**
   * How long a metered stream waits for a voucher after `payment-need-voucher` (default 60 000 ms; whole
   * ms from 1 to 2^31 − 1).
   */
  voucherTimeout?: number
  /**
   * Cached channel state older than this is re-read from the escrow before a voucher or close is
   * accepted (default 1000 ms), so a forced close or withdrawal stops service within this window. Whole
   * ms from 1, below the escrow's 15-minute close grace period (at most 899 999).
   */
  channelStateTtl?: number
  /**
   * TTL of session state in the Store, in seconds (default 30 days; whole seconds, at least 900). What a
   * channel's vouchers paid for is remembered this long after its last write: once forgotten, a voucher
   * presented again is served again down to what was settled on chain. Keep it above the server's
   * `expiresIn` and the time until served vouchers are settled.
   */
  stateTtlSeconds?: number
  /**
   * An account that pays the fees of payers' `open` and `topUp` transactions: challenges then carry
   * `methodDetails.feePayer: true`, and those transactions are co-signed (domain 0x78) before broadcast.
   */
  feePayer?: LocalAccount
  /** Fee token the fee payer pays in (default: `currency`). */
  feeToken?: Address
  /**
   * Checked before co-signing. The expiring-nonce lane is not required by default here (unlike charge):
   * the server broadcasts a co-signed open/topUp itself, at once, and never hands it out.
   */
  sponsorPolicy?: SponsorPolicy
}

/** The session server method plus its settlement controls. */
export type SessionServer = Method.Server<typeof session, Verified> & {
  /** Receives each server's store, onError and close signal; starts the settlement timer (`settleInterval`). */
  setup(context: Method.SetupContext): void
  /**
   * Stops the settlement timers of the closed server and settles the vouchers it left consumed; once no
   * server is left, paused SSE streams end with their receipt.
   */
  close(): Promise<void>
  /**
   * Settles every channel's highest fully consumed voucher in one batched transaction, in the store of
   * every server the method is set up in (undefined: nothing to settle): the channels this process spent
   * on, and every channel the store's index lists (those another process served, one that stopped
   * without closing included).
   */
  settleChannels(): Promise<Hex | undefined>
  /** Stops the settlement timers (prefer `server.close()`, which also settles what is pending). */
  stop(): void
}

/**
 * Creates the server side of `tempo/session` on a v1 escrow: `open` (broadcasts the payer's signed
 * approve+open), `voucher` (EIP-712 cumulative, signer from chain state), `topUp` and `close` (cooperative
 * settle and refund). Accepted and spent amounts per channel live in the Store and change atomically
 * (compare-and-set, bounded increment), and each request's cost is deducted before it is served.
 *
 * @example
 * ```ts
 * const sessions = tempo.session({ rpcUrl, currency, account: payee, escrow })
 * const server = Server.create({ realm, secrets, methods: [sessions] })
 * server.protect({ offers: [{ method: 'tempo', intent: 'session', request: { amount: '25' } }] }, handler)
 * ```
 * @see draft-tempo-session-00
 */
export function sessionServer(options: SessionOptions): SessionServer {
  if (!options.rpcUrl) throw new ConfigurationError('tempo session: rpcUrl is required')
  checkSponsorPolicyOptions('tempo session', options.sponsorPolicy)
  const chainId = options.chainId ?? defaultChainId
  const payee = options.account
  const chain = createSessionChain({
    client: publicClientFor({ ...options }, options.rpcUrl, chainId),
    rpcUrl: options.rpcUrl,
    chainId,
    timeout: options.timeout,
    escrow: options.escrow,
    currency: options.currency,
    payee,
    feePayer: options.feePayer,
    feeToken: options.feeToken,
    sponsorPolicy: options.sponsorPolicy,
  })
  const channels = createChannelStore({
    ttlMs: (options.stateTtlSeconds ?? 30 * 86_400) * 1000,
    stateTtl: options.channelStateTtl ?? 1_000,
    payee: payee.address,
    currency: options.currency,
    readChannel: chain.readChannel,
    // "The grace period allows the payee time to submit any outstanding vouchers before forced closure"
    // ("Server can still `settle()` or `close()` during grace period"): once a re-read of the escrow
    // shows a forced close requested, the channel's consumed voucher is settled at once, off the
    // request, whether or not `settleInterval` is set.
    onCloseRequested: (store, channelId) => schedule.settleSoon(store, channelId),
  })
  const common = { chain, channels, escrow: options.escrow, currency: options.currency, payee: payee.address }
  const verify = createVerify({ ...common, chainId })
  // Set once every server the method was set up in has closed: paused streams then end with their receipt.
  let closed = false
  const settle = createSettle({
    ...common,
    unitsPerRequest: BigInt(options.unitsPerRequest ?? 1),
    voucherTimeout: options.voucherTimeout ?? 60_000,
    closed: () => closed,
  })
  const settlement = createSettlement(common)

  const methodDetails: TempoSessionRequest['methodDetails'] = {
    escrowContract: options.escrow,
    chainId,
    sessionProtocol: 'v1',
  }
  if (options.minVoucherDelta !== undefined) methodDetails.minVoucherDelta = String(options.minVoucherDelta)
  // "When a challenge includes `methodDetails.feePayer: true`, the server commits to paying transaction
  // fees on behalf of the client … `feePayer` affects only the client-originated channel funding
  // transactions (`open` and `topUp`)."
  if (options.feePayer) methodDetails.feePayer = true
  const defaults: Partial<TempoSessionRequest> = {
    currency: options.currency,
    recipient: payee.address,
    methodDetails,
  }
  if (options.suggestedDeposit !== undefined) defaults.suggestedDeposit = String(options.suggestedDeposit)
  if (options.unitType !== undefined) defaults.unitType = options.unitType

  // Each server the method is set up in hands over its store; batches run on a timer when
  // `settleInterval` is set, their errors go to that server's onError, and `close` settles what is left.
  const schedule = createSettlementSchedule(settlement.settle, options.settleInterval)

  return {
    definition: session,
    defaults,
    // A close finalizes the channel on chain once; a second close of the same channel fails there. So a
    // close may answer an already-used challenge (mppx's session manager closes on its last one).
    // A voucher is single-use by itself: "a voucher can only ever advance the channel state forward --
    // it cannot be 'replayed' to extract additional funds" (§Cross-Session Replay Prevention), and
    // "Resubmitting a voucher with the same `cumulativeAmount` as the highest accepted MUST return 200
    // OK" (§Idempotency). Each request is charged from `acceptedCumulative - spent` in the channel's one
    // atomic store operation, so the challenge of a session may carry many vouchers and a voucher costs
    // no second store round trip for the challenge id. `open` and `topUp` keep single-use challenges.
    reusesChallenge: (payload) => payload.action === 'close' || payload.action === 'voucher',
    // "Servers MUST reject `topUp` actions referencing an unknown or expired challenge `id` with problem
    // type `challenge-not-found`." A consumed challenge is no longer known either; a topUp payload that
    // fails the schema stays `malformed-credential`.
    challengeProblem: (payload, kind) =>
      kind !== 'malformed' && (payload as { action?: unknown } | null)?.action === 'topUp'
        ? sessionProblem(
            'challenge-not-found',
            'Challenge Not Found',
            402,
            'The topUp references an unknown or expired challenge; retry with a fresh one.',
          )
        : undefined,
    setup({ store, report, signal }) {
      closed = false
      schedule.attach({ store, report, signal })
    },
    async close() {
      await schedule.close()
      if (schedule.attached() === 0) {
        closed = true
        channels.wakeAll()
      }
    },
    verify,
    settle,
    settleChannels: schedule.settleNow,
    stop: schedule.stop,
  }
}

export type { TempoSessionPayload }
