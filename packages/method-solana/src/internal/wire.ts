/**
 * A strict reader of Solana wire transactions (legacy and v0): compact-u16 lengths must be minimal and
 * the bytes must be consumed exactly, so one signed transaction has exactly one accepted encoding.
 * Addresses and signatures come out base58 (a limb-wise encoder, much faster than a bigint one).
 */

const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

// Limbs of five base-58 digits (58^5 < 2^30) fed 16 bits at a time: every product stays below 2^53,
// exact in a double, with about a tenth of the steps of a digit-by-digit loop.
const limbBase = 58 ** 5

/** Base58 of bytes (Bitcoin alphabet), leading zero bytes as '1'. */
export function toBase58(bytes: Uint8Array): string {
  let zeros = 0
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++
  // Little-endian limbs of base 58^5; an odd first byte goes in alone.
  const limbs: number[] = []
  for (let i = zeros; i < bytes.length; ) {
    let carry: number
    let scale: number
    if ((bytes.length - i) % 2 === 1) {
      carry = bytes[i]!
      scale = 256
      i += 1
    } else {
      carry = bytes[i]! * 256 + bytes[i + 1]!
      scale = 65536
      i += 2
    }
    for (let j = 0; j < limbs.length; j++) {
      const value = limbs[j]! * scale + carry
      carry = Math.floor(value / limbBase)
      limbs[j] = value - carry * limbBase
    }
    while (carry > 0) {
      const next = Math.floor(carry / limbBase)
      limbs.push(carry - next * limbBase)
      carry = next
    }
  }
  let out = ''
  for (let j = 0; j < limbs.length; j++) {
    let value = limbs[j]!
    const top = j === limbs.length - 1
    for (let k = 0; k < 5 && (!top || value > 0); k++) {
      const next = Math.floor(value / 58)
      out = alphabet[value - next * 58] + out
      value = next
    }
  }
  return '1'.repeat(zeros) + out
}

const digitOf = new Int8Array(128).fill(-1)
for (let i = 0; i < alphabet.length; i++) digitOf[alphabet.charCodeAt(i)] = i

const chunkScale = [1, 58, 58 ** 2, 58 ** 3, 58 ** 4, limbBase]

/** Bytes of a base58 string (Bitcoin alphabet), or undefined for a character outside it. */
export function fromBase58(text: string): Uint8Array | undefined {
  let zeros = 0
  while (zeros < text.length && text.charCodeAt(zeros) === 49) zeros++
  // Little-endian 16-bit limbs, fed five digits at a time (fewer for the first chunk).
  const limbs: number[] = []
  for (let i = zeros; i < text.length; ) {
    const size = (text.length - i) % 5 || 5
    let carry = 0
    for (const end = i + size; i < end; i++) {
      const code = text.charCodeAt(i)
      const digit = code < 128 ? digitOf[code]! : -1
      if (digit < 0) return undefined
      carry = carry * 58 + digit
    }
    const scale = chunkScale[size]!
    for (let j = 0; j < limbs.length; j++) {
      const value = limbs[j]! * scale + carry
      carry = Math.floor(value / 65536)
      limbs[j] = value - carry * 65536
    }
    while (carry > 0) {
      limbs.push(carry % 65536)
      carry = Math.floor(carry / 65536)
    }
  }
  const top = limbs.length > 0 && limbs[limbs.length - 1]! < 256 ? 1 : 0
  const out = new Uint8Array(zeros + limbs.length * 2 - top)
  let at = out.length
  for (const limb of limbs) {
    out[--at] = limb & 0xff
    if (at > zeros) out[--at] = limb >> 8
  }
  return out
}

/**
 * Whether a string is a base58 public key: 32 to 44 characters decoding to exactly 32 bytes (what
 * `@solana/kit`'s `isAddress` accepts, without its bigint arithmetic).
 */
export function isBase58Address(value: unknown): value is string {
  if (typeof value !== 'string' || value.length < 32 || value.length > 44) return false
  return fromBase58(value)?.length === 32
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
  const signatureCount = compact()
  const signatures = Array.from({ length: signatureCount }, () => take(64))
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
  const accounts = Array.from({ length: accountCount }, () => toBase58(take(32)))
  if (numSigners !== signatureCount || numSigners === 0 || readonlySigners >= numSigners)
    throw new WireError('signature count does not match the header')
  if (numSigners + readonlyUnsigned > accountCount) throw new WireError('header names too many accounts')
  const blockhash = toBase58(take(32))
  const instructions = Array.from({ length: compact() }, () => {
    const programIndex = byte()
    const indices = Array.from({ length: compact() }, () => byte())
    const data = take(compact())
    return { programIndex, accounts: indices, data }
  })
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
