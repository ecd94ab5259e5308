import { FormatError, ParseError } from './Errors.js'

/**
 * JSON Canonicalization Scheme (RFC 8785): object members sorted by UTF-16 code units, no whitespace,
 * ECMAScript number and string serialization.
 *
 * @see draft-httpauth-payment-00 §5.1.1: "The JSON MUST be serialized using JSON Canonicalization
 *   Scheme (JCS) [RFC8785]"
 */

/**
 * The deepest nesting of arrays and objects mppkit reads ({@link parse}) or canonicalizes
 * ({@link canonicalize}): 64 levels, far more than any payment request or credential uses, and far
 * less than what exhausts the stack of a recursive walk (a few thousand levels).
 */
export const maxDepth = 64

/**
 * Parses JSON text like `JSON.parse`, but first refuses nesting deeper than {@link maxDepth} with a
 * `ParseError` (one linear scan, before anything is built), as well as text that is not JSON. `what`
 * names the value in error messages.
 *
 * @example
 * ```ts
 * Jcs.parse('{"a":[1]}') // { a: [1] }
 * Jcs.parse('['.repeat(65) + ']'.repeat(65)) // throws ParseError
 * ```
 * @see draft-httpauth-payment-00 §5.1.1 (`request` is JSON [RFC8259]; RFC 8259 §9: "An implementation
 *   may set limits on the maximum depth of nesting")
 */
export function parse(text: string, what = 'JSON'): unknown {
  if (openers(text) > maxDepth) checkDepth(text, what)
  try {
    return JSON.parse(text)
  } catch (cause) {
    throw new ParseError(`${what} is not JSON`, { cause })
  }
}

/**
 * How many `[` and `{` the text holds, counting no further than one past {@link maxDepth} (native
 * `indexOf` hops: a credential has a handful). Nesting can be no deeper than this count, so the
 * character-by-character scan runs only for text that could nest too deep.
 */
function openers(text: string): number {
  let count = 0
  for (let i = text.indexOf('{'); i !== -1 && count <= maxDepth; i = text.indexOf('{', i + 1)) count++
  for (let i = text.indexOf('['); i !== -1 && count <= maxDepth; i = text.indexOf('[', i + 1)) count++
  return count
}

/** Throws `ParseError` when arrays and objects nest deeper than {@link maxDepth} (strings skipped). */
function checkDepth(text: string, what: string): void {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c /* \ */) i++
      else if (c === 0x22 /* " */) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) throw new ParseError(`${what} nests deeper than ${maxDepth} levels`)
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--
  }
}

/**
 * Serializes a JSON value canonically. Throws `FormatError` for what JSON cannot hold (non-finite
 * numbers, bigint, functions…) and for nesting deeper than {@link maxDepth} (which includes cycles).
 *
 * @example
 * ```ts
 * Jcs.canonicalize({ b: 1, a: 'x' }) // '{"a":"x","b":1}'
 * ```
 */
export function canonicalize(value: unknown): string {
  return serialize(value, 0)
}

function serialize(value: unknown, depth: number): string {
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
      if (depth >= maxDepth) throw new FormatError(`JCS: nesting deeper than ${maxDepth} levels`)
      if (typeof (value as any).toJSON === 'function') return serialize((value as any).toJSON(), depth + 1)
      if (Array.isArray(value)) {
        let out = '['
        for (let i = 0; i < value.length; i++)
          out += (i ? ',' : '') + serialize(value[i] === undefined ? null : value[i], depth + 1)
        return out + ']'
      }
      // Default sort compares UTF-16 code units, which is what RFC 8785 §3.2.3 requires.
      const keys = Object.keys(value).sort()
      let out = '{'
      let first = true
      for (const key of keys) {
        const member = (value as Record<string, unknown>)[key]
        if (member === undefined) continue
        out += (first ? '' : ',') + JSON.stringify(key) + ':' + serialize(member, depth + 1)
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
