import { secp256k1 } from '@noble/curves/secp256k1'
import { keccak_256 } from '@noble/hashes/sha3'
import { type Address, bytesToHex, type Hex, hexToBytes } from 'viem'

/**
 * A session voucher: the payer's EIP-712 authorization of a cumulative amount on one channel.
 *
 * @example
 * ```ts
 * const voucher: Voucher.Voucher = { channelId, cumulativeAmount: 250_000n, signature }
 * ```
 * @see draft-tempo-session-00 §"Voucher Signing Format"
 */
export type Voucher = { channelId: Hex; cumulativeAmount: bigint; signature: Hex }

/** `v1` (contract escrow, `uint128`) or `v2` (TIP-20 channel reserve precompile, `uint96`). */
export type Protocol = 'v1' | 'v2'

const domainNames: Record<Protocol, string> = { v1: 'Tempo Stream Channel', v2: 'TIP20 Channel Reserve' }
const encoder = new TextEncoder()
const hash = (bytes: Uint8Array) => keccak_256(bytes)
const typeHashes: Record<Protocol, Uint8Array> = {
  v1: hash(encoder.encode('Voucher(bytes32 channelId,uint128 cumulativeAmount)')),
  v2: hash(encoder.encode('Voucher(bytes32 channelId,uint96 cumulativeAmount)')),
}
const domainTypeHash = hash(
  encoder.encode('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'),
)
const maxAmount: Record<Protocol, bigint> = { v1: (1n << 128n) - 1n, v2: (1n << 96n) - 1n }

function word(value: bigint): Uint8Array {
  const out = new Uint8Array(32)
  let v = value
  for (let i = 31; i >= 0 && v > 0n; i--) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

const separators = new Map<string, Uint8Array>()

/**
 * The EIP-712 domain separator of an escrow (cached per escrow, chain and protocol).
 *
 * @example
 * ```ts
 * Voucher.domainSeparator({ chainId: 4217, escrow, protocol: 'v1' })
 * ```
 * @see draft-tempo-session-00 §"Domain Separator"
 */
export function domainSeparator(parameters: {
  chainId: number
  escrow: Address
  protocol?: Protocol
}): Uint8Array {
  const protocol = parameters.protocol ?? 'v1'
  const key = `${protocol}:${parameters.chainId}:${parameters.escrow.toLowerCase()}`
  let separator = separators.get(key)
  if (!separator) {
    const buffer = new Uint8Array(160)
    buffer.set(domainTypeHash, 0)
    buffer.set(hash(encoder.encode(domainNames[protocol])), 32)
    buffer.set(hash(encoder.encode('1')), 64)
    buffer.set(word(BigInt(parameters.chainId)), 96)
    buffer.set(hexToBytes(parameters.escrow), 140)
    separator = hash(buffer)
    separators.set(key, separator)
  }
  return separator
}

/**
 * The EIP-712 signing hash of a voucher: `keccak256(0x1901 ‖ domainSeparator ‖ structHash)`.
 *
 * @example
 * ```ts
 * const digest = Voucher.digest({ chainId, escrow, channelId, cumulativeAmount: 100n })
 * ```
 * @see draft-tempo-session-00 §"Signing Procedure"
 */
export function digest(parameters: {
  chainId: number
  escrow: Address
  channelId: Hex
  cumulativeAmount: bigint
  protocol?: Protocol
}): Uint8Array {
  const protocol = parameters.protocol ?? 'v1'
  const struct = new Uint8Array(96)
  struct.set(typeHashes[protocol], 0)
  struct.set(hexToBytes(parameters.channelId), 32)
  struct.set(word(parameters.cumulativeAmount), 64)
  const buffer = new Uint8Array(66)
  buffer[0] = 0x19
  buffer[1] = 0x01
  buffer.set(domainSeparator({ chainId: parameters.chainId, escrow: parameters.escrow, protocol }), 2)
  buffer.set(hash(struct), 34)
  return hash(buffer)
}

/**
 * The voucher's typed data for a viem account's `signTypedData`.
 *
 * @example
 * ```ts
 * const signature = await account.signTypedData(Voucher.typedData({ chainId, escrow, channelId, cumulativeAmount }))
 * ```
 * @see draft-tempo-session-00 §"Type Definitions"
 */
export function typedData(parameters: {
  chainId: number
  escrow: Address
  channelId: Hex
  cumulativeAmount: bigint
  protocol?: Protocol
}) {
  const protocol = parameters.protocol ?? 'v1'
  return {
    domain: {
      name: domainNames[protocol],
      version: '1',
      chainId: parameters.chainId,
      verifyingContract: parameters.escrow,
    },
    types: {
      Voucher: [
        { name: 'channelId', type: 'bytes32' },
        { name: 'cumulativeAmount', type: protocol === 'v1' ? 'uint128' : 'uint96' },
      ],
    },
    primaryType: 'Voucher' as const,
    message: { channelId: parameters.channelId, cumulativeAmount: parameters.cumulativeAmount },
  }
}

/**
 * Signs a voucher with a viem local account.
 *
 * @example
 * ```ts
 * const signature = await Voucher.sign(account, { chainId, escrow, channelId, cumulativeAmount: 100n })
 * ```
 */
export async function sign(
  account: { signTypedData(parameters: never): Promise<Hex> },
  parameters: {
    chainId: number
    escrow: Address
    channelId: Hex
    cumulativeAmount: bigint
    protocol?: Protocol
  },
): Promise<Hex> {
  return account.signTypedData(typedData(parameters) as never)
}

const N = secp256k1.CURVE.n
const halfN = N >> 1n
const Point = secp256k1.ProjectivePoint
const G = Point.BASE

type ProjectivePoint = InstanceType<typeof Point>

/**
 * A fixed-base table for variable-time scalar multiplication: row `i` holds `1..2^(w-1)` times
 * `2^(w·i)·base`, so a product is one addition per signed `w`-bit digit and no doublings. Variable
 * time is fine here: verification handles public data only (a signature, a digest, a public key).
 */
type Table = readonly (readonly ProjectivePoint[])[]
const tableWindow = 8

function buildTable(base: ProjectivePoint): Table {
  const half = 1 << (tableWindow - 1)
  const rows: ProjectivePoint[][] = []
  let step = base
  for (let i = 0; i < Math.ceil(256 / tableWindow) + 1; i++) {
    const row = [step]
    for (let j = 1; j < half; j++) row.push(row[j - 1]!.add(step))
    rows.push(Point.normalizeZ(row))
    step = row[half - 1]!.double()
  }
  return rows
}

function multiply(table: Table, scalar: bigint): ProjectivePoint {
  const bits = BigInt(tableWindow)
  const mask = (1n << bits) - 1n
  const full = 1 << tableWindow
  const half = full >> 1
  let n = scalar
  let acc = Point.ZERO
  for (const row of table) {
    if (n === 0n) break
    let digit = Number(n & mask)
    n >>= bits
    // Signed digits in (−2^(w−1), 2^(w−1)]: a digit above half borrows from the next window.
    if (digit > half) {
      digit -= full
      n += 1n
    }
    if (digit > 0) acc = acc.add(row[digit - 1]!)
    else if (digit < 0) acc = acc.add(row[-digit - 1]!.negate())
  }
  return acc
}

let baseTable: Table | undefined

/** Why {@link verify} refused a voucher. */
export type Failure = 'malformed-signature' | 'high-s' | 'amount-out-of-range' | 'signer-mismatch'

/**
 * A voucher verifier with a cache of signer public keys: the first voucher of a signer is checked by
 * public-key recovery; later ones are checked as ECDSA signatures against the cached, precomputed key
 * (several times cheaper), and a cached digest domain makes hashing two keccak calls.
 *
 * Each cached key holds a precomputed table of about 0.33 MB, so the cache is a least-recently-used
 * set of `maxSigners` keys (default 256, about 85 MB at most); a signer pushed out is simply
 * recovered again on its next voucher.
 *
 * @example
 * ```ts
 * const verifier = Voucher.createVerifier()
 * verifier.verify({ chainId, escrow, voucher, signer }) // undefined when valid, else a Failure
 * ```
 * @see draft-tempo-session-00 §"Voucher Verification", §"Signature Malleability"
 */
export function createVerifier(options: { maxSigners?: number } = {}) {
  const maxSigners = Math.max(0, options.maxSigners ?? 256)
  // A signer's table (~0.3 MB, ~40 ms to build) is built when its key is used a second time.
  const keys = new Map<string, { point: ProjectivePoint; table?: Table }>()

  const verify = (parameters: {
    chainId: number
    escrow: Address
    voucher: Voucher
    /** The expected signer, from chain state: `authorizedSigner`, or the payer when it is zero. */
    signer: Address
    protocol?: Protocol
  }): Failure | undefined => {
    const { voucher } = parameters
    const protocol = parameters.protocol ?? 'v1'
    if (voucher.cumulativeAmount < 0n || voucher.cumulativeAmount > maxAmount[protocol])
      return 'amount-out-of-range'
    const parsed = parseSignature(voucher.signature)
    if (!parsed) return 'malformed-signature'
    const { r, s, yParity } = parsed
    // "Servers MUST reject signatures with `s` values exceeding this threshold"
    if (s > halfN) return 'high-s'
    const z = bytesToNumber(digest({ ...parameters, ...voucher, protocol }))
    const signerKey = parameters.signer.toLowerCase()
    const cached = keys.get(signerKey)
    if (cached) {
      // Most recently used last: the first key in insertion order is the one to evict.
      keys.delete(signerKey)
      keys.set(signerKey, cached)
      // R = z/s·G + r/s·P; valid iff R.x = r and R's y parity is the signature's recovery bit (so the
      // contract's ecrecover yields the same address).
      const w = invert(s)
      cached.table ??= buildTable(cached.point)
      baseTable ??= buildTable(G)
      const R = multiply(baseTable, mod(z * w)).add(multiply(cached.table, mod(r * w)))
      if (R.equals(Point.ZERO)) return 'signer-mismatch'
      const { x, y } = R.toAffine()
      return x === r && Number(y & 1n) === yParity ? undefined : 'signer-mismatch'
    }
    let publicKey: InstanceType<typeof Point>
    try {
      publicKey = new secp256k1.Signature(r, s)
        .addRecoveryBit(yParity)
        .recoverPublicKey(numberTo32(z)) as never
    } catch {
      return 'signer-mismatch'
    }
    const raw = publicKey.toRawBytes(false)
    const address = bytesToHex(keccak_256(raw.subarray(1)).subarray(12))
    if (address !== signerKey) return 'signer-mismatch'
    if (maxSigners === 0) return undefined
    if (keys.size >= maxSigners) keys.delete(keys.keys().next().value as string)
    keys.set(signerKey, { point: publicKey })
    return undefined
  }
  return {
    verify,
    /** How many signer keys are cached now (at most `maxSigners`). */
    get cachedSigners() {
      return keys.size
    },
  }
}

/** Parses a 65-byte `r‖s‖v` (v 27/28 or 0/1) or 64-byte EIP-2098 signature. */
export function parseSignature(signature: string): { r: bigint; s: bigint; yParity: number } | undefined {
  if (!/^0x[0-9a-fA-F]*$/.test(signature)) return undefined
  const hex = signature.slice(2)
  if (hex.length !== 130 && hex.length !== 128) return undefined
  const r = BigInt(`0x${hex.slice(0, 64)}`)
  let s = BigInt(`0x${hex.slice(64, 128)}`)
  let yParity: number
  if (hex.length === 130) {
    const v = Number.parseInt(hex.slice(128, 130), 16)
    if (v === 27 || v === 28) yParity = v - 27
    else if (v === 0 || v === 1) yParity = v
    else return undefined
  } else {
    yParity = Number(s >> 255n)
    s &= (1n << 255n) - 1n
  }
  if (r <= 0n || r >= N || s <= 0n || s >= N) return undefined
  return { r, s, yParity }
}

const mod = (a: bigint) => {
  const result = a % N
  return result >= 0n ? result : result + N
}
function invert(a: bigint): bigint {
  // Extended Euclid (N is prime).
  let [low, high] = [mod(a), N]
  let [lm, hm] = [1n, 0n]
  while (low > 1n) {
    const ratio = high / low
    ;[lm, hm] = [hm - lm * ratio, lm]
    ;[low, high] = [high - low * ratio, low]
  }
  return mod(lm)
}
function bytesToNumber(bytes: Uint8Array): bigint {
  return BigInt(bytesToHex(bytes))
}
function numberTo32(value: bigint): Uint8Array {
  return word(value)
}
