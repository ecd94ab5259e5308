import * as Base64url from './Base64url.js'
import * as Challenge from './Challenge.js'
import { FormatError, ParseError } from './Errors.js'

/**
 * A Payment credential (`Authorization: Payment <base64url JSON>`): the echoed challenge (with `request`
 * decoded), the method-specific `payload`, and an optional payer `source`.
 *
 * @see draft-httpauth-payment-00 §5.2
 */
export type Credential = {
  challenge: Challenge.Challenge
  payload: Record<string, unknown>
  source?: string
}

const scheme = /^[Pp][Aa][Yy][Mm][Ee][Nn][Tt] +([A-Za-z0-9_-]+)\s*$/
const paymentPrefix = /^payment(\s|$)/i

/**
 * The longest `Authorization` text read, in characters (64 KiB), and the longest credential token
 * decoded. Far above what a credential needs (an echoed challenge of at most 8 KB plus a signed proof)
 * and above the 16 KiB Node allows for all headers by default, so it only bounds hostile input.
 *
 * @see draft-httpauth-payment-00 §9.4: "Servers MUST be able to handle credentials of at least 4KB."
 */
export const maxHeaderLength = 65536

/**
 * Finds the Payment credentials in an `Authorization` field value (several headers are joined by ",").
 * Returns the raw base64url tokens; a comma inside another scheme's quoted-string separates nothing. Only the first {@link maxHeaderLength} characters are read: a
 * Payment element cut by that limit comes back as the empty token, which no decoder accepts (a server
 * answers it as a malformed credential). Linear time.
 *
 * @example
 * ```ts
 * Credential.extract(request.headers.get('authorization')) // ['eyJj…']
 * ```
 * @see draft-httpauth-payment-00 §5.2
 */
export function extract(value: string | null | undefined): string[] {
  if (!value) return []
  const cut = value.length > maxHeaderLength
  const text = cut ? value.slice(0, maxHeaderLength) : value
  // One credential, no list: the common case, without splitting.
  if (text.indexOf(',') === -1) {
    const trimmed = text.trim()
    return paymentPrefix.test(trimmed) ? [cut ? '' : trimmed.slice(7).trim()] : []
  }
  const out: string[] = []
  const parts = text.indexOf('"') === -1 ? text.split(',') : splitOutsideQuotes(text)
  parts.forEach((part, index) => {
    const trimmed = part.trim()
    if (paymentPrefix.test(trimmed))
      out.push(cut && index === parts.length - 1 ? '' : trimmed.slice(7).trim())
  })
  return out
}

/**
 * Splits a field value at the commas outside quoted-strings: another scheme's auth-param
 * (`Digest realm="a, Payment x"`) is one element, not a Payment credential (RFC 9110 §11.6.2:
 * `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`, with `quoted-string` values in which
 * `\` escapes the next character). An unterminated quote runs to the end. Linear time.
 */
function splitOutsideQuotes(text: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i)
    if (quoted) {
      if (char === 92 /* \ */) i++
      else if (char === 34 /* " */) quoted = false
    } else if (char === 34) quoted = true
    else if (char === 44 /* , */) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

/**
 * Decodes the base64url token of a credential; throws `ParseError` when it is not a valid credential.
 *
 * @example
 * ```ts
 * const credential = Credential.decode(token)
 * ```
 */
export function decode(token: string): Credential {
  return decodeWithRequest(token).credential
}

/**
 * Like {@link decode}, also returning the echoed `request` exactly as it was on the wire (base64url),
 * which lets a server check the binding without re-canonicalizing when the client echoed it verbatim.
 *
 * @example
 * ```ts
 * const { credential, requestB64 } = Credential.decodeWithRequest(token)
 * ```
 */
export function decodeWithRequest(
  token: string,
  decodeRequest: (requestB64: string) => Record<string, unknown> = Challenge.decodeRequest,
): { credential: Credential; requestB64: string } {
  if (typeof token !== 'string') throw new ParseError('credential must be a string')
  if (token.length > maxHeaderLength) throw new ParseError('credential is too long')
  // The whole credential (so also its payload) nests at most Jcs.maxDepth levels.
  const { challenge, payload, source } = Challenge.decodeObject(token, 'credential')
  if (typeof challenge !== 'object' || challenge === null || Array.isArray(challenge))
    throw new ParseError('credential challenge is missing')
  const raw = challenge as Record<string, unknown>
  const requestB64 = raw.request
  if (typeof requestB64 !== 'string') throw new ParseError('credential challenge request is missing')
  const echoedChallenge = {
    id: raw.id,
    realm: raw.realm,
    method: raw.method,
    intent: raw.intent,
    request: decodeRequest(requestB64),
  } as Challenge.Challenge
  // Optional members are copied only when present, so absent fields stay absent.
  if (raw.expires !== undefined) echoedChallenge.expires = raw.expires as string
  if (raw.description !== undefined) echoedChallenge.description = raw.description as string
  if (raw.digest !== undefined) echoedChallenge.digest = raw.digest as string
  if (raw.opaque !== undefined) echoedChallenge.opaque = raw.opaque as string
  if (raw.header !== undefined) echoedChallenge.header = raw.header as string
  Challenge.validate(echoedChallenge)
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    throw new ParseError('credential payload must be a JSON object')
  if (source !== undefined && source !== null && typeof source !== 'string')
    throw new ParseError('credential source must be a string')
  const credential: Credential = { challenge: echoedChallenge, payload: payload as Record<string, unknown> }
  if (typeof source === 'string') credential.source = source
  return { credential, requestB64 }
}

/**
 * Parses an `Authorization: Payment …` field value (exactly one credential).
 *
 * @example
 * ```ts
 * const credential = Credential.parse('Payment eyJjaGFsbGVuZ2UiOnsi…')
 * ```
 */
export function parse(value: string): Credential {
  if (typeof value !== 'string') throw new ParseError('header must be a string')
  if (value.length > maxHeaderLength) throw new ParseError('header is too long')
  const match = scheme.exec(value.trim())
  if (!match) throw new ParseError('not a Payment credential')
  return decode(match[1]!)
}

/**
 * Serializes a credential to its base64url token (no scheme).
 *
 * @example
 * ```ts
 * headers.set('authorization', `Payment ${Credential.serialize(credential)}`)
 * ```
 */
export function serialize(credential: Credential): string {
  const { challenge } = credential
  try {
    Challenge.validate(challenge)
  } catch (error) {
    throw new FormatError((error as Error).message)
  }
  if (typeof credential.payload !== 'object' || credential.payload === null)
    throw new FormatError('payload must be an object')
  const echoed: Record<string, unknown> = {
    id: challenge.id,
    realm: challenge.realm,
    method: challenge.method,
    intent: challenge.intent,
    // Echo the server's own request string when the challenge was parsed from its header: the id binds
    // that string, and a server need not accept a re-encoding. Otherwise encode (RFC 8785 JCS).
    request: Challenge.wireRequest(challenge) ?? Challenge.encodeRequest(challenge.request),
  }
  for (const key of ['description', 'digest', 'expires', 'opaque', 'header'] as const)
    if (challenge[key] !== undefined) echoed[key] = challenge[key]
  const wire: Record<string, unknown> = { challenge: echoed, payload: credential.payload }
  if (credential.source !== undefined && credential.source !== null) wire.source = credential.source
  return Base64url.encode(JSON.stringify(wire))
}

/**
 * Formats a credential as an `Authorization` field value.
 *
 * @example
 * ```ts
 * Credential.format({ challenge, payload: { type: 'hash', hash } }) // 'Payment eyJ…'
 * ```
 */
export function format(credential: Credential): string {
  return `Payment ${serialize(credential)}`
}
