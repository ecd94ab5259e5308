import { randomBytes } from 'node:crypto'

const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/**
 * A random base62 string of `length` characters (rejection sampling, so every character is uniform).
 *
 * @example
 * ```ts
 * randomBase62(24) // 'N4Zv32eZvKYlo2CPhVPkJlW0'
 * ```
 */
export function randomBase62(length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += alphabet[byte % 62]
    }
  }
  return out
}

/**
 * A Stripe-looking object id: `prefix_` followed by 24 base62 characters (`pi_…`, `ch_…`, `spt_…`).
 *
 * @example
 * ```ts
 * objectId('pi') // 'pi_3N4Zv32eZvKYlo2CPhVPkJlW'
 * ```
 */
export function objectId(prefix: string, length = 24): string {
  return `${prefix}_${randomBase62(length)}`
}
