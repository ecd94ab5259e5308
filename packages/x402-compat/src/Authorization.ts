import { type Address, encodePacked, getAddress, type Hex, keccak256 } from 'viem'
import type { AuthorizationPayload } from './Methods.js'

/**
 * EIP-712 types of an EIP-3009 `transferWithAuthorization`.
 *
 * @example
 * ```ts
 * await account.signTypedData({ domain, types: transferWithAuthorizationTypes, primaryType: 'TransferWithAuthorization', message })
 * ```
 * @see https://eips.ethereum.org/EIPS/eip-3009
 */
export const transferWithAuthorizationTypes = {
  TransferWithAuthorization: [
    { name: 'from', type: 'address' },
    { name: 'to', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'validAfter', type: 'uint256' },
    { name: 'validBefore', type: 'uint256' },
    { name: 'nonce', type: 'bytes32' },
  ],
} as const

/**
 * The challenge hash an `authorization` credential uses as its EIP-3009 nonce.
 *
 * @example
 * ```ts
 * challengeHash({ id: 'aB3c', realm: 'api.example.com' }) // '0x…'
 * ```
 * @see draft-evm-charge-00 §"Challenge Binding": "nonce = keccak256(abi.encodePacked(challenge.id, challenge.realm))"
 */
export function challengeHash(challenge: { id: string; realm: string }): Hex {
  return keccak256(encodePacked(['string', 'string'], [challenge.id, challenge.realm]))
}

/**
 * The EIP-712 typed data of an EIP-3009 authorization, ready for viem's `signTypedData`/`verifyTypedData`.
 *
 * @example
 * ```ts
 * const data = typedData({ name: 'USD Coin', version: '2', chainId: 8453, token }, payload)
 * ```
 * @see https://eips.ethereum.org/EIPS/eip-3009
 */
export function typedData(
  domain: { name: string; version: string; chainId: number; token: string },
  authorization: Omit<AuthorizationPayload, 'type' | 'signature'>,
) {
  return {
    domain: {
      name: domain.name,
      version: domain.version,
      chainId: domain.chainId,
      verifyingContract: getAddress(domain.token),
    },
    types: transferWithAuthorizationTypes,
    primaryType: 'TransferWithAuthorization' as const,
    message: {
      from: getAddress(authorization.from),
      to: getAddress(authorization.to),
      value: BigInt(authorization.value),
      validAfter: BigInt(authorization.validAfter),
      validBefore: BigInt(authorization.validBefore),
      nonce: authorization.nonce as Hex,
    },
  }
}

/**
 * Whether two EVM addresses name the same 20 bytes (checksum case is not identity).
 *
 * @example
 * ```ts
 * sameAddress('0xabc…', '0xABC…') // true
 * ```
 * @see draft-evm-charge-00 §"Shared Fields": "MUST compare addresses by decoded 20-byte value"
 */
export function sameAddress(a: string, b: string): boolean {
  const rule = /^0x[0-9a-fA-F]{40}$/
  return rule.test(a) && rule.test(b) && a.toLowerCase() === b.toLowerCase()
}

/** The `did:pkh` of a payer on a chain. @see draft-evm-charge-00 §"Credential Structure" */
export function pkh(chainId: number, address: Address): string {
  return `did:pkh:eip155:${chainId}:${getAddress(address)}`
}

/**
 * The payer address a `did:pkh` source names on a chain, or undefined when it names another chain or
 * is not a `did:pkh:eip155` identifier.
 *
 * @example
 * ```ts
 * payerOf('did:pkh:eip155:8453:0xAb…', 8453) // '0xAb…'
 * ```
 * @see draft-evm-charge-00 §"Credential Structure"
 */
export function payerOf(source: string | undefined, chainId: number): Address | undefined {
  const match = /^did:pkh:eip155:([1-9]\d{0,15}):(0x[0-9a-fA-F]{40})$/.exec(source ?? '')
  if (!match || Number(match[1]) !== chainId) return undefined
  return getAddress(match[2] as Address)
}
