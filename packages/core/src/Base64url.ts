import { ParseError } from './Errors.js'

/**
 * Base64url without padding (RFC 4648 §5), strict on decode: only the URL-safe alphabet, no padding,
 * no whitespace, and a canonical final quantum.
 *
 * Runs in browsers: no `node:` import. Where Node's `Buffer` exists (looked up on `globalThis` once, so
 * a bundler never pulls in a polyfill) it does the work, as it is the fastest there; elsewhere a
 * table-driven encoder/decoder and `TextEncoder`/`TextDecoder` do.
 *
 * @see draft-httpauth-payment-00 §5.1.1: "Padding characters ("=") MUST NOT be included."
 */

/** The slice of Node's `Buffer` used here. */
type NodeBytes = Uint8Array & { toString(encoding: 'base64url' | 'utf8'): string }
type NodeBufferApi = {
  from(value: string, encoding: 'utf8' | 'base64url'): NodeBytes
  from(buffer: ArrayBufferLike, byteOffset: number, length: number): NodeBytes
}

const nodeBuffer = (globalThis as { Buffer?: NodeBufferApi }).Buffer

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
// Character code → 6-bit value, or 64 for a character outside the URL-safe alphabet.
const values = new Uint8Array(128).fill(64)
for (let i = 0; i < alphabet.length; i++) values[alphabet.charCodeAt(i)] = i

const outsideAlphabet = /[^A-Za-z0-9_-]/

// Characters whose unused low bits are zero: 4 unused bits after 2 chars, 2 after 3 chars.
const lastOfTwo = 'AQgw'
const lastOfThree = 'AEIMQUYcgkosw048'

const utf8Encoder = new TextEncoder()
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function invalid(reason: string): ParseError {
  return new ParseError(`invalid base64url: ${reason}`, { kind: 'encoding_error' })
}

function encodeBytes(bytes: Uint8Array): string {
  let out = ''
  const n = bytes.length
  let i = 0
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!
    out += alphabet[v >> 18]! + alphabet[(v >> 12) & 63]! + alphabet[(v >> 6) & 63]! + alphabet[v & 63]!
  }
  if (n - i === 1) {
    const v = bytes[i]! << 16
    out += alphabet[v >> 18]! + alphabet[(v >> 12) & 63]!
  } else if (n - i === 2) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8)
    out += alphabet[v >> 18]! + alphabet[(v >> 12) & 63]! + alphabet[(v >> 6) & 63]!
  }
  return out
}

// The caller has checked the length and the last character; this checks every character.
function decodeChars(text: string): Uint8Array {
  const n = text.length
  const out = new Uint8Array(Math.floor((n * 3) / 4))
  let o = 0
  let bits = 0
  let count = 0
  for (let i = 0; i < n; i++) {
    const value = values[text.charCodeAt(i)] ?? 64
    if (value === 64) throw invalid('characters outside the URL-safe alphabet')
    bits = (bits << 6) | value
    count += 6
    if (count >= 8) {
      count -= 8
      out[o++] = (bits >> count) & 0xff
    }
  }
  return out
}

/**
 * Encodes bytes or a UTF-8 string as unpadded base64url.
 *
 * @example
 * ```ts
 * Base64url.encode('abc') // 'YWJj'
 * ```
 */
export function encode(value: string | Uint8Array): string {
  if (nodeBuffer !== undefined)
    return (
      typeof value === 'string'
        ? nodeBuffer.from(value, 'utf8')
        : nodeBuffer.from(value.buffer, value.byteOffset, value.byteLength)
    ).toString('base64url')
  return encodeBytes(typeof value === 'string' ? utf8Encoder.encode(value) : value)
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
  if (typeof text !== 'string') throw invalid('not a string')
  const rest = text.length % 4
  if (rest === 1) throw invalid('impossible length')
  // Reject non-canonical encodings (non-zero unused bits in the last character), so each byte string
  // has exactly one encoding.
  if (rest !== 0 && !(rest === 2 ? lastOfTwo : lastOfThree).includes(text[text.length - 1]!))
    throw invalid('non-canonical encoding')
  if (nodeBuffer === undefined) return decodeChars(text)
  // Node's decoder skips characters outside the alphabet, accepts '+', '/' and '=', and reads only the
  // low byte of a code unit above U+00FF (so '\u{2146}' counted as 'F'): check the alphabet first.
  if (outsideAlphabet.test(text)) throw invalid('characters outside the URL-safe alphabet')
  const bytes = nodeBuffer.from(text, 'base64url')
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
  if (nodeBuffer !== undefined) {
    // Node's decoder replaces invalid sequences with U+FFFD: only when one appears (rare) is the strict
    // decoder asked whether it was in the input or stands for an error.
    const decoded = nodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
    if (!decoded.includes('\uFFFD')) return decoded
  }
  try {
    return strictUtf8.decode(bytes)
  } catch {
    throw invalid('not UTF-8')
  }
}
