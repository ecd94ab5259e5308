import { VerificationFailedError } from '@mppkit/core'
import { type Address, decodeFunctionData, encodeEventTopics, type Hex, parseAbi, parseAbiItem } from 'viem'
import { sameAddress } from '../Authorization.js'
import type { AuthorizationPayload, EvmChargeRequest } from '../Methods.js'
import { type Expected, hasTransfers } from '../Transfer.js'
import { chainIdOf } from '../Wire.js'
import { onChain, type Reader } from './Shared.js'

/** What an x402 facilitator's `settle` answered with `success: true` (its fields, unchecked). */
export type SettleAnswer = { transaction?: unknown; network?: unknown; payer?: unknown }

/**
 * A settlement answer that contradicts the payment it was asked to settle. The facilitator said the
 * payment settled, so value may have moved: the challenge stays consumed (`consumed`) and the error is
 * reported for the operator to reconcile; nothing is served on the facilitator's word alone.
 */
export function contradicted(detail: string): VerificationFailedError {
  return new VerificationFailedError({
    detail: `The facilitator's settlement answer ${detail}.`,
    reason: 'facilitator-contradicted',
    consumed: true,
  })
}

const hashRule = /^0x[0-9a-fA-F]{64}$/
const authorizationUsed = parseAbiItem(
  'event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)',
)

/**
 * The transaction hash of an EVM payment a facilitator says it settled, once its answer is checked
 * against the payment: a 32-byte hash, the network of the request (CAIP-2 or its v1 name) and the payer
 * where it names them; and, with a `reader`, a successful receipt of that very transaction holding the
 * `Transfer` of the amount from the payer to the recipient (and whatever `settles` also asks of its
 * logs and of the transaction). Throws {@link contradicted} otherwise, naming `what` was not settled.
 *
 * @example
 * ```ts
 * const hash = await confirmedTransfer(settled, { request, from, reader, timeout, what: 'permit' })
 * ```
 */
export async function confirmedTransfer(
  settled: SettleAnswer,
  context: {
    request: EvmChargeRequest
    from: Address
    reader: Reader | undefined
    timeout: number
    /** What was paid, as the refusal names it: `authorization`, `permit`. */
    what: string
    /** A further check of the receipt's logs (e.g. the authorization's own event) and transaction. */
    settles?: ((logs: readonly Log[], transaction: Hex, reader: Reader) => Promise<boolean>) | undefined
  },
): Promise<Hex> {
  const { request, from, reader, timeout } = context
  const { transaction, network, payer } = settled
  if (typeof transaction !== 'string' || !hashRule.test(transaction))
    throw contradicted('names no transaction hash')
  if (
    network !== undefined &&
    (typeof network !== 'string' || chainIdOf(network) !== request.methodDetails.chainId)
  )
    throw contradicted('names another network')
  if (payer !== undefined && (typeof payer !== 'string' || !sameAddress(payer, from)))
    throw contradicted('names another payer')
  if (!reader) return transaction as Hex
  const receipt = await onChain(reader.getTransactionReceipt({ hash: transaction as Hex }), timeout, () =>
    contradicted('names a transaction the chain does not know'),
  )
  const logs: readonly Log[] = receipt?.logs ?? []
  const moved = hasTransfers(logs, [
    { token: request.currency, to: request.recipient, value: BigInt(request.amount), from },
  ])
  if (
    receipt?.status !== 'success' ||
    !moved ||
    (context.settles && !(await context.settles(logs, transaction as Hex, reader)))
  )
    throw contradicted(`names a transaction that did not settle this ${context.what}`)
  return transaction as Hex
}

type Log = { address: Address; topics: readonly Hex[]; data: Hex }

/**
 * The transaction hash of an EIP-3009 authorization a facilitator says it settled, once its answer is
 * checked against the payment ({@link confirmedTransfer}) and, with a `reader`, that very transaction
 * paid by this authorization's own call ({@link settledAuthorization}): a `Transfer` of the amount in a
 * batch that also used this authorization (for a transfer to itself) is not this payment. Throws
 * {@link contradicted} otherwise.
 *
 * @example
 * ```ts
 * const hash = await confirmedAuthorization(await facilitator.settle(document, requirement), { request, payload, reader, timeout })
 * ```
 * @see https://github.com/coinbase/x402 specs/schemes/exact/scheme_exact_evm.md §"Settlement"
 */
export function confirmedAuthorization(
  settled: SettleAnswer,
  context: {
    request: EvmChargeRequest
    payload: AuthorizationPayload
    reader: Reader | undefined
    timeout: number
  },
): Promise<Hex> {
  const { request, payload, reader, timeout } = context
  return confirmedTransfer(settled, {
    request,
    from: payload.from as Address,
    reader,
    timeout,
    what: 'authorization',
    settles: (logs, transaction, reader) =>
      settledAuthorization(reader, { transaction, logs, request, payload, timeout }),
  })
}

/** EIP-3009's two transfer functions, each with `(v, r, s)` and with a packed or ERC-1271 `signature`. */
const authorizationCallsAbi = parseAbi([
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature)',
  'function receiveWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
  'function receiveWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, bytes signature)',
])

/**
 * Whether a successful transaction's logs (`logs`, in their order) and its call show that this EIP-3009
 * authorization paid the request, by its own call: the token's `AuthorizationUsed(from, nonce)` must be
 * there, and the `Transfer` of the amount from the payer to the recipient must be the one that call
 * emitted. Any `Transfer` would not do: one batch (a multicall) can use two authorizations that each pay
 * their signer 1 unit beside one real transfer, and each would then be served by that same transfer.
 *
 * The call's own `Transfer` is the token's log right after its `AuthorizationUsed`: FiatToken (USDC,
 * EURC), the EIP-3009 reference and the devnet token mark the authorization used, then transfer, in one
 * call, with no log between. Each `Transfer` log follows one log only, so it pays for one authorization
 * at most, whatever a token's order. A token that logs in another order is found when the transaction
 * calls the token itself (`transferWithAuthorization` or `receiveWithAuthorization`, read with `reader`)
 * with this very authorization: such a call uses one authorization, so its `Transfer` is this one's.
 *
 * @example
 * ```ts
 * if (await settledAuthorization(reader, { transaction: hash, logs: receipt.logs, request, payload, timeout })) serve()
 * ```
 * @see draft-evm-charge-00 §"Authorization Verification" step 10: "Verify the `Transfer` event log
 * matches the expected parameters" (the log of the `transferWithAuthorization` call of step 8)
 * @see https://eips.ethereum.org/EIPS/eip-3009 (`AuthorizationUsed`, `transferWithAuthorization`)
 */
export async function settledAuthorization(
  reader: Reader,
  input: {
    transaction: Hex
    logs: readonly Log[]
    request: EvmChargeRequest
    payload: AuthorizationPayload
    timeout: number
  },
): Promise<boolean> {
  const { logs, request, payload } = input
  const [event, authorizer, nonce] = encodeEventTopics({
    abi: [authorizationUsed],
    eventName: 'AuthorizationUsed',
    args: { authorizer: payload.from as Address, nonce: payload.nonce as Hex },
  }) as Hex[]
  const index = logs.findIndex(
    (log) =>
      sameAddress(log.address, request.currency) &&
      log.topics[0]?.toLowerCase() === event!.toLowerCase() &&
      log.topics[1]?.toLowerCase() === authorizer!.toLowerCase() &&
      log.topics[2]?.toLowerCase() === nonce!.toLowerCase(),
  )
  if (index < 0) return false
  const expected: Expected = {
    token: request.currency,
    to: request.recipient,
    value: BigInt(request.amount),
    from: payload.from,
  }
  const next = logs[index + 1]
  if (next && hasTransfers([next], [expected])) return true
  if (!hasTransfers(logs, [expected])) return false
  const transaction = await onChain(reader.getTransaction({ hash: input.transaction }), input.timeout)
  return callsWith(transaction, request.currency, payload)
}

/** Whether a transaction calls the token itself with this very authorization (any EIP-3009 transfer form). */
function callsWith(
  transaction: { to?: Address | null; input?: Hex } | null | undefined,
  currency: string,
  payload: AuthorizationPayload,
): boolean {
  if (!transaction?.to || !transaction.input || !sameAddress(transaction.to, currency)) return false
  let args: readonly unknown[]
  try {
    args = decodeFunctionData({ abi: authorizationCallsAbi, data: transaction.input }).args
  } catch {
    return false
  }
  const [from, to, value, validAfter, validBefore, nonce] = args as [
    Address,
    Address,
    bigint,
    bigint,
    bigint,
    Hex,
  ]
  return (
    sameAddress(from, payload.from) &&
    sameAddress(to, payload.to) &&
    value === BigInt(payload.value) &&
    validAfter === BigInt(payload.validAfter) &&
    validBefore === BigInt(payload.validBefore) &&
    nonce.toLowerCase() === payload.nonce.toLowerCase()
  )
}

const signatureRule = /^[1-9A-HJ-NP-Za-km-z]{64,88}$/

/**
 * The transaction signature of an x402 `exact` Solana payment a facilitator says it settled, once its
 * answer is checked against the payment: a base58 signature, the network of the request and the payer
 * of the transaction where it names them. Throws {@link contradicted} otherwise.
 *
 * @example
 * ```ts
 * const signature = confirmedSvmTransaction(settled, { caip2, payer, networkOf: solanaCaip2Of })
 * ```
 * @see https://github.com/coinbase/x402 specs/schemes/exact/scheme_exact_svm.md §"Settlement"
 */
export function confirmedSvmTransaction(
  settled: SettleAnswer,
  context: { caip2: string; payer: string | undefined; networkOf: (network: string) => string | undefined },
): string {
  const { transaction, network, payer } = settled
  if (typeof transaction !== 'string' || !signatureRule.test(transaction))
    throw contradicted('names no transaction signature')
  if (network !== undefined && (typeof network !== 'string' || context.networkOf(network) !== context.caip2))
    throw contradicted('names another network')
  if (payer !== undefined && payer !== '' && payer !== context.payer)
    throw contradicted('names another payer')
  return transaction
}
