import { VerificationFailedError } from '@mppkit/core/client'
import { type Address, encodeAbiParameters, type Hex, isAddressEqual, keccak256, zeroAddress } from 'viem'
import type { ChannelDescriptor } from './Methods.js'

/**
 * The v1 channel id the escrow computes:
 * `keccak256(abi.encode(payer, payee, token, salt, authorizedSigner, escrow, chainId))`.
 *
 * @example
 * ```ts
 * const channelId = Channel.computeId({ payer, payee, token, salt, authorizedSigner: zeroAddress, escrow, chainId })
 * ```
 * @see draft-tempo-session-00 §"Contract-Backed Channel State": "Clients MUST use the contract's
 *   `computeChannelId()` function or equivalent logic"
 */
export function computeId(parameters: {
  payer: Address
  payee: Address
  token: Address
  salt: Hex
  authorizedSigner: Address
  escrow: Address
  chainId: number
}): Hex {
  return keccak256(
    encodeAbiParameters(
      [
        { type: 'address' },
        { type: 'address' },
        { type: 'address' },
        { type: 'bytes32' },
        { type: 'address' },
        { type: 'address' },
        { type: 'uint256' },
      ],
      [
        parameters.payer,
        parameters.payee,
        parameters.token,
        parameters.salt,
        parameters.authorizedSigner,
        parameters.escrow,
        BigInt(parameters.chainId),
      ],
    ),
  )
}

/**
 * The v2 (TIP-20 channel reserve precompile) channel id of a descriptor:
 * `keccak256(abi.encode(payer, payee, operator, token, salt, authorizedSigner, expiringNonceHash, escrow, chainId))`.
 *
 * @example
 * ```ts
 * const channelId = Channel.computeIdV2(descriptor, { escrow, chainId })
 * ```
 * @see draft-tempo-session-00 §"Channel Descriptor"
 */
export function computeIdV2(
  descriptor: ChannelDescriptor,
  context: { escrow: Address; chainId: number },
): Hex {
  return keccak256(
    encodeAbiParameters(
      [
        { type: 'address' },
        { type: 'address' },
        { type: 'address' },
        { type: 'address' },
        { type: 'bytes32' },
        { type: 'address' },
        { type: 'bytes32' },
        { type: 'address' },
        { type: 'uint256' },
      ],
      // Lower-cased: the descriptor schema accepts any letter case, but viem's encoder rejects a mixed-case
      // address whose EIP-55 checksum is wrong; the encoding (and so the id) is the same either way.
      [
        descriptor.payer.toLowerCase() as Address,
        descriptor.payee.toLowerCase() as Address,
        descriptor.operator.toLowerCase() as Address,
        descriptor.token.toLowerCase() as Address,
        descriptor.salt as Hex,
        descriptor.authorizedSigner.toLowerCase() as Address,
        descriptor.expiringNonceHash as Hex,
        context.escrow.toLowerCase() as Address,
        BigInt(context.chainId),
      ],
    ),
  )
}

/** Largest v2 amount: "V2 channel amounts use unsigned 96-bit integer semantics." */
export const maxV2Amount = (1n << 96n) - 1n

/**
 * Checks a v2 credential descriptor against the challenge: recomputed channel id, payee, token and
 * operator, and the uint96 bound of an amount. Throws `VerificationFailedError` with a stable reason.
 *
 * @example
 * ```ts
 * Channel.assertDescriptorV2({ descriptor, channelId, recipient, currency, escrow, chainId })
 * ```
 * @see draft-tempo-session-00 §"Channel Descriptor": "Servers MUST recompute this value from the
 *   descriptor and reject credentials whose `channelId` does not match."
 */
export function assertDescriptorV2(parameters: {
  descriptor: ChannelDescriptor | undefined
  channelId: Hex
  recipient: Address
  currency: Address
  escrow: Address
  chainId: number
  operator?: Address | undefined
  amounts?: readonly bigint[]
  authorizedSigner?: Address | undefined
}): void {
  const { descriptor } = parameters
  const fail = (detail: string, reason: string): never => {
    throw new VerificationFailedError({ detail, reason })
  }
  if (!descriptor) fail('A v2 credential must carry the channel descriptor.', 'descriptor-missing')
  const d = descriptor!
  if (computeIdV2(d, parameters).toLowerCase() !== parameters.channelId.toLowerCase())
    fail('The channel id does not match the descriptor.', 'channel-id-mismatch')
  // "`descriptor.payee` matches the challenge `recipient`; `descriptor.token` matches the challenge
  // `currency`; `descriptor.operator` matches `methodDetails.operator` when present, or is the zero address"
  if (!isAddressEqual(d.payee as Address, parameters.recipient))
    fail('The descriptor payee is not the recipient.', 'payee-mismatch')
  if (!isAddressEqual(d.token as Address, parameters.currency))
    fail('The descriptor token is not the currency.', 'token-mismatch')
  if (!isAddressEqual(d.operator as Address, parameters.operator ?? zeroAddress))
    fail('The descriptor operator does not match.', 'operator-mismatch')
  // "If `authorizedSigner` is present in the payload, it MUST match `descriptor.authorizedSigner`."
  if (
    parameters.authorizedSigner &&
    !isAddressEqual(parameters.authorizedSigner, d.authorizedSigner as Address)
  )
    fail('The authorized signer does not match the descriptor.', 'signer-mismatch')
  // "Clients and servers MUST reject deposits, voucher amounts, settlement amounts, and close capture
  // amounts that exceed `2^96 - 1`."
  for (const amount of parameters.amounts ?? [])
    if (amount < 0n || amount > maxV2Amount) fail('A v2 amount exceeds 2^96 - 1.', 'amount-out-of-range')
}
