/**
 * Program ids the Solana node knows by name (parsers, builtin cost, memo fix).
 *
 * @example
 * ```ts
 * programs.token2022 // 'TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb'
 * ```
 */
export const programs = {
  system: '11111111111111111111111111111111',
  computeBudget: 'ComputeBudget111111111111111111111111111111',
  token: 'TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA',
  token2022: 'TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb',
  associatedToken: 'ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL',
  memoV1: 'Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo',
  memoV2: 'MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr',
  // Memo v4 (Pinocchio rewrite), the default address of @solana-program/memo >= 0.14.
  memoV4: 'Memo4c2pN8afCj432Lb7RMVKi9PbQnnW7ewFFaV3oAH',
  addressLookupTable: 'AddressLookupTab1e1111111111111111111111111',
} as const

/**
 * Builtin (native) programs (`builtinPrograms.has(id)`): without a SetComputeUnitLimit instruction the runtime reserves 3,000
 * compute units for each of their instructions and 200,000 for any other, which the priority fee uses.
 */
export const builtinPrograms = new Set<string>([
  programs.system,
  programs.computeBudget,
  programs.addressLookupTable,
  'Vote111111111111111111111111111111111111111',
  'Stake11111111111111111111111111111111111111',
  'Config1111111111111111111111111111111111111',
  'BPFLoader1111111111111111111111111111111111',
  'BPFLoader2111111111111111111111111111111111',
  'BPFLoaderUpgradeab1e11111111111111111111111',
  'LoaderV411111111111111111111111111111111111',
  'Ed25519SigVerify111111111111111111111111111',
  'KeccakSecp256k11111111111111111111111111111',
  'Secp256r1SigVerify1111111111111111111111111',
])
