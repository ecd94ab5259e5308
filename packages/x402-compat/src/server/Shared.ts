import type { Challenge, Store as MethodStore } from '@mppkit/core'
import { PaymentError, ServiceUnavailableError, VerificationFailedError } from '@mppkit/core'
import type { Address, Hex } from 'viem'
import { withTimeout as raceTimeout } from '../internal/timeout.js'
import type { Facilitator } from './Charge.js'

/** A viem wallet client with public actions, whose account pays gas for settlement. */
export type Wallet = {
  account: { address: Address } | undefined
  sendTransaction(args: any): Promise<Hex>
  waitForTransactionReceipt(args: { hash: Hex; timeout?: number }): Promise<{
    status: 'success' | 'reverted'
    transactionHash?: Hex
    logs?: readonly { address: Address; topics: readonly Hex[]; data: Hex }[]
  }>
}

/** The chain reads (and raw broadcast) the `permit2`, `transaction` and `hash` types need: a viem public client fits. */
export type Reader = {
  readContract(args: any): Promise<any>
  simulateContract?(args: any): Promise<any>
  sendRawTransaction(args: { serializedTransaction: Hex }): Promise<Hex>
  getTransaction(args: { hash: Hex }): Promise<any>
  getTransactionReceipt(args: { hash: Hex }): Promise<any>
  waitForTransactionReceipt(args: { hash: Hex; timeout?: number }): Promise<any>
  getBlock(args: { blockNumber: bigint }): Promise<{ timestamp: bigint }>
  /**
   * With these two, an `authorization`, `permit2` or x402 Permit2 payment whose settlement answer was
   * lost is looked up on chain.
   */
  getBlockNumber?(args?: { cacheTime?: number }): Promise<bigint>
  getLogs?(args: any): Promise<readonly { transactionHash: Hex | null; args?: unknown }[]>
}

/** Blocks looked back for a settlement whose answer was lost (~2.7 h at one block per second). */
const lookbackBlocks = 10_000n

/**
 * The transaction hashes of the logs matching `filter` (viem's `getLogs` arguments: address, event, args)
 * over the last {@link lookbackBlocks} blocks, to the node's latest, oldest first; undefined when the
 * reader cannot search logs. The block number is read uncached (viem keeps one for seconds). `keep`
 * drops logs by their decoded `args` (e.g. a non-indexed value the node cannot filter on).
 */
export async function recentLogs(
  reader: Reader,
  timeout: number,
  filter: Record<string, unknown>,
  keep: (args: unknown) => boolean = () => true,
): Promise<(Hex | null)[] | undefined> {
  if (!reader.getLogs || !reader.getBlockNumber) return undefined
  const latest = await onChain(reader.getBlockNumber({ cacheTime: 0 }), timeout)
  const logs = await onChain(
    reader.getLogs({
      ...filter,
      fromBlock: latest > lookbackBlocks ? latest - lookbackBlocks : 0n,
      toBlock: 'latest',
    }),
    timeout,
  )
  return logs.filter((log) => keep(log.args)).map((log) => log.transactionHash)
}

/**
 * Waits (under `timeout`) for the receipt of the very transaction `hash` names. viem's
 * `waitForTransactionReceipt` answers for a transaction replaced in the pool (same sender and nonce:
 * repriced, cancelled or another call) with the replacement's receipt; that receipt is not this
 * credential's payment, and the replacement, unclaimed, could pay for another challenge by its own
 * hash: it is refused (`transaction-replaced`). A wait that does not answer is a 503.
 *
 * @see draft-evm-charge-00 §"Transaction Verification" step 7: "Wait for confirmation and fetch the
 * transaction receipt"; §"Replay Protection": "The transaction hash (derived after broadcast) serves as
 * the replay token."
 */
export async function receiptOf<receipt extends { transactionHash?: Hex }>(
  waiter: { waitForTransactionReceipt(args: { hash: Hex; timeout?: number }): Promise<receipt> },
  hash: Hex,
  timeout: number,
): Promise<receipt> {
  const receipt = await onChain(waiter.waitForTransactionReceipt({ hash, timeout }), timeout)
  if (
    typeof receipt?.transactionHash !== 'string' ||
    receipt.transactionHash.toLowerCase() !== hash.toLowerCase()
  )
    throw refuse('The transaction was replaced before it was mined.', 'transaction-replaced')
  return receipt
}

/** A `verification-failed` problem with a stable reason. */
export const refuse = (detail: string, reason: string) => new VerificationFailedError({ detail, reason })

/**
 * The latest end of validity (Unix seconds) an authorization or permit may name: the challenge's
 * `expires` or `maxSeconds` from now, whichever is later. Its replay claim in the Store must live until
 * then (once the claim lapses, a replayed copy of a landed transfer would be found on chain and served
 * again), so the claim cannot be shortened below it; a longer validity is refused instead, which keeps
 * every claim's TTL bounded by the server's own configuration (a Redis Store refuses huge TTLs).
 */
export function latestValidity(
  challenge: Challenge.Challenge,
  nowSeconds: number,
  maxSeconds: number,
): bigint {
  const expires = challenge.expires === undefined ? Number.NaN : Date.parse(challenge.expires)
  const limit = nowSeconds + maxSeconds
  return BigInt(Number.isFinite(expires) ? Math.max(limit, Math.ceil(expires / 1000)) : limit)
}

/** Whether an error is the RPC being unreachable or slow (then 503), rather than the chain refusing. */
export function isTransportError(error: unknown): boolean {
  for (let cause = error as any, depth = 0; cause && depth < 8; cause = cause.cause, depth++) {
    const name = String(cause.name ?? '')
    if (/HttpRequestError|TimeoutError|WebSocketRequestError|SocketClosedError/.test(name)) return true
    if (cause.code === 'ECONNREFUSED' || cause.code === 'ECONNRESET' || cause.code === 'ETIMEDOUT')
      return true
  }
  return false
}

/** A chain call whose failure to answer is a 503 (nothing consumed), and any other failure as given. */
export async function onChain<value>(
  promise: Promise<value>,
  ms: number,
  otherwise?: (error: unknown) => PaymentError,
): Promise<value> {
  try {
    return await withTimeout(promise, ms)
  } catch (cause) {
    if (PaymentError.is(cause)) throw cause
    if (otherwise && !isTransportError(cause)) throw otherwise(cause)
    throw new ServiceUnavailableError({ detail: 'The chain is unavailable.', retryAfter: 1, cause })
  }
}

/** Races a promise against a timer that rejects with a 503. */
export function withTimeout<value>(promise: Promise<value>, ms: number): Promise<value> {
  return raceTimeout(
    promise,
    ms,
    () => new ServiceUnavailableError({ detail: 'The settlement timed out.', retryAfter: 1 }),
  )
}

/**
 * How long (ms) a settlement claim may stay `settling` before a retry takes it over (see {@link once}):
 * longer than any attempt takes before its outcome is known (a facilitator's verify, settle and the
 * receipt and transaction reads after it; a wallet's simulation, send and receipt: at most four calls of
 * `timeout` each). Only liveness rests on it: an attempt taken over while still running is not served.
 */
export const staleClaimMs = (timeout: number) => 4 * timeout + 1_000

/** The value of a replay token released by an attempt that settled nothing (free to claim again). */
const released = 'released'

/** The moment (ms) a claim names, or NaN for any other value (a reference, a claim without one). */
function claimedAt(value: string): number {
  const match = /^settling:(\d+):/.exec(value)
  return match ? Number(match[1]) : Number.NaN
}

/**
 * Claims a replay token in the Store, runs the settlement, records its reference, and releases the
 * claim when nothing settled (so the payer may retry). A token already claimed is refused.
 *
 * The claim names when it was taken and which attempt took it (`settling:<ms>:<id>`). With `staleMs`, a
 * claim older than that (its process stopped after it may have broadcast: a crash, an OOM kill, a hard
 * deploy stop) is taken over by compare-and-set, and `settle` runs with `resumed` true: it must not
 * submit the payment again but look for it on chain (see {@link settleOrFind}), since the stopped
 * attempt's transfer may have landed. Whatever an attempt settles or finds, it is served only while the
 * attempt still holds its claim: the compare-and-set of the claim to the reference must win, so an
 * attempt taken over (slow, not stopped) is refused as used and two attempts never both serve. A Store
 * that cannot answer that last write serves anyway (the value moved; only a claim taken over is refused).
 *
 * @see draft-evm-charge-00 §"Replay Protection": "Before accepting a credential, the server MUST check
 * whether its replay token has already been consumed. After successful verification, the server MUST
 * atomically mark it as consumed."
 */
export async function once(
  store: MethodStore,
  key: string,
  ttlMs: number,
  settle: (resumed: boolean) => Promise<string>,
  used: { detail: string; reason: string },
  staleMs?: number,
): Promise<string> {
  const claim = `settling:${Date.now()}:${globalThis.crypto.randomUUID()}`
  let resumed = false
  let claimed =
    (await store.putIfAbsent(key, claim, ttlMs)) || (await store.compareAndSet(key, released, claim, ttlMs))
  if (!claimed) {
    const current = await store.get(key)
    if (current === undefined) claimed = await store.putIfAbsent(key, claim, ttlMs)
    else if (staleMs !== undefined && Date.now() - claimedAt(current) > staleMs) {
      claimed = await store.compareAndSet(key, current, claim, ttlMs)
      resumed = claimed
    }
  }
  if (!claimed) throw refuse(used.detail, used.reason)
  let reference: string
  try {
    reference = await settle(resumed)
  } catch (cause) {
    // Nothing settled: release this attempt's claim (not one that took it over since).
    await store.compareAndSet(key, claim, released, ttlMs).catch(() => {})
    throw cause
  }
  if (!(await store.compareAndSet(key, claim, reference, ttlMs).catch(() => true)))
    // Taken over meanwhile: the attempt that holds the claim now serves this payment (it finds it on
    // chain), never both. The value moved: the challenge stays consumed.
    throw new VerificationFailedError({ detail: used.detail, reason: used.reason, consumed: true })
  return reference
}

/**
 * Runs one settlement attempt and, when it fails with an outcome that is unknown, searches the chain
 * (`landed`) for the settlement whose answer was lost, so a payer whose transfer landed is served once.
 * The search (a block number and a ~10 000-block log query) is costly, so it runs only when the transfer
 * may have landed: the attempt fails as an outage (a 5xx, a timeout, an unexpected error), or after it
 * called `sending` (a transaction may have been broadcast: a receipt that never came, a revert because a
 * copy landed first, a facilitator's failed or contradicting settle answer). A definite refusal before
 * anything was sent (no balance, a reverting simulation, a facilitator saying invalid) answers as it is,
 * unless an earlier attempt of the same replay token ended unknown (`key` + `:unknown`, kept in the Store
 * until the token's claim lapses): then its transfer may be what the chain now refuses this one for.
 * A `resumed` attempt (a claim taken over from a process that stopped, see {@link once}) submits nothing:
 * its outcome is the stopped attempt's, unknown, so it only searches, and answers 503 + Retry-After when
 * nothing is found yet (the claim is then released, and a retry submits again: at most one lands).
 *
 * @example
 * ```ts
 * const hash = await settleOrFind(store, key, ttl, (sending) => submit(sending), () => landed())
 * ```
 */
export async function settleOrFind(
  store: MethodStore,
  key: string,
  ttlMs: number,
  attempt: (sending: () => void) => Promise<string>,
  landed: () => Promise<string | undefined>,
  /** The claim was taken over from an attempt that stopped (see {@link once}): look up only, send nothing. */
  resumed = false,
): Promise<string> {
  let sent = false
  try {
    // Its transfer may have landed, or may still: submitting again could only revert (the token's or
    // Permit2's nonce settles once), so the stopped attempt's outcome is unknown and is looked up.
    if (resumed)
      throw new ServiceUnavailableError({
        detail:
          'An earlier attempt of this payment stopped before it answered; its transfer is not on chain yet.',
        retryAfter: 1,
      })
    return await attempt(() => {
      sent = true
    })
  } catch (error) {
    const unknown = sent || !PaymentError.is(error) || error.status >= 500
    const marker = `${key}:unknown`
    // A Store that cannot answer is no reason to leave a landed payment unserved: search then.
    const earlier = !unknown && (await store.get(marker).catch(() => 'unreadable')) !== undefined
    if (unknown || earlier) {
      const found = await landed().catch(() => undefined)
      if (found) return found
    }
    if (unknown) await store.set(marker, 'unknown', ttlMs).catch(() => {})
    throw error
  }
}

/** The tail of each server account's queue of sends (by lowercase address), while it has one. */
const sendQueues = new Map<string, Promise<void>>()

/**
 * Broadcasts a transaction from the server's wallet, one send at a time per account, and returns its
 * hash. viem takes the nonce of a local account without a nonce manager from the node's pending count
 * at each send: two sends prepared at the same moment take the same nonce, and one is refused ("nonce
 * too low", "replacement underpriced") or replaces the other, failing a valid payment. Queued, each send
 * reads the count once the previous one was broadcast (the node counts it), and a failed send leaves
 * nothing to repair: the next one reads the chain again. Waiting for receipts is left to the caller,
 * outside the queue, so confirmations still overlap. A send still queued at `timeout` is never started
 * (its caller has answered 503); one that hangs releases the queue at its own `timeout`.
 *
 * @example
 * ```ts
 * const hash = await withTimeout(sendFromWallet(wallet, { account, to, data, gas }, timeout), timeout)
 * ```
 */
export function sendFromWallet(wallet: Wallet, args: Record<string, unknown>, timeout: number): Promise<Hex> {
  const key = wallet.account?.address.toLowerCase() ?? ''
  const deadline = Date.now() + timeout
  const turn = (sendQueues.get(key) ?? Promise.resolve()).then(() => {
    const left = deadline - Date.now()
    if (left <= 0) throw new ServiceUnavailableError({ detail: 'The settlement timed out.', retryAfter: 1 })
    return withTimeout(wallet.sendTransaction(args), left)
  })
  const tail = turn.then(
    () => {},
    () => {},
  )
  sendQueues.set(key, tail)
  void tail.then(() => {
    if (sendQueues.get(key) === tail) sendQueues.delete(key)
  })
  return turn
}

/**
 * Verifies then settles one x402 payment through a facilitator, each call under `timeout`: a refusal is a
 * 402 carrying the facilitator's reason, an unreachable or slow facilitator a 503 + Retry-After (nothing
 * consumed). Returns the facilitator's settle response (`transaction`, and `payer` when it gives one).
 */
export async function facilitate(
  facilitator: Facilitator,
  document: Record<string, unknown>,
  requirement: Record<string, unknown>,
  timeout: number,
  /** Runs once the facilitator has verified the payment, before it is asked to settle. */
  onVerified?: () => Promise<void>,
): Promise<Awaited<ReturnType<Facilitator['settle']>> & { payer?: string }> {
  // A call that throws anything but a refusal, or takes longer than `timeout`, is an outage.
  const call = async <result>(pending: Promise<result>): Promise<result> => {
    try {
      return await withTimeout(pending, timeout)
    } catch (cause) {
      if (PaymentError.is(cause)) throw cause
      throw new ServiceUnavailableError({
        detail: 'The x402 facilitator is unavailable.',
        retryAfter: 1,
        cause,
      })
    }
  }
  const verified = await call(facilitator.verify(document, requirement))
  if (!verified.isValid)
    throw new VerificationFailedError({
      detail: `The facilitator refused the payment: ${verified.invalidReason ?? 'invalid'}.`,
      reason: verified.invalidReason ?? 'facilitator-refused',
    })
  await onVerified?.()
  const settled: Awaited<ReturnType<Facilitator['settle']>> & { payer?: string } = await call(
    facilitator.settle(document, requirement),
  )
  if (!settled.success)
    throw new VerificationFailedError({
      detail: `The facilitator could not settle the payment: ${settled.errorReason ?? 'failed'}.`,
      reason: settled.errorReason ?? 'settlement-failed',
    })
  return settled
}
