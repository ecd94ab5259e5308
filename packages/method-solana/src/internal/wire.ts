/**
 * A strict reader of Solana wire transactions (legacy and v0): compact-u16 lengths must be minimal and
 * the bytes must be consumed exactly, so one signed transaction has exactly one accepted encoding.
 * Addresses and signatures come out base58 (a byte-wise encoder, much faster than a bigint one).
 */

const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** Base58 of bytes (Bitcoin alphabet), leading zero bytes as '1'. */
export function toBase58(bytes: Uint8Array): string {
  let zeros = 0
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++
  const digits: number[] = []
  for (let i = zeros; i < bytes.length; i++) {
    let carry = bytes[i]!
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j]! << 8
      digits[j] = carry % 58
      carry = (carry / 58) | 0
    }
    while (carry > 0) {
      digits.push(carry % 58)
      carry = (carry / 58) | 0
    }
  }
  let out = '1'.repeat(zeros)
  for (let i = digits.length - 1; i >= 0; i--) out += alphabet[digits[i]!]
  return out
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
