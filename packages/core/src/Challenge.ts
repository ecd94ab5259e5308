import * as Base64url from './Base64url.js'
import { FormatError, ParseError } from './Errors.js'
import { parseChallenges } from './internal/AuthHeader.js'
import { deepEqual } from './internal/deepEqual.js'
import * as Jcs from './Jcs.js'

/**
 * A Payment challenge (`WWW-Authenticate: Payment …`), with `request` decoded to its JSON object.
 * `opaque` is kept as it appears on the wire (base64url of a JCS string map).
 *
 * @see draft-httpauth-payment-00 §5.1
 */
export type Challenge = {
  id: string
  realm: string
  method: string
  intent: string
  request: Record<string, unknown>
  expires?: string
  description?: string
  digest?: string
  opaque?: string
  /** Non-default credential header name bound into the id (an extension the conformance vectors use). */
  header?: string
}

/** A challenge without its id: what the server binds. */
export type ChallengeFields = Omit<Challenge, 'id'>

/** RFC 8785/base64url of a challenge request: the form that appears on the wire and in the HMAC. */
export function encodeRequest(request: Record<string, unknown>): string {
  return Base64url.encode(Jcs.canonicalize(request))
}

/**
 * Decodes a `request` (or `opaque`) parameter: base64url → UTF-8 → a JSON object. Throws `ParseError`
 * when it is not one, or nests deeper than `Jcs.maxDepth` (64) levels.
 *
 * @example
 * ```ts
 * Challenge.decodeRequest('e30') // {}
 * ```
 */
export function decodeRequest(text: string): Record<string, unknown> {
  return decodeObject(text, 'request')
}

/**
 * Decodes base64url → UTF-8 → JSON (at most `Jcs.maxDepth` levels deep) → a JSON object, the encoding
 * of `request`, `opaque`, credentials and receipts; throws `ParseError` naming `what`.
 *
 * @example
 * ```ts
 * Challenge.decodeObject('eyJhIjoxfQ', 'opaque') // { a: 1 }
 * ```
 * @see draft-httpauth-payment-00 §5.1.1
 */
export function decodeObject(text: string, what: string): Record<string, unknown> {
  let decoded: string
  try {
    decoded = Base64url.decodeText(text)
  } catch (cause) {
    throw new ParseError(`${what} is not base64url JSON`, { cause })
  }
  const json = Jcs.parse(decoded, what)
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ParseError(`${what} must be a JSON object`)
  return json as Record<string, unknown>
}

/**
 * Encodes server correlation data as an `opaque` parameter (JCS of a flat string map, base64url).
 *
 * @example
 * ```ts
 * Challenge.encodeOpaque({ route: '/api' }) // 'eyJyb3V0ZSI6Ii9hcGkifQ'
 * ```
 * @see draft-httpauth-payment-00 §5.1.2: "The value MUST be a JSON object whose values are strings"
 */
export function encodeOpaque(map: Record<string, string>): string {
  for (const value of Object.values(map))
    if (typeof value !== 'string') throw new FormatError('opaque values must be strings')
  return encodeRequest(map)
}

/**
 * The HMAC input: seven positional slots joined by `|` (realm, method, intent, request, expires,
 * digest, opaque), with a non-default credential `header` inserted before opaque.
 *
 * @see draft-httpauth-payment-00 §5.1.3.1: "The HMAC input is constructed from exactly seven fixed
 *   positional slots. Required fields supply their string value; optional fields use an empty string"
 */
export function bindingInput(fields: ChallengeFields, requestB64?: string): string {
  const header = fields.header
  const headerSlot =
    header !== undefined && header !== '' && header.toLowerCase() !== 'authorization' ? `${header}|` : ''
  return `${fields.realm}|${fields.method}|${fields.intent}|${requestB64 ?? encodeRequest(fields.request)}|${fields.expires ?? ''}|${fields.digest ?? ''}|${headerSlot}${fields.opaque ?? ''}`
}

const lowercaseMethod = /^[a-z]+$/
const intentToken = /^[A-Za-z0-9-]+$/

/** Validates the fields every challenge must have; throws `ParseError`. */
export function validate(challenge: Partial<Challenge>): asserts challenge is Challenge {
  // "clients and parsers MUST reject challenges whose `id` is missing or empty" (§5.1.1)
  if (typeof challenge.id !== 'string' || challenge.id === '')
    throw new ParseError('challenge id is missing or empty')
  if (typeof challenge.realm !== 'string') throw new ParseError('challenge realm is missing')
  // "Method identifiers are case-sensitive and MUST be lowercase." (§6.1)
  if (typeof challenge.method !== 'string' || !lowercaseMethod.test(challenge.method))
    throw new ParseError('challenge method must be lowercase ASCII letters')
  if (typeof challenge.intent !== 'string' || !intentToken.test(challenge.intent))
    throw new ParseError('challenge intent is missing or invalid')
  if (typeof challenge.request !== 'object' || challenge.request === null || Array.isArray(challenge.request))
    throw new ParseError('challenge request is missing')
  for (const key of ['expires', 'description', 'digest', 'opaque', 'header'] as const)
    if (challenge[key] !== undefined && typeof challenge[key] !== 'string')
      throw new ParseError(`challenge ${key} must be a string`)
}

// The `request` parameter of each parsed challenge exactly as it was on the wire (kept off the object,
// so parsed challenges stay plain data).
const wireRequests = new WeakMap<Challenge, string>()

/**
 * The `request` parameter of a challenge from {@link parse}/{@link parseAll} exactly as the server sent
 * it (base64url), while `challenge.request` still holds what it decodes to; otherwise undefined. The id
 * binds the server's string, so a credential echoes it verbatim rather than re-encoding the object.
 * (`opaque` is kept as its wire string on the challenge itself.)
 *
 * @example
 * ```ts
 * Challenge.wireRequest(Challenge.parse(header)) // 'eyJhbW91bnQiOiIxMDAwIn0'
 * ```
 */
export function wireRequest(challenge: Challenge): string | undefined {
  const raw = wireRequests.get(challenge)
  if (raw === undefined) return undefined
  // The request object may have been changed since parsing: then the wire string no longer describes it.
  return deepEqual(decodeRequest(raw), challenge.request) ? raw : undefined
}

function fromParams(params: Map<string, string>, duplicates: string[]): Challenge {
  // Duplicate parameters make the binding ambiguous: reject them.
  if (duplicates.length > 0) throw new ParseError(`duplicate parameter: ${duplicates[0]}`)
  const request = params.get('request')
  if (request === undefined) throw new ParseError('challenge request is missing')
  const challenge: Partial<Challenge> = {
    id: params.get('id') as string,
    realm: params.get('realm') as string,
    method: params.get('method') as string,
    intent: params.get('intent') as string,
    request: decodeRequest(request),
  }
  // `header` (a non-default credential field name) is bound into the id, so it must survive parsing.
  for (const key of ['expires', 'description', 'digest', 'opaque', 'header'] as const) {
    const value = params.get(key)
    if (value !== undefined) challenge[key] = value
  }
  validate(challenge)
  wireRequests.set(challenge, request)
  return challenge
}

/**
 * The longest `WWW-Authenticate` text read, in characters (64 KiB, summed over the field values of one
 * call): room for eight challenges at the spec's 8 KB each. Past it {@link parseAll} finds no challenge
 * and {@link parse} throws `ParseError`, so a hostile server cannot make a client parse without bound.
 *
 * @see draft-httpauth-payment-00 §9.4: "Servers SHOULD keep challenges under 8KB. Clients MUST be able to
 *   handle challenges of at least 4KB."
 */
export const maxHeaderLength = 65536

/**
 * Parses every Payment challenge in one or more `WWW-Authenticate` field values. Other schemes are
 * skipped; malformed Payment challenges are skipped too (see {@link parse} for a strict single parse).
 * Values longer than {@link maxHeaderLength} in total yield no challenge. Linear time.
 *
 * @example
 * ```ts
 * const challenges = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
 * ```
 */
export function parseAll(values: string | readonly string[]): Challenge[] {
  const out: Challenge[] = []
  const list = typeof values === 'string' ? [values] : values
  let total = 0
  for (const value of list) total += typeof value === 'string' ? value.length : 0
  if (total > maxHeaderLength) return out
  for (const value of list)
    for (const raw of parseChallenges(value)) {
      if (raw.scheme.toLowerCase() !== 'payment') continue
      try {
        out.push(fromParams(raw.params, raw.duplicates))
      } catch {
        // Unusable challenge: a client simply cannot pay it.
      }
    }
  return out
}

/**
 * Parses the first Payment challenge of a header value, strictly: throws `ParseError` when there is none
 * or it is invalid.
 *
 * @example
 * ```ts
 * Challenge.parse('Payment id="x", realm="api", method="tempo", intent="charge", request="e30"')
 * ```
 */
export function parse(value: string): Challenge {
  if (typeof value !== 'string') throw new ParseError('header must be a string')
  if (value.length > maxHeaderLength) throw new ParseError('header is too long')
  const raw = parseChallenges(value).find((c) => c.scheme.toLowerCase() === 'payment')
  if (raw === undefined) throw new ParseError('no Payment challenge')
  return fromParams(raw.params, raw.duplicates)
}

const forbidden = /[\u0000-\u0008\u000a-\u001f\u007f]/
// With the `u` flag a surrogate class matches only unpaired surrogates (a pair is one code point).
const loneSurrogate = /[\uD800-\uDFFF]/u
const needsEscape = /[\\"\u0080-\uffff]/
const nonAscii = /[\u0080-\uffff]/g

// Header values must be ByteStrings: fetch's `Headers` (and so every `Response`) throws on a code unit
// above U+00FF, which turned a route whose description holds `€` or `☕` into a 503. RFC 9110 §5.6.4
// allows `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text` with `obs-text = %x80-FF`, but
// obs-text is obsolete, reaches JavaScript as Latin-1 bytes while the text was UTF-8, and is mangled by
// some intermediaries. So everything above U+007E is written as a `\uXXXX` escape (one per UTF-16 code
// unit: a surrogate pair becomes two escapes), which keeps the header pure ASCII. This is the escape
// mppx@0.11.0 writes (it escapes only above U+00FF) and reads back (any `\uXXXX`), so both directions
// interoperate; raw obs-text from other senders is still read as Latin-1.
function quote(name: string, value: string): string {
  // CR/LF (and other controls) would allow header injection: refuse them.
  if (forbidden.test(value)) throw new FormatError(`${name} contains a control character`)
  // A lone surrogate is not Unicode text: it has no UTF-8 form, so the HMAC (over UTF-8) could not
  // tell it from U+FFFD. Refuse it rather than bind something else than what is displayed.
  if (loneSurrogate.test(value)) throw new FormatError(`${name} contains an unpaired surrogate`)
  if (!needsEscape.test(value)) return `${name}="${value}"`
  const escaped = value
    .replace(/[\\"]/g, '\\$&')
    .replace(nonAscii, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  return `${name}="${escaped}"`
}

/**
 * Formats one challenge as a `WWW-Authenticate` field value (pure ASCII: characters above U+007E are
 * written as `\\uXXXX` escapes). Throws `FormatError` for a control character or an unpaired surrogate.
 *
 * @example
 * ```ts
 * Challenge.format({ id, realm: 'api', method: 'tempo', intent: 'charge', request: { amount: '1' } })
 * ```
 */
export function format(challenge: Challenge, requestB64?: string): string {
  try {
    validate(challenge)
  } catch (error) {
    throw new FormatError((error as Error).message)
  }
  let out = `Payment ${quote('id', challenge.id)}, ${quote('realm', challenge.realm)}, ${quote('method', challenge.method)}, ${quote('intent', challenge.intent)}, request="${requestB64 ?? encodeRequest(challenge.request)}"`
  if (challenge.description !== undefined) out += `, ${quote('description', challenge.description)}`
  if (challenge.digest !== undefined) out += `, ${quote('digest', challenge.digest)}`
  if (challenge.expires !== undefined) out += `, ${quote('expires', challenge.expires)}`
  const header = challenge.header
  if (header !== undefined && header !== '' && header.toLowerCase() !== 'authorization')
    out += `, ${quote('header', header)}`
  if (challenge.opaque !== undefined) out += `, ${quote('opaque', challenge.opaque)}`
  return out
}
