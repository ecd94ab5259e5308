import { VerificationFailedError } from '@mppkit/core'
import { type Address, encodeEventTopics, type Hex, parseAbiItem } from 'viem'
import { sameAddress } from '../Authorization.js'
import type { AuthorizationPayload, EvmChargeRequest } from '../Methods.js'
import { hasTransfers } from '../Transfer.js'
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
 * logs). Throws {@link contradicted} otherwise, naming `what` was not settled.
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
    /** A further check of the receipt's logs (e.g. the authorization's own event). */
    settles?: ((logs: readonly Log[]) => boolean) | undefined
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
  if (receipt?.status !== 'success' || !moved || (context.settles && !context.settles(logs)))
    throw contradicted(`names a transaction that did not settle this ${context.what}`)
  return transaction as Hex
}

type Log = { address: Address; topics: readonly Hex[]; data: Hex }

/**
 * The transaction hash of an EIP-3009 authorization a facilitator says it settled, once its answer is
 * checked against the payment ({@link confirmedTransfer}) and, with a `reader`, its receipt also holds
 * this authorization's `AuthorizationUsed`. Throws {@link contradicted} otherwise.
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
    settles: (logs) => {
      const [event, authorizer, nonce] = encodeEventTopics({
        abi: [authorizationUsed],
        eventName: 'AuthorizationUsed',
        args: { authorizer: payload.from as Address, nonce: payload.nonce as Hex },
      }) as Hex[]
      return logs.some(
        (log) =>
          sameAddress(log.address, request.currency) &&
          log.topics[0]?.toLowerCase() === event!.toLowerCase() &&
          log.topics[1]?.toLowerCase() === authorizer!.toLowerCase() &&
          log.topics[2]?.toLowerCase() === nonce!.toLowerCase(),
      )
    },
  })
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
