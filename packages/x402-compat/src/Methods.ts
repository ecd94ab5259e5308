import { Method } from '@mppkit/core/client'
import { z } from 'zod'

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an address')
const bytes32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'a bytes32 hex value')
const hex = z.string().regex(/^0x(?:[0-9a-fA-F]{2})+$/, 'a hex string')
// "Amount in base units (stringified integer)" (draft-evm-charge-00 §"Shared Fields").
const amount = z.string().regex(/^(0|[1-9]\d{0,77})$/, 'a base-unit integer string')
const timestamp = z.string().regex(/^(0|[1-9]\d{0,19})$/, 'a unix timestamp string')

/**
 * The EIP-712 domain name and version of an EIP-3009 token. Not a field of draft-evm-charge-00 (which
 * leaves the domain to configuration); mppkit carries it in `methodDetails.eip712` so a challenge made
 * from an x402 requirement (whose `extra.name`/`extra.version` name it) can be paid without a lookup.
 */
export const Eip712Domain = z.object({ name: z.string().min(1), version: z.string().min(1) })

/**
 * The decoded `request` of an `evm` charge challenge, wire field names as the spec spells them.
 *
 * @example
 * ```ts
 * EvmChargeRequest.parse({ amount: '1000', currency: '0x…', recipient: '0x…', methodDetails: { chainId: 8453 } })
 * ```
 * @see draft-evm-charge-00 §"Request Schema"
 */
export const EvmChargeRequest = z.looseObject({
  amount,
  currency: address,
  recipient: address,
  description: z.string().optional(),
  externalId: z.string().optional(),
  methodDetails: z.looseObject({
    // "Clients MUST reject challenges whose `chainId` does not match a chain they support."
    chainId: z.number().int().positive(),
    permit2Address: address.optional(),
    credentialTypes: z
      .array(z.enum(['permit2', 'authorization', 'transaction', 'hash']))
      .min(1)
      .optional(),
    decimals: z.number().int().min(0).max(255).optional(),
    splits: z
      .array(z.looseObject({ recipient: address, amount, memo: z.string().max(256).optional() }))
      .optional(),
    eip712: Eip712Domain.optional(),
  }),
})

/** The decoded request of an `evm` charge. */
export type EvmChargeRequest = z.infer<typeof EvmChargeRequest>

/**
 * An EIP-3009 `transferWithAuthorization` credential payload (`type="authorization"`).
 *
 * @example
 * ```ts
 * AuthorizationPayload.parse({ type: 'authorization', from, to, value: '1000', validAfter: '0', validBefore, nonce, signature })
 * ```
 * @see draft-evm-charge-00 §"Authorization Payload (type="authorization")"
 */
export const AuthorizationPayload = z.object({
  type: z.literal('authorization'),
  from: address,
  to: address,
  value: amount,
  validAfter: timestamp,
  validBefore: timestamp,
  nonce: bytes32,
  signature: hex,
})

/** An EIP-3009 credential payload. */
export type AuthorizationPayload = z.infer<typeof AuthorizationPayload>

/**
 * The `evm` charge method: one-time ERC-20 transfers on any EVM chain. This package implements the
 * `authorization` (EIP-3009) credential type; `permit2`, `transaction` and `hash` are not implemented.
 *
 * @example
 * ```ts
 * import { evmCharge } from '@mppkit/x402-compat'
 * evmCharge.name // 'evm'
 * ```
 * @see draft-evm-charge-00
 */
export const evmCharge = Method.define({
  name: 'evm',
  intent: 'charge',
  request: EvmChargeRequest,
  payload: AuthorizationPayload,
})
