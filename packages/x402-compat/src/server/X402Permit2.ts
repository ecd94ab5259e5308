import type { Challenge, Store as MethodStore } from '@mppkit/core'
import { type Address, decodeFunctionData, type Hex, parseAbi, verifyTypedData } from 'viem'
import { pkh, sameAddress } from '../Authorization.js'
import type { EvmChargeRequest, X402Permit2Payload } from '../Methods.js'
import { permit2Address } from '../Permit2.js'
import { hasTransfers, transferEvent } from '../Transfer.js'
import * as X402Permit2 from '../X402Permit2.js'
import type { Facilitator } from './Charge.js'
import { verifyEip2612 } from './Eip2612.js'
import { confirmedTransfer, contradicted } from './Facilitated.js'
import type { Relayed } from './Relayed.js'
import {
  facilitate,
  latestValidity,
  onChain,
  once,
  type Reader,
  recentLogs,
  refuse,
  settleOrFind,
  staleClaimMs,
} from './Shared.js'

/** What the checks of x402's Permit2 form need from the method's configuration. */
export type X402Permit2Context = {
  facilitator: Facilitator
  reader: Reader | undefined
  timeout: number
  minValidity: number
  /** Longest validity, in seconds from now, a permit may have beyond the challenge's `expires`. */
  maxValidity: number
  now: () => number
  /** The token's EIP-712 domain: checks an EIP-2612 permit of x402's `eip2612GasSponsoring`. */
  domain: { name: string; version: string } | undefined
}

/**
 * Checks x402's Permit2 form of a payment relayed from an x402 client before its facilitator sees it:
 * signed for x402's proxy (which pays exactly `permitted.amount` to the signed `witness.to`), paying this
 * request's amount of its token to its recipient, valid now and not past the longest validity this server
 * claims replay tokens for, and signed by `from`; and the payer's EIP-2612 approval of Permit2 that came
 * with it, if any ({@link verifyEip2612}: x402's facilitator submits it, advertised or not). Returns the
 * payer.
 *
 * @example
 * ```ts
 * const payer = await verifyX402Permit2(context, { challenge, request, payload, relayed: original, source })
 * ```
 */
export async function verifyX402Permit2(
  context: X402Permit2Context,
  input: {
    challenge: Challenge.Challenge
    request: EvmChargeRequest
    payload: X402Permit2Payload
    relayed: Relayed | undefined
    source?: string | undefined
  },
): Promise<Address> {
  const { challenge, request, payload } = input
  // Only the x402 adapter builds this type, from a requirement it offered and matched: an MPP client
  // cannot present it.
  if (!input.relayed)
    throw refuse('This challenge does not accept x402-permit2 credentials.', 'credential-type')
  const authorization = payload.permit2Authorization
  const { chainId } = request.methodDetails
  // Permit2 lets the spender choose where tokens go: only x402's proxy is bound to the signed `to`.
  if (!sameAddress(authorization.spender, X402Permit2.proxyAddress))
    throw refuse('The permit names another spender than x402’s Permit2 proxy.', 'wrong-spender')
  if (!sameAddress(authorization.witness.to, request.recipient))
    throw refuse('The permit pays another recipient.', 'wrong-recipient')
  if (!sameAddress(authorization.permitted.token, request.currency))
    throw refuse('The permit moves another token.', 'wrong-asset')
  if (authorization.permitted.amount !== request.amount)
    throw refuse('The permit moves another amount.', 'wrong-amount')
  const nowSeconds = Math.floor(context.now() / 1000)
  // The proxy: `if (block.timestamp < witness.validAfter) revert PaymentTooEarly()`.
  if (BigInt(authorization.witness.validAfter) > BigInt(nowSeconds))
    throw refuse('The permit is not valid yet.', 'not-yet-valid')
  // Permit2: `if (block.timestamp > permit.deadline) revert SignatureExpired(permit.deadline)`.
  if (BigInt(authorization.deadline) < BigInt(nowSeconds + context.minValidity))
    throw refuse('The permit has expired.', 'permit-expired')
  // Its replay claim lives until the deadline: a far-future one is refused, not claimed for ever.
  if (BigInt(authorization.deadline) > latestValidity(challenge, nowSeconds, context.maxValidity))
    throw refuse('The permit is valid too far into the future.', 'validity-too-long')
  if (input.source !== undefined && input.source !== pkh(chainId, authorization.from as Address))
    throw refuse('The credential source is not the payer.', 'source-mismatch')
  let valid = false
  try {
    valid = await verifyTypedData({
      address: authorization.from as Address,
      ...X402Permit2.typedData(chainId, authorization as X402Permit2.Authorization),
      signature: payload.signature as Hex,
    })
  } catch {}
  if (!valid) throw refuse('The permit signature is invalid.', 'invalid-signature')
  if (payload.eip2612)
    await verifyEip2612(context, { request, payer: authorization.from as Address, permit: payload.eip2612 })
  return authorization.from as Address
}

/**
 * Settles x402's Permit2 form through the x402 facilitator, once: the owner's Permit2 nonce (the replay
 * token the native `permit2` type claims too) is claimed in the Store before the facilitator sees the
 * payment, so concurrent copies and other processes are refused while the first settles. The
 * facilitator's answer is checked against the payment (and, with a reader, the receipt's `Transfer` of
 * the amount from the payer to the recipient, and the permit's nonce spent in Permit2) before anyone is
 * served. When the outcome is unknown (the facilitator failed or timed out once asked to settle, or a
 * retry is refused after such an attempt: then the nonce is spent and it cannot settle again), the chain
 * is searched for this very permit before the failure is answered ({@link landedX402Permit2}), so a payer
 * whose transfer landed is served once; a definite refusal before settling is answered as it is.
 *
 * @example
 * ```ts
 * const hash = await settleX402Permit2(context, { store, request, payload, relayed: original })
 * ```
 * @see draft-evm-charge-00 §"Replay Protection": "After successful verification, the server MUST
 * atomically mark it as consumed."
 */
export async function settleX402Permit2(
  context: X402Permit2Context,
  input: { store: MethodStore; request: EvmChargeRequest; payload: X402Permit2Payload; relayed: Relayed },
): Promise<Hex> {
  const { request, payload, store } = input
  const authorization = payload.permit2Authorization as X402Permit2.Authorization
  const key = `permit2:${authorization.from.toLowerCase()}:${authorization.nonce}`
  const ttl = Math.max(
    60_000,
    (Number(authorization.deadline) - Math.floor(context.now() / 1000) + 60) * 1000,
  )
  return once(
    store,
    key,
    ttl,
    (resumed) =>
      settleOrFind(
        store,
        key,
        ttl,
        async (sending) => {
          // Once the facilitator is asked to settle, the transfer may land whatever it answers.
          const settled = await facilitate(
            context.facilitator,
            input.relayed.document,
            input.relayed.requirement,
            context.timeout,
            async () => sending(),
          )
          const hash = await confirmedTransfer(settled, {
            request,
            from: authorization.from,
            reader: context.reader,
            timeout: context.timeout,
            what: 'permit',
          })
          // The receipt's Transfer alone could be another payment of the same amount by the same payer. A
          // call to x402's proxy must carry this very permit; any other transaction (a facilitator's own
          // contract) must at least leave this permit's nonce spent (which its owner could also do alone).
          if (
            context.reader &&
            !(await settledThisPermit(context.reader, hash, authorization, context.timeout))
          )
            throw contradicted('names a transaction that did not settle this permit')
          return hash
        },
        () => landedX402Permit2(context, request, authorization),
        resumed,
      ),
    { detail: 'This permit was already used.', reason: 'permit-used' },
    staleClaimMs(context.timeout),
  ) as Promise<Hex>
}

/** Permit2's unordered-nonce bitmap (ISignatureTransfer). */
const nonceBitmapAbi = parseAbi([
  'function nonceBitmap(address owner, uint256 wordPos) view returns (uint256)',
])

/**
 * The two functions of x402's proxy that settle a payment (`x402ExactPermit2ProxyABI` of `@x402/evm`
 * 2.27): `settle`, and `settleWithPermit` (an EIP-2612 approval of Permit2 first).
 */
const proxyAbi = parseAbi([
  'struct TokenPermissions { address token; uint256 amount; }',
  'struct PermitTransferFrom { TokenPermissions permitted; uint256 nonce; uint256 deadline; }',
  'struct Witness { address to; uint256 validAfter; }',
  'struct EIP2612Permit { uint256 value; uint256 deadline; bytes32 r; bytes32 s; uint8 v; }',
  'function settle(PermitTransferFrom permit, address owner, Witness witness, bytes signature)',
  'function settleWithPermit(EIP2612Permit permit2612, PermitTransferFrom permit, address owner, Witness witness, bytes signature)',
])

/**
 * Whether Permit2 has spent the permit's nonce for its owner: bit `nonce & 255` of word `nonce >> 8` of
 * `nonceBitmap(owner, ·)`, as Permit2's `_useUnorderedNonce` sets it (by a transfer, or by the owner's
 * `invalidateUnorderedNonces`: a spent nonce alone proves no payment).
 */
async function nonceUsed(
  reader: Reader,
  authorization: X402Permit2.Authorization,
  timeout: number,
): Promise<boolean> {
  const nonce = BigInt(authorization.nonce)
  const word: bigint = await onChain(
    reader.readContract({
      address: permit2Address,
      abi: nonceBitmapAbi,
      functionName: 'nonceBitmap',
      args: [authorization.from, nonce >> 8n],
    }),
    timeout,
  )
  return ((word >> (nonce & 255n)) & 1n) === 1n
}

/**
 * Whether a transaction is a call to x402's proxy (`settle` or `settleWithPermit`, a facilitator's data
 * suffix after the arguments allowed) with this very permit: token, amount, nonce and deadline, owner,
 * and witness `to` and `validAfter`, which together with the proxy as spender are everything the payer
 * signed. The signature bytes are not compared: a facilitator unwraps an ERC-6492 signature before the
 * call, and Permit2 checked it against these fields when the call succeeded.
 */
function carries(
  transaction: { to?: Address | null; input?: Hex } | null | undefined,
  authorization: X402Permit2.Authorization,
): boolean {
  if (!transaction?.to || !transaction.input || !sameAddress(transaction.to, X402Permit2.proxyAddress))
    return false
  let call: ReturnType<typeof decodeFunctionData<typeof proxyAbi>>
  try {
    call = decodeFunctionData({ abi: proxyAbi, data: transaction.input })
  } catch {
    return false
  }
  const [permit, owner, witness] =
    call.functionName === 'settle' ? call.args : [call.args[1], call.args[2], call.args[3]]
  return (
    sameAddress(permit.permitted.token, authorization.permitted.token) &&
    permit.permitted.amount === BigInt(authorization.permitted.amount) &&
    permit.nonce === BigInt(authorization.nonce) &&
    permit.deadline === BigInt(authorization.deadline) &&
    sameAddress(owner, authorization.from) &&
    sameAddress(witness.to, authorization.witness.to) &&
    witness.validAfter === BigInt(authorization.witness.validAfter)
  )
}

/**
 * Whether the transaction a facilitator named settled this permit: a call to x402's proxy that carries
 * it ({@link carries}); a transaction to any other address (a facilitator's own contract, whose call
 * cannot be decoded here) is taken when Permit2 shows the permit's nonce spent.
 */
async function settledThisPermit(
  reader: Reader,
  hash: Hex,
  authorization: X402Permit2.Authorization,
  timeout: number,
): Promise<boolean> {
  const transaction = await onChain(reader.getTransaction({ hash }), timeout)
  if (transaction?.to && sameAddress(transaction.to, X402Permit2.proxyAddress))
    return carries(transaction, authorization)
  return nonceUsed(reader, authorization, timeout)
}

/**
 * The transaction that settled this very x402 permit, when the chain shows one; undefined otherwise (not
 * landed, reverted, outside the lookback window, or no `reader` that searches logs). First Permit2's
 * nonce bitmap: an unspent nonce ends the search with one read. Then the candidates are the token's
 * `Transfer` logs of the amount from the payer to the recipient over the last ~10 000 blocks, newest
 * first; one counts when its transaction called x402's proxy with this permit ({@link carries}) and
 * succeeded with that `Transfer`. A facilitator that settles through a contract of its own (a smart
 * account, a multicall) is not found this way: its lost answers are answered as failures.
 */
async function landedX402Permit2(
  context: X402Permit2Context,
  request: EvmChargeRequest,
  authorization: X402Permit2.Authorization,
): Promise<string | undefined> {
  const { reader, timeout } = context
  if (!reader || !(await nonceUsed(reader, authorization, timeout))) return undefined
  const expected = {
    token: request.currency,
    to: request.recipient,
    value: BigInt(request.amount),
    from: authorization.from,
  }
  const hashes = await recentLogs(
    reader,
    timeout,
    {
      address: request.currency,
      event: transferEvent[0],
      args: { from: expected.from, to: expected.to as Address },
    },
    (args) => (args as { value?: unknown } | undefined)?.value === expected.value,
  )
  const seen = new Set<string>()
  for (const transactionHash of (hashes ?? []).reverse()) {
    if (!transactionHash || seen.has(transactionHash)) continue
    seen.add(transactionHash)
    const transaction = await onChain(reader.getTransaction({ hash: transactionHash }), timeout)
    if (!carries(transaction, authorization)) continue
    const receipt = await onChain(reader.getTransactionReceipt({ hash: transactionHash }), timeout)
    if (receipt?.status === 'success' && hasTransfers(receipt.logs ?? [], [expected])) return transactionHash
  }
  return undefined
}
