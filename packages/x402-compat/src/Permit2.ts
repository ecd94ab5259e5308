import {
  type Address,
  concat,
  encodeAbiParameters,
  getAddress,
  type Hex,
  keccak256,
  parseAbiParameters,
  toHex,
} from 'viem'
import type { Permit2Payload } from './Methods.js'

/**
 * The canonical Permit2 address ("deployed at the canonical address … on all supported chains").
 *
 * @example
 * ```ts
 * permit2Address // '0x000000000022D473030F116dDEE9F6B43aC78BA3'
 * ```
 * @see draft-evm-charge-00 §"Terminology"
 */
export const permit2Address: Address = '0x000000000022D473030F116dDEE9F6B43aC78BA3'

/**
 * The witness type string, exactly as the spec spells it (including its space after the comma).
 *
 * @example
 * ```ts
 * witnessTypeString.startsWith('PaymentWitness witness)') // true
 * ```
 * @see draft-evm-charge-00 §"Witness Data (Challenge Binding)": "Implementations MUST use the exact type
 * string above when constructing the EIP-712 typed data."
 */
export const witnessTypeString =
  'PaymentWitness witness)PaymentWitness(bytes32 challengeHash, string externalId)TokenPermissions(address token,uint256 amount)'

const text = (value: string) => keccak256(toHex(value))
const tokenPermissionsTypehash = text('TokenPermissions(address token,uint256 amount)')
// The witness struct's own type, cut from the exact type string above so both always agree.
const paymentWitnessTypehash = text('PaymentWitness(bytes32 challengeHash, string externalId)')
const singleTypehash = text(
  `PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,${witnessTypeString}`,
)
const batchTypehash = text(
  `PermitBatchWitnessTransferFrom(TokenPermissions[] permitted,address spender,uint256 nonce,uint256 deadline,${witnessTypeString}`,
)
const domainTypehash = text('EIP712Domain(string name,uint256 chainId,address verifyingContract)')

/**
 * The EIP-712 hash of a `PaymentWitness` (what Permit2 receives as `witness`).
 *
 * @example
 * ```ts
 * witnessHash({ challengeHash: '0x…', externalId: '' })
 * ```
 * @see draft-evm-charge-00 §"Witness Data (Challenge Binding)"
 */
export function witnessHash(witness: { challengeHash: Hex; externalId: string }): Hex {
  return keccak256(
    encodeAbiParameters(parseAbiParameters('bytes32, bytes32, bytes32'), [
      paymentWitnessTypehash,
      witness.challengeHash,
      text(witness.externalId),
    ]),
  )
}

/**
 * Permit2's EIP-712 domain separator on a chain (name "Permit2", no version).
 *
 * @example
 * ```ts
 * domainSeparator(8453) // equals Permit2.DOMAIN_SEPARATOR() on chain 8453
 * ```
 */
export function domainSeparator(chainId: number, verifyingContract: Address = permit2Address): Hex {
  return keccak256(
    encodeAbiParameters(parseAbiParameters('bytes32, bytes32, uint256, address'), [
      domainTypehash,
      text('Permit2'),
      BigInt(chainId),
      getAddress(verifyingContract),
    ]),
  )
}

/**
 * The digest a Permit2 credential signs: `PermitWitnessTransferFrom` for one transfer,
 * `PermitBatchWitnessTransferFrom` for several (splits), with the spec's witness.
 *
 * @example
 * ```ts
 * const hash = digest({ chainId, spender, permit, witness: { challengeHash, externalId: '' } })
 * const signature = await account.sign({ hash })
 * ```
 * @see draft-evm-charge-00 §"Permit2 Payload (type="permit2")"
 */
export function digest(parameters: {
  chainId: number
  permit2?: Address
  spender: Address
  permit: Permit2Payload['permit']
  witness: { challengeHash: Hex; externalId: string }
}): Hex {
  const { permit } = parameters
  const permissions = permit.permitted.map((entry) =>
    keccak256(
      encodeAbiParameters(parseAbiParameters('bytes32, address, uint256'), [
        tokenPermissionsTypehash,
        getAddress(entry.token),
        BigInt(entry.amount),
      ]),
    ),
  )
  // The batch form hashes the array of TokenPermissions as the concatenation of their hashes (EIP-712).
  const batch = permissions.length > 1
  const permitted = batch ? keccak256(concat(permissions)) : (permissions[0] as Hex)
  const data = keccak256(
    encodeAbiParameters(parseAbiParameters('bytes32, bytes32, address, uint256, uint256, bytes32'), [
      batch ? batchTypehash : singleTypehash,
      permitted,
      getAddress(parameters.spender),
      BigInt(permit.nonce),
      BigInt(permit.deadline),
      witnessHash(parameters.witness),
    ]),
  )
  return keccak256(concat(['0x1901', domainSeparator(parameters.chainId, parameters.permit2), data]))
}

const tokenPermissions = {
  type: 'tuple',
  components: [
    { name: 'token', type: 'address' },
    { name: 'amount', type: 'uint256' },
  ],
} as const
const transferDetails = {
  type: 'tuple',
  components: [
    { name: 'to', type: 'address' },
    { name: 'requestedAmount', type: 'uint256' },
  ],
} as const
const tail = [
  { name: 'owner', type: 'address' },
  { name: 'witness', type: 'bytes32' },
  { name: 'witnessTypeString', type: 'string' },
  { name: 'signature', type: 'bytes' },
] as const

/**
 * Permit2's `permitWitnessTransferFrom` for one transfer (ISignatureTransfer).
 *
 * @example
 * ```ts
 * encodeFunctionData({ abi: singleAbi, functionName: 'permitWitnessTransferFrom', args })
 * ```
 */
export const singleAbi = [
  {
    type: 'function',
    name: 'permitWitnessTransferFrom',
    stateMutability: 'nonpayable',
    inputs: [
      {
        name: 'permit',
        type: 'tuple',
        components: [
          { name: 'permitted', ...tokenPermissions },
          { name: 'nonce', type: 'uint256' },
          { name: 'deadline', type: 'uint256' },
        ],
      },
      { name: 'transferDetails', ...transferDetails },
      ...tail,
    ],
    outputs: [],
  },
] as const

/**
 * Permit2's batch `permitWitnessTransferFrom` (the spec's `permitBatchWitnessTransferFrom`).
 *
 * @example
 * ```ts
 * encodeFunctionData({ abi: batchAbi, functionName: 'permitWitnessTransferFrom', args })
 * ```
 */
export const batchAbi = [
  {
    type: 'function',
    name: 'permitWitnessTransferFrom',
    stateMutability: 'nonpayable',
    inputs: [
      {
        name: 'permit',
        type: 'tuple',
        components: [
          { name: 'permitted', type: 'tuple[]', components: tokenPermissions.components },
          { name: 'nonce', type: 'uint256' },
          { name: 'deadline', type: 'uint256' },
        ],
      },
      { name: 'transferDetails', type: 'tuple[]', components: transferDetails.components },
      ...tail,
    ],
    outputs: [],
  },
] as const

/**
 * The call a server makes to settle a Permit2 credential: `{ abi, functionName, args }` for viem.
 *
 * @example
 * ```ts
 * await wallet.writeContract({ address: permit2Address, ...call(payload, owner) })
 * ```
 * @see draft-evm-charge-00 §"Permit2 Verification" steps 11–12
 */
export function call(payload: Permit2Payload, owner: Address, witness: Hex) {
  const permitted = payload.permit.permitted.map((entry) => ({
    token: getAddress(entry.token),
    amount: BigInt(entry.amount),
  }))
  const details = payload.transferDetails.map((entry) => ({
    to: getAddress(entry.to),
    requestedAmount: BigInt(entry.requestedAmount),
  }))
  const nonce = BigInt(payload.permit.nonce)
  const deadline = BigInt(payload.permit.deadline)
  const rest = [getAddress(owner), witness, witnessTypeString, payload.signature as Hex] as const
  if (permitted.length === 1)
    return {
      abi: singleAbi,
      functionName: 'permitWitnessTransferFrom' as const,
      args: [{ permitted: permitted[0]!, nonce, deadline }, details[0]!, ...rest] as const,
    }
  return {
    abi: batchAbi,
    functionName: 'permitWitnessTransferFrom' as const,
    args: [{ permitted, nonce, deadline }, details, ...rest] as const,
  }
}
