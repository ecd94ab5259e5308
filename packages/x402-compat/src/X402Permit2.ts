import { type Address, getAddress } from 'viem'
import { permit2Address } from './Permit2.js'

/**
 * x402's fixed address of its `exact` Permit2 proxy: the `spender` every x402 Permit2 payment is signed
 * for, and the contract x402 facilitators call (`x402ExactPermit2ProxyAddress` in `@x402/evm`).
 *
 * @example
 * ```ts
 * proxyAddress // '0x402085c248EeA27D92E8b30b2C58ed07f9E20001'
 * ```
 */
export const proxyAddress: Address = '0x402085c248EeA27D92E8b30b2C58ed07f9E20001'

/**
 * The EIP-712 types of an x402 Permit2 payment: Permit2's `PermitWitnessTransferFrom` whose witness is
 * x402's `Witness(address to,uint256 validAfter)` (not draft-evm-charge-00's `PaymentWitness`).
 *
 * @example
 * ```ts
 * await account.signTypedData(typedData(chainId, authorization)) // types: witnessTypes
 * ```
 */
export const witnessTypes = {
  PermitWitnessTransferFrom: [
    { name: 'permitted', type: 'TokenPermissions' },
    { name: 'spender', type: 'address' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
    { name: 'witness', type: 'Witness' },
  ],
  TokenPermissions: [
    { name: 'token', type: 'address' },
    { name: 'amount', type: 'uint256' },
  ],
  Witness: [
    { name: 'to', type: 'address' },
    { name: 'validAfter', type: 'uint256' },
  ],
} as const

/**
 * The `permit2Authorization` of an x402 `exact` payload (`extra.assetTransferMethod: "permit2"`), integers
 * as decimal strings, as x402 sends it beside the `signature`.
 *
 * @example
 * ```ts
 * const authorization: Authorization = { from, permitted: { token, amount: '1000' }, spender: proxyAddress, nonce, deadline, witness: { to, validAfter: '0' } }
 * ```
 */
export type Authorization = {
  from: Address
  permitted: { token: Address; amount: string }
  spender: Address
  nonce: string
  deadline: string
  witness: { to: Address; validAfter: string }
}

/**
 * The typed data an x402 Permit2 payment signs: domain `{ name: "Permit2", chainId, verifyingContract:
 * Permit2 }` (no version), ready for viem's `signTypedData`/`verifyTypedData`.
 *
 * @example
 * ```ts
 * const signature = await account.signTypedData(typedData(8453, authorization))
 * ```
 */
export function typedData(chainId: number, authorization: Authorization) {
  return {
    domain: { name: 'Permit2', chainId, verifyingContract: permit2Address },
    types: witnessTypes,
    primaryType: 'PermitWitnessTransferFrom' as const,
    message: {
      permitted: {
        token: getAddress(authorization.permitted.token),
        amount: BigInt(authorization.permitted.amount),
      },
      spender: getAddress(authorization.spender),
      nonce: BigInt(authorization.nonce),
      deadline: BigInt(authorization.deadline),
      witness: {
        to: getAddress(authorization.witness.to),
        validAfter: BigInt(authorization.witness.validAfter),
      },
    },
  }
}
