import { getAddress } from 'viem'
import type { Eip2612Permit } from './Methods.js'

/**
 * The key of x402's EIP-2612 gas sponsoring extension in the `extensions` of `PAYMENT-REQUIRED` (the
 * server offers it) and of `PAYMENT-SIGNATURE` (the client's permit, in its `info`).
 *
 * @example
 * ```ts
 * extensionKey // 'eip2612GasSponsoring'
 * ```
 * @see https://github.com/coinbase/x402 specs/extensions/eip2612_gas_sponsoring.md
 */
export const extensionKey = 'eip2612GasSponsoring'

const address = { type: 'string', pattern: '^0x[a-fA-F0-9]{40}$' }
const integer = { type: 'string', pattern: '^[0-9]+$' }

/**
 * What a server advertises under {@link extensionKey}: an `info` with a description and the extension's
 * schema version `"1"` (the client fills in the rest), and the JSON Schema of the info a client sends.
 *
 * @example
 * ```ts
 * const required = { x402Version: 2, resource, accepts, extensions: { [extensionKey]: declaration } }
 * ```
 * @see https://github.com/coinbase/x402 specs/extensions/eip2612_gas_sponsoring.md §"PaymentRequired"
 */
export const declaration = {
  info: {
    description:
      'The facilitator submits an EIP-2612 permit of the token to the canonical Permit2 contract with the settlement, paying its gas.',
    version: '1',
  },
  schema: {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    properties: {
      from: { ...address, description: 'The payer: the owner of the tokens, who signed the permit.' },
      asset: { ...address, description: 'The token (the payment requirement’s asset).' },
      spender: { ...address, description: 'The canonical Permit2 contract.' },
      amount: { ...integer, description: 'The approval: exactly the permitted amount of the payment.' },
      nonce: { ...integer, description: 'The owner’s EIP-2612 nonce on the token.' },
      deadline: { ...integer, description: 'Unix time after which the permit is void.' },
      signature: { type: 'string', pattern: '^0x[a-fA-F0-9]+$', description: '65 bytes: r, s, v.' },
      version: { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)*$', description: 'The schema version.' },
    },
    required: ['from', 'asset', 'spender', 'amount', 'nonce', 'deadline', 'signature', 'version'],
  },
} as const

/**
 * EIP-2612's `Permit` struct, for viem's `signTypedData`/`verifyTypedData` under the token's own EIP-712
 * domain.
 *
 * @example
 * ```ts
 * permitTypes.Permit.map((field) => field.name) // ['owner', 'spender', 'value', 'nonce', 'deadline']
 * ```
 * @see https://eips.ethereum.org/EIPS/eip-2612
 */
export const permitTypes = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const

/**
 * The typed data of an x402 EIP-2612 permit: `Permit(owner = from, spender, value = amount, nonce,
 * deadline)` under the token's domain `{ name, version, chainId, verifyingContract: asset }`.
 *
 * @example
 * ```ts
 * const signature = await account.signTypedData(typedData(chainId, { name: 'USD Coin', version: '2' }, permit))
 * ```
 * @see https://eips.ethereum.org/EIPS/eip-2612
 */
export function typedData(
  chainId: number,
  domain: { name: string; version: string },
  permit: Omit<Eip2612Permit, 'signature' | 'version'>,
) {
  return {
    domain: {
      name: domain.name,
      version: domain.version,
      chainId,
      verifyingContract: getAddress(permit.asset),
    },
    types: permitTypes,
    primaryType: 'Permit' as const,
    message: {
      owner: getAddress(permit.from),
      spender: getAddress(permit.spender),
      value: BigInt(permit.amount),
      nonce: BigInt(permit.nonce),
      deadline: BigInt(permit.deadline),
    },
  }
}

/** The members of the info that make it a permit (a server's declaration has none of them). */
const permitFields = ['from', 'asset', 'spender', 'amount', 'nonce', 'deadline', 'signature'] as const

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * The `info` of {@link extensionKey} in a payment's `extensions` when it carries a permit (any of its
 * fields, to be checked whole); undefined when the extension is absent or only echoes the server's
 * declaration (x402 clients echo every advertised extension, with or without a permit).
 *
 * @example
 * ```ts
 * const info = permitOf(document.extensions) // then Eip2612Permit.safeParse(info)
 * ```
 */
export function permitOf(extensions: unknown): Record<string, unknown> | undefined {
  const extension = isRecord(extensions) ? extensions[extensionKey] : undefined
  const info = isRecord(extension) ? extension.info : undefined
  if (!isRecord(info)) return undefined
  return permitFields.some((field) => info[field] !== undefined) ? info : undefined
}

/**
 * The `extensions` of a payment with a permit: every extension the server advertised echoed, and the
 * permit's fields added to the info of {@link extensionKey} beside the declaration's own members, as
 * x402 clients merge them (x402 servers refuse an echo that drops an advertised member).
 *
 * @example
 * ```ts
 * document.extensions = withPermit(required.extensions, permit)
 * ```
 */
export function withPermit(extensions: unknown, permit: Eip2612Permit): Record<string, unknown> {
  const all = isRecord(extensions) ? extensions : {}
  const advertised = isRecord(all[extensionKey]) ? all[extensionKey] : {}
  const info = isRecord(advertised.info) ? advertised.info : {}
  return { ...all, [extensionKey]: { ...advertised, info: { ...info, ...permit } } }
}
