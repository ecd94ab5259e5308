import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * RFC 9530 `Content-Digest` values for request-body binding.
 *
 * @see draft-httpauth-payment-00 §5.1.4: "When verifying a credential with a `digest` parameter,
 *   servers MUST: 1. Compute the digest of the current request body … 3. Reject the credential if the
 *   digests do not match"
 */

/**
 * Computes the RFC 9530 `sha-256=:<base64>:` digest of a body.
 *
 * @example
 * ```ts
 * Digest.compute('{"hello":"world"}') // 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:'
 * ```
 */
export function compute(body: string | Uint8Array): string {
  return `sha-256=:${createHash('sha256').update(body).digest('base64')}:`
}

const member = /^\s*([a-z0-9-]+)\s*=\s*:?([A-Za-z0-9+/=]+):?\s*$/i

/** Parses `alg=:b64:` members (a Structured-Fields dictionary); unknown algorithms are kept. */
export function parse(value: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>()
  for (const part of value.split(',')) {
    const match = member.exec(part)
    if (match) out.set(match[1]!.toLowerCase(), Buffer.from(match[2]!, 'base64'))
  }
  return out
}

/**
 * True when `expected` (a challenge `digest`) matches the body: its `sha-256` member must be present and
 * equal (constant-time).
 *
 * @example
 * ```ts
 * Digest.verify(challenge.digest, bodyBytes) // true | false
 * ```
 */
export function verify(expected: string, body: string | Uint8Array): boolean {
  const wanted = parse(expected).get('sha-256')
  if (wanted === undefined || wanted.byteLength !== 32) return false
  return timingSafeEqual(wanted, createHash('sha256').update(body).digest())
}
