import { FormatError } from './Errors.js'

/**
 * JSON Canonicalization Scheme (RFC 8785): object members sorted by UTF-16 code units, no whitespace,
 * ECMAScript number and string serialization.
 *
 * @see draft-httpauth-payment-00 §5.1.1: "The JSON MUST be serialized using JSON Canonicalization
 *   Scheme (JCS) [RFC8785]"
 */

/**
 * Serializes a JSON value canonically.
 *
 * @example
 * ```ts
 * Jcs.canonicalize({ b: 1, a: 'x' }) // '{"a":"x","b":1}'
 * ```
 */
export function canonicalize(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'number':
      if (!Number.isFinite(value)) throw new FormatError('JCS: non-finite number')
      // ECMAScript Number::toString is exactly RFC 8785 §3.2.2.3.
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'object': {
      if (value === null) return 'null'
      if (Array.isArray(value)) {
        let out = '['
        for (let i = 0; i < value.length; i++)
          out += (i ? ',' : '') + canonicalize(value[i] === undefined ? null : value[i])
        return out + ']'
      }
      if (typeof (value as any).toJSON === 'function') return canonicalize((value as any).toJSON())
      // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 requires.
      const keys = Object.keys(value).sort()
      let out = '{'
      let first = true
      for (const key of keys) {
        const member = (value as Record<string, unknown>)[key]
        if (member === undefined) continue
        out += (first ? '' : ',') + JSON.stringify(key) + ':' + canonicalize(member)
        first = false
      }
      return out + '}'
    }
    case 'bigint':
      throw new FormatError('JCS: bigint is not JSON; encode it as a decimal string')
    default:
      throw new FormatError(`JCS: ${typeof value} is not JSON`)
  }
}
