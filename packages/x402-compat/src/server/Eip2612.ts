import { type Address, type Hex, verifyTypedData } from 'viem'
import { sameAddress } from '../Authorization.js'
import type { Eip2612Permit, EvmChargeRequest } from '../Methods.js'
import { permit2Address } from '../Permit2.js'
import * as X402Eip2612 from '../X402Eip2612.js'
import { refuse } from './Shared.js'

/**
 * Checks the EIP-2612 permit of an x402 Permit2 payment (x402's `eip2612GasSponsoring`) before its
 * facilitator sees it: it approves this payment's token to the canonical Permit2, by the payer, for
 * exactly the amount (x402's proxy reverts `Permit2612AmountMismatch` on any other value), is valid now,
 * and is signed by the payer under the token's EIP-712 domain. The chain's side (the token's current
 * nonce, an allowance already there) is the facilitator's: it simulates `settleWithPermit` when asked to
 * verify, as for every x402 server.
 *
 * @example
 * ```ts
 * await verifyEip2612({ domain, minValidity: 6, now: Date.now }, { request, payer, permit: payload.eip2612 })
 * ```
 * @see https://github.com/coinbase/x402 specs/extensions/eip2612_gas_sponsoring.md §"Verification Logic"
 */
export async function verifyEip2612(
  context: {
    /** The token's EIP-712 domain (the charge's `domain`); without one no permit can be checked. */
    domain: { name: string; version: string } | undefined
    minValidity: number
    now: () => number
  },
  input: { request: EvmChargeRequest; payer: Address; permit: Eip2612Permit },
): Promise<void> {
  const { request, payer, permit } = input
  if (!context.domain)
    throw refuse(
      'This server takes no EIP-2612 permit for this token (its EIP-712 domain is not configured).',
      'eip2612-not-offered',
    )
  // x402's facilitator submits `permit(owner, PERMIT2, value, deadline, v, r, s)` with the owner of the
  // Permit2 transfer: a permit of anyone else would fail there.
  if (!sameAddress(permit.from, payer))
    throw refuse('The EIP-2612 permit is signed for another owner than the payer.', 'eip2612-wrong-owner')
  if (!sameAddress(permit.asset, request.currency))
    throw refuse('The EIP-2612 permit approves another token.', 'eip2612-wrong-asset')
  // "The Facilitator MUST verify that `spender` matches the expected contract (e.g., Canonical Permit2)."
  if (!sameAddress(permit.spender, permit2Address))
    throw refuse('The EIP-2612 permit approves another spender than Permit2.', 'eip2612-wrong-spender')
  if (permit.amount !== request.amount)
    throw refuse(
      'The EIP-2612 permit approves another amount than the payment (x402’s proxy takes exactly the permitted amount).',
      'eip2612-wrong-amount',
    )
  // EIP-2612: "The current blocktime is less than or equal to `deadline`."
  if (BigInt(permit.deadline) < BigInt(Math.floor(context.now() / 1000) + context.minValidity))
    throw refuse('The EIP-2612 permit has expired.', 'eip2612-expired')
  // "Verify the `signature` was signed for the `spender` and recovers to `from`."
  let valid = false
  try {
    valid = await verifyTypedData({
      address: permit.from as Address,
      ...X402Eip2612.typedData(request.methodDetails.chainId, context.domain, permit),
      signature: permit.signature as Hex,
    })
  } catch {}
  if (!valid) throw refuse('The EIP-2612 permit signature is invalid.', 'eip2612-invalid-signature')
}
