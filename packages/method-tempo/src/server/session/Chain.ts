import { ServiceUnavailableError, VerificationFailedError } from '@mppkit/core'
import {
  type Address,
  decodeFunctionData,
  erc20Abi,
  fromRlp,
  type Hex,
  isAddressEqual,
  keccak256,
  type LocalAccount,
  type PublicClient,
  type TransactionReceipt,
  zeroAddress,
} from 'viem'
import {
  call,
  getTransaction,
  getTransactionReceipt,
  readContract,
  sendRawTransactionSync,
} from 'viem/actions'
import { Transaction } from 'viem/tempo'
import { escrowAbi } from '../../internal/escrow.js'
import { isUnavailable, randomNonceKey, unavailable, walletClientFor } from '../../internal/rpc.js'
import { reportableRpcError, rpcErrorSummary } from '../../internal/rpcErrors.js'
import type { TempoSessionRequest } from '../../Methods.js'
import { checkSponsorPolicy, cosign, type SponsorPolicy } from '../Charge.js'

/**
 * A v1 escrow channel as the server caches it (amounts as decimal strings, `readAt` in epoch ms: when
 * the escrow read that returned it was sent).
 */
export type ChannelState = {
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

/** A decoded open/topUp transaction, as far as the session checks need it. */
export type SessionTransaction = {
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

/** A call the payee sends (escrow settle/close). */
export type PayeeCall = { to: Address; data: Hex }

/** What the chain side of a session server needs. */
export type ChainOptions = {
  client: PublicClient
  rpcUrl: string
  chainId: number
  timeout?: number | undefined
  escrow: Address
  currency: Address
  payee: LocalAccount
  feePayer?: LocalAccount | undefined
  feeToken?: Address | undefined
  sponsorPolicy?: SponsorPolicy | undefined
}

/** The session server's chain I/O: escrow reads, payee transactions, payer broadcasts, transaction decoding. */
export type SessionChain = ReturnType<typeof createSessionChain>

/**
 * Creates the chain I/O of a `tempo/session` server. An unreachable node surfaces as a 503
 * (`ServiceUnavailableError`), a definite rejection as `verification-failed`.
 *
 * @example
 * ```ts
 * const chain = createSessionChain({ client, rpcUrl, chainId, escrow, currency, payee })
 * const channel = await chain.readChannel(channelId)
 * ```
 * @see draft-tempo-session-00 §8 (Server Verification)
 */
export function createSessionChain(options: ChainOptions) {
  const { client, chainId } = options
  const wallet = walletClientFor({
    rpcUrl: options.rpcUrl,
    chainId,
    account: options.payee,
    timeout: options.timeout,
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

  // "Servers MUST derive the expected signer from on-chain channel state by querying the escrow contract."
  const readChannel = async (channelId: Hex): Promise<ChannelState | undefined> => {
    // When the read was sent: the chain state it returns is at least this recent (the freshness bound
    // `channelStateTtl` counts from here, and a read sent later supersedes it).
    const readAt = Date.now()
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
      readAt,
    }
  }

  // Payee transactions (settle batches, closes) go out one at a time, each on a nonce lane of its own (a
  // random 2D nonce key, nonce 0): several server processes sharing one payee key (a service scaled
  // out) would otherwise read the same pending nonce on the protocol lane and send two transactions
  // with it, one of which is never mined (its close answered 503 after the node's time limit).
  let payeeQueue: Promise<unknown> = Promise.resolve()
  const sendAsPayee = (calls: PayeeCall[], gas: bigint): Promise<TransactionReceipt> => {
    const sent = payeeQueue.then(() =>
      rpc(async () => {
        const prepared = await wallet.prepareTransactionRequest({
          calls,
          gas,
          nonceKey: randomNonceKey(),
          nonce: 0,
        } as never)
        const serialized = await wallet.signTransaction(prepared as never)
        return sendRawTransactionSync(client, { serializedTransaction: serialized as Hex })
      }),
    )
    payeeQueue = sent.catch(() => {})
    return sent
  }

  /**
   * Whether one payee call would succeed now (an `eth_call` from the payee): false when it reverts. An
   * unreachable node is a 503, never a false (a channel is not given up on for a node outage).
   */
  const simulateAsPayee = async (payeeCall: PayeeCall): Promise<boolean> => {
    try {
      await call(client, { account: options.payee.address, to: payeeCall.to, data: payeeCall.data })
      return true
    } catch (error) {
      if (isUnavailable(error)) throw unavailable(error)
      return false
    }
  }

  const broadcast = async (serialized: Hex): Promise<TransactionReceipt> => {
    try {
      return await sendRawTransactionSync(client, { serializedTransaction: serialized })
    } catch (error) {
      if (isUnavailable(error)) throw unavailable(error)
      const existing = await getTransactionReceipt(client, { hash: keccak256(serialized) }).catch(
        () => undefined,
      )
      if (existing) return existing
      // Refused as a second copy of one the node still holds unmined (a credential sent again after a
      // 503): it may still be mined, so it is no refusal; the same credential is answered once it is.
      const pending = await getTransaction(client, { hash: keccak256(serialized) }).catch(() => undefined)
      if (pending && pending.blockNumber === null)
        throw new ServiceUnavailableError({
          detail:
            "The transaction is waiting in the Tempo node's pool, not mined yet; retry the same credential later.",
          reason: 'transaction-pending',
          retryAfter: 2,
          cause: rpcErrorSummary(error),
        })
      throw new VerificationFailedError({
        detail: 'The node rejected the transaction.',
        reason: 'transaction-rejected',
        cause: rpcErrorSummary(error),
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

  return {
    readChannel,
    sendAsPayee,
    simulateAsPayee,
    broadcast,
    decodeCalls,
    sponsoredBy,
    checkSponsorable,
    finalTransaction,
  }
}
