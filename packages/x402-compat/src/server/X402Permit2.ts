import type { Challenge, Store as MethodStore } from '@mppkit/core'
import { type Address, type Hex, verifyTypedData } from 'viem'
import { pkh, sameAddress } from '../Authorization.js'
import type { EvmChargeRequest, X402Permit2Payload } from '../Methods.js'
import * as X402Permit2 from '../X402Permit2.js'
import type { Facilitator } from './Charge.js'
import { confirmedTransfer } from './Facilitated.js'
import type { Relayed } from './Relayed.js'
import { facilitate, latestValidity, once, type Reader, refuse } from './Shared.js'

/** What the checks of x402's Permit2 form need from the method's configuration. */
export type X402Permit2Context = {
  facilitator: Facilitator
  reader: Reader | undefined
  timeout: number
  minValidity: number
  /** Longest validity, in seconds from now, a permit may have beyond the challenge's `expires`. */
  maxValidity: number
  now: () => number
}

/**
 * Checks x402's Permit2 form of a payment relayed from an x402 client before its facilitator sees it:
 * signed for x402's proxy (which pays exactly `permitted.amount` to the signed `witness.to`), paying this
 * request's amount of its token to its recipient, valid now and not past the longest validity this server
 * claims replay tokens for, and signed by `from`. Returns the payer.
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
  return authorization.from as Address
}

/**
 * Settles x402's Permit2 form through the x402 facilitator, once: the owner's Permit2 nonce (the replay
 * token the native `permit2` type claims too) is claimed in the Store before the facilitator sees the
 * payment, so concurrent copies and other processes are refused while the first settles. The
 * facilitator's answer is checked against the payment (and, with a reader, the receipt's `Transfer` of
 * the amount from the payer to the recipient) before anyone is served.
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
  const { request, payload } = input
  const authorization = payload.permit2Authorization
  const key = `permit2:${authorization.from.toLowerCase()}:${authorization.nonce}`
  const ttl = Math.max(
    60_000,
    (Number(authorization.deadline) - Math.floor(context.now() / 1000) + 60) * 1000,
  )
  return once(
    input.store,
    key,
    ttl,
    async () => {
      const settled = await facilitate(
        context.facilitator,
        input.relayed.document,
        input.relayed.requirement,
        context.timeout,
      )
      return confirmedTransfer(settled, {
        request,
        from: authorization.from as Address,
        reader: context.reader,
        timeout: context.timeout,
        what: 'permit',
      })
    },
    { detail: 'This permit was already used.', reason: 'permit-used' },
  ) as Promise<Hex>
}
