/**
 * A strict reader of Solana wire transactions (legacy and v0): compact-u16 lengths must be minimal and
 * the bytes must be consumed exactly, so one signed transaction has exactly one accepted encoding.
 * Addresses and signatures come out base58 (a byte-wise encoder, much faster than a bigint one).
 */

const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

// Base58 arithmetic runs on limbs of 58^4 fed three bytes at a time: every intermediate stays below
// 2^53, so doubles are exact, with about a sixth of the steps of a digit-by-digit loop.
const limbBase = 58 ** 4
const digitPairs = Array.from(
  { length: 58 * 58 },
  (_, i) => alphabet[Math.floor(i / 58)]! + alphabet[i % 58]!,
)

/** Base58 of bytes (Bitcoin alphabet), leading zero bytes as '1'. */
export function toBase58(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let zeros = start
  while (zeros < end && bytes[zeros] === 0) zeros++
  const limbs = new Float64Array(Math.ceil((end - zeros) / 2.9) + 1)
  let used = 0
  const head = (end - zeros) % 3
  for (let i = zeros, step = head === 0 ? 3 : head; i < end; step = 3) {
    let carry = 0
    let scale = 1
    for (let k = 0; k < step; k++) {
      carry = carry * 256 + bytes[i++]!
      scale *= 256
    }
    for (let j = 0; j < used; j++) {
      const x = limbs[j]! * scale + carry
      carry = Math.floor(x / limbBase)
      limbs[j] = x - carry * limbBase
    }
    for (; carry > 0; used++) {
      const next = Math.floor(carry / limbBase)
      limbs[used] = carry - next * limbBase
      carry = next
    }
  }
  let out = '1'.repeat(zeros - start)
  for (let j = used - 1; j >= 0; j--) {
    const high = Math.floor(limbs[j]! / 3364)
    const four = digitPairs[high]! + digitPairs[limbs[j]! - high * 3364]!
    // The top limb goes without its leading zero digits ('1's).
    out += j === used - 1 ? four.slice(leadingOnes(four)) : four
  }
  return out
}

// Keys repeat from one transaction to the next (programs, mints, recipients, payers): their base58 is
// remembered, found by a hash of the 32 bytes and then compared byte for byte.
const keyCache = new Map<number, { bytes: Uint8Array; text: string }>()
const keyCacheLimit = 4096

/** Base58 of the 32-byte key at `start` of `bytes` (remembered). */
export function keyToBase58(bytes: Uint8Array, start: number): string {
  let hash = 0x811c9dc5
  for (let i = start; i < start + 32; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193)
  const known = keyCache.get(hash)
  if (known !== undefined) {
    let same = true
    for (let i = 0; i < 32 && same; i++) same = known.bytes[i] === bytes[start + i]
    if (same) return known.text
  }
  const text = toBase58(bytes, start, start + 32)
  if (keyCache.size >= keyCacheLimit) keyCache.clear()
  keyCache.set(hash, { bytes: bytes.slice(start, start + 32), text })
  return text
}

function leadingOnes(text: string): number {
  let count = 0
  while (count < text.length && text.charCodeAt(count) === 49) count++
  return count
}

const digitOf = new Int8Array(128).fill(-1)
for (let i = 0; i < alphabet.length; i++) digitOf[alphabet.charCodeAt(i)] = i

/** Bytes of a base58 string (Bitcoin alphabet), or undefined for a character outside it. */
export function fromBase58(text: string): Uint8Array | undefined {
  let zeros = 0
  while (zeros < text.length && text.charCodeAt(zeros) === 49) zeros++
  const bytes: number[] = []
  for (let i = zeros; i < text.length; i++) {
    const code = text.charCodeAt(i)
    let carry = code < 128 ? digitOf[code]! : -1
    if (carry < 0) return undefined
    for (let j = 0; j < bytes.length; j++) {
      carry += bytes[j]! * 58
      bytes[j] = carry & 0xff
      carry >>= 8
    }
    while (carry > 0) {
      bytes.push(carry & 0xff)
      carry >>= 8
    }
  }
  const out = new Uint8Array(zeros + bytes.length)
  for (let i = 0; i < bytes.length; i++) out[out.length - 1 - i] = bytes[i]!
  return out
}

// Schemas check the same mints and recipients on every request: valid addresses are remembered.
const validAddresses = new Set<string>()

/**
 * Whether a string is a base58 public key: 32 to 44 characters decoding to exactly 32 bytes (what
 * `@solana/kit`'s `isAddress` accepts, without its bigint arithmetic).
 */
export function isBase58Address(value: unknown): value is string {
  if (typeof value !== 'string' || value.length < 32 || value.length > 44) return false
  if (validAddresses.has(value)) return true
  if (fromBase58(value)?.length !== 32) return false
  if (validAddresses.size >= keyCacheLimit) validAddresses.clear()
  validAddresses.add(value)
  return true
}

/** What {@link readTransaction} returns; `undefined` fields never occur (a bad input throws). */
export type WireTransaction = {
  version: 'legacy' | 0
  signatures: Uint8Array[]
  numSigners: number
  accounts: string[]
  blockhash: string
  instructions: { programIndex: number; accounts: number[]; data: Uint8Array }[]
  lookups: number
}

class WireError extends Error {}

/**
 * Parses a wire transaction; throws on any malformed, non-minimal or trailing byte.
 *
 * @example
 * ```ts
 * const { accounts, instructions } = readTransaction(bytes)
 * ```
 */
export function readTransaction(bytes: Uint8Array): WireTransaction {
  let offset = 0
  const need = (count: number) => {
    if (offset + count > bytes.length) throw new WireError('truncated')
  }
  const byte = () => {
    need(1)
    return bytes[offset++]!
  }
  const compact = () => {
    // compact-u16: 7 bits per byte, at most 3 bytes, minimal form only.
    let value = 0
    for (let shift = 0, i = 0; i < 3; i++, shift += 7) {
      const b = byte()
      value |= (b & 0x7f) << shift
      if ((b & 0x80) === 0) {
        if (i > 0 && b === 0) throw new WireError('non-minimal length')
        if (value > 0xffff) throw new WireError('length too large')
        return value
      }
    }
    throw new WireError('length too long')
  }
  const take = (count: number) => {
    need(count)
    const out = bytes.subarray(offset, offset + count)
    offset += count
    return out
  }
  /** Base58 of the next 32 bytes (keys and blockhashes), without a subarray per key. */
  const key = () => {
    need(32)
    offset += 32
    return keyToBase58(bytes, offset - 32)
  }
  const signatureCount = compact()
  const signatures: Uint8Array[] = []
  for (let i = 0; i < signatureCount; i++) signatures.push(take(64))
  let version: 'legacy' | 0 = 'legacy'
  need(1)
  if ((bytes[offset]! & 0x80) !== 0) {
    if ((byte() & 0x7f) !== 0) throw new WireError('unsupported version')
    version = 0
  }
  const numSigners = byte()
  const readonlySigners = byte()
  const readonlyUnsigned = byte()
  const accountCount = compact()
  const accounts: string[] = []
  for (let i = 0; i < accountCount; i++) accounts.push(key())
  if (numSigners !== signatureCount || numSigners === 0 || readonlySigners >= numSigners)
    throw new WireError('signature count does not match the header')
  if (numSigners + readonlyUnsigned > accountCount) throw new WireError('header names too many accounts')
  const blockhash = key()
  const instructions: WireTransaction['instructions'] = []
  for (let i = 0, count = compact(); i < count; i++) {
    const programIndex = byte()
    const indices: number[] = []
    for (let j = 0, length = compact(); j < length; j++) indices.push(byte())
    const data = take(compact())
    instructions.push({ programIndex, accounts: indices, data })
  }
  let lookups = 0
  if (version === 0) {
    lookups = compact()
    for (let i = 0; i < lookups; i++) {
      take(32)
      take(compact())
      take(compact())
    }
  }
  if (offset !== bytes.length) throw new WireError('trailing bytes')
  return { version, signatures, numSigners, accounts, blockhash, instructions, lookups }
}
