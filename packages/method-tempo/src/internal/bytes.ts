/** Hex and fixed-width integer helpers for the voucher hot path (no BigInt division, no regex). */

const nibbles = new Int8Array(128).fill(-1)
for (let i = 0; i < 10; i++) nibbles[48 + i] = i
for (let i = 0; i < 6; i++) {
  nibbles[65 + i] = 10 + i
  nibbles[97 + i] = 10 + i
}

/**
 * Decodes the hex digits of `hex` from character `from` into `out` at `offset`: false (and `out` partly
 * written) when a character is not a hex digit or the digit count is odd.
 *
 * @example
 * ```ts
 * decodeHex('0xabcd', 2, out, 0) // out[0] = 0xab, out[1] = 0xcd
 * ```
 */
export function decodeHex(hex: string, from: number, out: Uint8Array, offset: number): boolean {
  const length = hex.length - from
  if (length & 1 || offset + length / 2 > out.length) return false
  for (let i = 0; i < length; i += 2) {
    const high = nibbles[hex.charCodeAt(from + i)] ?? -1
    const low = nibbles[hex.charCodeAt(from + i + 1)] ?? -1
    if (high < 0 || low < 0) return false
    out[offset + i / 2] = (high << 4) | low
  }
  return true
}

const digits = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/**
 * Lowercase hex of `bytes[from, to)`, without a `0x` prefix.
 *
 * @example
 * ```ts
 * encodeHex(new Uint8Array([1, 255]), 0, 2) // '01ff'
 * ```
 */
export function encodeHex(bytes: Uint8Array, from: number, to: number): string {
  let out = ''
  for (let i = from; i < to; i++) out += digits[bytes[i]!]
  return out
}

/**
 * Writes a non-negative integer below 2^256 big-endian into the 32 bytes of `out` at `offset`.
 *
 * @example
 * ```ts
 * writeWord(250_000n, out, 64)
 * ```
 */
export function writeWord(value: bigint, out: Uint8Array, offset: number): void {
  out.fill(0, offset, offset + 32)
  if (value === 0n) return
  const hex = value.toString(16)
  const padded = hex.length & 1 ? `0${hex}` : hex
  decodeHex(padded, 0, out, offset + 32 - padded.length / 2)
}

/**
 * Compares the 32 big-endian bytes of `a` at `offset` with `b` (32 bytes): negative, zero or positive.
 *
 * @example
 * ```ts
 * compareWord(signature, 32, halfOrder) > 0 // s is high
 * ```
 */
export function compareWord(a: Uint8Array, offset: number, b: Uint8Array): number {
  for (let i = 0; i < 32; i++) {
    const difference = a[offset + i]! - b[i]!
    if (difference !== 0) return difference
  }
  return 0
}

/** True when the 32 bytes of `a` at `offset` are all zero. */
export function isZeroWord(a: Uint8Array, offset: number): boolean {
  for (let i = 0; i < 32; i++) if (a[offset + i] !== 0) return false
  return true
}

/**
 * Whether two hex addresses name the same account: a case-insensitive comparison (EIP-55 checksums
 * are case only). For the per-voucher checks, where viem's `isAddressEqual` re-validates both strings
 * (and throws on a malformed one) on every call; a malformed string here simply names no account.
 *
 * @example
 * ```ts
 * sameAddress('0xAbC…', '0xabc…') // true
 * ```
 */
export function sameAddress(a: string, b: string): boolean {
  // Equal strings (the usual case: the same checksummed address from the same source) need no lowering.
  // Only strings: two missing values still fail (as `.length` on them always did), never compare equal.
  return (a === b && typeof a === 'string') || (a.length === b.length && a.toLowerCase() === b.toLowerCase())
}
