import {
  anySignal,
  Challenge,
  ConfigurationError,
  Credential,
  type Method,
  mayHaveSettled,
  PaymentFailedError,
  PolicyError,
  Receipt,
  untilAborted,
} from '@mppkit/core/client'
import {
  type Address,
  BaseError,
  bytesToHex,
  ContractFunctionRevertedError,
  ContractFunctionZeroDataError,
  encodeFunctionData,
  erc20Abi,
  getAddress,
  type Hex,
  type LocalAccount,
  zeroAddress,
} from 'viem'
import { getBlockNumber, getChainId, getCode, getTransactionCount, readContract } from 'viem/actions'
import * as Channel from '../Channel.js'
import { escrowAbi } from '../internal/escrow.js'
import { isKnownEscrow } from '../internal/escrows.js'
import {
  checkAddressList,
  checkChainId,
  checkHttpUrl,
  checkMilliseconds,
  checkPositiveBigint,
  checkPositiveInteger,
  checkSigner,
  maxTimerMs,
} from '../internal/options.js'
import { defaultChainId, signCalls, type TempoWalletClient, walletClientFor } from '../internal/rpc.js'
import { session, type TempoSessionPayload, type TempoSessionRequest } from '../Methods.js'
import * as Voucher from '../Voucher.js'
import { sessionBookings } from './Bookings.js'
import { type Reclaim, reclaimChannel } from './Reclaim.js'
import {
  type ChannelStore,
  checkChannelStore,
  checkSaved,
  isOwnSaved,
  oneAtATime,
  type SavedChannel,
} from './Saved.js'

/** Options of {@link sessionClient}. */
export type SessionClientOptions = {
  /** The payer: funds channels and signs open/topUp transactions. */
  account: LocalAccount
  /** Signs vouchers when set (the channel's `authorizedSigner`); default: the payer. */
  signer?: LocalAccount
  rpcUrl: string
  /** The chain this client pays on (challenges for other chains are refused). */
  chainId?: number
  /**
   * The escrow contracts this client deposits into. The challenge names the escrow (the client approves
   * the deposit to it): a challenge naming any other escrow is refused (`PolicyError`, reason `escrow`)
   * before anything is signed. Without it, on a chain in `knownEscrows` (Tempo mainnet 4217,
   * Moderato 42431) only that chain's known escrows are accepted, refused the same way otherwise; set
   * `escrows` to deposit into another (it replaces the table). On any other chain (e.g. a local devnet),
   * an escrow address that holds no contract code (e.g. the server's own wallet, which could pull the
   * approved deposit) is refused, checked once per escrow; a hostile contract would still pass that check.
   */
  escrows?: readonly Address[]
  /** Deposit of a new channel (default: the challenge's `suggestedDeposit`, else 100 × `amount`). */
  deposit?: bigint
  /** Top-up size when the deposit runs out (default: the deposit). */
  topUp?: bigint
  /**
   * Requests each new voucher pays for (default 1: a new voucher per request). With k > 1 a voucher
   * authorizes k requests at the challenge's price, and the next k - 1 requests resend it ("Resubmitting
   * a voucher with the same `cumulativeAmount` as the highest accepted MUST return 200 OK"): one
   * signature per k requests on both sides, and at most k - 1 prices authorized ahead of service (the
   * server captures only what it served). A voucher is spendable once sent, so the prices it authorizes
   * ahead are booked in the paying client's ledger when it is signed (fewer of them when the budget
   * allows fewer), taken by the requests it then pays, and given back once a close settles below them.
   * The spec asks servers to take about 10 new vouchers per second per session at most, so a session
   * paying faster pre-authorizes.
   */
  voucherAhead?: number
  /**
   * Fetch used for voucher/top-up/close side requests, each within `sideTimeoutMs` (default: global
   * fetch).
   */
  fetch?: typeof fetch
  timeout?: number
  /**
   * Time limit in milliseconds of each side request this client makes on its own (default 10 000): the
   * HEAD for a fresh challenge before a voucher, top-up or close, and the credential itself (combined
   * with the caller's signal where there is one; the fetch is raced against it too, so a fetch that
   * ignores its signal cannot hold the client up). A positive, finite number (at most 2 147 483 647);
   * anything else is a `ConfigurationError` at creation. `closeAll` (and `mppkit close`) closes the
   * channels of one server one after another, so a server that accepts the connection and never answers
   * would otherwise hold up the closes of its other channels for good. A credential sent and not
   * answered in time fails with a `PaymentFailedError` (code `session-side-timeout`, `mayHaveSettled`):
   * its outcome is unknown, as an answer lost. A top-up stays pending (sent again as is, never signed anew); a close keeps the
   * channel (and its saved record), read on chain before it is paid on again or restored.
   */
  sideTimeoutMs?: number
  /**
   * Keeps this client's channels across restarts (e.g. `fileChannelStore(path)` from
   * `@mppkit/method-tempo/client/node`): a channel is saved before any credential that opens it, tops it
   * up or raises its cumulative amount is sent, and deleted once closed or taken back. A restarted client
   * (`restore()`, or its first payment) reads them back, checks each on chain before paying on it, and
   * pays on the same channel with vouchers above anything it signed before, instead of locking a new
   * deposit. Without it, a channel left open is found with `findOpenChannels` and taken back with
   * `reclaimChannel`, and a new client opens a new channel.
   */
  channelStore?: ChannelStore
  /**
   * Called before a top-up is signed (a channel's deposit ran out, or a voucher asked for more), once
   * the policy's `maxDeposit` and `maxLocked` allow it, e.g. to show it or ask a person: throwing (a
   * `PolicyError` reason `declined`) refuses it, nothing signed. Also called, with `resend: true`,
   * before a top-up signed earlier whose outcome is unknown is sent again as is (nothing new is signed).
   */
  beforeTopUp?: (topUp: TopUpIntent) => void | Promise<void>
}

/** A top-up about to be signed (see {@link SessionClientOptions.beforeTopUp}). */
export type TopUpIntent = {
  channelId: Hex
  /** The URL the top-up is sent to (the channel's server). */
  url: string
  escrow: Address
  currency: Address
  /** The payee, when known (a channel restored from an older record may not name it). */
  recipient?: Address
  /** Added to the deposit, in base units. */
  amount: bigint
  /** The channel's deposit before and after the top-up. */
  deposit: bigint
  newDeposit: bigint
  /** A top-up signed earlier, sent again as is (its first sending got no answer, or a 5xx). */
  resend?: boolean
}

/** Client-side state of one channel. */
export type ChannelState = {
  channelId: Hex
  escrow: Address
  /** The channel's token: a top-up approves this one, whatever a challenge names. */
  currency: Address
  chainId: number
  deposit: bigint
  /** Highest cumulative amount signed. */
  cumulative: bigint
  /** Spent per the server's last receipt. */
  spent: bigint
  url: string
  /** With `voucherAhead`: what the server will have charged for the requests this client paid so far. */
  charged?: bigint
  /** With `voucherAhead`: the last voucher signed (resent while it covers the next request). */
  last?: { cumulative: bigint; signature: Hex }
  /**
   * The channel's own signed open transaction and its nonce: the channel is presented with it again
   * (an `open` the server finds on chain and does not broadcast) to a server that no longer knows it,
   * and it is sent again, not replaced by a new channel, while it may still be mined.
   */
  open: { transaction: Hex; nonce: number; authorizedSigner?: Address }
  /**
   * A top-up sent whose outcome is unknown (its answer lost, or a 5xx): until the chain shows its nonce
   * used, the same signed transaction is sent again, never a new one signed (one nonce: at most one of
   * them is ever mined).
   */
  topUpPending?: { transaction: Hex; nonce: number; amount: bigint }
  /** A new channel no receipt confirmed yet: checked on-chain before it is paid on again. */
  opening?: boolean
  /**
   * The last payment or side request on the channel got no receipt (refused, e.g. a 410, or its answer
   * lost): the channel is read on chain before the next payment, at most once a second.
   */
  unanswered?: boolean
  /** When (ms) the channel was last read on chain for `opening` / `unanswered`. */
  checkedAt?: number
  /** The payee and salt the channel id was computed with (kept for `channelStore`). */
  recipient?: Address
  salt?: Hex
  /** Read back from `channelStore`: its next payment presents it with its own open. */
  restored?: boolean
}

/** The outcome of closing one channel in {@link SessionClient.closeAll}. */
export type CloseResult = {
  channelId: Hex
  /** The URL the channel was last paid on (its close goes there). */
  url: string
  /** True when the server answered the close with a 2xx (the channel is then forgotten). */
  ok: boolean
  /** The server's answer, when there was one. */
  response?: Response
  /**
   * Why the close failed without an answer (an unreachable server, a signing error, no answer within
   * `sideTimeoutMs`: code `session-side-timeout`). With `mayHaveSettled`, the close was sent and its
   * outcome is unknown: the channel is kept, and read on chain before it is paid on again or restored.
   */
  error?: unknown
}

/** Options of {@link SessionClient.closeAll}. */
export type CloseAllOptions = {
  /** Closes only the channels it returns true for (default: every channel the client holds). */
  filter?: (channel: ChannelState) => boolean
}

/**
 * A record of this payer and signer that {@link SessionClient.restore} left in `channelStore` as it is,
 * neither restored nor deleted: nothing is paid or closed on it, and a new channel is never saved over it.
 */
export type SkippedChannel = {
  /** The record's key in the store. */
  key: string
  /**
   * `invalid`: not a valid record (not an object, a wrong or missing field, an unknown version, a channel
   * id its own fields do not make, or not under its own chain's key); `chain`: a channel of another chain
   * than the one this client's RPC serves; `escrow`: in an escrow this client does not deposit into (see
   * {@link SessionClientOptions.escrows}), or an address whose contract does not answer `getChannel`;
   * `duplicate`: a channel also saved under another key (or already held by this client), restored once
   * from the record with the highest cumulative amount.
   */
  reason: 'invalid' | 'chain' | 'escrow' | 'duplicate'
  /** What is wrong, after the record's name ("is not a valid record (v)"): fields, never their values. */
  problem: string
  /** The channel, escrow and chain the record names (a valid record of another chain or escrow). */
  channelId?: Hex
  escrow?: Address
  chainId?: number
  /** The origin of the URL the record names, when it names one (its channel's server). */
  origin?: string
}

/** Options of a side request ({@link SessionClient.voucher}, `topUp`, `close`). */
export type SideRequestOptions = {
  /** Aborts the side request (combined with `sideTimeoutMs`). */
  signal?: AbortSignal
}

/** The session client method plus the actions a payer takes outside a paid request. */
export type SessionClient = Method.Client<typeof session> & {
  /** Channels by `realm|escrow|recipient|currency`. */
  readonly channels: Map<string, ChannelState>
  /**
   * Sends a voucher for `cumulativeAmount` (HEAD to the resource), e.g. on `payment-need-voucher`. What
   * it authorizes beyond the last voucher is booked in the paying client's policy before anything is
   * saved, signed or sent (a `PolicyError` leaves the channel and its saved record as they were).
   */
  voucher(url: string, cumulativeAmount: bigint, options?: SideRequestOptions): Promise<Response>
  /** Adds `amount` to the channel deposit through the server (HEAD to the resource). */
  topUp(url: string, amount: bigint, options?: SideRequestOptions): Promise<Response>
  /**
   * Closes the channel of `url` (or the one named `channelId`, which `url`'s server must hold)
   * cooperatively with a voucher for the spent amount; the server refunds the rest. A close not answered
   * within `sideTimeoutMs` fails with a `PaymentFailedError` (code `session-side-timeout`,
   * `mayHaveSettled`): its outcome is unknown, the channel is kept (and its saved record), and read on
   * chain before it is paid on again or restored.
   */
  close(url: string, channelId?: Hex, options?: SideRequestOptions): Promise<Response>
  /**
   * Closes every channel this client holds (or those `filter` keeps), as {@link SessionClient.close}
   * does (e.g. when an agent is done): one result per channel, in the order of `channels`, a failure
   * reported in its result rather than thrown, so the other channels are still closed. Channels of
   * different servers (origins) are closed concurrently, four at a time; the channels of one server one
   * after another. A channel whose close failed stays held; its deposit comes back through a later close
   * or the payer's forced close ({@link SessionClient.reclaim}). Each close waits at most `sideTimeoutMs`
   * per request for its server: a server that never answers holds up only its own channels' closes, and
   * its result's `error` says so (code `session-side-timeout`; with `mayHaveSettled` once the close was
   * sent: its outcome is unknown). Payments and other side requests of this client wait until it ends.
   */
  closeAll(options?: CloseAllOptions): Promise<CloseResult[]>
  /**
   * Takes the channel of `url` back without the server (one that went away, or refuses to close): the
   * payer's forced close on chain (see {@link reclaimChannel}). The first call requests it and this
   * client forgets the channel (the escrow takes no more vouchers on it; a later payment to that server
   * opens a new one); withdraw after `withdrawableAt` with `reclaimChannel` and the ids it returns.
   */
  reclaim(url: string): Promise<Reclaim>
  /**
   * Reads back the channels `channelStore` kept (once; the first payment or side request does it too)
   * and returns them. Each is read on chain before it is paid on again: one closed since is dropped, one
   * whose open may still be mined is presented with that same open. Call it before the first payment so
   * that the policy's quote sees the channel (no new deposit). A record of this payer and signer that
   * is not valid (or names a channel its own fields do not make), or is of another chain or escrow, is
   * skipped, named in {@link SessionClient.skipped} and left in the store as it is, so that one bad record
   * never stops the others from being paid on or closed; a payment whose new channel would be saved over
   * a skipped record is refused (`ConfigurationError`, nothing signed) until it is fixed or removed.
   * Records of another payer or signer are left alone.
   */
  restore(): Promise<ChannelState[]>
  /**
   * The records of this payer and signer that {@link SessionClient.restore} skipped (see
   * {@link SkippedChannel}), to show them: empty before it ran.
   */
  skipped(): SkippedChannel[]
}

/**
 * How often (ms) a channel whose payments get no receipt is read on chain: a payment refused (410) or
 * lost is followed by a check, while payments running concurrently (not answered yet) cost at most one
 * read a second.
 */
const recheckInterval = 1_000

/** Default of {@link SessionClientOptions.sideTimeoutMs}. */
const defaultSideTimeoutMs = 10_000

/**
 * How many servers `closeAll` closes channels with at once: "The channel is the unit of concurrency"
 * (draft-tempo-session-00 §Concurrency Model), so channels of different servers need not wait for each
 * other, while a client closing many channels opens only a few connections at a time.
 */
const closeConcurrency = 4

/** The origin of `url` as errors name it (a side request's URL may carry a token in its path or query). */
const originOf = (url: string) => {
  try {
    return new URL(url).origin
  } catch {
    return 'the server'
  }
}

const keyOf = (challenge: Challenge.Challenge, request: TempoSessionRequest) =>
  `${challenge.realm}|${request.methodDetails.escrowContract}|${request.recipient}|${request.currency}`.toLowerCase()

// Checked when the client is created, naming the option: a `deposit` of 0n (or under the price) failed
// every request, and a `topUp` of 0n served one request then refused every top-up, the deposit locked
// in the channel until it was closed.
function checkSessionClientOptions(options: SessionClientOptions): void {
  const scope = 'tempo session'
  if (!options || typeof options !== 'object')
    throw new ConfigurationError(`${scope}: options must be an object with at least an account and an rpcUrl`)
  checkSigner(scope, 'account', options.account, ['signTransaction', 'signTypedData'], true)
  checkSigner(scope, 'signer', options.signer, ['signTypedData'], false)
  checkHttpUrl(scope, 'rpcUrl', options.rpcUrl, true)
  checkChainId(scope, options.chainId)
  checkMilliseconds(scope, 'timeout', options.timeout)
  // The same bounds as the Lightning session client's option: a timer takes at most 2^31 - 1 ms.
  const side = options.sideTimeoutMs
  if (side !== undefined && (typeof side !== 'number' || !(side > 0) || !(side <= maxTimerMs)))
    throw new ConfigurationError(
      `${scope}: sideTimeoutMs must be a positive, finite number of milliseconds (at most ${maxTimerMs}), got ${typeof side === 'number' ? side : typeof side}`,
    )
  checkPositiveBigint(scope, 'deposit', options.deposit)
  checkPositiveBigint(scope, 'topUp', options.topUp)
  checkPositiveInteger(scope, 'voucherAhead', options.voucherAhead, 'number of requests, at least 1')
  checkChannelStore(scope, options.channelStore)
  checkAddressList(scope, 'escrows', options.escrows)
  if (options.fetch !== undefined && typeof options.fetch !== 'function')
    throw new ConfigurationError(`${scope}: fetch must be a function, got ${typeof options.fetch}`)
  if (options.beforeTopUp !== undefined && typeof options.beforeTopUp !== 'function')
    throw new ConfigurationError(
      `${scope}: beforeTopUp must be a function, got ${typeof options.beforeTopUp}`,
    )
}

/**
 * Creates the client side of `tempo/session` (v1 escrow): the first payment opens a channel (a signed
 * approve+open the server broadcasts, with a first voucher), later ones send cumulative EIP-712 vouchers,
 * a deposit that runs out is topped up through the server, and `close()` settles cooperatively.
 *
 * @example
 * ```ts
 * const sessions = tempo.session({ account, rpcUrl, deposit: 1_000_000n, escrows: [escrow] })
 * const client = Client.create({ methods: [sessions], policy: { maxDeposit: 5_000_000n } })
 * await client.fetch(url); await sessions.close(url)
 * ```
 * @see draft-tempo-session-00
 */
export function sessionClient(options: SessionClientOptions): SessionClient {
  checkSessionClientOptions(options)
  const { account } = options
  const signer = options.signer ?? account
  const voucherAhead = options.voucherAhead ?? 1
  const ahead = BigInt(voucherAhead)
  const channels = new Map<string, ChannelState>()
  const bookings = sessionBookings(options.chainId)
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  const sideTimeoutMs = Math.ceil(options.sideTimeoutMs ?? defaultSideTimeoutMs)
  /**
   * One side request, within `sideTimeoutMs` (and `caller`'s signal, if any): the fetch gets the
   * combined signal, and is raced against it too, so that a fetch that does not honour it cannot hold
   * the client up either. Resolves `timedOut` instead of throwing when the time limit passed (a caller's
   * abort, and any other failure, is thrown as the fetch threw it).
   */
  const sideFetch = async (
    url: string,
    init: RequestInit,
    caller: AbortSignal | undefined,
  ): Promise<{ response: Response; signal: AbortSignal } | { timedOut: true }> => {
    const timeout = AbortSignal.timeout(sideTimeoutMs)
    const signal = caller ? anySignal([timeout, caller]) : timeout
    try {
      return { response: await untilAborted(signal, doFetch(url, { ...init, signal })), signal }
    } catch (error) {
      if (timeout.aborted && !caller?.aborted) return { timedOut: true }
      throw error
    }
  }
  const wallets = new Map<number, TempoWalletClient>()
  const walletFor = (chainId: number) => {
    let wallet = wallets.get(chainId)
    if (!wallet) {
      wallet = walletClientFor({ rpcUrl: options.rpcUrl, chainId, account, timeout: options.timeout })
      wallets.set(chainId, wallet)
    }
    return wallet
  }
  let queue: Promise<unknown> = Promise.resolve()
  const serialized = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn)
    queue = next.catch(() => {})
    return next
  }

  // `channelStore`: keys `payer|signer|chainId|channel key` (a store may hold several payers', signers'
  // and chains' channels; this client touches only its own).
  // One store operation at a time: closes of different servers run concurrently.
  const store = options.channelStore && oneAtATime(options.channelStore)
  const storePrefix = `${account.address.toLowerCase()}|${signer.address.toLowerCase()}|`
  const storeKey = (state: { chainId: number }, key: string) => `${storePrefix}${state.chainId}|${key}`
  const keyFor = (state: ChannelState) => {
    for (const [key, value] of channels) if (value === state) return key
    return undefined
  }
  const toSaved = (
    state: ChannelState,
    changes: { cumulative?: bigint; topUpPending?: ChannelState['topUpPending'] },
  ): SavedChannel | undefined => {
    if (!state.recipient || !state.salt) return undefined
    const pending = 'topUpPending' in changes ? changes.topUpPending : state.topUpPending
    return {
      v: 1,
      payer: getAddress(account.address),
      channelId: state.channelId,
      escrow: getAddress(state.escrow),
      currency: getAddress(state.currency),
      recipient: getAddress(state.recipient),
      salt: state.salt,
      chainId: state.chainId,
      deposit: String(state.deposit),
      cumulative: String(changes.cumulative ?? state.cumulative),
      spent: String(state.spent),
      url: state.url,
      open: {
        transaction: state.open.transaction,
        nonce: state.open.nonce,
        ...(state.open.authorizedSigner ? { authorizedSigner: getAddress(state.open.authorizedSigner) } : {}),
      },
      ...(pending
        ? {
            topUpPending: {
              transaction: pending.transaction,
              nonce: pending.nonce,
              amount: String(pending.amount),
            },
          }
        : {}),
    }
  }
  /**
   * Saves the channel (with `changes` it is about to make: write-ahead) before a credential that depends
   * on it leaves: a restarted client must never sign below a voucher it sent, nor sign a second top-up
   * or open beside one that may still be mined. A failed save sends nothing.
   */
  const persist = async (
    state: ChannelState,
    changes: { cumulative?: bigint; topUpPending?: ChannelState['topUpPending'] } = {},
  ) => {
    if (!store) return
    const key = keyFor(state)
    const saved = toSaved(state, changes)
    if (key === undefined || !saved) return
    try {
      await store.save(storeKey(state, key), saved)
    } catch (cause) {
      throw new PaymentFailedError(
        'tempo session: could not save the channel to channelStore; nothing was sent',
        { cause },
      )
    }
  }
  /**
   * Drops a channel (closed, gone, taken back) from this client and from its store. Its deposit stays
   * held against the policy's `maxLocked` with `keepLock` (a forced close requested: the escrow holds it
   * until withdrawn; a cooperative close not yet seen finalized).
   */
  const forget = async (state: ChannelState, keepLock = false) => {
    const key = keyFor(state)
    for (const [k, value] of channels) if (value === state) channels.delete(k)
    if (!keepLock) bookings.unlock(state)
    // A record left behind (the delete failed) is read on chain when restored, found closed and dropped.
    if (store && key !== undefined) await store.delete(storeKey(state, key)).catch(() => {})
  }
  /** The records the last `load` skipped, and their problems by key (a new channel is never saved over one). */
  const skipped: SkippedChannel[] = []
  const kept = new Map<string, string>()
  const load = async (): Promise<ChannelState[]> => {
    skipped.length = 0
    kept.clear()
    if (!store) return []
    let records: Record<string, unknown>
    try {
      records = (await store.load()) ?? {}
    } catch (cause) {
      if (cause instanceof ConfigurationError) throw cause
      throw new PaymentFailedError('tempo session: could not read the channelStore; nothing was paid', {
        cause,
      })
    }
    // A record that cannot be read (or this client cannot pay on) is named and skipped, never deleted,
    // and never stops the others: each is its own channel, closed or paid on without the rest.
    const skip = (key: string, reason: SkippedChannel['reason'], problem: string, value?: unknown) => {
      const url = (value as { url?: unknown } | null)?.url
      let origin: string | undefined
      try {
        if (typeof url === 'string' && /^https?:$/.test(new URL(url).protocol)) origin = new URL(url).origin
      } catch {}
      const saved = reason === 'invalid' ? undefined : (value as SavedChannel)
      skipped.push({
        key,
        reason,
        problem,
        ...(saved ? { channelId: saved.channelId, escrow: saved.escrow, chainId: saved.chainId } : {}),
        ...(origin === undefined ? {} : { origin }),
      })
      kept.set(key, problem)
    }
    const own: { stored: string; key: string; saved: SavedChannel }[] = []
    for (const [stored, value] of Object.entries(records)) {
      if (!stored.startsWith(storePrefix)) continue
      const [, chain, key] = /^(\d+)\|(.+)$/s.exec(stored.slice(storePrefix.length)) ?? []
      const checked = checkSaved(value)
      if (!checked.ok) {
        skip(stored, 'invalid', checked.problem, value)
        continue
      }
      const { saved } = checked
      if (chain === undefined || key === undefined || Number(chain) !== saved.chainId) {
        skip(stored, 'invalid', "is not under its own chain's key", value)
        continue
      }
      if (!isOwnSaved(saved, account.address, signer.address) || channels.has(key)) continue
      own.push({ stored, key, saved })
    }
    // One channel, one state: a record copied under a second key would have two states sign vouchers for
    // one channel from two cumulative amounts (and close it twice). The record with the highest
    // cumulative amount (then spent) is the latest, and is the one restored; the others are named and
    // skipped, left in the store as they are, as is a record of a channel this client already holds.
    const held = new Map<string, string>()
    for (const [k, state] of channels) held.set(state.channelId.toLowerCase(), k)
    const latest = new Map<string, (typeof own)[number]>()
    for (const entry of own) {
      const id = entry.saved.channelId.toLowerCase()
      const best = latest.get(id)
      const cumulative = BigInt(entry.saved.cumulative)
      if (
        !best ||
        cumulative > BigInt(best.saved.cumulative) ||
        (cumulative === BigInt(best.saved.cumulative) && BigInt(entry.saved.spent) > BigInt(best.saved.spent))
      )
        latest.set(id, entry)
    }
    const unique = own.filter((entry) => {
      const id = entry.saved.channelId.toLowerCase()
      const holder = held.get(id)
      const restored = latest.get(id)!
      if (holder === undefined && restored === entry) return true
      skip(
        entry.stored,
        'duplicate',
        holder === undefined
          ? `names channel ${entry.saved.channelId}, also saved under ${JSON.stringify(restored.stored)}, which is restored (the highest cumulative amount)`
          : `names channel ${entry.saved.channelId}, which this client already holds`,
        entry.saved,
      )
      return false
    })
    if (unique.length === 0) return []
    // Only the chain this client reads: a channel of another chain read through this RPC would look
    // gone (and be forgotten) while still open there. Those records are left alone (and named).
    let chainId = options.chainId
    if (chainId === undefined) {
      try {
        chainId = await getChainId(walletFor(defaultChainId))
      } catch (cause) {
        throw new PaymentFailedError('tempo session: could not read the RPC chain id to restore channels', {
          cause,
        })
      }
    }
    const restored: ChannelState[] = []
    for (const { stored, key, saved } of unique) {
      if (saved.chainId !== chainId) {
        skip(
          stored,
          'chain',
          `is a channel of chain ${saved.chainId}, not of chain ${chainId} this client's RPC serves (close it through an RPC of its chain)`,
          saved,
        )
        continue
      }
      // The escrows this client deposits into are the only ones it signs vouchers for (a close too).
      const refused = escrowRefused(chainId, saved.escrow)
      if (refused) {
        skip(stored, 'escrow', `is in escrow ${saved.escrow}, ${refused}`, saved)
        continue
      }
      const state: ChannelState = {
        channelId: saved.channelId,
        escrow: saved.escrow,
        currency: saved.currency,
        chainId: saved.chainId,
        deposit: BigInt(saved.deposit),
        cumulative: BigInt(saved.cumulative),
        spent: BigInt(saved.spent),
        url: saved.url,
        open: {
          transaction: saved.open.transaction,
          nonce: saved.open.nonce,
          ...(saved.open.authorizedSigner ? { authorizedSigner: saved.open.authorizedSigner } : {}),
        },
        ...(saved.topUpPending
          ? {
              topUpPending: {
                transaction: saved.topUpPending.transaction,
                nonce: saved.topUpPending.nonce,
                amount: BigInt(saved.topUpPending.amount),
              },
            }
          : {}),
        recipient: saved.recipient,
        salt: saved.salt,
        // Presented with its own open on its next payment, which a server that still knows the channel
        // and one that lost it both accept.
        restored: true,
      }
      // Read on chain before anything is paid on it: closed since (or its open can never be mined any
      // more) is dropped from the store; an open not mined yet is sent again as is, never a second one.
      let now: Awaited<ReturnType<typeof standing>>
      try {
        now = await standing(state)
      } catch (error) {
        // The node answered, but not as an escrow does (no contract there, or getChannel reverted): not
        // a channel this client can read. Anything else (the RPC unreachable) stops the restore, to be
        // tried again: a channel skipped for it could be replaced by a new one.
        if (!notAnEscrow(error)) throw error
        skip(
          stored,
          'escrow',
          `is in escrow ${saved.escrow}, which does not answer getChannel as an escrow does`,
          saved,
        )
        continue
      }
      if (now === 'gone' || now === 'closing') {
        await store.delete(stored).catch(() => {})
        continue
      }
      if (now === 'pending') state.opening = true
      // What the server spent since the last save is unknown: with `voucherAhead`, the next request signs
      // a voucher above everything signed (what it authorized ahead and did not use stays spendable by
      // later requests, and a close captures only what the server spent).
      if (ahead > 1n) state.charged = state.cumulative
      channels.set(key, state)
      restored.push(state)
    }
    return restored
  }
  let restoring: Promise<ChannelState[]> | undefined
  const restore = () => {
    restoring ??= load().catch((error: unknown) => {
      skipped.length = 0
      kept.clear()
      restoring = undefined
      throw error
    })
    return restoring
  }

  // "When `feePayer: true`: Clients MUST sign with `fee_payer_signature` set to `0x00` and `fee_token`
  // empty or `0x80` (RLP null)"
  const signTransaction = (
    chainId: number,
    calls: { to: Address; data: Hex }[],
    gas: bigint,
    request: TempoSessionRequest,
  ) => signCalls(walletFor(chainId), calls, gas, request.methodDetails.feePayer === true)

  // The chain a challenge pays on: "Tempo chain ID (default: 4217)", unless this client names its own.
  const chainOf = (request: TempoSessionRequest) =>
    request.methodDetails.chainId ?? options.chainId ?? defaultChainId
  const checkChain = (request: TempoSessionRequest) => {
    const chainId = chainOf(request)
    if (options.chainId !== undefined && chainId !== options.chainId)
      throw new PaymentFailedError(
        `tempo session: challenge for chain ${chainId}, this client pays on ${options.chainId}`,
      )
    // "A client MUST NOT answer a challenge using a different session protocol than the one indicated"
    if ((request.methodDetails.sessionProtocol ?? 'v1') !== 'v1')
      throw new PaymentFailedError(
        'tempo session: only v1 (escrow contract) sessions are supported by this client',
      )
    return chainId
  }

  const allowedEscrows = options.escrows?.map((escrow) => escrow.toLowerCase())
  // "escrowContract" is the server's word: with `escrows`, only those are ever approved a deposit;
  // without it, on a chain with known escrows (mainnet, Moderato), only those. Says why this client does
  // not deposit into (nor sign a restored channel's close for) `escrow` on `chainId`; undefined when it does.
  const escrowRefused = (chainId: number, escrow: string) => {
    if (allowedEscrows)
      return allowedEscrows.includes(escrow.toLowerCase())
        ? undefined
        : 'not one of the escrows this client deposits into'
    return isKnownEscrow(chainId, escrow) === false ? `not a known escrow of chain ${chainId}` : undefined
  }
  const checkEscrow = (request: TempoSessionRequest) => {
    const escrow = request.methodDetails.escrowContract
    const refused = escrowRefused(chainOf(request), escrow)
    if (refused)
      throw new PolicyError(
        'escrow',
        `tempo session: the challenge names escrow ${escrow}, ${refused}${allowedEscrows ? '' : '; nothing was signed (pass `escrows` to deposit into it)'}`,
      )
  }
  /**
   * Whether a chain read failed because the node answered, but not as an escrow does (no contract at the
   * address, or `getChannel` reverted), rather than because the RPC could not be reached.
   */
  const notAnEscrow = (error: unknown) => {
    const cause = (error as { cause?: unknown } | undefined)?.cause
    return (
      cause instanceof BaseError &&
      cause.walk(
        (inner) =>
          inner instanceof ContractFunctionRevertedError || inner instanceof ContractFunctionZeroDataError,
      ) !== null
    )
  }
  // Without `escrows`, on a chain with no known escrows (e.g. a devnet), an escrow must at least be a
  // contract: an address without code (the server's own wallet) could pull the approved deposit with
  // transferFrom. Checked once per escrow and chain.
  const contracts = new Set<string>()
  const checkEscrowCode = async (chainId: number, escrow: Address) => {
    const key = `${chainId}|${escrow.toLowerCase()}`
    if (allowedEscrows || isKnownEscrow(chainId, escrow) !== undefined || contracts.has(key)) return
    let code: Hex | undefined
    try {
      code = await getCode(walletFor(chainId), { address: escrow })
    } catch (cause) {
      throw new PaymentFailedError('tempo session: could not read the escrow contract on-chain', { cause })
    }
    if (code === undefined || code === '0x')
      throw new PaymentFailedError(
        `tempo session: the challenge names escrow ${escrow}, which holds no contract code; nothing was signed`,
      )
    contracts.add(key)
  }
  // A channel whose deposit cannot pay one request would be opened for nothing: on every voucher the
  // server "MUST: … Verify `cumulativeAmount <= channel.deposit`". Refused before anything is signed,
  // so the client may pay another challenge.
  const checkDepositCoversPrice = (deposit: bigint, price: bigint) => {
    if (deposit < price)
      throw new PaymentFailedError(
        `tempo session: a deposit of ${deposit} is below the price ${price} of one request; nothing was signed (raise \`deposit\`)`,
      )
  }
  // A side challenge fits a channel when it names the channel's token, escrow and chain.
  const fits = (state: ChannelState, request: TempoSessionRequest) =>
    request.currency.toLowerCase() === state.currency.toLowerCase() &&
    request.methodDetails.escrowContract.toLowerCase() === state.escrow.toLowerCase() &&
    chainOf(request) === state.chainId

  const signVoucher = (state: ChannelState, cumulativeAmount: bigint) =>
    Voucher.sign(signer, {
      chainId: state.chainId,
      escrow: state.escrow,
      channelId: state.channelId,
      cumulativeAmount,
    })

  /** What becomes of a credential sent and not answered within `sideTimeoutMs`, by action. */
  const afterTimeout: Record<TempoSessionPayload['action'], string> = {
    voucher: 'the channel is read on chain before its next payment',
    topUp:
      'it stays pending and is sent again as is (never signed anew) before the channel is topped up or paid on again',
    close:
      'the channel is kept (and its saved record), and read on chain before it is paid on again or restored',
    open: 'the channel is read on chain before its next payment',
  }

  // A side request (voucher, topUp, close) needs its own challenge: HEAD the resource, answer its 402.
  // Vouchers go out as HEAD ("clients MAY use `HEAD` for pure voucher top-ups"); topUp and close as GET,
  // so a refusal keeps its problem body (the server answers them without running the route handler).
  // "Clients MUST NOT submit credentials for expired challenges": an expired one is refused, and with
  // `state` (a top-up, which approves a token) only a challenge for that channel's token, escrow and
  // chain is answered.
  //
  // Each request within `sideTimeoutMs` (and `caller`'s signal): a HEAD not answered in time sent
  // nothing; a credential not answered in time is an unknown outcome (`mayHaveSettled`), as one whose
  // answer was lost, and so is one the caller aborted once it was sent.
  const action = async (
    url: string,
    build: (challenge: Challenge.Challenge, request: TempoSessionRequest) => Promise<TempoSessionPayload>,
    method: 'HEAD' | 'GET' = 'GET',
    state?: ChannelState,
    caller?: AbortSignal,
  ) => {
    const head = await sideFetch(url, { method: 'HEAD' }, caller).catch((cause: unknown) => {
      throw new PaymentFailedError(`tempo session: HEAD ${url} failed`, { cause })
    })
    if ('timedOut' in head)
      throw new PaymentFailedError(
        `tempo session: ${originOf(url)} did not answer HEAD within ${sideTimeoutMs} ms (sideTimeoutMs); nothing was sent`,
        { code: 'session-side-timeout' },
      )
    const first = head.response
    if (first.status !== 402)
      throw new PaymentFailedError(`tempo session: expected a 402 from HEAD ${url}, got ${first.status}`)
    const offered = Challenge.parseAll(first.headers.get('www-authenticate') ?? '').flatMap((challenge) => {
      if (challenge.method !== 'tempo' || challenge.intent !== 'session') return []
      const parsed = session.request.safeParse(challenge.request)
      return parsed.success ? [{ challenge, request: parsed.data }] : []
    })
    if (offered.length === 0)
      throw new PaymentFailedError('tempo session: no tempo session challenge offered')
    const current = offered.filter(
      ({ challenge }) => challenge.expires === undefined || Date.parse(challenge.expires) > Date.now(),
    )
    if (current.length === 0)
      throw new PaymentFailedError(
        `tempo session: the challenge from HEAD ${url} has expired; nothing was sent`,
      )
    const fitting = state ? current.filter(({ request }) => fits(state, request)) : current
    const [chosen] = fitting
    if (!chosen)
      throw new PaymentFailedError(
        `tempo session: no challenge from HEAD ${url} names this channel's currency, escrow and chain; nothing was signed`,
      )
    const { challenge } = chosen
    const payload = await build(challenge, chosen.request)
    // Sent, no answer (or none in time): the server may have acted on it (broadcast a top-up, accepted
    // a voucher, closed the channel).
    const sent = await sideFetch(
      url,
      { method, headers: { authorization: Credential.format({ challenge, payload }) } },
      caller,
    ).catch((cause: unknown) => {
      throw new PaymentFailedError(`tempo session: no answer to the ${payload.action} sent to ${url}`, {
        cause,
        mayHaveSettled: true,
      })
    })
    if ('timedOut' in sent)
      throw new PaymentFailedError(
        `tempo session: ${originOf(url)} did not answer the ${payload.action} of channel ${payload.channelId} within ${sideTimeoutMs} ms (sideTimeoutMs): its outcome is unknown; ${afterTimeout[payload.action]}`,
        { code: 'session-side-timeout', mayHaveSettled: true },
      )
    let response = sent.response
    if (response.status >= 300 && response.status <= 599) {
      // A refusal's problem details (read by a close answered 402) within the same time limit: a server
      // that sends the head and never the body holds nothing up; its status still tells.
      const body = await untilAborted(sent.signal, response.arrayBuffer()).catch(() => null)
      response = new Response(response.status === 304 ? null : body, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      })
      Object.defineProperty(response, 'url', { value: sent.response.url })
    }
    const header = response.headers.get('payment-receipt')
    if (response.ok && header) {
      try {
        client.onReceipt?.(Receipt.parse(header), challenge)
      } catch {}
    }
    return response
  }

  // The channel a URL paid with: same URL first, else one opened on the same origin (or, with
  // `channelId`, that channel).
  const stateFor = (url: string, channelId?: Hex) => {
    if (channelId !== undefined) {
      for (const state of channels.values())
        if (state.channelId.toLowerCase() === channelId.toLowerCase()) return state
      throw new ConfigurationError(`tempo session: no open channel ${channelId}`)
    }
    for (const state of channels.values()) if (state.url === url) return state
    const origin = new URL(url).origin
    for (const state of channels.values()) if (new URL(state.url).origin === origin) return state
    throw new ConfigurationError(`tempo session: no open channel for ${url}`)
  }

  // A side request refused, or without an answer: the channel is read on chain before the next payment.
  const unanswered = (state: ChannelState) => {
    state.unanswered = true
    delete state.checkedAt
  }

  /**
   * The channel as the chain has it, and how many protocol nonces the payer has used, both at one block:
   * a transaction whose nonce is not used yet may still be mined; once it is used, it never will be. A
   * top-up whose nonce is used is settled (mined, or replaced): the deposit is then the chain's.
   */
  const readChain = async (state: ChannelState) => {
    const wallet = walletFor(state.chainId)
    let read: {
      channel: {
        payer: Address
        deposit: bigint
        settled: bigint
        finalized: boolean
        closeRequestedAt: bigint
      }
      used: number
    }
    try {
      const blockNumber = await getBlockNumber(wallet, { cacheTime: 0 })
      const [channel, used] = await Promise.all([
        readContract(wallet, {
          address: state.escrow,
          abi: escrowAbi,
          functionName: 'getChannel',
          args: [state.channelId],
          blockNumber,
        }),
        getTransactionCount(wallet, { address: account.address, blockNumber }),
      ])
      read = { channel, used }
    } catch (cause) {
      throw new PaymentFailedError('tempo session: could not read the channel on-chain', { cause })
    }
    if (read.channel.deposit > state.deposit) state.deposit = read.channel.deposit
    if (state.topUpPending && read.used > state.topUpPending.nonce) {
      delete state.topUpPending
      // Its nonce used at this block: landed (the deposit grew by it) or never will (replaced, reverted).
      bookings.topUpSettled(state, read.channel.deposit)
    }
    return read
  }

  /**
   * Where a channel that no receipt vouches for stands on chain: `open` (open, no close requested: it
   * may be presented again), `pending` (its open is not mined and may still be: that same open is sent
   * again, never a second channel opened beside it) or `gone` (finalized, closing, or its open can never
   * be mined any more: dropped). "410 Gone: Channel finalized or not found"
   */
  const standing = async (state: ChannelState): Promise<'open' | 'pending' | 'gone' | 'closing'> => {
    const { channel, used } = await readChain(state)
    state.checkedAt = Date.now()
    if (channel.payer === zeroAddress) return used > state.open.nonce ? 'gone' : 'pending'
    if (channel.finalized) return 'gone'
    // A forced close requested: no voucher is taken any more, the deposit stays until withdrawn.
    if (channel.closeRequestedAt !== 0n) return 'closing'
    state.opening = false
    return 'open'
  }

  const needsCheck = (state: ChannelState) =>
    state.opening === true ||
    (state.unanswered === true &&
      (state.checkedAt === undefined || Date.now() - state.checkedAt >= recheckInterval))

  const topUpPayload = (state: ChannelState, transaction: Hex, amount: bigint) =>
    ({
      action: 'topUp',
      type: 'transaction',
      channelId: state.channelId,
      transaction,
      additionalDeposit: String(amount),
    }) as const

  const signTopUp = (state: ChannelState, amount: bigint, request: TempoSessionRequest) =>
    signTransaction(
      state.chainId,
      [
        {
          to: state.currency,
          data: encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [state.escrow, amount] }),
        },
        {
          to: state.escrow,
          data: encodeFunctionData({
            abi: escrowAbi,
            functionName: 'topUp',
            args: [state.channelId, amount],
          }),
        },
      ],
      800_000n,
      request,
    )

  /**
   * Settles a top-up whose outcome is unknown before any other: found on chain, or, while its nonce is
   * unused (not mined yet, or never broadcast), the very same signed transaction sent again through the
   * server. Nothing is signed or booked again: the original booking stands for it. Returns the answer
   * to that re-send when it leaves the top-up still pending (a refusal); undefined once it is settled.
   */
  const topUpIntent = (state: ChannelState, url: string, amount: bigint, resend = false): TopUpIntent => ({
    channelId: state.channelId,
    url,
    escrow: state.escrow,
    currency: state.currency,
    ...(state.recipient ? { recipient: state.recipient } : {}),
    amount,
    deposit: state.deposit,
    newDeposit: state.deposit + amount,
    ...(resend ? { resend } : {}),
  })

  const settleTopUp = async (
    state: ChannelState,
    url: string,
    caller?: AbortSignal,
  ): Promise<Response | undefined> => {
    const pending = state.topUpPending
    if (!pending) return undefined
    const { channel } = await readChain(state)
    if (!state.topUpPending) return undefined
    // Shown (nothing new is signed: the same transaction, one nonce).
    await options.beforeTopUp?.(topUpIntent(state, url, pending.amount, true))
    // Without an answer this time either, it stays pending (the error says it may have settled).
    const response = await action(
      url,
      async () => topUpPayload(state, pending.transaction, pending.amount),
      'GET',
      undefined,
      caller,
    )
    if (response.ok) {
      const deposit = channel.deposit + pending.amount
      if (deposit > state.deposit) state.deposit = deposit
      delete state.topUpPending
      bookings.topUpSettled(state, deposit)
      return undefined
    }
    // Refused (e.g. the node already holds it, or mined it since): the chain decides.
    await readChain(state)
    return state.topUpPending ? response : undefined
  }

  const pendingError = (response: Response) =>
    new PaymentFailedError(
      `tempo session: an earlier top-up of this channel is not mined yet (sent again: ${response.status}); nothing new was signed`,
    )

  /**
   * A new top-up, booked in the policy first. One whose outcome is unknown (no answer, or a 5xx) stays
   * booked and pending: its transaction may still be mined, so it is settled (found on chain, or sent
   * again as is) before another is signed, and never simply sent again past `maxDeposit`.
   */
  const topUpChannel = async (
    state: ChannelState,
    amount: bigint,
    url: string,
    request?: TempoSessionRequest,
    caller?: AbortSignal,
  ) => {
    let signed: { transaction: Hex; nonce: number } | undefined
    let response: Response
    try {
      response = await bookings.topUp(
        state,
        amount,
        async () => {
          // Allowed by the policy (booked); shown or asked before anything is signed.
          await options.beforeTopUp?.(topUpIntent(state, url, amount))
          return action(
            url,
            async (_, offered) => {
              const paying = request ?? offered
              if (!fits(state, paying))
                throw new PaymentFailedError(
                  "tempo session: the top-up's challenge names another currency, escrow or chain than the channel's; nothing was signed",
                )
              const transaction = await signTopUp(state, amount, paying)
              // Saved as pending before it is sent: a restarted client sends it again, never a second one.
              await persist(state, { topUpPending: { ...transaction, amount } })
              signed = transaction
              return topUpPayload(state, signed.transaction, amount)
            },
            'GET',
            state,
            caller,
          )
        },
        () => signed !== undefined,
      )
    } catch (error) {
      if (mayHaveSettled(error) && signed) state.topUpPending = { ...signed, amount }
      // Saved as it now stands (pending only when it may have settled).
      if (signed) await persist(state).catch(() => {})
      throw error
    }
    if (response.status >= 500 && signed) state.topUpPending = { ...signed, amount }
    if (response.ok) state.deposit += amount
    else unanswered(state)
    if (signed) await persist(state)
    return response
  }

  const openPayload = async (state: ChannelState, cumulativeAmount: bigint, signature?: Hex) =>
    ({
      action: 'open',
      type: 'transaction',
      channelId: state.channelId,
      transaction: state.open.transaction,
      ...(state.open.authorizedSigner ? { authorizedSigner: state.open.authorizedSigner } : {}),
      cumulativeAmount: String(cumulativeAmount),
      signature: signature ?? (await signVoucher(state, cumulativeAmount)),
    }) as const

  // The payload of a payment on a known channel: a voucher, or the channel presented again (`open`).
  // Until a receipt says otherwise, it is one the server may have refused.
  const payWith = async (state: ChannelState, present: boolean, cumulativeAmount: bigint, signature: Hex) => {
    state.unanswered = true
    if (present) return { payload: await openPayload(state, cumulativeAmount, signature) }
    return {
      payload: {
        action: 'voucher',
        channelId: state.channelId,
        cumulativeAmount: String(cumulativeAmount),
        signature,
      } as const,
    }
  }

  /** The cooperative close of one channel at `url` (see {@link SessionClient.close}); run serialized. */
  const closeChannel = async (state: ChannelState, url: string, caller?: AbortSignal): Promise<Response> => {
    const closeWith = (amount: bigint) =>
      action(
        url,
        async () => ({
          action: 'close',
          channelId: state.channelId,
          cumulativeAmount: String(amount),
          signature: await signVoucher(state, amount),
        }),
        'GET',
        undefined,
        caller,
      ).catch((error: unknown) => {
        // The close may have gone through: the chain decides before the next payment.
        unanswered(state)
        throw error
      })
    // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.min does not take
    let response = await closeWith(state.spent > state.cumulative ? state.cumulative : state.spent)
    if (response.status === 402) {
      // The server's spent may be ahead of our last receipt (e.g. the end of a metered stream). It names
      // the amount; sign it only when it is within what this client already authorized.
      const body = (await response
        .clone()
        .json()
        .catch(() => ({}))) as { reason?: string; spent?: string }
      if (
        body.reason === 'close-amount-mismatch' &&
        body.spent &&
        /^\d+$/.test(body.spent) &&
        BigInt(body.spent) <= state.cumulative
      )
        response = await closeWith(BigInt(body.spent))
    }
    if (!response.ok) unanswered(state)
    else {
      await forget(state, true)
      // Prices booked ahead (`voucherAhead`) and the deposit held against `maxLocked` are given back once
      // the chain shows the channel finalized (a 200 is the server's word): the vouchers above what it
      // captured are void then, and the escrow has refunded the rest.
      if (bookings.heldAhead(state) || bookings.holdsLock(state)) {
        const read = await readChain(state).catch(() => undefined)
        if (read?.channel.finalized) {
          bookings.unlock(state)
          if (bookings.heldAhead(state)) bookings.closed(state, state.cumulative - read.channel.settled)
        }
      }
    }
    return response
  }

  const client: SessionClient = {
    definition: session,
    channels,
    quote(request, challenge) {
      // Refused here, the client passes on to another challenge it may pay.
      checkEscrow(request)
      // A deposit is left out only when this client holds the channel the payment will use (the one
      // createPayload keys by realm, escrow, payee and token; without the challenge, one for that escrow,
      // payee, token and chain).
      const existing = challenge
        ? channels.has(keyOf(challenge, request))
        : [...channels.values()].some(
            (c) => fits(c, request) && c.recipient?.toLowerCase() === request.recipient.toLowerCase(),
          )
      const price = BigInt(request.amount)
      const deposit =
        options.deposit ?? (request.suggestedDeposit ? BigInt(request.suggestedDeposit) : price * 100n)
      if (!existing) checkDepositCoversPrice(deposit, price)
      return existing ? bookings.quoteFor(request, price) : { ...bookings.quoteFor(request, price), deposit }
    },
    createPayload: ({ challenge, request, url, spend, signal }) =>
      serialized(async () => {
        await restore()
        const chainId = checkChain(request)
        checkEscrow(request)
        const escrow = request.methodDetails.escrowContract as Address
        const price = BigInt(request.amount)
        const key = keyOf(challenge, request)
        let state = channels.get(key)
        // Presented again as `open` (its own open transaction, which the server finds on chain and does
        // not broadcast: "Query the escrow contract to verify channel state … Initialize server-side
        // channel state"), for a server that lost it (a restart, a TTL) and answers 410.
        let present = false
        if (state?.restored) {
          delete state.restored
          present = true
        }
        if (state && needsCheck(state)) {
          // No receipt vouches for the channel: an open never confirmed, or a payment refused or lost.
          const now = await standing(state)
          if (now === 'gone' || now === 'closing') {
            await forget(state, now === 'closing')
            state = undefined
          } else {
            present = true
            // `pending`: its open may still be mined (held in the node's pool, or never broadcast): the
            // same open again, one nonce, so never a second channel beside it; still unconfirmed.
            if (now === 'pending') state.opening = true
          }
        }
        if (!state) {
          // A record skipped on restore (invalid, or not this client's to pay on) under the key the new
          // channel would be saved with: never overwritten, so nothing is opened until it is fixed.
          const skippedHere = kept.get(`${storePrefix}${chainId}|${key}`)
          if (skippedHere !== undefined)
            throw new ConfigurationError(
              `tempo session: saved channel ${JSON.stringify(`${storePrefix}${chainId}|${key}`)} ${skippedHere}: a new channel for this server would be saved over it; nothing was signed (fix or remove it)`,
            )
          // New channel: "Client generates a random salt locally, computes `channelId` …, opens the channel
          // on-chain, and returns the `channelId` in the credential."
          const deposit =
            options.deposit ?? (request.suggestedDeposit ? BigInt(request.suggestedDeposit) : price * 100n)
          checkDepositCoversPrice(deposit, price)
          // The policy's maxDeposit, checked before anything is signed (the quote left the deposit out when
          // it found a channel this payment would use, e.g. found closed since, or quoted without its
          // challenge by an older client, yet this one is new), and the deposit held against `maxLocked`
          // until the channel is closed; given back if the open is never sent.
          const unlock = bookings.open(spend, request, deposit)
          let opened: ChannelState | undefined
          let payload: Awaited<ReturnType<typeof openPayload>>
          try {
            await checkEscrowCode(chainId, escrow)
            const salt = bytesToHex(globalThis.crypto.getRandomValues(new Uint8Array(32)))
            const authorizedSigner = signer.address === account.address ? zeroAddress : signer.address
            const channelId = Channel.computeId({
              payer: account.address,
              payee: request.recipient as Address,
              token: request.currency as Address,
              salt,
              authorizedSigner,
              escrow,
              chainId,
            })
            const { transaction, nonce } = await signTransaction(
              chainId,
              [
                {
                  to: request.currency as Address,
                  data: encodeFunctionData({
                    abi: erc20Abi,
                    functionName: 'approve',
                    args: [escrow, deposit],
                  }),
                },
                {
                  to: escrow,
                  data: encodeFunctionData({
                    abi: escrowAbi,
                    functionName: 'open',
                    args: [
                      request.recipient as Address,
                      request.currency as Address,
                      deposit,
                      salt,
                      authorizedSigner,
                    ],
                  }),
                },
              ],
              1_500_000n,
              request,
            )
            state = {
              channelId,
              escrow,
              currency: request.currency as Address,
              chainId,
              deposit,
              cumulative: price,
              spent: 0n,
              url,
              open: {
                transaction,
                nonce,
                ...(authorizedSigner === zeroAddress ? {} : { authorizedSigner }),
              },
              opening: true,
              recipient: request.recipient as Address,
              salt,
            }
            channels.set(key, state)
            opened = state
            await persist(state)
            bookings.remember(state, spend, request)
            // The first voucher pays for this request (the server deducts before serving).
            payload = await openPayload(state, price)
          } catch (error) {
            // Nothing was sent: its open transaction is dropped unbroadcast (and its record, if saved),
            // its lock given back.
            if (opened) {
              channels.delete(key)
              if (store) await store.delete(storeKey(opened, key)).catch(() => {})
            }
            unlock()
            throw error
          }
          bookings.held(opened, unlock)
          return { payload }
        }
        bookings.remember(state, spend, request)
        // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max does not take
        let next = (state.cumulative > state.spent ? state.cumulative : state.spent) + price
        let charged: bigint | undefined
        // Prices booked ahead for a new voucher (given back when it is not signed after all).
        let booked = 0n
        if (ahead > 1n) {
          // What the server will have charged once this request is served (its receipts may lag).
          const paid = state.charged ?? state.spent
          // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max does not take
          charged = (paid > state.spent ? paid : state.spent) + price
          if (charged <= state.cumulative) {
            // What was already signed covers this request: resend it (re-signed when the last voucher sent
            // is not the highest signed, e.g. after `voucher()`), never a lower cumulative.
            if (state.last?.cumulative !== state.cumulative)
              state.last = {
                cumulative: state.cumulative,
                signature: await signVoucher(state, state.cumulative),
              }
            state.charged = charged
            // The client booked this request's price: the voucher's authorization stays booked once.
            bookings.served(state, price)
            return payWith(state, present, state.last.cumulative, state.last.signature)
          }
          // A new voucher for this request and the next `ahead - 1`, within the deposit when it still
          // covers this request (else the top-up below makes room). A voucher is spendable once sent, so
          // it authorizes ahead only the prices the client's policy books now: never past a budget.
          let room = ahead - 1n
          if (charged + price * room > state.deposit) {
            if (charged <= state.deposit) room = price > 0n ? (state.deposit - charged) / price : 0n
            // An open not mined yet pays with the voucher already signed (below).
            else if (state.opening) room = 0n
          }
          booked = bookings.ahead(state, price, room)
          next = charged + price * booked
        }
        // An open not mined yet has no deposit to top up: it pays with the voucher already signed.
        if (next > state.deposit && state.opening) next = state.cumulative
        try {
          if (next > state.deposit) {
            // A top-up whose outcome is unknown is settled first, never signed anew.
            const refused = await settleTopUp(state, url, signal)
            if (refused) throw pendingError(refused)
          }
          if (next > state.deposit) {
            // "When `requiredCumulative` exceeds `deposit`, the client MUST submit `action="topUp"`"
            const amount = options.topUp ?? state.deposit
            const response = await topUpChannel(state, amount, url, request, signal)
            if (!response.ok)
              throw new PaymentFailedError(`tempo session: top-up refused (${response.status})`)
          }
          if (next !== state.cumulative) await persist(state, { cumulative: next })
        } catch (error) {
          bookings.unbook(state, booked)
          throw error
        }
        state.cumulative = next
        const signature = await signVoucher(state, next)
        if (charged !== undefined) {
          state.charged = charged
          state.last = { cumulative: next, signature }
        }
        return payWith(state, present, next, signature)
      }),
    retryRefused(refusal: Method.Refusal, challenge: Challenge.Challenge) {
      // "410 Gone: Channel finalized or not found" (draft-tempo-session-00 §Error Handling): the server no
      // longer has the channel this payment used and took nothing from it. Read on chain right away
      // (gone: dropped, and a new channel opened within maxDeposit; still open: presented again with its
      // own open), then the resource's fresh challenge is paid once more, within the same fetch.
      if (refusal.status !== 410) return false
      const type = typeof refusal.problem?.type === 'string' ? refusal.problem.type : ''
      if (!/(^|\/)session\/channel-(not-found|finalized)$/.test(type)) return false
      const parsed = session.request.safeParse(challenge.request)
      if (!parsed.success) return false
      const state = channels.get(keyOf(challenge, parsed.data))
      // Only a payment no receipt answered (a refusal of this channel, not of a newer one).
      if (!state?.unanswered) return false
      delete state.checkedAt
      return true
    },
    onReceipt(receipt: Receipt.Receipt) {
      const channelId = String(receipt.channelId ?? receipt.reference).toLowerCase()
      const spent = String(receipt.spent ?? '')
      // The server's word on what it spent, believed only within what this client signed: a receipt
      // claiming more (or not a base-unit integer) is ignored, so neither the next voucher nor the close
      // voucher is ever signed above what was authorized.
      for (const state of channels.values()) {
        if (state.channelId.toLowerCase() !== channelId) continue
        // A receipt for the channel: the server has it (its open went through).
        state.opening = false
        state.unanswered = false
        delete state.checkedAt
        if (/^\d{1,78}$/.test(spent) && BigInt(spent) <= state.cumulative) state.spent = BigInt(spent)
      }
    },
    voucher: (url, cumulativeAmount, init) =>
      serialized(async () => {
        await restore()
        const state = stateFor(url)
        const caller = init?.signal
        // A voucher is spendable once sent: what it authorizes beyond the last one is booked in the
        // client's policy first (refused: nothing is topped up, saved, signed or sent), then the voucher
        // is saved as the highest signed (a restarted client signs above it), then sent; its booking is
        // given back if it is not sent after all. Saved before its booking, a refused voucher once left
        // its amount in the store: a restarted client signed above it, and the payee could settle that
        // past the budget.
        const unbook = bookings.voucher(state, cumulativeAmount)
        let signature: Hex
        try {
          if (cumulativeAmount > state.deposit) {
            const refused = await settleTopUp(state, url, caller)
            if (refused) {
              unbook()
              return refused
            }
          }
          if (cumulativeAmount > state.deposit) {
            const amount = options.topUp ?? state.deposit
            // A top-up inside a stream is a side payment: the client's policy books it first.
            const topUp = await topUpChannel(state, amount, url, undefined, caller)
            if (!topUp.ok) {
              unbook()
              return topUp
            }
          }
          signature = await signVoucher(state, cumulativeAmount)
          if (cumulativeAmount > state.cumulative) await persist(state, { cumulative: cumulativeAmount })
        } catch (error) {
          // Not sent: its booking given back.
          unbook()
          throw error
        }
        if (cumulativeAmount > state.cumulative) state.cumulative = cumulativeAmount
        // With `voucherAhead`, the next requests resend this voucher while it covers them (what the server
        // charges per request is unchanged: `charged` stays).
        if (ahead > 1n && cumulativeAmount === state.cumulative) {
          state.last = { cumulative: cumulativeAmount, signature }
          state.charged ??= state.spent
        }
        const response = await action(
          url,
          async () => ({
            action: 'voucher',
            channelId: state.channelId,
            cumulativeAmount: String(cumulativeAmount),
            signature,
          }),
          'HEAD',
          undefined,
          caller,
        ).catch((error: unknown) => {
          unanswered(state)
          throw error
        })
        if (!response.ok) unanswered(state)
        return response
      }),
    topUp: (url, amount, init) =>
      serialized(async () => {
        await restore()
        const state = stateFor(url)
        // A top-up whose outcome is unknown is settled first (found on chain, or sent again as is while
        // it is not mined, never signed anew); then `amount` is added as asked.
        const refused = await settleTopUp(state, url, init?.signal)
        if (refused) return refused
        return topUpChannel(state, amount, url, undefined, init?.signal)
      }),
    close: (url, channelId, init) =>
      serialized(async () => {
        await restore()
        return closeChannel(stateFor(url, channelId), url, init?.signal)
      }),
    closeAll: async (closeOptions) => {
      await restore()
      const filter = closeOptions?.filter
      // The whole of it in the client's queue: no payment, voucher or top-up runs on a channel while it
      // is being closed, and nothing is booked meanwhile (a close only gives bookings back).
      return serialized(async () => {
        // A snapshot: each close removes its channel from the map.
        const targets = [...new Set(channels.values())].filter((state) => !filter || filter(state))
        const results: CloseResult[] = new Array(targets.length)
        // "The channel is the unit of concurrency": servers concurrently (a hung one holds up only its
        // own channels, each request within `sideTimeoutMs`), the channels of one server in turn.
        const byServer = new Map<string, number[]>()
        targets.forEach((state, index) => {
          const server = originOf(state.url)
          byServer.set(server, [...(byServer.get(server) ?? []), index])
        })
        const servers = [...byServer.values()]
        const closeOne = async (index: number) => {
          const state = targets[index]!
          const { channelId, url } = state
          try {
            const response = await closeChannel(state, url)
            results[index] = { channelId, url, ok: response.ok, response }
          } catch (error) {
            results[index] = { channelId, url, ok: false, error }
          }
        }
        const worker = async () => {
          for (let next = servers.shift(); next; next = servers.shift())
            for (const index of next) await closeOne(index)
        }
        await Promise.all(Array.from({ length: Math.min(closeConcurrency, servers.length) }, worker))
        return results
      })
    },
    reclaim: (url) =>
      serialized(async () => {
        await restore()
        const state = stateFor(url)
        const step = await reclaimChannel({
          account,
          rpcUrl: options.rpcUrl,
          chainId: state.chainId,
          escrow: state.escrow,
          channelId: state.channelId,
          ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
        }).catch((error: unknown) => {
          // The close may have been requested (sent, then no answer): the chain decides before the next payment.
          unanswered(state)
          throw error
        })
        // Closing or closed: "Servers MUST reject vouchers on channels with a pending forced close". While
        // closing, the escrow still holds the deposit (withdrawn later, outside this client): it stays
        // held against `maxLocked`.
        await forget(state, step.status === 'closing')
        // Prices booked ahead above what the payee captured are void once the channel is finalized.
        if (step.status !== 'closing' && bookings.heldAhead(state))
          bookings.closed(state, state.cumulative - step.settled)
        return step
      }),
    restore,
    skipped: () => skipped.map((entry) => ({ ...entry })),
  }
  return client
}
