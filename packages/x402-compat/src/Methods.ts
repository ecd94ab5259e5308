import { Method } from '@mppkit/core/client'
import { z } from 'zod'

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an address')
const bytes32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'a bytes32 hex value')
const hex = z.string().regex(/^0x(?:[0-9a-fA-F]{2})+$/, 'a hex string')
// Every integer field is a Solidity uint256: a larger one (78 digits reach past 2^256 - 1) is a malformed
// credential, never a 503 from an ABI encoder that cannot encode it.
const maxUint256 = 2n ** 256n - 1n
// (Zod runs a refinement after a failed regex too: only digits reach BigInt.)
const fitsUint256 = (value: string) => /^\d{1,78}$/.test(value) && BigInt(value) <= maxUint256
// "Amount in base units (stringified integer)" (draft-evm-charge-00 §"Shared Fields").
const amount = z
  .string()
  .regex(/^(0|[1-9]\d{0,77})$/, 'a base-unit integer string')
  .refine(fitsUint256, 'a uint256 integer string')
const timestamp = z.string().regex(/^(0|[1-9]\d{0,19})$/, 'a unix timestamp string')
const uint256 = z
  .string()
  .regex(/^(0|[1-9]\d{0,77})$/, 'a uint256 integer string')
  .refine(fitsUint256, 'a uint256 integer string')

/**
 * The credential types of draft-evm-charge-00, in the spec's order of preference.
 *
 * @example
 * ```ts
 * CredentialType.parse('permit2')
 * ```
 * @see draft-evm-charge-00 §"Credential Type Negotiation"
 */
export const CredentialType = z.enum(['permit2', 'authorization', 'transaction', 'hash'])

/** One of `permit2`, `authorization`, `transaction`, `hash`. */
export type CredentialType = z.infer<typeof CredentialType>

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
    credentialTypes: z.array(CredentialType).min(1).optional(),
    decimals: z.number().int().min(0).max(255).optional(),
    splits: z
      .array(z.looseObject({ recipient: address, amount, memo: z.string().max(256).optional() }))
      .optional(),
    eip712: Eip712Domain.optional(),
    // mppkit extension: Permit2 binds a signature to `msg.sender` (the spender), which the spec's
    // request does not name; a server offering `permit2` publishes the address that will submit it.
    spender: address.optional(),
    // mppkit extension, set by the x402 client plug only: an x402 offer with
    // `extra.assetTransferMethod: "permit2"`. The client signs x402's Permit2 form instead (spender = x402's
    // proxy, witness `Witness(address to,uint256 validAfter)`, no challenge binding) and sends it as x402's
    // `permit2Authorization`.
    permit2Witness: z.literal('x402').optional(),
    // mppkit extension, set by the x402 client plug only, beside `permit2Witness: "x402"` and `eip712`: the
    // x402 server advertises x402's `eip2612GasSponsoring` for this offer, so a payer whose Permit2
    // allowance is short may add an EIP-2612 permit of the token (domain `eip712`) to Permit2.
    eip2612: z.literal(true).optional(),
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
 * A Permit2 credential payload (`type="permit2"`): a `PermitWitnessTransferFrom` (or batch) signature
 * whose witness binds the challenge.
 *
 * @example
 * ```ts
 * Permit2Payload.parse({ type: 'permit2', permit: { permitted: [{ token, amount: '1000' }], nonce: '1', deadline }, transferDetails: [{ to, requestedAmount: '1000' }], witness: { challengeHash }, signature })
 * ```
 * @see draft-evm-charge-00 §"Permit2 Payload (type="permit2")"
 */
export const Permit2Payload = z.object({
  type: z.literal('permit2'),
  permit: z.object({
    // "The `permitted` array MUST always be an array, even for single transfers (length 1)."
    permitted: z
      .array(z.object({ token: address, amount }))
      .min(1)
      .max(11),
    nonce: uint256,
    deadline: timestamp,
  }),
  transferDetails: z
    .array(z.object({ to: address, requestedAmount: amount }))
    .min(1)
    .max(11),
  witness: z.object({ challengeHash: bytes32, externalId: z.string().optional() }),
  signature: hex,
})

/** A Permit2 credential payload. */
export type Permit2Payload = z.infer<typeof Permit2Payload>

/**
 * An EIP-2612 approval of the token to Permit2, as x402's `eip2612GasSponsoring` extension carries it in
 * `extensions.eip2612GasSponsoring.info` (integers as decimal strings; `signature` is 65 bytes `r‖s‖v`, as
 * x402's facilitator splits it; `version` is the extension's schema version, `"1"`). Members the info
 * also holds (the server's `description`, echoed) are dropped.
 *
 * @example
 * ```ts
 * Eip2612Permit.parse({ from, asset, spender: permit2Address, amount: '1000', nonce: '0', deadline, signature, version: '1' })
 * ```
 * @see https://github.com/coinbase/x402 specs/extensions/eip2612_gas_sponsoring.md
 */
export const Eip2612Permit = z.object({
  from: address,
  asset: address,
  spender: address,
  amount: uint256,
  nonce: uint256,
  deadline: timestamp,
  signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/, 'a 65-byte signature'),
  version: z.literal('1'),
})

/** x402's `eip2612GasSponsoring` info: an EIP-2612 permit of the token to Permit2. */
export type Eip2612Permit = z.infer<typeof Eip2612Permit>

/**
 * x402's Permit2 form (`extra.assetTransferMethod: "permit2"`), carried between the x402 plug or adapter
 * and the `evm` method (`type="x402-permit2"`, an mppkit type outside draft-evm-charge-00): a Permit2
 * `PermitWitnessTransferFrom` for x402's proxy with x402's witness `(to, validAfter)`, as x402 sends it
 * (`permit2Authorization` beside the `signature`), with the payer's EIP-2612 approval of Permit2 when its
 * document carried x402's `eip2612GasSponsoring` (`eip2612`). Only a payment relayed from an x402 client
 * is paid with it; an MPP credential of this type is refused.
 *
 * @example
 * ```ts
 * X402Permit2Payload.parse({ type: 'x402-permit2', permit2Authorization: { from, permitted: { token, amount: '1000' }, spender, nonce: '1', deadline, witness: { to, validAfter: '0' } }, signature })
 * ```
 */
export const X402Permit2Payload = z.object({
  type: z.literal('x402-permit2'),
  permit2Authorization: z.object({
    from: address,
    permitted: z.object({ token: address, amount }),
    spender: address,
    nonce: uint256,
    deadline: timestamp,
    witness: z.object({ to: address, validAfter: timestamp }),
  }),
  signature: hex,
  /** The payer's EIP-2612 approval of Permit2 (x402's `eip2612GasSponsoring`), when it sent one. */
  eip2612: Eip2612Permit.optional(),
})

/** x402's Permit2 payload. */
export type X402Permit2Payload = z.infer<typeof X402Permit2Payload>

/**
 * A client-signed transaction the server broadcasts (`type="transaction"`).
 *
 * @example
 * ```ts
 * TransactionPayload.parse({ type: 'transaction', signature: '0x02f8…' })
 * ```
 * @see draft-evm-charge-00 §"Transaction Payload (type="transaction")"
 */
export const TransactionPayload = z.object({ type: z.literal('transaction'), signature: hex })

/** A signed-transaction credential payload. */
export type TransactionPayload = z.infer<typeof TransactionPayload>

/**
 * The hash of a transfer the client broadcast itself (`type="hash"`).
 *
 * @example
 * ```ts
 * HashPayload.parse({ type: 'hash', hash: '0x1a2b…' })
 * ```
 * @see draft-evm-charge-00 §"Hash Payload (type="hash")"
 */
export const HashPayload = z.object({ type: z.literal('hash'), hash: bytes32 })

/** A transaction-hash credential payload. */
export type HashPayload = z.infer<typeof HashPayload>

/**
 * Any `evm` charge credential payload, told apart by `type`.
 *
 * @example
 * ```ts
 * EvmChargePayload.parse(payload).type // 'permit2' | 'authorization' | 'transaction' | 'hash'
 * ```
 * @see draft-evm-charge-00 §"Verification Procedure" step 2
 */
export const EvmChargePayload = z.discriminatedUnion('type', [
  Permit2Payload,
  AuthorizationPayload,
  TransactionPayload,
  HashPayload,
  X402Permit2Payload,
])

/** Any `evm` charge credential payload. */
export type EvmChargePayload = z.infer<typeof EvmChargePayload>

/**
 * The `evm` charge method: one-time ERC-20 transfers on any EVM chain, with the four credential types
 * of the spec (`permit2`, `authorization`, `transaction`, `hash`).
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
  payload: EvmChargePayload,
})
