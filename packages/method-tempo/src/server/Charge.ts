import {
  ConfigurationError,
  Method,
  PaymentInsufficientError,
  ServiceUnavailableError,
  type Store,
  VerificationFailedError,
} from '@mppkit/core'
import {
  type Account,
  type Address,
  erc20Abi,
  fromRlp,
  type Hex,
  keccak256,
  maxUint256,
  type PublicClient,
  type TransactionReceipt,
  TransactionReceiptNotFoundError,
  verifyTypedData,
} from 'viem'
import { getBlock, getTransaction, getTransactionReceipt, sendRawTransactionSync } from 'viem/actions'
import { Transaction } from 'viem/tempo'
import { assertCanonical } from '../internal/canonical.js'
import { assertPays } from '../internal/diagnose.js'
import {
  checkAccount,
  checkAddress,
  checkAmount,
  checkBytes32,
  checkChainId,
  checkConnection,
  checkMilliseconds,
  checkNumber,
  checkOptionalAddress,
  checkSeconds,
} from '../internal/options.js'
import {
  type Connection,
  defaultChainId,
  isUnavailable,
  neverSent,
  publicClientFor,
  unavailable,
} from '../internal/rpc.js'
import { reportableRpcError, rpcErrorSummary } from '../internal/rpcErrors.js'
import { callEffects, expectedTransfers, logEffects, type RawLog } from '../internal/transfers.js'
import { charge, type TempoChargePayload, type TempoChargeRequest } from '../Methods.js'
import * as Proof from '../Proof.js'

/**
 * Limits a fee payer applies before co-signing a client's transaction (it pays the gas, so a client must
 * not be able to make it pay for anything but this payment).
 *
 * @example
 * ```ts
 * const policy: SponsorPolicy = { maxGas: 500_000n, maxValidityWindowSeconds: 300 }
 * ```
 * @see draft-tempo-charge-00 §"Server-Paid Fees" and the vectors in `tempo-fee-payer-cosign.json`
 */
export type SponsorPolicy = {
  /** Largest gas limit the fee payer signs for (default 2 000 000). */
  maxGas?: bigint
  /** Largest `validBefore - now` in seconds (default 900). */
  maxValidityWindowSeconds?: number
  /**
   * Require the expiring nonce lane (`nonceKey = 2^256-1`) so an unsubmitted sponsored transaction
   * cannot be held back and replayed later (default true). Set false for nodes without expiring nonces.
   */
  requireExpiringNonce?: boolean
  /**
   * Largest `maxFeePerGas` the fee payer signs for, in attodollars per gas (default 100 gwei = 1e11:
   * 5x Tempo's fixed 20 gwei base fee; an honest viem client signs about 1.2x base + priority).
   */
  maxFeePerGas?: bigint
  /**
   * Largest `maxPriorityFeePerGas` (the tip above the base fee the fee payer pays on every gas unit;
   * default 10 gwei, 50 gwei on the Moderato testnet 42431, which regularly needs more, as in mppx).
   */
  maxPriorityFeePerGas?: bigint
  /** Largest `gas × maxFeePerGas` in attodollars (unset: bounded by `maxGas × maxFeePerGas`). */
  maxTotalFee?: bigint
  /**
   * Co-sign transactions that carry a `keyAuthorization` (access-key provisioning, which viem attaches to
   * an access key's first transaction) and so make the fee payer pay for it (default false).
   */
  allowKeyAuthorization?: boolean
}

const gwei = 1_000_000_000n
/** How long a pull broadcast whose answer was lost is looked up before its outcome is called unknown. */
const lostAnswerWindowMs = 1_000
const lostAnswerPollMs = 200
/** `Retry-After` of a push hash the server node has no receipt for yet (it may lag behind the payer's). */
const notFoundRetryAfterSeconds = 2

/** Tempo Moderato (testnet) chain id: its priority fees run higher (see `maxPriorityFeePerGas`). */
const moderatoChainId = 42431

/**
 * Throws a `ConfigurationError` naming the first bad `sponsorPolicy` field, so a fee payer never runs
 * with a cap that is not a bigint (a `maxFeePerGas: 1e11` number would not cap anything reliably).
 */
export function checkSponsorPolicyOptions(scope: string, policy: SponsorPolicy | undefined): void {
  if (policy === undefined) return
  if (!policy || typeof policy !== 'object')
    throw new ConfigurationError(`${scope}: sponsorPolicy must be an object, got ${String(policy)}`)
  for (const field of ['maxGas', 'maxFeePerGas', 'maxPriorityFeePerGas', 'maxTotalFee'] as const) {
    const value = policy[field]
    if (value !== undefined && typeof value !== 'bigint')
      throw new ConfigurationError(
        `${scope}: sponsorPolicy.${field} must be a bigint (e.g. 100_000_000_000n), got ${String(value)}`,
      )
    checkAmount(scope, `sponsorPolicy.${field}`, value)
  }
  checkNumber(scope, 'sponsorPolicy.maxValidityWindowSeconds', policy.maxValidityWindowSeconds)
  for (const field of ['requireExpiringNonce', 'allowKeyAuthorization'] as const)
    if (policy[field] !== undefined && typeof policy[field] !== 'boolean')
      throw new ConfigurationError(
        `${scope}: sponsorPolicy.${field} must be a boolean, got ${String(policy[field])}`,
      )
}

/** Options of {@link tempo} (the charge server). */
export type ChargeOptions = Connection & {
  /** TIP-20 token address (`currency`). */
  currency: Address
  /** Address that receives payments (`recipient`). */
  recipient: Address
  /**
   * An account that pays fees for clients: challenges then carry `methodDetails.feePayer: true` and pull
   * transactions are co-signed (domain 0x78) before broadcast.
   */
  feePayer?: Account
  /** Fee token the fee payer pays in (default: `currency`). */
  feeToken?: Address
  /** Policy checked before co-signing. */
  sponsorPolicy?: SponsorPolicy
  /**
   * Advertised modes (default both, pull only with a fixed `memo`; omitted from the challenge when both,
   * as the spec requires).
   */
  supportedModes?: readonly ('pull' | 'push')[]
  /**
   * A fixed `methodDetails.memo` (then the memo, not the attribution memo, must be used). Such a memo
   * does not bind a transfer to its challenge, so push (`hash`) credentials, whose mined hash anyone can
   * submit first, are refused unless `supportedModes` names `push` (also for an offer's own memo). An
   * offer with its own `methodDetails.memo` replaces these `methodDetails`, so unless `supportedModes`
   * names `push` it must state `supportedModes: ['pull']` itself: otherwise its route is refused with a
   * `ConfigurationError` (a priced offer is left out of the 402), since its challenges would advertise push.
   */
  memo?: Hex
  /** `methodDetails.splits`. */
  splits?: readonly { amount: string; recipient: Address; memo?: Hex }[]
  /** How long a consumed transaction hash is remembered, in seconds (default 7 days); transactions mined longer ago are refused. */
  replayTtlSeconds?: number
}

/**
 * Throws a `ConfigurationError` naming the first bad field of charge options (addresses, chain id,
 * amounts, URLs), so a misconfigured server fails at start instead of issuing unpayable challenges.
 */
function checkChargeOptions(options: ChargeOptions): void {
  const scope = 'tempo'
  if (!options || typeof options !== 'object') throw new ConfigurationError('tempo: options are required')
  checkConnection(scope, options)
  checkChainId(scope, options.chainId)
  checkAddress(scope, 'currency', options.currency, 'a TIP-20 token address')
  checkAddress(scope, 'recipient', options.recipient, 'the address that receives payments')
  checkAccount(scope, 'feePayer', options.feePayer, false)
  checkOptionalAddress(scope, 'feeToken', options.feeToken)
  checkBytes32(scope, 'memo', options.memo)
  // 0 would refuse every payment after its payer paid (each transaction is older than the window).
  checkSeconds(scope, 'replayTtlSeconds', options.replayTtlSeconds, 1)
  checkSponsorPolicyOptions(scope, options.sponsorPolicy)
  // viem's RPC timeout: 0 turns it off (a stalled node holds every request), past 2^31 − 1 ms the
  // timer overflows and every call fails at once.
  checkMilliseconds(scope, 'timeout', options.timeout)
  for (const mode of options.supportedModes ?? [])
    if (mode !== 'pull' && mode !== 'push')
      throw new ConfigurationError(
        `tempo: supportedModes holds pull and/or push, got ${JSON.stringify(mode)}`,
      )
  options.splits?.forEach((split, i) => {
    checkAmount(scope, `splits[${i}].amount`, split?.amount, true)
    checkAddress(scope, `splits[${i}].recipient`, split?.recipient)
    checkBytes32(scope, `splits[${i}].memo`, split?.memo)
  })
}

type Verified =
  | { kind: 'hash'; receipt: TransactionReceipt }
  | { kind: 'transaction'; serialized: Hex; from: Address; total: bigint }
  | { kind: 'proof' }

/**
 * Creates the server side of `tempo/charge`: verifies `hash` (push) credentials against the receipt's
 * TIP-20 logs, broadcasts `transaction` (pull) credentials (co-signing as fee payer when configured), and
 * verifies zero-amount `proof` credentials. Each transaction hash is consumed once through the Store; the
 * receipt `reference` is the transaction hash.
 *
 * @example
 * ```ts
 * const server = Server.create({ realm, secrets, methods: [tempo({ currency: pathUsd, recipient, rpcUrl })] })
 * const handler = server.protect({ offers: [{ method: 'tempo', request: { amount: '10000' } }] }, () => new Response('ok'))
 * ```
 * @see draft-tempo-charge-00
 */
export function chargeServer(options: ChargeOptions): Method.Server<typeof charge, Verified> {
  checkChargeOptions(options)
  const chainId = options.chainId ?? options.client?.chain?.id ?? defaultChainId
  const client = publicClientFor(options, options.rpcUrl ?? '', chainId)
  const replayTtlMs = (options.replayTtlSeconds ?? 7 * 86_400) * 1000
  // A fixed memo does not name the challenge a transfer pays, and a hash credential's `source` is not
  // signed: any onlooker could claim a mined payment's hash before its payer does (who then paid for
  // nothing). So with a fixed memo, push is offered and accepted only when `supportedModes` names it.
  const pushOptedIn = options.supportedModes?.includes('push') === true
  const modes = options.supportedModes ?? (options.memo !== undefined ? ['pull'] : ['pull', 'push'])
  if (modes.length === 0) throw new ConfigurationError('tempo: supportedModes needs at least one mode')
  const feePayer = options.feePayer

  const methodDetails: NonNullable<TempoChargeRequest['methodDetails']> = { chainId }
  if (feePayer) methodDetails.feePayer = true
  if (options.memo) methodDetails.memo = options.memo
  if (options.splits) methodDetails.splits = options.splits.map((split) => ({ ...split }))
  // "Servers MUST omit `supportedModes` only when they support both non-zero modes for the challenge."
  // A fee payer cannot accept hashes ("Clients MUST NOT use type="hash" when feePayer is true"), so it
  // advertises pull only.
  const effectiveModes = feePayer ? modes.filter((m) => m === 'pull') : modes
  if (effectiveModes.length === 0) throw new ConfigurationError('tempo: a fee payer needs pull mode')
  if (effectiveModes.length === 1) methodDetails.supportedModes = [...effectiveModes]

  // An offer's own `methodDetails` replaces the defaults' (their `supportedModes` included), so an offer
  // that pins its own fixed memo would advertise both modes by omitting `supportedModes`, while its hash
  // credentials are refused: a push payer would pay and be refused. "Servers MUST omit `supportedModes`
  // only when they support both non-zero modes for the challenge. A server that supports only `pull` or
  // only `push` for a challenge MUST include `supportedModes` explicitly and omit the unsupported mode."
  // This server's request schema refuses such a request: a static offer fails when its route is
  // compiled (`ConfigurationError`), a priced one is left out of the 402, before anyone pays.
  const definition = Method.define({
    ...charge,
    request: charge.request.refine((request) => pushOptedIn || !advertisesPushWithFixedMemo(request), {
      message:
        "a fixed memo is paid in pull mode only (hash credentials are refused): add supportedModes: ['pull'] to the offer's methodDetails, or name push in the tempo method's supportedModes",
      path: ['methodDetails', 'supportedModes'],
    }),
  })

  const rpc = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (error) {
      if (isUnavailable(error)) throw unavailable(error)
      // Reported by the core as it is: a viem error carries the RPC URL (credentials included).
      throw reportableRpcError(error)
    }
  }

  const claim = async (store: Store, hash: string, challengeId: string): Promise<void> => {
    const key = `tx:${hash.toLowerCase()}`
    if (await store.putIfAbsent(key, challengeId, replayTtlMs)) return
    // The same credential retried after an outage (the core released its challenge) may continue.
    if ((await store.get(key)) === challengeId) return
    throw new VerificationFailedError({
      detail: 'This transaction has already been used for a payment.',
      reason: 'replayed-transaction',
    })
  }

  /**
   * The receipt of a pull transaction whose broadcast got no answer after it may have reached the node,
   * looked up for a short while (a lost answer of a mined transaction still pays). When the node cannot
   * tell, the outcome is unknown: the transaction may still be executed, so the failure is `consumed`.
   * "A payment proof MUST be usable exactly once; subsequent attempts to use the same proof MUST be
   * rejected by the payment method infrastructure." (draft-httpauth-payment-00 §Replay Protection): the
   * challenge stays used and the answer carries no `Retry-After` (the core client resends a credential
   * after a 503 + Retry-After, which promises that nothing was charged). The hash stays claimed by this
   * challenge, so no other challenge can be paid with it either.
   */
  const receiptAfterLostAnswer = async (hash: Hex, lost: unknown): Promise<TransactionReceipt> => {
    const deadline = Date.now() + lostAnswerWindowMs
    for (;;) {
      const found = await getTransactionReceipt(client, { hash }).catch(() => undefined)
      if (found) return found
      if (Date.now() >= deadline) break
      await new Promise((resolve) => setTimeout(resolve, lostAnswerPollMs))
    }
    throw new ServiceUnavailableError({
      detail:
        'The payment transaction was sent to the Tempo node but its outcome is unknown; it may still be executed. This credential cannot be used again: check the payment before paying again.',
      reason: 'outcome-unknown',
      consumed: true,
      cause: rpcErrorSummary(lost),
    })
  }

  /**
   * The receipt of `hash`, or undefined when the node has none (not mined yet, or unknown). An outage is
   * a 503 + Retry-After; any other failure is reported as it is.
   */
  const findReceipt = async (hash: Hex): Promise<TransactionReceipt | undefined> => {
    try {
      return await getTransactionReceipt(client, { hash })
    } catch (error) {
      if (
        error instanceof TransactionReceiptNotFoundError ||
        /not (be )?found/i.test(String((error as Error).message))
      )
        return undefined
      if (isUnavailable(error)) throw unavailable(error)
      throw reportableRpcError(error)
    }
  }

  /** The transaction the server broadcasts for a pull credential: co-signed when it pays the fees. */
  const finalTransaction = async (request: TempoChargeRequest, serialized: Hex): Promise<Hex> =>
    request.methodDetails?.feePayer === true && feePayer !== undefined
      ? await cosign({
          serializedTransaction: serialized,
          feePayer,
          feeToken: options.feeToken ?? (request.currency as Address),
        })
      : serialized

  /**
   * Consumed hashes are remembered for `replayTtlSeconds`; a transaction mined before that window could
   * have been consumed and forgotten, so it is refused. Only a fixed `memo` needs this (and its block
   * read): otherwise every transfer carries its own challenge's attribution memo, so an old transaction
   * fails the memo check of any new challenge anyway.
   */
  const assertRecent = async (request: TempoChargeRequest, receipt: TransactionReceipt): Promise<void> => {
    if (request.methodDetails?.memo === undefined) return
    const block = await rpc(() => getBlock(client, { blockNumber: receipt.blockNumber }))
    if (Number(block.timestamp) * 1000 < Date.now() - replayTtlMs)
      throw new VerificationFailedError({
        detail: 'The transaction is older than the replay window.',
        reason: 'transaction-too-old',
      })
  }

  /**
   * True when the pull transaction of `serialized` is claimed by this challenge (a retry of the same
   * credential) or already has a receipt.
   */
  const alreadyMined = async (
    store: Store,
    challengeId: string,
    request: TempoChargeRequest,
    serialized: Hex,
  ): Promise<boolean> => {
    const hash = keccak256(await finalTransaction(request, serialized))
    if ((await store.get(`tx:${hash.toLowerCase()}`)) === challengeId) return true
    return (await findReceipt(hash)) !== undefined
  }

  return {
    definition,
    defaults: { currency: options.currency, recipient: options.recipient, methodDetails },

    async verify({ challenge, request, payload, credential, store }): Promise<Verified> {
      if (request.methodDetails?.chainId !== undefined && request.methodDetails.chainId !== chainId)
        throw new VerificationFailedError({
          detail: 'The challenge names another chain.',
          reason: 'chain-mismatch',
        })
      const zero = BigInt(request.amount) === 0n
      // "clients MUST use type="proof" when amount is "0", and MUST NOT use type="proof" when amount is non-zero"
      if (zero !== (payload.type === 'proof'))
        throw new VerificationFailedError({
          detail: zero
            ? 'A zero-amount charge needs a proof credential.'
            : 'Proof credentials are only for zero amounts.',
          reason: 'payload-type-mismatch',
        })
      const supported = request.methodDetails?.supportedModes
      if (payload.type === 'proof') {
        await verifyProof(challenge, payload, credential.source, chainId)
        return { kind: 'proof' }
      }
      if (payload.type === 'hash') {
        // "If `methodDetails.supportedModes` is present, servers MUST verify it includes `push` before
        // accepting a hash credential." / "Clients MUST NOT use type="hash" when feePayer is true.
        // Servers MUST reject such credentials."
        if ((supported && !supported.includes('push')) || request.methodDetails?.feePayer === true)
          throw new VerificationFailedError({
            detail: 'Hash credentials are not accepted for this challenge.',
            reason: 'mode-unsupported',
          })
        // An offer's own fixed memo too (it replaces the defaults' `methodDetails`, modes included).
        if (request.methodDetails?.memo !== undefined && !pushOptedIn)
          throw new VerificationFailedError({
            detail: 'Hash credentials are not accepted with a fixed memo: send the signed transaction.',
            reason: 'mode-unsupported',
          })
        const source = credential.source === undefined ? undefined : Proof.parseSource(credential.source)
        if (credential.source !== undefined && (!source || source.chainId !== chainId))
          throw new VerificationFailedError({
            detail: 'The credential source is not a did:pkh on this chain.',
            reason: 'invalid-source',
          })
        // A payer's node may have mined the transfer before the server's node has (one behind it, or
        // another node of a load-balanced provider): looked up for a short while, like a pull broadcast
        // whose answer was lost.
        const deadline = Date.now() + lostAnswerWindowMs
        let receipt = await findReceipt(payload.hash as Hex)
        while (!receipt && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, lostAnswerPollMs))
          receipt = await findReceipt(payload.hash as Hex)
        }
        // Still none: not a refusal the payer could only answer by paying again (its transfer may be
        // mined a moment later). A 402 with `Retry-After` releases the challenge (nothing was consumed:
        // the hash is claimed only once the receipt pays), and the client sends the same credential again.
        if (!receipt)
          throw new VerificationFailedError({
            detail:
              'No receipt for this transaction hash yet (the server node may lag behind): send the same credential again later.',
            reason: 'transaction-not-found',
            retryAfter: notFoundRetryAfterSeconds,
          })
        // The receipt of the transaction named, not of another one (a replacement) an RPC answers with.
        assertSameTransaction(receipt, payload.hash)
        // "servers MUST fetch the transaction receipt and verify that it indicates successful execution"
        if (receipt.status !== 'success')
          throw new VerificationFailedError({
            detail: 'The transaction reverted.',
            reason: 'transaction-reverted',
          })
        await assertRecent(request, receipt)
        const sender = source?.address ?? receipt.from
        // "Servers MUST verify that the receipt contains `Transfer` and/or `TransferWithMemo` event logs
        // emitted by the `currency` token address whose payment effects satisfy the challenge parameters"
        assertPays({
          request,
          expected: expectedTransfers(request),
          effects: logEffects(receipt.logs as readonly RawLog[]),
          sender,
          challenge,
          subject: 'receipt',
        })
        return { kind: 'hash', receipt }
      }
      // Pull. "If `methodDetails.supportedModes` is present, verify it includes `pull`"
      if (supported && !supported.includes('pull'))
        throw new VerificationFailedError({
          detail: 'Transaction credentials are not accepted for this challenge.',
          reason: 'mode-unsupported',
        })
      const serialized = payload.signature as Hex
      const decoded = decodeTransaction(serialized)
      await assertCanonical(serialized, decoded as unknown as Record<string, unknown>)
      if (decoded.chainId !== chainId)
        throw new VerificationFailedError({
          detail: 'The transaction is for another chain.',
          reason: 'chain-mismatch',
        })
      const sponsored = request.methodDetails?.feePayer === true && feePayer !== undefined
      if (sponsored) checkSponsorable(decoded, request, challenge, options.sponsorPolicy)
      const effects = callEffects(decoded.calls)
      if (!effects)
        throw new VerificationFailedError({
          detail: 'The transaction contains unauthorized extra calls (only TIP-20 transfers are accepted).',
          reason: 'unexpected-call',
        })
      // "Verify the transaction contains `transfer` or `transferWithMemo` calls on the `currency` token
      // address", amount, recipient, memo and splits (§"Transaction Verification" 2–6).
      const matched = assertPays({
        request,
        expected: expectedTransfers(request),
        effects,
        challenge,
        subject: 'transaction',
      })
      const total = matched.reduce((sum, e) => sum + e.amount, 0n)
      const balance = await rpc(() =>
        client.readContract({
          address: request.currency as Address,
          abi: erc20Abi,
          functionName: 'balanceOf',
          args: [decoded.from],
        }),
      )
      // A payer short of the amount may be one whose transaction already paid: the same credential sent
      // again after a failure that came once the transfer was mined (its hash claimed by this challenge),
      // or a transaction the payer broadcast too. Refused, it would never be served; its receipt decides
      // in `settle` instead (replay, recency and amounts are checked there).
      if (balance < total && !(await alreadyMined(store, challenge.id, request, serialized)))
        throw new PaymentInsufficientError({
          detail: 'The payer balance does not cover this payment.',
          reason: 'insufficient-balance',
        })
      return { kind: 'transaction', serialized, from: decoded.from, total }
    },

    async settle({ challenge, request, store, verified }): Promise<Method.Settlement> {
      const externalId = request.externalId
      const done = (reference: string): Method.Settlement =>
        externalId === undefined ? { reference } : { reference, externalId }
      if (verified.kind === 'proof') return done(challenge.id)
      if (verified.kind === 'hash') {
        await claim(store, verified.receipt.transactionHash, challenge.id)
        return done(verified.receipt.transactionHash)
      }
      // "If `feePayer: true`, server adds fee sponsorship (signs with `0x78` domain)"
      const final = await finalTransaction(request, verified.serialized)
      const hash = keccak256(final)
      await claim(store, hash, challenge.id)
      const paid = (receipt: TransactionReceipt): Method.Settlement => {
        if (receipt.status !== 'success')
          throw new VerificationFailedError({
            detail: 'The transaction reverted.',
            reason: 'transaction-reverted',
          })
        assertPays({
          request,
          expected: expectedTransfers(request),
          effects: logEffects(receipt.logs as readonly RawLog[]),
          sender: verified.from,
          challenge,
          subject: 'receipt',
        })
        return done(receipt.transactionHash)
      }
      // With a fixed memo, a transaction mined before is looked up (and its age checked) before anything
      // is sent: an old one re-sent after its hash was forgotten (the node may answer a known transaction
      // with its old receipt, or refuse it as a nonce reuse), or this challenge's own payment, its
      // credential sent again after a failure (that retry goes to the receipt, nothing is sent again).
      // Every failure here comes before this attempt's broadcast. Once the lookup found none, any
      // receipt after the broadcast is of a block mined since: no block read (whose outage would answer a
      // landed payment with a 503 + Retry-After, "nothing was charged") follows the broadcast.
      if (request.methodDetails?.memo !== undefined) {
        const mined = await findReceipt(hash)
        if (mined) {
          assertSameTransaction(mined, hash)
          await assertRecent(request, mined)
          return paid(mined)
        }
      }
      let receipt: TransactionReceipt
      try {
        receipt = await sendRawTransactionSync(client, { serializedTransaction: final })
      } catch (error) {
        // Refused before it reached the node: nothing was sent, the same credential may be retried (503
        // + Retry-After, the challenge released). Any other outage may have come after the node took it.
        if (isUnavailable(error)) {
          if (neverSent(error)) throw unavailable(error)
          receipt = await receiptAfterLostAnswer(hash, error)
        } else {
          // A definite refusal of a transaction already mined (the payer broadcast it too): the chain
          // executed it once; use its receipt. One the node already holds, pending ("already imported":
          // the payer, or anyone who saw it, sent it first), may still be mined: waited for like a lost
          // answer, never refused with a fresh challenge the payer would pay a second time. Otherwise the
          // node refused it: the hash is released. An outage of that lookup hides whether it was mined: a
          // 503 + Retry-After (this broadcast was refused, nothing was sent), the hash kept claimed by this
          // challenge so the same credential resent resumes, instead of a refusal of a landed payment.
          let existing = await getTransactionReceipt(client, { hash }).catch((lookup) => {
            if (isUnavailable(lookup)) throw unavailable(lookup)
            return undefined
          })
          if (!existing && (await getTransaction(client, { hash }).catch(() => undefined)))
            existing = await receiptAfterLostAnswer(hash, error)
          if (!existing) {
            await store.delete(`tx:${hash.toLowerCase()}`).catch(() => {})
            throw new VerificationFailedError({
              detail: 'The node rejected the transaction.',
              reason: 'transaction-rejected',
              cause: rpcErrorSummary(error),
            })
          }
          receipt = existing
        }
      }
      // Only the transaction sent pays: a receipt of another one (a node or proxy answering with a
      // replacement's receipt) says nothing about it. Its hash stays claimed, so only this challenge may
      // retry it.
      assertSameTransaction(receipt, hash)
      return paid(receipt)
    },
  }
}

/**
 * True when a non-zero charge request carries a fixed `methodDetails.memo` and advertises push
 * (`supportedModes` omitted, which means both modes, or naming `push`). Defensive about shapes: it runs
 * beside the schema's own field checks, which may have failed.
 */
function advertisesPushWithFixedMemo(request: unknown): boolean {
  const { amount, methodDetails } = (request ?? {}) as { amount?: unknown; methodDetails?: unknown }
  // "For zero-amount charges, mode negotiation does not apply."
  if (amount === '0' || !methodDetails || typeof methodDetails !== 'object') return false
  const { memo, supportedModes } = methodDetails as { memo?: unknown; supportedModes?: unknown }
  if (memo === undefined) return false
  return !Array.isArray(supportedModes) || supportedModes.includes('push')
}

/**
 * Throws a `VerificationFailedError` (`receipt-mismatch`) unless the receipt is the one of `hash`: a
 * receipt of another transaction (a replacement, as viem's `waitForTransactionReceipt` or a proxy may
 * return) never pays, and its hash was never claimed for this challenge.
 */
function assertSameTransaction(receipt: TransactionReceipt, hash: string): void {
  if (
    typeof receipt.transactionHash !== 'string' ||
    receipt.transactionHash.toLowerCase() !== hash.toLowerCase()
  )
    throw new VerificationFailedError({
      detail: 'The receipt is not the one of the payment transaction.',
      reason: 'receipt-mismatch',
    })
}

type DecodedTransaction = {
  chainId: number
  from: Address
  calls: readonly { to?: Address | null; data?: Hex; value?: bigint }[]
  gas?: bigint
  maxFeePerGas?: bigint
  maxPriorityFeePerGas?: bigint
  nonceKey?: bigint
  validBefore?: number
  validAfter?: number
  feeToken?: Address
  accessList?: readonly unknown[]
  authorizationList?: readonly unknown[]
  keyAuthorization?: unknown
  signature?: unknown
}

function decodeTransaction(serialized: Hex): DecodedTransaction {
  // "Deserialize the RLP-encoded transaction from `payload.signature`"
  const prefix = serialized.slice(0, 4).toLowerCase()
  if (prefix !== '0x76' && prefix !== '0x78')
    throw new VerificationFailedError({
      detail: 'Only Tempo (0x76/0x78) transactions are accepted.',
      reason: 'invalid-transaction',
    })
  let transaction: Record<string, unknown>
  try {
    // The envelope must be exactly one RLP list: the deserializer ignores trailing bytes, which would
    // give one signed transaction many encodings (and hashes), so `keccak256(serialized)` would not be
    // the hash the node executes (replay key, lost-answer lookup).
    fromRlp(`0x${serialized.slice(4)}`)
    transaction = Transaction.deserialize(serialized) as unknown as Record<string, unknown>
  } catch {
    throw new VerificationFailedError({
      detail: 'The transaction could not be decoded.',
      reason: 'invalid-transaction',
    })
  }
  if (!transaction.signature || typeof transaction.from !== 'string')
    throw new VerificationFailedError({
      detail: 'The transaction is not signed by its sender.',
      reason: 'invalid-transaction',
    })
  return transaction as unknown as DecodedTransaction
}

/**
 * The fee side of a sponsor policy, shared by charge and session fee payers: gas limit, fee caps
 * (`maxFeePerGas`, `maxPriorityFeePerGas`, `gas × maxFeePerGas`), no client fee token, the nonce lane,
 * the validity window, and no access list, 7702 authorization list, key authorization or future
 * `validAfter`. `expiringByDefault` is the default of `policy.requireExpiringNonce`. Synchronous and
 * without RPC (the caps are absolute, not read from the chain): Tempo's base fee is fixed by the protocol.
 */
export function checkSponsorPolicy(
  transaction: {
    chainId?: number | undefined
    gas?: bigint | undefined
    maxFeePerGas?: bigint | undefined
    maxPriorityFeePerGas?: bigint | undefined
    feeToken?: string | undefined
    nonceKey?: bigint | undefined
    validBefore?: number | undefined
    validAfter?: number | undefined
    accessList?: readonly unknown[] | undefined
    authorizationList?: readonly unknown[] | undefined
    keyAuthorization?: unknown
  },
  expires: string | undefined,
  policy: SponsorPolicy,
  expiringByDefault: boolean,
  nowSeconds = Math.floor(Date.now() / 1000),
): void {
  const fail = (detail: string, reason = 'sponsor-policy'): never => {
    throw new VerificationFailedError({ detail: `Payment verification failed: ${detail}`, reason })
  }
  const requireExpiring = policy.requireExpiringNonce ?? expiringByDefault
  const gas = transaction.gas ?? 0n
  if (gas > (policy.maxGas ?? 2_000_000n)) fail('gas limit exceeds sponsor policy')
  // "Servers acting as fee payers accept financial risk" (§"Server-Paid Fees"): the fee payer pays
  // gas used × min(maxFeePerGas, base fee + maxPriorityFeePerGas) at the client's chosen prices, so both
  // are capped (without caps one 0.001 USD charge made the sponsor pay 550 pathUSD).
  const maxFeePerGas = transaction.maxFeePerGas ?? 0n
  if (maxFeePerGas > (policy.maxFeePerGas ?? 100n * gwei))
    fail('maxFeePerGas exceeds sponsor policy', 'sponsor-fee-too-high')
  const maxPriority =
    policy.maxPriorityFeePerGas ?? (transaction.chainId === moderatoChainId ? 50n : 10n) * gwei
  if ((transaction.maxPriorityFeePerGas ?? 0n) > maxPriority)
    fail('maxPriorityFeePerGas exceeds sponsor policy', 'sponsor-fee-too-high')
  if (policy.maxTotalFee !== undefined && gas * maxFeePerGas > policy.maxTotalFee)
    fail('total fee (gas × maxFeePerGas) exceeds sponsor policy', 'sponsor-fee-too-high')
  // "When `feePayer: true`: Clients MUST sign with `fee_payer_signature` set to `0x00` and `fee_token`
  // empty or `0x80` (RLP null)"
  if (transaction.feeToken) fail('a sponsored transaction must not include fee_token')
  if (requireExpiring && transaction.nonceKey !== maxUint256)
    fail('a sponsored transaction must use expiring nonce key')
  if (transaction.validBefore !== undefined || requireExpiring) {
    const validBefore = transaction.validBefore ?? Number.MAX_SAFE_INTEGER
    const challengeLimit = expires ? Math.floor(Date.parse(expires) / 1000) + 60 : Number.MAX_SAFE_INTEGER
    if (validBefore > Math.min(nowSeconds + (policy.maxValidityWindowSeconds ?? 900), challengeLimit))
      fail('validity window exceeds sponsor policy')
  }
  // The fee payer broadcasts at once: a transaction held back until later would execute (and be paid
  // for) after its payment was refused. A past `validAfter` is allowed (mppx sets a random one on topUp).
  if (transaction.validAfter !== undefined && transaction.validAfter > nowSeconds)
    fail('a sponsored transaction must be valid now (validAfter is in the future)')
  if (transaction.accessList && transaction.accessList.length > 0) fail('access list is not allowed')
  // The fee payer pays for this payment only, not for delegating the payer's account (EIP-7702) or
  // provisioning its access keys.
  if (transaction.authorizationList && transaction.authorizationList.length > 0)
    fail('authorization list is not allowed')
  if (transaction.keyAuthorization != null && policy.allowKeyAuthorization !== true)
    fail('key authorization is not allowed')
}

/**
 * Sponsor policy: what a fee payer checks before co-signing.
 *
 * @see tempo-fee-payer-cosign.json: "Fee-payer sponsor/cosign verification must reject envelopes that
 *   violate sponsor policy before adding the fee-payer signature."
 */
function checkSponsorable(
  transaction: DecodedTransaction,
  request: TempoChargeRequest,
  challenge: { id: string; realm: string; expires?: string | undefined } | undefined,
  policy: SponsorPolicy = {},
  nowSeconds = Math.floor(Date.now() / 1000),
): void {
  const fail = (detail: string, reason: string): never => {
    throw new VerificationFailedError({ detail: `Payment verification failed: ${detail}`, reason })
  }
  checkSponsorPolicy(transaction, challenge?.expires, policy, true, nowSeconds)
  // Policy first, then the calls: the fee payer pays gas only for exactly this payment.
  const effects = callEffects(transaction.calls)
  const expected = expectedTransfers(request)
  if (!effects || effects.length !== expected.length) {
    // A plain transfer is never enough to sponsor: without the challenge memo it could not be verified
    // after the fee payer already paid the gas.
    if (effects && effects.length < expected.length) fail('no matching payment call found', 'unexpected-call')
    fail('the transaction contains unauthorized extra calls', 'unexpected-call')
  }
  assertPays({ request, expected, effects: effects!, challenge, subject: 'transaction' })
}

/**
 * Checks a client's fee-payer envelope against the sponsor policy and co-signs it as fee payer (domain
 * 0x78), returning the broadcastable 0x76 transaction. No RPC: usable offline.
 *
 * @example
 * ```ts
 * const ready = await cosign({ serializedTransaction, feePayer, feeToken: pathUsd, check: { request, challenge } })
 * ```
 * @see draft-tempo-charge-00 §"Server-Paid Fees"
 */
export async function cosign(parameters: {
  serializedTransaction: Hex
  feePayer: Account
  feeToken: Address
  /** When given, the sponsor policy is checked first (throws `VerificationFailedError`). */
  check?: {
    request: TempoChargeRequest
    /** The challenge the memo must bind (omit to check the policy and amounts only). */
    challenge?: { id: string; realm: string; expires?: string | undefined }
    policy?: SponsorPolicy
    nowSeconds?: number
  }
}): Promise<Hex> {
  const decoded = decodeTransaction(parameters.serializedTransaction)
  if (parameters.check)
    checkSponsorable(
      decoded,
      parameters.check.request,
      parameters.check.challenge,
      parameters.check.policy,
      parameters.check.nowSeconds,
    )
  if (typeof (parameters.feePayer as { sign?: unknown }).sign !== 'function')
    throw new ConfigurationError('tempo: the fee payer must be a local account (it signs a hash)')
  const transaction = Transaction.deserialize(parameters.serializedTransaction) as unknown as Record<
    string,
    unknown
  >
  return (await Transaction.serialize({
    ...transaction,
    feePayer: parameters.feePayer,
    feeToken: parameters.feeToken,
  } as never)) as Hex
}

async function verifyProof(
  challenge: { id: string; realm: string },
  payload: Extract<TempoChargePayload, { type: 'proof' }>,
  source: string | undefined,
  chainId: number,
): Promise<void> {
  // "1. Verify `credential.source` is present and parses as `did:pkh:eip155:<chainId>:<address>`
  //  2. Verify the chain ID from `source` matches `methodDetails.chainId` from the challenge"
  const parsed = Proof.parseSource(source)
  if (!parsed || parsed.chainId !== chainId)
    throw new VerificationFailedError({
      detail: 'A proof needs a did:pkh source on this chain.',
      reason: 'invalid-source',
    })
  // "3. Recover the signer … 4. Verify the recovered signer matches the address in `source`"
  for (const version of Proof.versions) {
    const valid = await verifyTypedData({
      address: parsed.address,
      ...Proof.typedData({
        version,
        chainId,
        challengeId: challenge.id,
        realm: challenge.realm,
        account: parsed.address,
      }),
      signature: payload.signature as Hex,
    } as Parameters<typeof verifyTypedData>[0]).catch(() => false)
    if (valid) return
  }
  throw new VerificationFailedError({
    detail: 'The proof signature does not match its source.',
    reason: 'invalid-signature',
  })
}

/** @internal for conformance fixtures */
export const internal = { checkSponsorable, decodeTransaction }

export type { PublicClient }

/**
 * Verifies a transaction receipt (JSON-RPC shape: `status` `"0x1"`/`"success"`, raw `logs`) against a
 * charge challenge, without RPC: the receipt must show success and TIP-20 transfer effects that pay the
 * request and carry the challenge-bound memo. Returns the receipt fields of a success.
 *
 * @example
 * ```ts
 * verifyChargeReceipt({ challenge, request, receipt: await client.request({ method: 'eth_getTransactionReceipt', params: [hash] }) })
 * ```
 * @see draft-tempo-charge-00 §"Hash Verification"; conformance operation `tempo.receipt.verify`
 */
export function verifyChargeReceipt(parameters: {
  challenge: { id: string; realm: string }
  request: unknown
  receipt: { transactionHash: string; status: string; from?: string; logs: readonly RawLog[] }
  sender?: string
}): { status: 'success'; reference: string } {
  const parsed = charge.request.safeParse(parameters.request)
  if (!parsed.success)
    throw new VerificationFailedError({ detail: 'The charge request is invalid.', reason: 'invalid-request' })
  const { receipt } = parameters
  if (receipt.status !== '0x1' && receipt.status !== 'success')
    throw new VerificationFailedError({ detail: 'The transaction reverted.', reason: 'transaction-reverted' })
  assertPays({
    request: parsed.data,
    expected: expectedTransfers(parsed.data),
    effects: logEffects(receipt.logs),
    sender: parameters.sender,
    challenge: parameters.challenge,
    subject: 'receipt',
  })
  return { status: 'success', reference: receipt.transactionHash }
}
