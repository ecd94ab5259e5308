import { randomBytes } from 'node:crypto'

// Bigints beyond 2^53 travel through JSON.stringify as a marker string that no other value can spell
// (a NUL and a per-process random nonce), then lose their quotes.
const marker = `\u0000${randomBytes(12).toString('hex')}:`
const markerPattern = new RegExp(`"\\\\u0000${marker.slice(1)}(-?\\d+)"`, 'g')

const maxSafe = BigInt(Number.MAX_SAFE_INTEGER)

/**
 * JSON text with bigints written as plain numbers: the Solana RPC sends u64 values (lamports,
 * `rentEpoch` = 2^64 − 1) as JSON numbers, and `@solana/kit` parses large ones back into bigints.
 * Bigints are swapped out first (copying only the objects and arrays that hold one), so that
 * `JSON.stringify` runs without a replacer, on its fast path.
 *
 * @example
 * ```ts
 * stringify({ rentEpoch: 18446744073709551615n }) // '{"rentEpoch":18446744073709551615}'
 * ```
 */
export function stringify(value: unknown): string {
  const state = { marked: false }
  const text = JSON.stringify(withoutBigints(value, '', state)) ?? 'null'
  return state.marked ? text.replace(markerPattern, '$1') : text
}

/** `value` with every bigint replaced as `JSON.stringify` would see it (copy on write). */
function withoutBigints(value: unknown, key: string, state: { marked: boolean }): unknown {
  if (typeof value === 'bigint') {
    if (value <= maxSafe && value >= -maxSafe) return Number(value)
    state.marked = true
    return `${marker}${value}`
  }
  if (value === null || typeof value !== 'object') return value
  const toJSON = (value as { toJSON?: unknown }).toJSON
  if (typeof toJSON === 'function') return withoutBigints(toJSON.call(value, key), key, state)
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined
    for (let index = 0; index < value.length; index++) {
      const item: unknown = value[index]
      const next = withoutBigints(item, String(index), state)
      if (next !== item) {
        copy ??= value.slice()
        copy[index] = next
      }
    }
    return copy ?? value
  }
  let copy: Record<string, unknown> | undefined
  for (const name of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[name]
    const next = withoutBigints(item, name, state)
    if (next !== item) {
      copy ??= { ...(value as Record<string, unknown>) }
      // defineProperty: an own key named __proto__ stays a key.
      Object.defineProperty(copy, name, { value: next, enumerable: true, writable: true, configurable: true })
    }
  }
  return copy ?? value
}
