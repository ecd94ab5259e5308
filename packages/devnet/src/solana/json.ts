import { randomBytes } from 'node:crypto'

// Bigints beyond 2^53 travel through JSON.stringify as a marker string that no other value can spell
// (a NUL and a per-process random nonce), then lose their quotes.
const marker = `\u0000${randomBytes(12).toString('hex')}:`
const markerPattern = new RegExp(`"\\\\u0000${marker.slice(1)}(-?\\d+)"`, 'g')

const maxSafe = BigInt(Number.MAX_SAFE_INTEGER)

const replacer = (_key: string, value: unknown) => {
  if (typeof value !== 'bigint') return value
  return value <= maxSafe && value >= -maxSafe ? Number(value) : `${marker}${value}`
}

/**
 * JSON text with bigints written as plain numbers: the Solana RPC sends u64 values (lamports,
 * `rentEpoch` = 2^64 − 1) as JSON numbers, and `@solana/kit` parses large ones back into bigints.
 * (`JSON.stringify` with a replacer: several times faster than a recursive writer on RPC answers.)
 *
 * @example
 * ```ts
 * stringify({ rentEpoch: 18446744073709551615n }) // '{"rentEpoch":18446744073709551615}'
 * ```
 */
export function stringify(value: unknown): string {
  const text = JSON.stringify(value, replacer) ?? 'null'
  return text.includes(marker.slice(1)) ? text.replace(markerPattern, '$1') : text
}
