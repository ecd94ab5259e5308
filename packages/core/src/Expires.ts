import { ParseError } from './Errors.js'

/**
 * RFC 3339 timestamps for challenge expiry.
 *
 * @see draft-httpauth-payment-00 §5.1.2: "`expires`: … formatted as an RFC 3339 date-time string";
 *   "Clients MUST NOT submit credentials for expired challenges."
 */

/** Default challenge lifetime: five minutes. */
export const defaultTtlSeconds = 300

const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

/**
 * Formats an instant as RFC 3339 UTC without fractional seconds.
 *
 * @example
 * ```ts
 * Expires.format(new Date(0)) // '1970-01-01T00:00:00Z'
 * ```
 */
export function format(date: Date | number): string {
  const ms = typeof date === 'number' ? date : date.getTime()
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z')
}

/**
 * The RFC 3339 time `seconds` from now.
 *
 * @example
 * ```ts
 * Expires.inSeconds(300) // five minutes from now
 * ```
 */
export function inSeconds(seconds: number, now: number = Date.now()): string {
  return format(now + seconds * 1000)
}

/**
 * Parses an RFC 3339 date-time to epoch milliseconds; throws `ParseError` when invalid.
 *
 * @example
 * ```ts
 * Expires.parse('2025-01-15T12:05:00Z') // 1736942700000
 * ```
 */
export function parse(value: string): number {
  // Servers see the same few expiry strings over and over (one per second of issuance): remember the
  // last one parsed.
  if (value === last.value) return last.ms
  const match = typeof value === 'string' ? rfc3339.exec(value) : null
  if (!match) throw new ParseError('expires is not an RFC 3339 date-time')
  const ms = Date.parse(value.toUpperCase())
  const month = Number(match[2])
  const day = Number(match[3])
  const hour = Number(match[4])
  const minute = Number(match[5])
  const second = Number(match[6])
  if (
    Number.isNaN(ms) ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > 31 ||
    hour > 23 ||
    minute > 59 ||
    second > 60
  )
    throw new ParseError('expires is not an RFC 3339 date-time')
  last = { value, ms }
  return ms
}

// Starts as a value no argument can equal: a string here ('' say) would be returned for that string
// before it was ever checked.
let last: { value: string | symbol; ms: number } = { value: Symbol('nothing parsed yet'), ms: Number.NaN }

/**
 * True when the timestamp is in the past (or invalid).
 *
 * @example
 * ```ts
 * Expires.isExpired(challenge.expires)
 * ```
 */
export function isExpired(value: string, now: number = Date.now()): boolean {
  try {
    return parse(value) <= now
  } catch {
    return true
  }
}
