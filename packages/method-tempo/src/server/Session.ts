import {
  ConfigurationError,
  type Method,
  PaymentError,
  type Store,
  VerificationFailedError,
} from '@mppkit/core'
import {
  type Address,
  decodeFunctionData,
  encodeFunctionData,
  erc20Abi,
  fromRlp,
  type Hex,
  isAddressEqual,
  type LocalAccount,
  type TransactionReceipt,
  zeroAddress,
} from 'viem'
import { getTransactionReceipt, readContract, sendRawTransactionSync } from 'viem/actions'
import { Transaction } from 'viem/tempo'
import * as Channel from '../Channel.js'
import { assertCanonical } from '../internal/canonical.js'
import { escrowAbi } from '../internal/escrow.js'
import {
  type Connection,
  defaultChainId,
  isUnavailable,
  publicClientFor,
  unavailable,
  walletClientFor,
} from '../internal/rpc.js'
import { session, type TempoSessionPayload, type TempoSessionRequest } from '../Methods.js'
import * as Voucher from '../Voucher.js'
import { checkSponsorPolicy, cosign, type SponsorPolicy } from './Charge.js'

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
  /** Batch-settle consumed vouchers on chain every this many ms (default: only on `settle()`). */
  settleInterval?: number
  /** How long a metered stream waits for a voucher after `payment-need-voucher` (default 60 000 ms). */
  voucherTimeout?: number
  /**
   * Cached channel state older than this is re-read from the escrow before a voucher or close is
   * accepted (default 1000 ms), so a forced close or withdrawal stops service within this window.
   */
  channelStateTtl?: number
  /** TTL of session state in the Store, in seconds (default 30 days). */
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

/** What a route handler gets as `payment.context` for a session request. */
export type SessionMeter = {
  channelId: Hex
  /** Deducts `units × amount` from the channel balance; false (and nothing deducted) when it is short. */
  charge(units?: number): Promise<boolean>
  /** Current accounting state. */
  state(): Promise<{ acceptedCumulative: bigint; spent: bigint; deposit: bigint }>
  /**
   * An SSE response that charges `unitsPerChunk` before each chunk, emits `payment-need-voucher` and
   * pauses when the balance runs out, and ends with a `payment-receipt` event.
   */
  sse(chunks: AsyncIterable<string> | Iterable<string>, options?: { unitsPerChunk?: number }): Response
}

type ChannelState = {
  payer: Address
  payee: Address
  token: Address
  signer: Address
  deposit: string
  settled: string
  closeRequestedAt: string
  finalized: boolean
  readAt: number
}

type StoredVoucher = { amount: string; signature: Hex }

const max = (a: bigint, b: bigint) => (a > b ? a : b)

type SessionTransaction = {
  from?: Address
  chainId?: number
  calls?: { to?: Address; data?: Hex }[]
  signature?: unknown
  gas?: bigint
  feeToken?: Address
  nonceKey?: bigint
  validBefore?: number
  accessList?: readonly unknown[]
}

/** What session `verify` hands to `settle`. */
export type Verified =
  | {
      action: 'open'
      channelId: Hex
      serialized: Hex
      payer: Address
      signer: Address
      amount: bigint
      deposit: bigint
    }
  | { action: 'voucher'; channelId: Hex; channel: ChannelState; amount: bigint }
  | { action: 'topUp'; channelId: Hex; serialized: Hex; additionalDeposit: bigint; channel: ChannelState }
  | { action: 'close'; channelId: Hex; channel: ChannelState; amount: bigint }

/** The session server method plus its settlement controls. */
export type SessionServer = Method.Server<typeof session, Verified> & {
  /** Settles every channel's highest fully consumed voucher in one batched transaction (undefined: nothing to settle). */
  settleChannels(): Promise<Hex | undefined>
  /** Stops the settlement timer. */
  stop(): void
}

const problem = (
  type: string,
  title: string,
  status: number,
  detail: string,
  extensions?: Record<string, unknown>,
) =>
  new PaymentError({ type: `session/${type}`, title, status, detail, ...(extensions ? { extensions } : {}) })

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
  const chainId = options.chainId ?? defaultChainId
  const client = publicClientFor({ ...options }, options.rpcUrl, chainId)
  const payee = options.account
  const wallet = walletClientFor({
    rpcUrl: options.rpcUrl,
    chainId,
    account: payee,
    timeout: options.timeout,
  })
  const ttlMs = (options.stateTtlSeconds ?? 30 * 86_400) * 1000
  const unitsPerRequest = BigInt(options.unitsPerRequest ?? 1)
  const stateTtl = options.channelStateTtl ?? 1_000
  const verifier = Voucher.createVerifier()
  let store: Store | undefined
  const dirty = new Set<Hex>()
  const waiters = new Map<string, Set<() => void>>()
  const notify = (channelId: string) => {
    for (const wake of waiters.get(channelId) ?? []) wake()
  }

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

  const rpc = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (error) {
      if (isUnavailable(error)) throw unavailable(error)
      throw error
    }
  }
  const key = (kind: string, channelId: string) => `${kind}:${channelId.toLowerCase()}`

  const readChain = async (channelId: Hex): Promise<ChannelState | undefined> => {
    const c = await rpc(() =>
      readContract(client, {
        address: options.escrow,
        abi: escrowAbi,
        functionName: 'getChannel',
        args: [channelId],
      }),
    )
    if (c.payer === zeroAddress) return undefined
    return {
      payer: c.payer,
      payee: c.payee,
      token: c.token,
      // "The expected signer is `channel.authorizedSigner` if non-zero, otherwise `channel.payer`."
      signer: c.authorizedSigner === zeroAddress ? c.payer : c.authorizedSigner,
      deposit: String(c.deposit),
      settled: String(c.settled),
      closeRequestedAt: String(c.closeRequestedAt),
      finalized: c.finalized,
      readAt: Date.now(),
    }
  }
  const saveChannel = (s: Store, channelId: Hex, state: ChannelState) =>
    s.set(key('ch', channelId), JSON.stringify(state), ttlMs)

  // "Servers MUST derive the expected signer from on-chain channel state by querying the escrow contract."
  const loadChannel = async (s: Store, channelId: Hex, fresh: boolean): Promise<ChannelState> => {
    const raw = await s.get(key('ch', channelId))
    let state = raw ? (JSON.parse(raw) as ChannelState) : undefined
    if (!state || (fresh && Date.now() - state.readAt > stateTtl)) {
      state = await readChain(channelId)
      if (!state)
        throw problem('channel-not-found', 'Channel Not Found', 410, 'No channel with this id exists.')
      await saveChannel(s, channelId, state)
    }
    if (state.finalized)
      throw problem('channel-finalized', 'Channel Finalized', 410, 'The channel has been closed.')
    if (!isAddressEqual(state.payee, payee.address) || !isAddressEqual(state.token, options.currency))
      throw new VerificationFailedError({
        detail: 'The channel pays another payee or token.',
        reason: 'channel-mismatch',
      })
    return state
  }

  const checkVoucher = (channelId: Hex, channel: ChannelState, amount: bigint, signature: Hex) => {
    const failure = verifier.verify({
      chainId,
      escrow: options.escrow,
      voucher: { channelId, cumulativeAmount: amount, signature },
      signer: channel.signer,
    })
    if (failure === 'signer-mismatch')
      throw problem(
        'signer-mismatch',
        'Signer Mismatch',
        402,
        'The voucher is not signed by the channel signer.',
      )
    if (failure)
      throw problem(
        'invalid-signature',
        'Invalid Signature',
        402,
        `The voucher signature is invalid (${failure}).`,
      )
    // "Verify `cumulativeAmount <= channel.deposit`"
    if (amount > BigInt(channel.deposit))
      throw problem(
        'amount-exceeds-deposit',
        'Amount Exceeds Deposit',
        402,
        'The voucher exceeds the channel deposit.',
        {
          deposit: channel.deposit,
        },
      )
  }

  const highest = async (
    s: Store,
    channelId: Hex,
  ): Promise<{ raw: string | undefined; voucher: StoredVoucher | undefined }> => {
    const raw = await s.get(key('v', channelId))
    return { raw, voucher: raw ? (JSON.parse(raw) as StoredVoucher) : undefined }
  }

  // Monotonic compare-and-set of the highest voucher. "Servers MUST persist the highest voucher to durable
  // storage before providing the corresponding service."
  // Hot path: the CAS is first tried against this process's last known value of the key (one round trip
  // instead of a read and a CAS). A stale value only makes the CAS fail (then the key is read); a refusal
  // (lower, equal or too small) is only ever decided on a value just read from the store.
  const lastVoucher = new Map<string, string | undefined>()
  const remember = (channelId: string, raw: string | undefined) => {
    if (lastVoucher.size >= 10_000) lastVoucher.delete(lastVoucher.keys().next().value as string)
    lastVoucher.set(channelId, raw)
  }
  const accept = async (
    s: Store,
    channelId: Hex,
    amount: bigint,
    signature: Hex,
    minDelta: bigint,
  ): Promise<bigint> => {
    const cacheKey = channelId.toLowerCase()
    let known = lastVoucher.has(cacheKey)
    let raw = known ? lastVoucher.get(cacheKey) : (await highest(s, channelId)).raw
    for (;;) {
      const voucher = raw ? (JSON.parse(raw) as StoredVoucher) : undefined
      const current = voucher ? BigInt(voucher.amount) : -1n
      const refused = amount <= current || (current >= 0n && amount - current < minDelta)
      if (refused && known) {
        known = false
        raw = (await highest(s, channelId)).raw
        remember(cacheKey, raw)
        continue
      }
      // "if `cumulativeAmount == highestVoucherAmount`, treat the request as an idempotent retry"
      if (amount === current) return current
      // "Submitting a voucher with lower `cumulativeAmount` than highest accepted MUST be rejected"
      if (amount < current)
        throw new VerificationFailedError({
          detail: `The voucher is below the accepted cumulative amount ${current}.`,
          reason: 'amount-not-increasing',
        })
      if (current >= 0n && amount - current < minDelta)
        throw problem(
          'delta-too-small',
          'Delta Too Small',
          402,
          `Vouchers must increase by at least ${minDelta}.`,
        )
      const next = JSON.stringify({ amount: String(amount), signature } satisfies StoredVoucher)
      if (await s.compareAndSet(key('v', channelId), raw, next, ttlMs)) {
        remember(cacheKey, next)
        notify(cacheKey)
        return amount
      }
      known = false
      raw = (await highest(s, channelId)).raw
      remember(cacheKey, raw)
    }
  }

  const accepted = async (s: Store, channelId: Hex) => {
    const { voucher } = await highest(s, channelId)
    return voucher ? BigInt(voucher.amount) : 0n
  }
  const spentOf = async (s: Store, channelId: Hex) =>
    (await s.increment(key('spent', channelId), 0n, { ttlMs })).value

  // "MUST persist `spent := spent + cost` to durable storage BEFORE or atomically with delivering the
  // metered service": a bounded increment, so concurrent requests never spend beyond the accepted voucher.
  const deduct = async (
    s: Store,
    channelId: Hex,
    cost: bigint,
    /** The voucher this request just accepted: its amount bounds the first try, and it is the one to settle. */
    justAccepted?: StoredVoucher,
  ): Promise<{ ok: boolean; spent: bigint; accepted: bigint }> => {
    let acceptedNow = justAccepted ? BigInt(justAccepted.amount) : await accepted(s, channelId)
    if (cost === 0n) return { ok: true, spent: await spentOf(s, channelId), accepted: acceptedNow }
    let result = await s.increment(key('spent', channelId), cost, { ttlMs, max: acceptedNow })
    if (!result.applied && justAccepted) {
      // A higher voucher may have been accepted since (a concurrent request): bound by the stored one.
      const fresh = await accepted(s, channelId)
      if (fresh > acceptedNow) {
        acceptedNow = fresh
        justAccepted = undefined
        result = await s.increment(key('spent', channelId), cost, { ttlMs, max: acceptedNow })
      }
    }
    if (result.applied) {
      dirty.add(channelId)
      // The highest voucher is fully consumed: it may now be settled without capturing unserved funds.
      const voucher = justAccepted ?? (await highest(s, channelId)).voucher
      if (voucher && BigInt(voucher.amount) <= result.value)
        await s.set(key('ok', channelId), JSON.stringify(voucher), ttlMs)
    }
    return { ok: result.applied, spent: result.value, accepted: acceptedNow }
  }

  const insufficient = (channelId: Hex, cost: bigint, state: { spent: bigint; accepted: bigint }) =>
    problem(
      'insufficient-balance',
      'Insufficient Balance',
      402,
      'The channel balance does not cover this request.',
      {
        channelId,
        // "If `available < cost`: return 402 with Problem Details including `requiredTopUp = cost - available`"
        requiredTopUp: String(cost - (state.accepted - state.spent)),
        acceptedCumulative: String(state.accepted),
        spent: String(state.spent),
      },
    )

  // Payee transactions (settle batches, closes) go out one at a time on the protocol nonce lane.
  let payeeQueue: Promise<unknown> = Promise.resolve()
  const sendAsPayee = (calls: { to: Address; data: Hex }[], gas: bigint): Promise<TransactionReceipt> => {
    const sent = payeeQueue.then(() =>
      rpc(async () => {
        const nonce = await client.getTransactionCount({ address: payee.address, blockTag: 'pending' })
        const prepared = await wallet.prepareTransactionRequest({ calls, gas, nonceKey: 0n, nonce } as never)
        const serialized = await wallet.signTransaction(prepared as never)
        return sendRawTransactionSync(client, { serializedTransaction: serialized as Hex })
      }),
    )
    payeeQueue = sent.catch(() => {})
    return sent
  }

  const broadcast = async (serialized: Hex): Promise<TransactionReceipt> => {
    try {
      return await sendRawTransactionSync(client, { serializedTransaction: serialized })
    } catch (error) {
      if (isUnavailable(error)) throw unavailable(error)
      const { keccak256 } = await import('viem')
      const existing = await getTransactionReceipt(client, { hash: keccak256(serialized) }).catch(
        () => undefined,
      )
      if (existing) return existing
      throw new VerificationFailedError({
        detail: 'The node rejected the transaction.',
        reason: 'transaction-rejected',
        cause: error,
      })
    }
  }

  const decodeCalls = (serialized: Hex) => {
    const prefix = serialized.slice(0, 4).toLowerCase()
    if (prefix !== '0x76' && prefix !== '0x78')
      throw new VerificationFailedError({
        detail: 'Only Tempo (0x76) transactions are accepted.',
        reason: 'invalid-transaction',
      })
    let tx: SessionTransaction
    try {
      // Exactly one RLP list (the deserializer ignores trailing bytes): one encoding, one hash.
      fromRlp(`0x${serialized.slice(4)}`)
      tx = Transaction.deserialize(serialized) as never
    } catch {
      throw new VerificationFailedError({
        detail: 'The transaction could not be decoded.',
        reason: 'invalid-transaction',
      })
    }
    if (!tx.signature || !tx.from || tx.chainId !== chainId)
      throw new VerificationFailedError({
        detail: 'The transaction is unsigned or for another chain.',
        reason: 'invalid-transaction',
      })
    const escrowCalls: { functionName: string; args: readonly unknown[] }[] = []
    for (const call of tx.calls ?? []) {
      if (!call.to || !call.data)
        throw new VerificationFailedError({ detail: 'Unexpected call.', reason: 'unexpected-call' })
      // Only an approval of the escrow on the channel token may accompany the escrow call.
      if (isAddressEqual(call.to, options.currency)) {
        const decoded = (() => {
          try {
            return decodeFunctionData({ abi: erc20Abi, data: call.data })
          } catch {
            return undefined
          }
        })()
        if (
          decoded?.functionName !== 'approve' ||
          !isAddressEqual(decoded.args[0] as Address, options.escrow)
        )
          throw new VerificationFailedError({ detail: 'Unexpected token call.', reason: 'unexpected-call' })
        continue
      }
      if (!isAddressEqual(call.to, options.escrow))
        throw new VerificationFailedError({
          detail: 'The transaction calls another contract.',
          reason: 'unexpected-call',
        })
      try {
        escrowCalls.push(decodeFunctionData({ abi: escrowAbi, data: call.data }) as never)
      } catch {
        throw new VerificationFailedError({ detail: 'Unknown escrow call.', reason: 'unexpected-call' })
      }
    }
    if (escrowCalls.length !== 1)
      throw new VerificationFailedError({ detail: 'Expected one escrow call.', reason: 'unexpected-call' })
    return { from: tx.from, call: escrowCalls[0]!, tx }
  }

  /** Whether this open/topUp is sponsored: the challenge offered it and this server has a fee payer. */
  const sponsoredBy = (request: TempoSessionRequest) =>
    request.methodDetails.feePayer === true && options.feePayer !== undefined

  /**
   * "Servers MUST validate the transaction matches challenge and channel parameters before adding fee
   * payer signature": the calls are checked by `decodeCalls`, this is the fee side. The expiring lane is
   * not required by default (see `sponsorPolicy`).
   */
  const checkSponsorable = (tx: SessionTransaction, expires: string | undefined) =>
    checkSponsorPolicy(tx, expires, options.sponsorPolicy ?? {}, false)

  /** The transaction to broadcast: co-signed by the fee payer when sponsored, else as the payer sent it. */
  const finalTransaction = (serialized: Hex, sponsored: boolean) =>
    sponsored
      ? cosign({
          serializedTransaction: serialized,
          feePayer: options.feePayer!,
          feeToken: options.feeToken ?? options.currency,
        })
      : Promise.resolve(serialized)

  const receiptFields = (
    challengeId: string,
    channelId: Hex,
    state: { accepted: bigint; spent: bigint },
    extra: Record<string, unknown> = {},
  ) => ({
    intent: 'session',
    challengeId,
    channelId,
    acceptedCumulative: String(state.accepted),
    spent: String(state.spent),
    ...extra,
  })

  const meterFor = (
    s: Store,
    channelId: Hex,
    price: bigint,
    challengeId: string,
    minDelta: bigint,
  ): SessionMeter => {
    const meter: SessionMeter = {
      channelId,
      async charge(units = 1) {
        return (await deduct(s, channelId, price * BigInt(units))).ok
      },
      async state() {
        const channel = JSON.parse((await s.get(key('ch', channelId))) ?? '{}') as Partial<ChannelState>
        return {
          acceptedCumulative: await accepted(s, channelId),
          spent: await spentOf(s, channelId),
          deposit: BigInt(channel.deposit ?? '0'),
        }
      },
      sse(chunks, sseOptions = {}) {
        const cost = price * BigInt(sseOptions.unitsPerChunk ?? 1)
        const encoder = new TextEncoder()
        const waitForVoucher = (timeoutMs: number) =>
          new Promise<void>((resolve) => {
            const id = channelId.toLowerCase()
            let set = waiters.get(id)
            if (!set) {
              set = new Set()
              waiters.set(id, set)
            }
            const done = () => {
              clearTimeout(timer)
              clearInterval(poll)
              set!.delete(done)
              resolve()
            }
            // In-process wake-up, plus polling for vouchers accepted by other server processes.
            const timer = setTimeout(done, timeoutMs)
            const poll = setInterval(done, 250)
            set.add(done)
          })
        let units = 0
        const body = new ReadableStream<Uint8Array>({
          async start(controller) {
            const send = (text: string) => controller.enqueue(encoder.encode(text))
            try {
              for await (const chunk of chunks as AsyncIterable<string>) {
                let result = await deduct(s, channelId, cost)
                const deadline = Date.now() + (options.voucherTimeout ?? 60_000)
                while (!result.ok) {
                  // No voucher in time: stop metering, but still end with the receipt ("MUST include the
                  // receipt … in the final message of the stream").
                  if (Date.now() >= deadline) break

                  // "servers MUST emit an `payment-need-voucher` event when available balance is exhausted"
                  // and "MUST pause delivery until a valid voucher advancing `acceptedCumulative` is accepted".
                  const state = await meter.state()
                  send(
                    `event: payment-need-voucher\ndata: ${JSON.stringify({
                      acceptedCumulative: String(result.accepted),
                      channelId,
                      deposit: String(state.deposit),
                      // "Minimum cumulative amount the next voucher must authorize": enough for this
                      // chunk, and at least `minVoucherDelta` above the accepted voucher.
                      requiredCumulative: String(max(result.spent + cost, result.accepted + minDelta)),
                    })}\n\n`,
                  )
                  const before = result.accepted
                  while (Date.now() < deadline && (await accepted(s, channelId)) === before)
                    await waitForVoucher(Math.max(1, deadline - Date.now()))
                  result = await deduct(s, channelId, cost)
                }
                if (!result.ok) break
                units += Number(sseOptions.unitsPerChunk ?? 1)
                send(`data: ${chunk.replace(/\n/g, '\ndata: ')}\n\n`)
              }
              // "For SSE responses, the final receipt SHOULD be delivered as an event"
              const state = await meter.state()
              send(
                `event: payment-receipt\ndata: ${JSON.stringify({
                  method: 'tempo',
                  status: 'success',
                  timestamp: new Date().toISOString(),
                  reference: channelId,
                  ...receiptFields(
                    challengeId,
                    channelId,
                    { accepted: state.acceptedCumulative, spent: state.spent },
                    { units },
                  ),
                })}\n\n`,
              )
              controller.close()
            } catch (error) {
              controller.error(error)
            }
          },
        })
        return new Response(body, {
          headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, private' },
        })
      },
    }
    return meter
  }

  const settleBatch = async (): Promise<Hex | undefined> => {
    const s = store
    if (!s || dirty.size === 0) return undefined
    const calls: { to: Address; data: Hex }[] = []
    const batch: { channelId: Hex; amount: bigint }[] = []
    for (const channelId of [...dirty]) {
      const raw = await s.get(key('ok', channelId))
      const channelRaw = await s.get(key('ch', channelId))
      if (!raw || !channelRaw) continue
      const voucher = JSON.parse(raw) as StoredVoucher
      const channel = JSON.parse(channelRaw) as ChannelState
      if (channel.finalized || BigInt(voucher.amount) <= BigInt(channel.settled)) {
        dirty.delete(channelId)
        continue
      }
      calls.push({
        to: options.escrow,
        data: encodeFunctionData({
          abi: escrowAbi,
          functionName: 'settle',
          args: [channelId, BigInt(voucher.amount), voucher.signature],
        }),
      })
      batch.push({ channelId, amount: BigInt(voucher.amount) })
    }
    if (calls.length === 0) return undefined
    // One Tempo transaction carries every channel's settle call: "Server-scheduled settlement batches vouchers".
    const receipt = await sendAsPayee(calls, 150_000n * BigInt(calls.length) + 100_000n)
    if (receipt.status !== 'success') return receipt.transactionHash
    for (const { channelId, amount } of batch) {
      const channel = await readChain(channelId)
      if (channel) await saveChannel(s, channelId, channel)
      if (channel && BigInt(channel.settled) >= amount) dirty.delete(channelId)
    }
    return receipt.transactionHash
  }
  const timer =
    options.settleInterval !== undefined
      ? setInterval(() => {
          settleBatch().catch(() => {})
        }, options.settleInterval)
      : undefined
  timer?.unref?.()

  const method: SessionServer = {
    definition: session,
    defaults,
    // A close finalizes the channel on chain once; a second close of the same channel fails there. So a
    // close may answer an already-used challenge (mppx's session manager closes on its last one).
    reusesChallenge: (payload) => payload.action === 'close',
    // "Servers MUST reject `topUp` actions referencing an unknown or expired challenge `id` with problem
    // type `challenge-not-found`."
    challengeProblem: (payload) =>
      (payload as { action?: unknown } | null)?.action === 'topUp'
        ? problem(
            'challenge-not-found',
            'Challenge Not Found',
            402,
            'The topUp references an unknown or expired challenge; retry with a fresh one.',
          )
        : undefined,
    async verify({ challenge, request, payload, store: s }): Promise<Verified> {
      store = s
      const details = request.methodDetails
      // "A client MUST NOT answer a challenge using a different session protocol than the one indicated"
      if (
        (details.sessionProtocol ?? 'v1') !== 'v1' ||
        !isAddressEqual(details.escrowContract as Address, options.escrow)
      )
        throw new VerificationFailedError({
          detail: 'Only v1 sessions on this escrow are accepted.',
          reason: 'protocol-mismatch',
        })
      const channelId = payload.channelId.toLowerCase() as Hex
      switch (payload.action) {
        case 'open': {
          const { from, call, tx } = decodeCalls(payload.transaction as Hex)
          await assertCanonical(payload.transaction as Hex, tx as Record<string, unknown>)
          if (sponsoredBy(request)) checkSponsorable(tx, challenge.expires)
          if (call.functionName !== 'open')
            throw new VerificationFailedError({
              detail: 'Expected an escrow open call.',
              reason: 'unexpected-call',
            })
          const [callPayee, token, deposit, salt, authorizedSigner] = call.args as [
            Address,
            Address,
            bigint,
            Hex,
            Address,
          ]
          if (!isAddressEqual(callPayee, payee.address) || !isAddressEqual(token, options.currency))
            throw new VerificationFailedError({
              detail: 'The channel pays another payee or token.',
              reason: 'channel-mismatch',
            })
          // "For v1, the server recovers the `payer` address from the signed transaction and uses it to
          // compute the `channelId` deterministically"
          const computed = Channel.computeId({
            payer: from,
            payee: callPayee,
            token,
            salt,
            authorizedSigner,
            escrow: options.escrow,
            chainId,
          })
          if (computed.toLowerCase() !== channelId)
            throw new VerificationFailedError({
              detail: 'The channel id does not match the open transaction.',
              reason: 'channel-id-mismatch',
            })
          if (
            payload.authorizedSigner &&
            !isAddressEqual(payload.authorizedSigner as Address, authorizedSigner)
          )
            throw new VerificationFailedError({
              detail: 'The authorized signer does not match the transaction.',
              reason: 'signer-mismatch',
            })
          const signer = authorizedSigner === zeroAddress ? from : authorizedSigner
          const amount = BigInt(payload.cumulativeAmount)
          checkVoucher(
            channelId,
            { signer, deposit: String(deposit) } as ChannelState,
            amount,
            payload.signature as Hex,
          )
          return {
            action: 'open',
            channelId,
            serialized: payload.transaction as Hex,
            payer: from,
            signer,
            amount,
            deposit,
          }
        }
        case 'topUp': {
          const channel = await loadChannel(s, channelId, false)
          const { call, tx } = decodeCalls(payload.transaction as Hex)
          await assertCanonical(payload.transaction as Hex, tx as Record<string, unknown>)
          if (sponsoredBy(request)) checkSponsorable(tx, challenge.expires)
          const [id, additional] = call.args as [Hex, bigint]
          if (
            call.functionName !== 'topUp' ||
            id.toLowerCase() !== channelId ||
            additional !== BigInt(payload.additionalDeposit)
          )
            throw new VerificationFailedError({
              detail: 'Expected an escrow topUp of additionalDeposit on this channel.',
              reason: 'unexpected-call',
            })
          return {
            action: 'topUp',
            channelId,
            serialized: payload.transaction as Hex,
            additionalDeposit: additional,
            channel,
          }
        }
        case 'voucher':
        case 'close': {
          const amount = BigInt(payload.cumulativeAmount)
          // Re-read the escrow when the cached state is older than `channelStateTtl`, whatever the amount:
          // "Servers MUST reject vouchers on channels with a pending forced close", and a repeated voucher
          // must not keep serving a channel that was force-closed or withdrawn since it was cached.
          const channel = await loadChannel(s, channelId, true)
          // "Verify `channel.closeRequestedAt == 0` … Servers MUST reject vouchers on channels with a pending
          // forced close to prevent service delivery that cannot be settled."
          if (payload.action === 'voucher' && channel.closeRequestedAt !== '0')
            throw problem(
              'channel-finalized',
              'Channel Closing',
              410,
              'The payer requested a forced close of this channel.',
            )
          checkVoucher(channelId, channel, amount, payload.signature as Hex)
          return { action: payload.action, channelId, channel, amount }
        }
      }
    },

    async settle({
      challenge,
      request,
      payload,
      store: s,
      verified,
      httpRequest,
    }): Promise<Method.Settlement> {
      const price = BigInt(request.amount)
      const cost = price * unitsPerRequest
      const minDelta = BigInt(request.methodDetails.minVoucherDelta ?? '0')
      const { channelId } = verified
      const pureVoucher = httpRequest.method === 'HEAD'
      const done = async (
        extra: Record<string, unknown> = {},
        response?: Response,
        // The balance a deduction just returned (saves two reads on the per-voucher path).
        known?: { accepted: bigint; spent: bigint },
      ): Promise<Method.Settlement> => {
        const state = known ?? {
          accepted: await accepted(s, channelId),
          spent: await spentOf(s, channelId),
        }
        return {
          reference: channelId,
          receipt: receiptFields(challenge.id, channelId, state, extra),
          context: meterFor(s, channelId, price, challenge.id, minDelta),
          ...(response ? { response } : {}),
        }
      }
      const serve = async (charge: boolean, justAccepted?: StoredVoucher) => {
        if (!charge) return done({}, new Response(null, { status: 200 }))
        const result = await deduct(s, channelId, cost, justAccepted)
        if (!result.ok) throw insufficient(channelId, cost, result)
        return done(cost > 0n ? { units: Number(unitsPerRequest) } : {}, undefined, result)
      }
      switch (verified.action) {
        case 'open': {
          let channel = await readChain(channelId)
          if (!channel) {
            const receipt = await broadcast(await finalTransaction(verified.serialized, sponsoredBy(request)))
            if (receipt.status !== 'success')
              throw new VerificationFailedError({
                detail: 'The open transaction reverted.',
                reason: 'transaction-reverted',
              })
            channel = await readChain(channelId)
          }
          if (!channel)
            throw problem('channel-not-found', 'Channel Not Found', 410, 'The channel was not opened.')
          // "Channel exists …, `channel.payee` matches server's address, `channel.token` matches
          // `request.currency`, `channel.deposit - channel.settled >= amount`, not finalized,
          // `channel.closeRequestedAt == 0`"
          if (
            !isAddressEqual(channel.payer, verified.payer) ||
            !isAddressEqual(channel.payee, payee.address) ||
            !isAddressEqual(channel.token, options.currency) ||
            channel.finalized ||
            channel.closeRequestedAt !== '0' ||
            BigInt(channel.deposit) - BigInt(channel.settled) < price
          )
            throw new VerificationFailedError({
              detail: 'The on-chain channel does not match this session.',
              reason: 'channel-mismatch',
            })
          // "Verify `cumulativeAmount <= channel.deposit`" against the chain, not the open call's calldata:
          // when the channel already exists the transaction is not broadcast, and its claimed deposit
          // (the channel id does not cover it) proves nothing.
          if (verified.amount > BigInt(channel.deposit))
            throw problem(
              'amount-exceeds-deposit',
              'Amount Exceeds Deposit',
              402,
              'The voucher exceeds the channel deposit.',
              { deposit: channel.deposit },
            )
          // "`voucher.cumulativeAmount >= channel.settled`"
          if (verified.amount < BigInt(channel.settled))
            throw new VerificationFailedError({
              detail: 'The voucher is below the settled amount.',
              reason: 'amount-not-increasing',
            })
          await saveChannel(s, channelId, channel)
          const signature = (payload as { signature: Hex }).signature
          const acceptedNow = await accept(s, channelId, verified.amount, signature, 0n)
          return serve(!pureVoucher, { amount: String(acceptedNow), signature })
        }
        case 'voucher': {
          const signature = (payload as { signature: Hex }).signature
          const acceptedNow = await accept(s, channelId, verified.amount, signature, minDelta)
          return serve(!pureVoucher, { amount: String(acceptedNow), signature })
        }
        case 'topUp': {
          const receipt = await broadcast(await finalTransaction(verified.serialized, sponsoredBy(request)))
          if (receipt.status !== 'success')
            throw new VerificationFailedError({
              detail: 'The topUp transaction reverted.',
              reason: 'transaction-reverted',
            })
          const channel = await readChain(channelId)
          // "`channel.deposit` increased by `additionalDeposit`"
          if (
            !channel ||
            BigInt(channel.deposit) < BigInt(verified.channel.deposit) + verified.additionalDeposit
          )
            throw new VerificationFailedError({
              detail: 'The deposit did not increase.',
              reason: 'topup-missing',
            })
          await saveChannel(s, channelId, channel)
          notify(channelId)
          return done(
            { txHash: receipt.transactionHash, deposit: channel.deposit },
            new Response(null, { status: 200 }),
          )
        }
        case 'close': {
          const spent = await spentOf(s, channelId)
          const settled = BigInt(verified.channel.settled)
          // "captureAmount = max(spent, settledOnChain)"; "Servers MUST NOT capture more than the amount
          // actually consumed by delivered service." A v1 close captures the voucher amount, so the close
          // voucher must be exactly the capture amount (or at/below the settled amount: nothing new).
          const capture = spent > settled ? spent : settled
          if (verified.amount < capture || (verified.amount > capture && verified.amount > settled))
            throw new VerificationFailedError({
              detail: `Sign the close voucher for exactly the spent amount ${capture}.`,
              reason: 'close-amount-mismatch',
              extensions: { spent: String(capture) },
            })
          const receipt = await sendAsPayee(
            [
              {
                to: options.escrow,
                data: encodeFunctionData({
                  abi: escrowAbi,
                  functionName: 'close',
                  args: [channelId, verified.amount, (payload as { signature: Hex }).signature],
                }),
              },
            ],
            400_000n,
          )
          if (receipt.status !== 'success')
            throw new VerificationFailedError({
              detail: 'The close transaction reverted.',
              reason: 'transaction-reverted',
            })
          const channel = await readChain(channelId)
          if (channel) await saveChannel(s, channelId, channel)
          dirty.delete(channelId)
          return done({ txHash: receipt.transactionHash }, new Response(null, { status: 200 }))
        }
        default:
          throw new VerificationFailedError({ detail: 'Unknown session action.', reason: 'unknown-action' })
      }
    },
    settleChannels: settleBatch,
    stop() {
      if (timer) clearInterval(timer)
    },
  }
  return method
}

export type { TempoSessionPayload }
