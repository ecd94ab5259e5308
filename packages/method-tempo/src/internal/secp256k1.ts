/**
 * The two ECDSA engines behind `Voucher.createVerifier`: libsecp256k1 through the optional `secp256k1`
 * package's N-API binding (prebuilt for linux-x64, darwin-arm64 and win32-x64; about 7× faster), and
 * pure-JS noble, used when the binding cannot load or `MPPKIT_SECP256K1=js` asks for it. Both answer
 * one question, "was this 64-byte `r‖s` with recovery id `recid` over `digest` made by `signer`?", with
 * the same result: the key is recovered with exactly that recovery id, as the escrow's `ecrecover` will.
 */
import { secp256k1 } from '@noble/curves/secp256k1'
import { encodeHex } from './bytes.js'
import { keccak256 } from './keccak.js'

/** Which ECDSA implementation verifies vouchers. */
export type Backend = 'libsecp256k1' | 'noble'

/** The part of `secp256k1`'s binding API used here. */
export type Binding = {
  ecdsaRecover(
    signature: Uint8Array,
    recid: number,
    message: Uint8Array,
    compressed: boolean,
    output?: Uint8Array,
  ): Uint8Array
}

/** The environment variable that forces the pure-JS engine (`js` or `noble`). */
export const backendVariable = 'MPPKIT_SECP256K1'

// The binding must agree with noble on a fixed vector before it is trusted (a broken build, an ABI
// mismatch or another package's shim under the same name is never used). Computed on first load only.
const selfTest = () => {
  const secret = keccak256(new TextEncoder().encode('mppkit secp256k1 self-test'))
  const digest = keccak256(secret)
  const signature = secp256k1.sign(digest, secret, { lowS: true })
  return {
    digest,
    signature: signature.toCompactRawBytes(),
    recid: signature.recovery,
    publicKey: secp256k1.getPublicKey(secret, false),
  }
}

// No static `node:` import: this module is reachable from the client entry, which is bundled for
// browsers. `process.getBuiltinModule` exists from Node 20.16 (older 20.x and browsers get noble).
type NodeModule = { createRequire(url: string): (id: string) => unknown }
const requireBinding = (): unknown => {
  const process = (globalThis as { process?: { getBuiltinModule?(id: string): unknown } }).process
  const nodeModule = process?.getBuiltinModule?.('node:module') as NodeModule | undefined
  if (!nodeModule) return undefined
  // `secp256k1/bindings`, not `secp256k1`: the package's main entry silently falls back to elliptic.
  return nodeModule.createRequire(import.meta.url)('secp256k1/bindings')
}

/**
 * Loads and self-tests the native binding: undefined when it cannot load (no prebuild for this
 * platform, the optional dependency not installed, not Node) or disagrees with noble.
 *
 * @example
 * ```ts
 * loadBinding() // the binding on linux-x64 with secp256k1 installed
 * ```
 */
export function loadBinding(load: () => unknown = requireBinding): Binding | undefined {
  try {
    const candidate = load() as Partial<Binding> | undefined
    if (typeof candidate?.ecdsaRecover !== 'function') return undefined
    const binding = candidate as Binding
    const vector = selfTest()
    const recovered = binding.ecdsaRecover(vector.signature, vector.recid, vector.digest, false)
    return equalBytes(recovered, vector.publicKey) ? binding : undefined
  } catch {
    return undefined
  }
}

let loaded: Binding | null | undefined

/** The native binding, loaded once (undefined when unavailable). */
export function nativeBinding(): Binding | undefined {
  if (loaded === undefined) loaded = loadBinding() ?? null
  return loaded ?? undefined
}

/**
 * The engine a verifier gets by default: `noble` when `MPPKIT_SECP256K1` is `js` or `noble`, else
 * `libsecp256k1` when the binding loads, else `noble`.
 */
export function defaultBackend(
  environment: Readonly<Record<string, string | undefined>> = (
    globalThis as { process?: { env?: Record<string, string | undefined> } }
  ).process?.env ?? {},
): Backend {
  const forced = environment[backendVariable]?.toLowerCase()
  if (forced === 'js' || forced === 'noble') return 'noble'
  return nativeBinding() ? 'libsecp256k1' : 'noble'
}

/** Checks voucher signatures against expected signers, caching each signer's public key (LRU). */
export type SignerCheck = {
  /** True when `signature` (r‖s) with `recid` over `digest` recovers to `signer` (lowercase `0x…`). */
  check(signer: string, signature: Uint8Array, recid: number, digest: Uint8Array): boolean
  /** How many signer keys are cached. */
  readonly size: number
}

/** A least-recently-used map of at most `max` entries. */
function lru<V>(max: number) {
  const entries = new Map<string, V>()
  return {
    get(key: string): V | undefined {
      const value = entries.get(key)
      if (value !== undefined) {
        // Most recently used last: the first key in insertion order is the one to evict.
        entries.delete(key)
        entries.set(key, value)
      }
      return value
    },
    set(key: string, value: V) {
      if (max === 0) return
      if (entries.size >= max) entries.delete(entries.keys().next().value as string)
      entries.set(key, value)
    },
    get size() {
      return entries.size
    },
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** The Ethereum address (lowercase `0x…`) of an uncompressed 65-byte public key. */
function addressOf(publicKey: Uint8Array): string {
  return `0x${encodeHex(keccak256(publicKey.subarray(1)), 12, 32)}`
}

/**
 * libsecp256k1: recover with the given recovery id (about 70 µs), then compare with the signer's cached
 * key, or hash the key to its address the first time.
 */
export function nativeCheck(binding: Binding, maxSigners: number): SignerCheck {
  const keys = lru<Uint8Array>(maxSigners)
  const recovered = new Uint8Array(65)
  return {
    check(signer, signature, recid, digest) {
      try {
        binding.ecdsaRecover(signature, recid, digest, false, recovered)
      } catch {
        return false
      }
      const cached = keys.get(signer)
      if (cached) return equalBytes(cached, recovered)
      if (addressOf(recovered) !== signer) return false
      keys.set(signer, recovered.slice())
      return true
    },
    get size() {
      return keys.size
    },
  }
}

const N = secp256k1.CURVE.n
const Point = secp256k1.ProjectivePoint
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
const toNumber = (bytes: Uint8Array, from: number) => BigInt(`0x${encodeHex(bytes, from, from + 32)}`)

let baseTable: Table | undefined

/**
 * noble: the first voucher of a signer is checked by public-key recovery; later ones as
 * `R = z/s·G + r/s·P` against the cached key's precomputed table (several times cheaper), valid iff
 * `R.x = r` and R's y parity is the recovery id. A table is about 0.33 MB and built on a key's second
 * use, so at most `maxSigners` keys (default 256, about 85 MB) are cached.
 */
export function nobleCheck(maxSigners: number): SignerCheck {
  const keys = lru<{ point: ProjectivePoint; table?: Table }>(maxSigners)
  return {
    check(signer, signature, recid, digest) {
      const r = toNumber(signature, 0)
      const s = toNumber(signature, 32)
      const z = toNumber(digest, 0)
      const cached = keys.get(signer)
      if (cached) {
        const w = invert(s)
        cached.table ??= buildTable(cached.point)
        baseTable ??= buildTable(Point.BASE)
        const R = multiply(baseTable, mod(z * w)).add(multiply(cached.table, mod(r * w)))
        if (R.equals(Point.ZERO)) return false
        const { x, y } = R.toAffine()
        return x === r && Number(y & 1n) === recid
      }
      let point: ProjectivePoint
      try {
        point = new secp256k1.Signature(r, s).addRecoveryBit(recid).recoverPublicKey(digest) as never
      } catch {
        return false
      }
      if (addressOf(point.toRawBytes(false)) !== signer) return false
      keys.set(signer, { point })
      return true
    },
    get size() {
      return keys.size
    },
  }
}
