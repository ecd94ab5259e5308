/**
 * JSON text with bigints written as plain numbers: the Solana RPC sends u64 values (lamports,
 * `rentEpoch` = 2^64 − 1) as JSON numbers, and `@solana/kit` parses large ones back into bigints.
 *
 * @example
 * ```ts
 * stringify({ rentEpoch: 18446744073709551615n }) // '{"rentEpoch":18446744073709551615}'
 * ```
 */
export function stringify(value: unknown): string {
  if (typeof value === 'bigint') return value.toString()
  if (value === null || value === undefined) return 'null'
  if (Array.isArray(value))
    return `[${value.map((item) => (item === undefined ? 'null' : stringify(item))).join(',')}]`
  if (typeof value === 'object') {
    const parts: string[] = []
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue
      parts.push(`${JSON.stringify(key)}:${stringify(item)}`)
    }
    return `{${parts.join(',')}}`
  }
  return JSON.stringify(value)
}
