import { ConfigurationError, type Method, PaymentFailedError } from '@mppkit/core/client'
import { type Account, type Address, encodeFunctionData, type Hex, keccak256, type LocalAccount } from 'viem'
import { Abis } from 'viem/tempo'
import * as Attribution from '../Attribution.js'
import {
  checkChainId,
  checkHttpUrl,
  checkMilliseconds,
  checkOneOf,
  checkOptionalAddress,
  checkPositiveBigint,
  checkPositiveInteger,
  checkSigner,
} from '../internal/options.js'
import {
  type Connection,
  defaultChainId,
  randomNonceKey,
  type TempoWalletClient,
  walletClientFor,
} from '../internal/rpc.js'
import { rpcErrorSummary } from '../internal/rpcErrors.js'
import { expectedTransfers } from '../internal/transfers.js'
import { charge } from '../Methods.js'
import * as Proof from '../Proof.js'

/** Options of {@link chargeClient}. */
export type ChargeClientOptions = Omit<Connection, 'client'> & {
  /** The paying account (a viem local account: it signs transactions and typed data). */
  account: LocalAccount
  /** `rpcUrl` is required to pay non-zero charges. */
  rpcUrl?: string
  /** Preferred mode when the challenge allows both (default `pull`). */
  mode?: 'push' | 'pull'
  /** Fee token for client-paid fees (default: the chain's, PathUSD). */
  feeToken?: Address
  /** Gas limit per transfer call (default 200 000; anvil cannot estimate 0x76 gas). */
  gasPerTransfer?: bigint
  /**
   * Nonce lane:
   * - `'random'` (default): each payment signs with nonce 0 on a fresh random 2D nonce key, so
   *   concurrent payments from one account never collide, and a transaction the server never
   *   broadcasts leaves no gap that would stall later ones;
   * - `0n`: the protocol lane, taking the node's pending nonce (payments are then sequential);
   * - `'expiring'`: the expiring-nonce lane, which fee payers require (the default for sponsored
   *   transactions).
   */
  nonceKey?: 'random' | 0n | 'expiring'
  /** Client identity fingerprinted into the attribution memo. */
  clientId?: string
  /** Zero-amount proof typed-data version (default 3, what mppx verifies). */
  proofVersion?: Proof.Version
  /** Seconds a signed transaction stays valid (capped by the challenge expiry; default 60). */
  validFor?: number
}

/**
 * Creates the client side of `tempo/charge`: signs a `transferWithMemo` whose memo binds the challenge
 * (attribution memo, or the server's `methodDetails.memo`), then either sends the signed 0x76
 * transaction (`pull`, co-signable when the server pays fees) or broadcasts it and sends the hash
 * (`push`). Zero amounts are paid with an EIP-712 proof.
 *
 * @example
 * ```ts
 * const client = Client.create({ methods: [tempoClient({ account: privateKeyToAccount(key), rpcUrl })], policy: { maxAmount: 1_000_000n } })
 * const response = await client.fetch('https://api.example.com/paid')
 * ```
 * @see draft-tempo-charge-00 §"Credential Schema"
 */
export function chargeClient(options: ChargeClientOptions): Method.Client<typeof charge> {
  checkChargeClientOptions(options)
  const { account } = options
  const wallets = new Map<number, TempoWalletClient>()
  const walletFor = (chainId: number): TempoWalletClient => {
    if (!options.rpcUrl)
      throw new ConfigurationError('tempo client: rpcUrl is required to pay non-zero charges')
    let wallet = wallets.get(chainId)
    if (!wallet) {
      wallet = walletClientFor({
        rpcUrl: options.rpcUrl,
        chainId,
        account,
        timeout: options.timeout,
        feeToken: options.feeToken,
      })
      wallets.set(chainId, wallet)
    }
    return wallet
  }
  // On the protocol lane (`nonceKey: 0n`) push payments from one client are sent one at a time, so each
  // takes the node's pending nonce; pull payments take the pending nonce too (the client cannot know
  // whether the server broadcast an earlier pull transaction, and reserving nonces locally would leave
  // gaps that stall later ones). The default random 2D lane needs neither.
  let pushQueue: Promise<unknown> = Promise.resolve()
  const pendingNonce = (wallet: TempoWalletClient) =>
    wallet.getTransactionCount({ address: account.address, blockTag: 'pending' })

  return {
    definition: charge,
    // The policy sees the chain the payment moves on and TIP-20's 6 decimals.
    quote: (request) => ({
      amount: BigInt(request.amount),
      currency: request.currency,
      network: `tempo:${request.methodDetails?.chainId ?? options.chainId ?? defaultChainId}`,
      decimals: 6,
    }),
    async createPayload({ challenge, request }) {
      const chainId = request.methodDetails?.chainId ?? options.chainId ?? defaultChainId
      if (options.chainId !== undefined && chainId !== options.chainId)
        throw new PaymentFailedError(
          `tempo: the challenge is for chain ${chainId}, this client pays on ${options.chainId}`,
        )
      const source = Proof.source({ chainId, address: account.address })

      if (BigInt(request.amount) === 0n) {
        // "clients MUST use type="proof" when amount is "0""
        const signature = await account.signTypedData(
          Proof.typedData({
            version: options.proofVersion ?? 3,
            chainId,
            challengeId: challenge.id,
            realm: challenge.realm,
            account: account.address,
          }) as Parameters<LocalAccount['signTypedData']>[0],
        )
        return { payload: { type: 'proof', signature }, source }
      }

      const supported = request.methodDetails?.supportedModes ?? ['pull', 'push']
      const sponsored = request.methodDetails?.feePayer === true
      // "Clients MUST NOT use type="hash" when methodDetails.feePayer is true."
      const candidates = sponsored ? supported.filter((m) => m === 'pull') : supported
      const preferred = options.mode ?? 'pull'
      const mode = candidates.includes(preferred) ? preferred : candidates[0]
      if (!mode) throw new PaymentFailedError('tempo: the challenge allows no mode this client can use')

      // "When present, the client MUST use `transferWithMemo` instead of `transfer`." Without a server
      // memo, the attribution memo binds the transfer to this challenge and realm.
      const memo =
        (request.methodDetails?.memo as Hex | undefined) ??
        Attribution.encode({ challengeId: challenge.id, realm: challenge.realm, clientId: options.clientId })
      const transfers = expectedTransfers(request)
      const calls = transfers.map((transfer, index) => {
        const withMemo = index === 0 ? memo : transfer.memo
        return {
          to: request.currency as Address,
          data: withMemo
            ? encodeFunctionData({
                abi: Abis.tip20,
                functionName: 'transferWithMemo',
                args: [transfer.recipient, transfer.amount, withMemo],
              })
            : encodeFunctionData({
                abi: Abis.tip20,
                functionName: 'transfer',
                args: [transfer.recipient, transfer.amount],
              }),
        }
      })
      const wallet = walletFor(chainId)
      const nowSeconds = Math.floor(Date.now() / 1000)
      // "with `validBefore` no later than the challenge `expires` auth-param"
      const expiry = challenge.expires
        ? Math.floor(Date.parse(challenge.expires) / 1000)
        : Number.POSITIVE_INFINITY
      const validBefore = Math.min(nowSeconds + (options.validFor ?? 60), expiry)
      // Fee payers require the expiring lane by default (an unsent sponsored transaction cannot be held
      // back and replayed later); an explicit `nonceKey: 0n` opts out (nodes without expiring nonces).
      const expiring = options.nonceKey === 'expiring' || (sponsored && options.nonceKey === undefined)
      const gas = (options.gasPerTransfer ?? 200_000n) * BigInt(calls.length)
      const sign = async (): Promise<Hex> => {
        const lane = expiring
          ? { nonceKey: 'expiring' as const }
          : options.nonceKey === 0n
            ? { nonceKey: 0n, nonce: await pendingNonce(wallet) }
            : { nonceKey: randomNonceKey(), nonce: 0 }
        const prepared = await wallet.prepareTransactionRequest({
          account,
          calls,
          gas,
          validBefore,
          ...lane,
          // "If `feePayer` is `true`, the client signs with `fee_payer_signature` set to `0x00` and
          // `fee_token` empty"; otherwise it "MUST set `fee_token` and pay fees themselves".
          ...(sponsored ? { feePayer: true } : options.feeToken ? { feeToken: options.feeToken } : {}),
        } as never)
        return (await wallet.signTransaction(prepared as never)) as Hex
      }
      if (mode === 'pull') {
        try {
          return { payload: { type: 'transaction', signature: await sign() }, source }
        } catch (error) {
          throw new PaymentFailedError('tempo: could not prepare the payment transaction', {
            cause: rpcErrorSummary(error),
          })
        }
      }
      let handedOver = false
      let sentHash: Hex | undefined
      const send = async () => {
        const serializedTransaction = await sign()
        sentHash = keccak256(serializedTransaction)
        handedOver = true
        return wallet.sendRawTransactionSync({ serializedTransaction })
      }
      // Only the protocol lane needs one-at-a-time sends.
      const sequential = options.nonceKey === 0n
      const sent = sequential ? pushQueue.then(send) : send()
      if (sequential) pushQueue = sent.catch(() => {})
      let receipt: { status: string; transactionHash: Hex }
      try {
        receipt = await sent
      } catch (error) {
        // Once the signed transaction went to the node, a timeout or a lost answer says nothing about
        // whether it gets mined (the node may have taken it first), and nodes' error answers do not
        // reliably tell a refusal from a receipt wait that timed out: the payment may have settled.
        throw new PaymentFailedError(
          handedOver
            ? 'tempo: the payment transaction was sent, but the node did not confirm it'
            : 'tempo: the payment transaction could not be sent',
          { cause: rpcErrorSummary(error), mayHaveSettled: handedOver },
        )
      }
      // A receipt of another transaction (a replacement, or an RPC answering wrongly) says nothing about
      // the one sent, which the node may still execute: never present its hash as this payment.
      if (receipt.transactionHash?.toLowerCase() !== sentHash?.toLowerCase())
        throw new PaymentFailedError(
          `tempo: the node answered the payment transaction ${sentHash} with the receipt of ${receipt.transactionHash}`,
          { mayHaveSettled: true },
        )
      if (receipt.status !== 'success')
        throw new PaymentFailedError(`tempo: the payment transaction ${receipt.transactionHash} reverted`)
      return { payload: { type: 'hash', hash: receipt.transactionHash }, source }
    },
  }
}

// Checked when the client is created, naming the option: a payer misconfigured (a `mode` of 'Push', a
// `chainId` read from an env var as a string, no account) otherwise fails every payment later.
function checkChargeClientOptions(options: ChargeClientOptions): void {
  const scope = 'tempo client'
  if (!options || typeof options !== 'object')
    throw new ConfigurationError(`${scope}: options must be an object with at least an account`)
  checkSigner(scope, 'account', options.account, ['signTransaction', 'signTypedData'], true)
  checkHttpUrl(scope, 'rpcUrl', options.rpcUrl, false)
  checkChainId(scope, options.chainId)
  checkMilliseconds(scope, 'timeout', options.timeout)
  checkOneOf(scope, 'mode', options.mode, ['pull', 'push'])
  checkOptionalAddress(scope, 'feeToken', options.feeToken)
  checkPositiveBigint(scope, 'gasPerTransfer', options.gasPerTransfer, 'gas limit')
  checkOneOf(scope, 'nonceKey', options.nonceKey, ['random', 0n, 'expiring'])
  checkPositiveInteger(scope, 'validFor', options.validFor, 'number of seconds')
  checkOneOf(scope, 'proofVersion', options.proofVersion, Proof.versions)
}

export type { Account }
