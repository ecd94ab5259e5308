import { isUtf8 } from 'node:buffer'
import { ParseError } from './Errors.js'

/**
 * Base64url without padding (RFC 4648 §5), strict on decode: only the URL-safe alphabet, no padding,
 * no whitespace, and a canonical final quantum.
 *
 * @see draft-httpauth-payment-00 §5.1.1: "Padding characters ("=") MUST NOT be included."
 */

// Characters whose unused low bits are zero: 4 unused bits after 2 chars, 2 after 3 chars.
const lastOfTwo = 'AQgw'
const lastOfThree = 'AEIMQUYcgkosw048'

/**
 * Encodes bytes or a UTF-8 string as unpadded base64url.
 *
 * @example
 * ```ts
 * Base64url.encode('abc') // 'YWJj'
 * ```
 */
export function encode(value: string | Uint8Array): string {
  const buffer =
    typeof value === 'string'
      ? Buffer.from(value, 'utf8')
      : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  return buffer.toString('base64url')
}

/**
 * Decodes unpadded base64url to bytes; throws `ParseError` (`encoding_error`) on any character outside
 * the alphabet, on padding, or on an impossible length.
 *
 * @example
 * ```ts
 * Base64url.decode('YWJj') // Uint8Array [97, 98, 99]
 * ```
 */
export function decode(text: string): Uint8Array {
  if (typeof text !== 'string')
    throw new ParseError('invalid base64url: not a string', { kind: 'encoding_error' })
  const rest = text.length % 4
  if (rest === 1) throw new ParseError('invalid base64url: impossible length', { kind: 'encoding_error' })
  // Reject non-canonical encodings (non-zero unused bits in the last character), so each byte string
  // has exactly one encoding.
  if (rest !== 0 && !(rest === 2 ? lastOfTwo : lastOfThree).includes(text[text.length - 1]!))
    throw new ParseError('invalid base64url: non-canonical encoding', { kind: 'encoding_error' })
  const bytes = Buffer.from(text, 'base64url')
  // Node's decoder skips characters outside the alphabet and also accepts '+', '/' and '=': a short
  // output, or any of those three, means the input was not strict base64url.
  if (bytes.byteLength !== Math.floor((text.length * 3) / 4) || /[+/=]/.test(text))
    throw new ParseError('invalid base64url: characters outside the URL-safe alphabet', {
      kind: 'encoding_error',
    })
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * Decodes unpadded base64url to a UTF-8 string; invalid UTF-8 is an `encoding_error`, never U+FFFD.
 *
 * @example
 * ```ts
 * Base64url.decodeText('SGVsbG8') // 'Hello'
 * ```
 */
export function decodeText(text: string): string {
  const bytes = decode(text)
  if (!isUtf8(bytes)) throw new ParseError('invalid base64url: not UTF-8', { kind: 'encoding_error' })
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
}
