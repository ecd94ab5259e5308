import { ConfigurationError, type Method, type Store, VerificationFailedError } from '@mppkit/core'
import {
  getTransactionDecoder,
  getTransactionEncoder,
  isAddress,
  type TransactionPartialSigner,
} from '@solana/kit'
import {
  assertMemo,
  associatedTokenAddress,
  type Decoded,
  decodeBase64,
  decodeTransaction,
  inspectPayment,
  type Limits,
  memoTexts,
} from '../internal/inspect.js'
import { assertLanded, type LandedTransaction } from '../internal/landed.js'
import { readMint } from '../internal/mint.js'
import {
  createRpc,
  guard,
  type Rpc,
  RpcAnswerError,
  RpcUnavailableError,
  unavailable,
} from '../internal/rpc.js'
import { sharedRead, until } from '../internal/shared.js'
import { charge, normalizeNetwork, type SolanaChargeRequest } from '../Methods.js'

/** A split the server asks for. @see draft-solana-charge-00 §"Method Details", `splits` */
export type SplitOption = { recipient: string; amount: string; memo?: string; ataCreationRequired?: boolean }

/** Options of {@link chargeServer}. */
export type ChargeOptions = {
  /** JSON-RPC URL of a Solana node the server trusts ("Servers SHOULD use trusted RPC providers"). */
  rpcUrl: string
  /** `methodDetails.network` (default `mainnet`). */
  network?: 'mainnet' | 'devnet' | 'localnet'
  /** `sol` or a base58 mint address (compared exactly). */
  currency: string
  /** Decimals of the mint (required for a mint; checked against the mint account). */
  decimals?: number
  /** Token program of the mint (default: read from the mint account once). */
  tokenProgram?: string
  /** Owner of the receiving account (for a mint: the owner of the ATA, which must exist). */
  recipient: string
  /**
   * A signer that pays transaction fees for clients (`feePayer: true`). It co-signs pull transactions
   * only after every instruction was checked; see the README on fee sponsorship risks.
   */
  feePayer?: TransactionPartialSigner
  /** `methodDetails.splits` (at most 8). */
  splits?: readonly SplitOption[]
  /** Commitment a payment must reach before the receipt (default `confirmed`; spec minimum). */
  commitment?: 'confirmed' | 'finalized'
  /**
   * Push signatures are remembered this long (seconds, default 3600); a transaction whose block time is
   * older is refused, so a forgotten signature cannot be presented again.
   */
  replayWindowSeconds?: number
  /** Per-RPC-call timeout in ms (default 10 000). */
  timeout?: number
  /** How long settlement waits for the commitment, in ms (default 30 000; then 503, retry). */
  confirmTimeout?: number
  /** Largest compute-unit limit a pull transaction may set (default 400 000). */
  maxComputeUnitLimit?: number
  /** Largest priority fee (micro-lamports per CU) a sponsored transaction may set (default 1 000 000). */
  maxComputeUnitPrice?: bigint
  /**
   * Put a recent blockhash into each challenge (default true). One `getLatestBlockhash` in flight serves
   * every 402 that comes meanwhile; a 402 waits for it at most 1 s (else it goes without, and the client
   * fetches one).
   */
  recentBlockhash?: boolean
  /**
   * Below this fee payer balance (lamports, default 10 000 000 = 0.01 SOL) challenges fall back to
   * client-paid fees (`feePayer` absent). The balance is read at most every 5 s; a 402 waits for a
   * re-read at most 1 s, then goes by the previous answer (none yet: client-paid fees).
   */
  minFeePayerLamports?: bigint
  /** fetch used for RPC calls (tests). */
  fetch?: typeof fetch
}

/**
 * Why the node refused a transaction (simulation or send): the credential's problem, and whether the node
 * said this very transaction already landed (`AlreadyProcessed`).
 */
type Refusal = { error: VerificationFailedError; processed: boolean }

type Verified =
  | { kind: 'transaction'; decoded: Decoded }
  | { kind: 'signature'; signature: string; blockTime: number | null }

function checkOptions(options: ChargeOptions): void {
  const bad = (field: string, what: string): never => {
    throw new ConfigurationError(`solana: ${field} must be ${what}`)
  }
  if (!options || typeof options !== 'object') throw new ConfigurationError('solana: options are required')
  if (typeof options.rpcUrl !== 'string' || !/^https?:\/\//.test(options.rpcUrl))
    bad('rpcUrl', 'an http(s) URL')
  if (options.currency !== 'sol' && !isAddress(options.currency)) bad('currency', '"sol" or a base58 mint')
  if (!isAddress(options.recipient)) bad('recipient', 'a base58 public key')
  const mint = options.currency !== 'sol'
  if (mint && !(Number.isInteger(options.decimals) && options.decimals! >= 0 && options.decimals! <= 9))
    bad('decimals', 'an integer from 0 to 9 for a mint')
  if (!mint && (options.decimals !== undefined || options.tokenProgram !== undefined))
    bad('decimals and tokenProgram', 'absent for sol')
  if (options.network !== undefined && !['mainnet', 'devnet', 'localnet'].includes(options.network))
    bad('network', 'mainnet, devnet or localnet')
  if (options.feePayer && typeof options.feePayer.signTransactions !== 'function')
    bad('feePayer', 'a @solana/kit TransactionPartialSigner (e.g. a KeyPairSigner)')
  if ((options.splits?.length ?? 0) > 8) bad('splits', 'at most 8 entries')
  options.splits?.forEach((split, i) => {
    if (!isAddress(split?.recipient)) bad(`splits[${i}].recipient`, 'a base58 public key')
    if (!/^[1-9]\d{0,19}$/.test(split?.amount ?? '')) bad(`splits[${i}].amount`, 'a positive integer string')
    if (split.ataCreationRequired && !mint) bad(`splits[${i}].ataCreationRequired`, 'used with a mint only')
  })
  // "Servers MUST NOT issue a receipt before the transaction reaches at least `confirmed`": a lower
  // commitment is never reached by `waitFor`, so every payment would be taken and then answered 503.
  if (options.commitment !== undefined && !['confirmed', 'finalized'].includes(options.commitment))
    bad('commitment', '"confirmed" or "finalized"')
  // NaN or 0 would make every push signature look too old (or its key unstorable) after the payer paid.
  if (
    options.replayWindowSeconds !== undefined &&
    !positiveInteger(options.replayWindowSeconds, Math.floor(Number.MAX_SAFE_INTEGER / 2000))
  )
    bad('replayWindowSeconds', 'a positive whole number of seconds')
  // Node's timers take at most 2^31 - 1 ms; 0, NaN or a larger value would fire at once (every call 503).
  for (const field of ['timeout', 'confirmTimeout'] as const)
    if (options[field] !== undefined && !positiveInteger(options[field], maxTimerMs))
      bad(field, 'a whole number of milliseconds, 1 to 2147483647')
}

/** The largest timeout Node's timers take (2^31 - 1 ms). */
const maxTimerMs = 2_147_483_647

function positiveInteger(value: unknown, max: number): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= max
}

/**
 * Creates the server side of `solana/charge`: pull credentials (a signed transaction) are checked
 * instruction by instruction, co-signed when the server pays fees, simulated, sent and awaited at the
 * configured commitment; push credentials (a signature) are fetched and checked on chain. Every
 * signature is consumed once through the Store; the receipt `reference` is the transaction signature.
 *
 * @example
 * ```ts
 * const server = Server.create({ realm, secrets, methods: [chargeServer({ rpcUrl, network: 'localnet', currency: mint, decimals: 6, recipient })] })
 * ```
 * @see draft-solana-charge-00
 */
export function chargeServer(options: ChargeOptions): Method.Server<typeof charge, Verified> {
  checkOptions(options)
  const rpc: Rpc = createRpc(options.rpcUrl, options.timeout ?? 10_000, options.fetch)
  const network = options.network ?? 'mainnet'
  const commitment = options.commitment ?? 'confirmed'
  const replayWindowMs = (options.replayWindowSeconds ?? 3600) * 1000
  const confirmTimeout = options.confirmTimeout ?? 30_000
  const sponsor = options.feePayer ? String(options.feePayer.address) : undefined
  const limits: Limits = {
    maxComputeUnitLimit: options.maxComputeUnitLimit ?? 400_000,
    maxComputeUnitPrice: options.maxComputeUnitPrice ?? 1_000_000n,
  }
  const mintCache = new Map<
    string,
    { at: number; facts: Promise<{ tokenProgram: string; decimals: number }> }
  >()
  const mintFacts = (mint: string) => {
    const cached = mintCache.get(mint)
    if (cached && Date.now() - cached.at < 60_000) return cached.facts
    const facts = guard(() => readMint(rpc, mint))
    mintCache.set(mint, { at: Date.now(), facts })
    facts.catch(() => mintCache.delete(mint))
    return facts
  }

  const minFeePayerLamports = options.minFeePayerLamports ?? 10_000_000n
  let feePayerBalance: { at: number; funded: Promise<boolean> } | undefined
  // The last balance answer, used by a 402 while a newer read is slower than `hintWait` (see prepare).
  let lastFunded = false
  const feePayerFunded = (): Promise<boolean> => {
    if (feePayerBalance && Date.now() - feePayerBalance.at < 5_000) return feePayerBalance.funded
    const funded = rpc<{ value: number }>('getBalance', [sponsor, { commitment: 'confirmed' }])
      .then((answer) => BigInt(answer.value) >= minFeePayerLamports)
      .catch(() => false)
    funded.then((answer) => {
      lastFunded = answer
    })
    feePayerBalance = { at: Date.now(), funded }
    return funded
  }

  // One getLatestBlockhash in flight at a time, shared by the 402s that come meanwhile: however many
  // clients ask, the node gets at most one call per round trip. Its answer is not kept after it came: two
  // payments of one payer for one charge built on the same blockhash are the identical transaction (one
  // signature: the second is refused as already processed or used), so a blockhash kept for a second would
  // fail a client paying twice in that second, where a fresh read gives it the node's newer blockhash.
  // The field is "advisory and short-lived; it MUST NOT be assumed to remain valid for the full lifetime
  // of the payment challenge": an outage or a slow node omits it ("If omitted, clients MUST fetch a
  // recent blockhash themselves").
  const latestBlockhash = sharedRead(
    () =>
      rpc<{ value: { blockhash: string } }>('getLatestBlockhash', [{ commitment }]).then(
        (latest) => latest?.value?.blockhash || undefined,
        () => undefined,
      ),
    0,
  )
  // How long a 402 waits for what it can be issued without (the blockhash and token program hints, the
  // recipient's account check, a balance re-read); the reads go on, and the mint, account and balance
  // answers fill their caches for later 402s.
  const hintWait = Math.min(options.timeout ?? 10_000, 1_000)

  // Token accounts seen to exist (program and address → when). Only existence is remembered, and only for
  // a minute: an account closed meanwhile makes the node's preflight or simulation refuse the transaction.
  const existing = new Map<string, number>()
  // Lookups in flight (program and address → whether it exists): concurrent 402s and verifications that
  // need the same account share one getMultipleAccounts instead of each sending their own.
  const looking = new Map<string, Promise<boolean>>()
  /** The token accounts of `addresses` that do not exist (or are not accounts of `tokenProgram`). */
  const missingTokenAccounts = async (addresses: readonly string[], tokenProgram: string) => {
    const now = Date.now()
    const keyOf = (address: string) => `${tokenProgram}/${address}`
    const unknown = [...new Set(addresses)].filter(
      (address) => !((existing.get(keyOf(address)) ?? 0) > now - 60_000),
    )
    if (unknown.length === 0) return []
    const asked = unknown.filter((address) => !looking.has(keyOf(address)))
    if (asked.length > 0) {
      const answer = guard(() =>
        rpc<{ value: ({ owner: string } | null)[] }>('getMultipleAccounts', [
          asked,
          { encoding: 'base64', commitment: 'confirmed', dataSlice: { offset: 0, length: 0 } },
        ]),
      )
      asked.forEach((address, i) => {
        const key = keyOf(address)
        const exists = answer.then((found) => {
          const owned = found.value?.[i]?.owner === tokenProgram
          if (owned) {
            if (existing.size > 4096) existing.clear()
            existing.set(key, now)
          }
          return owned
        })
        looking.set(key, exists)
        const done = () => {
          if (looking.get(key) === exists) looking.delete(key)
        }
        exists.then(done, done)
      })
    }
    // Taken before any await: every key is in flight now (asked above or by a concurrent caller).
    const found = await Promise.all(unknown.map((address) => looking.get(keyOf(address))!))
    return unknown.filter((_, i) => !found[i])
  }

  const methodDetails = (): NonNullable<SolanaChargeRequest['methodDetails']> => {
    const details: NonNullable<SolanaChargeRequest['methodDetails']> = { network }
    if (options.currency !== 'sol') details.decimals = options.decimals!
    if (options.tokenProgram) details.tokenProgram = options.tokenProgram as never
    if (sponsor) Object.assign(details, { feePayer: true, feePayerKey: sponsor })
    if (options.splits?.length) details.splits = options.splits.map((split) => ({ ...split })) as never
    return details
  }

  /** Claims a signature for a challenge: true when fresh, false when this challenge already held it. */
  const claim = async (store: Store, signature: string, challengeId: string, ttl: number) => {
    const key = `sig:${signature}`
    if (await store.putIfAbsent(key, challengeId, ttl)) return true
    // The same credential retried after an outage (the core released its challenge) may continue.
    if ((await store.get(key)) === challengeId) return false
    throw new VerificationFailedError({
      detail: 'This transaction signature was already used for a payment.',
      reason: 'replayed-signature',
    })
  }

  /**
   * Fetches a landed transaction at the configured commitment (null: not found or not yet there).
   * The spec fetches it "with `jsonParsed` encoding"; `base64` carries the same transaction and the
   * same meta (status, token balances), is the smallest answer for the node to build, and the wire
   * bytes are decoded here by the strict reader that checks pull transactions.
   */
  const fetchLanded = (signature: string) =>
    guard(() =>
      rpc<LandedTransaction | null>('getTransaction', [
        signature,
        { encoding: 'base64', commitment, maxSupportedTransactionVersion: 0 },
      ]),
    )

  const tokenProgramOf = async (request: SolanaChargeRequest) => {
    if (request.currency === 'sol') return undefined
    const facts = await mintFacts(request.currency)
    const named = request.methodDetails?.tokenProgram
    if (named !== undefined && named !== facts.tokenProgram)
      throw new VerificationFailedError({
        detail: 'The mint is not owned by the named token program.',
        reason: 'token-program-mismatch',
      })
    if (facts.decimals !== request.methodDetails?.decimals)
      throw new VerificationFailedError({
        detail: 'The mint has other decimals.',
        reason: 'decimals-mismatch',
      })
    return facts.tokenProgram
  }

  return {
    definition: charge,
    defaults: { currency: options.currency, recipient: options.recipient },

    async prepare({ request }) {
      const details = { ...methodDetails(), ...(request.methodDetails ?? {}) }
      // Confidential charges (type="bundle") need the ZK ElGamal proof program: never issued here.
      if (details.confidential === true)
        throw new ConfigurationError('solana: confidential (bundle) charges are not supported by this server')
      // The lookups are independent and start together; none holds the 402 past `hintWait`.
      const deadline = Date.now() + hintWait
      const blockhash =
        options.recentBlockhash !== false ? until(latestBlockhash(), deadline, undefined) : undefined
      // A balance read slower than that answers with the previous one (false before any).
      const funded =
        details.feePayer === true
          ? until(feePayerFunded(), deadline, undefined).then((answer) => answer ?? lastFunded)
          : undefined
      // The recipient's account is looked up beside the mint when the token program is already known.
      const recipientMissing = async (tokenProgram: string) => {
        const ata = await associatedTokenAddress(request.recipient, request.currency, tokenProgram)
        const missing = await until(missingTokenAccounts([ata], tokenProgram), deadline, []).catch(() => [])
        return missing.length > 0 ? ata : undefined
      }
      const early =
        request.currency !== 'sol' && details.tokenProgram !== undefined
          ? { tokenProgram: details.tokenProgram as string, ata: recipientMissing(details.tokenProgram) }
          : undefined
      early?.ata.catch(() => undefined) // awaited below unless the mint check throws first
      // "Servers SHOULD include this field as a hint to avoid the extra RPC lookup."
      // A mint this server would refuse at verification (not a mint, other decimals or token program, a
      // transfer fee or hook…) gets no challenge: a push client sends its payment before presenting it,
      // so a challenge issued for such a mint would be paid and then refused. An operator error, reported.
      // A mint that cannot be read now (an outage, or slower than `hintWait`) leaves the hint out;
      // verification reads it again.
      if (request.currency !== 'sol') {
        const tokenProgram = await until(
          tokenProgramOf({ ...request, methodDetails: details }),
          deadline,
          undefined,
        ).catch((error) => {
          if (error instanceof VerificationFailedError)
            throw new ConfigurationError(`solana: cannot charge in mint ${request.currency}: ${error.detail}`)
          return undefined
        })
        if (tokenProgram) details.tokenProgram = tokenProgram as never
      }
      // "Servers SHOULD verify the top-level recipient's ATA exists before issuing a challenge" and
      // "MUST NOT issue a challenge that requires creating it": a missing one leaves this offer out (an
      // operator error, reported); an unreadable one does not block the challenge (verification checks).
      if (request.currency !== 'sol' && details.tokenProgram !== undefined) {
        const ata = await (early?.tokenProgram === details.tokenProgram
          ? early.ata
          : recipientMissing(details.tokenProgram))
        if (ata !== undefined)
          throw new ConfigurationError(
            `solana: the recipient's token account ${ata} (owner ${request.recipient}) does not exist; create it before charging in this mint`,
          )
      }
      // "Servers MUST monitor fee payer balance and reject new fee-sponsored requests when insufficient.
      // The server SHOULD return a 402 with `feePayer: false`": low (or unreadable) balance → no sponsorship.
      if (funded && !(await funded)) {
        delete details.feePayer
        delete details.feePayerKey
      }
      // Advisory only ("MUST NOT be assumed to remain valid"); an outage just omits it.
      const recent = await blockhash
      if (recent) details.recentBlockhash = recent
      return { ...request, methodDetails: details }
    },

    async verify({ request, payload }): Promise<Verified> {
      const details = request.methodDetails ?? {}
      if (normalizeNetwork(details.network) !== network)
        throw new VerificationFailedError({
          detail: 'The challenge names another network.',
          reason: 'network-mismatch',
        })
      // "Confidential charges MUST use type="bundle"": this server cannot verify them (no ZK ElGamal
      // proof program on its test network), so it issues none and accepts none.
      if (payload.type === 'bundle' || details.confidential === true)
        throw new VerificationFailedError({
          detail: 'Confidential (bundle) charges are not supported by this server.',
          reason: 'confidential-unsupported',
        })
      if (details.feePayer === true && details.feePayerKey !== sponsor)
        throw new VerificationFailedError({
          detail: 'The challenge names another fee payer.',
          reason: 'fee-payer-mismatch',
        })
      const tokenProgram = await tokenProgramOf(request)
      if (payload.type === 'signature') {
        // "Servers MUST reject type="signature" credentials when the challenge specifies feePayer: true."
        if (details.feePayer === true)
          throw new VerificationFailedError({
            detail: 'A fee-sponsored challenge takes a signed transaction, not a signature.',
            reason: 'mode-unsupported',
          })
        return verifySignature(payload.signature, request, tokenProgram)
      }
      const bytes = decodeBase64(payload.transaction)
      const decoded = decodeTransaction(bytes)
      const inspection = await inspectPayment(decoded, request, {
        tokenProgram,
        sponsor: details.feePayer ? sponsor : undefined,
        limits,
      })
      assertMemo(memoTexts(decoded), request)
      // A transfer to a token account that does not exist fails on chain; the transaction may create
      // only split ATAs the spec allows, so any other paid account must exist before broadcasting.
      if (tokenProgram !== undefined && inspection.uncreatedDestinations.length > 0) {
        const missing = await missingTokenAccounts(inspection.uncreatedDestinations, tokenProgram)
        if (missing.length > 0)
          throw new VerificationFailedError({
            detail:
              missing[0] === (await associatedTokenAddress(request.recipient, request.currency, tokenProgram))
                ? "The recipient's token account does not exist (the spec does not let a payment create it)."
                : "A split recipient's token account does not exist and the transaction does not create it.",
            reason: 'recipient-account-missing',
          })
      }
      return { kind: 'transaction', decoded }
    },

    async settle({ challenge, request, store, verified }): Promise<Method.Settlement> {
      const done = (reference: string): Method.Settlement =>
        request.externalId === undefined ? { reference } : { reference, externalId: request.externalId }
      if (verified.kind === 'signature') {
        // "The check-and-consume operation MUST be atomic": putIfAbsent on the signature.
        await claim(store, verified.signature, challenge.id, replayWindowMs * 2)
        return done(verified.signature)
      }
      const wire = await cosign(
        verified.decoded.bytes,
        request.methodDetails?.feePayer === true ? options.feePayer : undefined,
      )
      const signature = firstSignature(wire)
      // A fresh claim means this server never sent the transaction; a claim we already held (the same
      // credential retried after an outage) may have been sent: then ask the node before sending again.
      const fresh = await claim(store, signature, challenge.id, replayWindowMs * 2)
      const release = () => store.delete(`sig:${signature}`).catch(() => {})
      const base64 = Buffer.from(wire).toString('base64')
      const known = fresh ? null : await status(signature)
      // Landed before this server sent it although the claim is fresh: someone else broadcast it,
      // perhaps long ago (landed transactions are public). Its key may have expired with the window.
      let landedElsewhere = false
      if (!known) {
        const sponsored = request.methodDetails?.feePayer === true
        // "If `feePayer` is `true`, simulate the transaction using the `simulateTransaction` RPC method.
        // The server MUST reject the credential if simulation fails." Otherwise the node's preflight
        // (sendTransaction without skipPreflight) is the simulation the spec recommends: one call fewer.
        // The sponsored send skips preflight, where the node would check the signatures: a transaction
        // with a bad payer signature would be forwarded, dropped by the leader and awaited in vain, so
        // the simulation checks them (`sigVerify`).
        // A transaction that already landed fails both (`AlreadyProcessed`, or on a cluster the payer's
        // tokens are gone): on the retry of a credential whose send answer was lost, after a status read
        // from a node that was behind, it is the payment itself. So a failure is checked against the
        // signature's status before the key is released and the credential refused, as in `waitFor`.
        let failure = sponsored ? await simulate(base64) : undefined
        failure ??= await send(base64, sponsored)
        if (failure) {
          // `AlreadyProcessed` says the node has the transaction: it is looked up (`waitFor`), never
          // refused, even when the status read right after it still comes from a node that is behind.
          if (!failure.processed && !(await status(signature))) {
            await release()
            throw failure.error
          }
          landedElsewhere = fresh
        }
      }
      const landed = await waitFor(signature, verified.decoded.blockhash, release)
      // "A signature that has been consumed MUST NOT be accepted again, even if presented with a
      // different challenge ID." (§Replay Protection) The signature's key lives twice the replay window;
      // a transaction someone else landed is taken only within that window, as a pushed one is, so an
      // old payment whose key has expired cannot be presented again. The key stays claimed.
      if (landedElsewhere) assertRecent(landed.blockTime)
      // "Fetch the confirmed transaction … and verify the transfer details still match"
      assertLanded(landed, decodeTransaction(wire), request)
      return done(signature)
    },
  }

  async function verifySignature(
    signature: string,
    request: SolanaChargeRequest,
    tokenProgram: string | undefined,
  ): Promise<Verified> {
    // "Fetch the transaction … with … the `confirmed` commitment level" (or finalized when configured).
    const landed = await fetchLanded(signature)
    if (!landed)
      throw new VerificationFailedError({
        detail: `The transaction is not found or not yet ${commitment}.`,
        reason: 'transaction-not-found',
      })
    if (landed.meta?.err !== null && landed.meta?.err !== undefined)
      throw new VerificationFailedError({
        detail: 'The transaction failed on chain.',
        reason: 'transaction-failed',
      })
    assertRecent(landed.blockTime)
    const decoded = decodeTransaction(decodeBase64(landed.transaction[0]))
    if (decoded.signatures[0]?.[1] !== signature)
      throw new VerificationFailedError({
        detail: 'The node returned another transaction.',
        reason: 'transaction-not-found',
      })
    await inspectPayment(decoded, request, { tokenProgram, sponsor: undefined, limits, strict: false })
    assertMemo(memoTexts(decoded), request)
    assertLanded(landed, decoded, request)
    return { kind: 'signature', signature, blockTime: landed.blockTime }
  }

  /** A landed transaction is accepted only within the replay window (its signature's key outlives it). */
  function assertRecent(blockTime: number | null | undefined): asserts blockTime is number {
    if (blockTime === null || blockTime === undefined || blockTime * 1000 < Date.now() - replayWindowMs)
      throw new VerificationFailedError({
        detail: 'The transaction is older than the replay window.',
        reason: 'transaction-too-old',
      })
  }

  /** Simulates a sponsored transaction (`sigVerify`); its refusal when it would fail, else undefined. */
  async function simulate(base64: string): Promise<Refusal | undefined> {
    let simulated: { value: { err: unknown } }
    try {
      simulated = await guard(() =>
        rpc<{ value: { err: unknown } }>('simulateTransaction', [
          base64,
          { encoding: 'base64', commitment: 'confirmed', sigVerify: true },
        ]),
      )
    } catch (error) {
      if (!(error instanceof RpcAnswerError)) throw error
      const err = (error.data as { err?: unknown } | undefined)?.err
      return { error: rejected(error), processed: alreadyProcessed(err) }
    }
    const err = simulated.value.err
    return err === null ? undefined : { error: simulationProblem(err), processed: alreadyProcessed(err) }
  }

  /** Sends a transaction; the node's refusal, else undefined (an outage throws: 503, the key kept). */
  async function send(base64: string, sponsored: boolean): Promise<Refusal | undefined> {
    try {
      await guard(() =>
        rpc('sendTransaction', [
          base64,
          { encoding: 'base64', skipPreflight: sponsored, preflightCommitment: 'confirmed' },
        ]),
      )
      return undefined
    } catch (error) {
      if (!(error instanceof RpcAnswerError)) throw error
      const err = (error.data as { err?: unknown } | undefined)?.err
      return {
        error: err !== undefined && err !== null ? simulationProblem(err) : rejected(error),
        processed: alreadyProcessed(err),
      }
    }
  }

  async function status(signature: string) {
    const answer = await guard(() =>
      rpc<{ value: ({ err: unknown; confirmationStatus: string | null } | null)[] }>('getSignatureStatuses', [
        [signature],
        { searchTransactionHistory: true },
      ]),
    )
    return answer.value[0] ?? null
  }

  async function waitFor(
    signature: string,
    blockhash: string,
    release: () => Promise<void>,
  ): Promise<LandedTransaction> {
    const deadline = Date.now() + confirmTimeout
    const reached = (level: string | null | undefined) =>
      level === 'finalized' || (commitment === 'confirmed' && level === 'confirmed')
    // Usually the transaction is already there at the commitment: one read, no status polling.
    const first = await fetchLanded(signature)
    if (first) return first
    for (let delay = 20; ; delay = Math.min(delay * 2, 400)) {
      const current = await status(signature)
      if (current?.err)
        throw new VerificationFailedError({
          detail: 'The transaction failed on chain.',
          reason: 'transaction-failed',
        })
      if (current && reached(current.confirmationStatus)) {
        const landed = await fetchLanded(signature)
        if (landed) return landed
      }
      if (!current) {
        const valid = await guard(() =>
          rpc<{ value: boolean }>('isBlockhashValid', [blockhash, { commitment: 'processed' }]),
        )
        // An expired blockhash means the transaction can no longer land, unless it already did and the
        // status came from a node that was behind: asked again before the signature is released.
        if (!valid.value && !(await status(signature))) {
          await release()
          throw new VerificationFailedError({
            detail: 'The transaction blockhash expired.',
            reason: 'blockhash-expired',
          })
        }
      }
      if (Date.now() > deadline) throw unavailable(new RpcUnavailableError(`not ${commitment} in time`), 2)
      await new Promise((resolve) => setTimeout(resolve, delay))
    }
  }
}

async function cosign(bytes: Uint8Array, signer: TransactionPartialSigner | undefined): Promise<Uint8Array> {
  if (!signer) return bytes
  const transaction = getTransactionDecoder().decode(bytes)
  // "add the server's fee payer signature using the `feePayerKey` and re-serialize"
  const [signatures] = await signer.signTransactions([transaction as never])
  const signed = { ...transaction, signatures: { ...transaction.signatures, ...signatures } }
  return new Uint8Array(getTransactionEncoder().encode(signed as never))
}

function firstSignature(wire: Uint8Array): string {
  const signature = decodeTransaction(wire).signatures[0]?.[1]
  if (!signature)
    throw new VerificationFailedError({
      detail: 'The transaction is unsigned.',
      reason: 'invalid-transaction',
    })
  return signature
}

/** A transaction error (`TransactionError` JSON) telling that this very transaction already landed. */
function alreadyProcessed(err: unknown): boolean {
  return err === 'AlreadyProcessed'
}

function rejected(error: RpcAnswerError): VerificationFailedError {
  return new VerificationFailedError({
    detail: 'The node rejected the transaction.',
    reason: 'transaction-rejected',
    cause: error,
  })
}

function simulationProblem(err: unknown): VerificationFailedError {
  const text = JSON.stringify(err)
  if (/SignatureFailure/.test(text))
    return new VerificationFailedError({
      detail: 'A transaction signature is invalid.',
      reason: 'invalid-signature',
    })
  if (/BlockhashNotFound/.test(text))
    return new VerificationFailedError({
      detail: 'The transaction blockhash expired.',
      reason: 'blockhash-expired',
    })
  if (/InsufficientFundsForRent/.test(text))
    return new VerificationFailedError({
      detail: 'The transfer would leave an account below the rent-exempt minimum.',
      reason: 'insufficient-funds-for-rent',
    })
  if (/InsufficientFunds|insufficient/i.test(text))
    return new VerificationFailedError({
      detail: 'The payer cannot cover this payment.',
      reason: 'insufficient-balance',
    })
  return new VerificationFailedError({
    detail: `The transaction would fail: ${text.slice(0, 120)}.`,
    reason: 'simulation-failed',
  })
}
