import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { printable } from '../cli/guard.js'
import { BaseError } from '../Errors.js'
import * as Expires from '../Expires.js'
import * as Receipt from '../Receipt.js'

/** What `mppkit inspect` found in a value. */
export type Inspection =
  | { kind: 'challenges'; challenges: Challenge.Challenge[] }
  | { kind: 'credential'; credential: Credential.Credential }
  | { kind: 'receipt'; receipt: Receipt.Receipt }
  | { kind: 'unknown'; reason: string }

// `transaction`: a signed transaction (Solana pull, Tempo open/topUp) is spendable by whoever holds it.
const sensitive = /preimage|secret|spt|token|signature|private|macaroon|transaction/i

/** Replaces sensitive payload values (signatures, preimages, tokens) with a short fingerprint. */
export function redact(value: unknown, reveal = false): unknown {
  if (reveal || typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map((v) => redact(v))
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      k,
      sensitive.test(k) && typeof v === 'string'
        ? `<redacted ${v.length} chars; --reveal to show>`
        : redact(v),
    ]),
  )
}

/**
 * Decodes a header value of any Payment kind: challenge(s), credential, or receipt.
 *
 * @example
 * ```ts
 * inspectValue('Payment id="x", realm="api", method="tempo", intent="charge", request="e30"')
 * ```
 */
export function inspectValue(input: string): Inspection {
  const value = input.trim().replace(/^(www-authenticate|authorization|payment-receipt)\s*:\s*/i, '')
  if (/^payment\s+[a-z]+\s*=/i.test(value)) {
    const challenges = Challenge.parseAll(value)
    if (challenges.length) return { kind: 'challenges', challenges }
    try {
      Challenge.parse(value)
    } catch (error) {
      return { kind: 'unknown', reason: BaseError.is(error) ? error.message : 'invalid challenge' }
    }
  }
  const token = value.replace(/^payment\s+/i, '')
  try {
    return { kind: 'credential', credential: Credential.decode(token) }
  } catch {}
  try {
    return { kind: 'receipt', receipt: Receipt.parse(token) }
  } catch {}
  return { kind: 'unknown', reason: 'not a Payment challenge, credential or receipt' }
}

// Everything shown here comes from a server (or from a header someone pasted): as `mppkit pay` does, each
// value goes through `printable`, so that control characters (CR, ESC, C1), bidirectional overrides and
// invisible characters cannot rewrite or disguise the lines around it (an amount, a recipient). Bounds are
// generous: this is where people read whole values.
const field = (value: unknown) => printable(value, 1000)

// JSON, indented by `indent`: JSON.stringify escapes C0 controls inside strings but leaves DEL, C1,
// bidirectional and invisible characters as they are; its only raw line breaks are its own.
function json(value: unknown, indent: string): string {
  return (JSON.stringify(value, null, 2) ?? 'undefined')
    .split('\n')
    .map((line) => printable(line, 4000))
    .join(`\n${indent}`)
}

function describeChallenge(challenge: Challenge.Challenge, now: number): string {
  const r = challenge.request as Record<string, unknown>
  const lines = [`  ${field(challenge.method)}/${field(challenge.intent)}  realm=${field(challenge.realm)}`]
  if (r.amount !== undefined)
    lines.push(
      `    amount      ${field(r.amount)} (base units)${r.currency ? ` of ${field(r.currency)}` : ''}`,
    )
  if (r.recipient !== undefined) lines.push(`    recipient   ${field(r.recipient)}`)
  if (challenge.description !== undefined) lines.push(`    description ${field(challenge.description)}`)
  if (challenge.expires !== undefined) {
    let when = 'invalid'
    try {
      const seconds = Math.round((Expires.parse(challenge.expires) - now) / 1000)
      when = seconds >= 0 ? `in ${seconds}s` : `expired ${-seconds}s ago`
    } catch {}
    lines.push(`    expires     ${field(challenge.expires)} (${when})`)
  }
  if (challenge.digest !== undefined) lines.push(`    digest      ${field(challenge.digest)}`)
  lines.push(`    id          ${field(challenge.id)}`)
  lines.push(`    request     ${json(challenge.request, '    ')}`)
  if (challenge.opaque !== undefined) {
    try {
      lines.push(
        `    opaque      ${printable(JSON.stringify(Challenge.decodeRequest(challenge.opaque)), 4000)}`,
      )
    } catch {
      lines.push(`    opaque      ${field(challenge.opaque)}`)
    }
  }
  return lines.join('\n')
}

/**
 * Renders an inspection for people.
 *
 * @example
 * ```ts
 * console.log(render(inspectValue(header)))
 * ```
 */
export function render(inspection: Inspection, options: { reveal?: boolean; now?: number } = {}): string {
  const now = options.now ?? Date.now()
  switch (inspection.kind) {
    case 'challenges':
      return [
        `${inspection.challenges.length} Payment challenge(s):`,
        ...inspection.challenges.map((c) => describeChallenge(c, now)),
      ].join('\n')
    case 'credential': {
      const { credential } = inspection
      return [
        'Payment credential:',
        describeChallenge(credential.challenge, now),
        ...(credential.source ? [`  source  ${field(credential.source)}`] : []),
        `  payload ${json(redact(credential.payload, options.reveal), '  ')}`,
      ].join('\n')
    }
    case 'receipt':
      return `Payment receipt:\n  ${json(inspection.receipt, '  ')}`
    default:
      return `Could not decode: ${printable(inspection.reason, 300)}`
  }
}

/**
 * Fetches a URL and describes its payment offers (a 402) or its receipt.
 *
 * @example
 * ```ts
 * console.log(await inspectUrl('https://api.example.com/paid'))
 * ```
 */
export async function inspectUrl(
  url: string,
  options: { reveal?: boolean; fetch?: typeof fetch } = {},
): Promise<{ text: string; ok: boolean; status: number }> {
  const response = await (options.fetch ?? fetch)(url, { headers: { accept: 'application/json, */*' } })
  const lines = [`${response.status} ${printable(response.statusText)} ${printable(url, 2000)}`]
  if (response.status === 402) {
    const challenges = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
    lines.push(render({ kind: 'challenges', challenges }, options))
    const type = response.headers.get('content-type') ?? ''
    if (type.includes('json')) {
      // The server's body, on one line: its own line breaks could forge lines of this output too.
      lines.push(`problem: ${printable(await response.text(), 4000)}`)
    }
    return { text: lines.join('\n'), ok: challenges.length > 0, status: 402 }
  }
  const receipt = response.headers.get('payment-receipt')
  if (receipt) lines.push(render(inspectValue(receipt), options))
  else lines.push('No payment required (no 402).')
  return { text: lines.join('\n'), ok: true, status: response.status }
}

/** What `mppkit inspect <origin>` uses of `@mppkit/discovery` (loaded only when installed). */
export type DiscoveryModule = {
  inspect(origin: string): Promise<{ valid: boolean; url: string }>
  formatInspection(inspection: never): string
}

/** Loads `@mppkit/discovery`; resolves undefined when that package is not installed. */
export type DiscoveryLoader = () => Promise<DiscoveryModule | undefined>

/** Imports `@mppkit/discovery` with Node's resolution from this package (core never depends on it). */
export const importDiscovery: DiscoveryLoader = async () => {
  const specifier = '@mppkit/discovery'
  let module: Partial<DiscoveryModule>
  try {
    module = (await import(specifier)) as Partial<DiscoveryModule>
  } catch (error) {
    const code = (error as { code?: string }).code
    if (
      (code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') &&
      String((error as Error).message).includes(specifier)
    )
      return undefined
    throw error
  }
  if (typeof module.inspect !== 'function' || typeof module.formatInspection !== 'function')
    throw new BaseError('the installed @mppkit/discovery has no inspect(); update it', {
      code: 'discovery-outdated',
    })
  return module as DiscoveryModule
}

/**
 * True for a URL naming a whole service (`https://api.example` or `https://api.example/`): `mppkit
 * inspect` reads its discovery document instead of one resource's 402.
 *
 * @example
 * ```ts
 * isOrigin('https://api.example') // true; isOrigin('https://api.example/weather') // false
 * ```
 */
export function isOrigin(url: string): boolean {
  try {
    const parsed = new URL(url)
    return parsed.pathname === '/' && parsed.search === '' && parsed.hash === ''
  } catch {
    return false
  }
}

/** Why a discovery document could not be used: `missing` (404, fall back to the 402) or a message. */
type Unreadable = { missing: boolean; message: string }

function unreadable(error: unknown): Unreadable | undefined {
  // The DiscoveryError of whichever copy of @mppkit/discovery is installed (compared by name and code).
  if (!BaseError.is(error) || error.name !== 'DiscoveryError') return undefined
  return {
    missing: error.code === 'http-status' && / answered 404$/.test(error.message),
    message: error.message,
  }
}

/**
 * `mppkit inspect <origin>`: fetches the origin's discovery document with `@mppkit/discovery` (when
 * installed), validates it and lists every paid operation with its offers. Without the package, or
 * without a document (404), it says so and shows what the origin itself answers: exit code 0 only when
 * that is a 402 with offers.
 * A document that cannot be read (too large, not JSON, unreachable) is one clear line, exit code 1.
 *
 * @example
 * ```ts
 * const { stdout, stderr, code } = await inspectOrigin('https://api.example')
 * ```
 * @see draft-payment-discovery-00 §OpenAPI Discovery
 */
export async function inspectOrigin(
  origin: string,
  options: { reveal?: boolean; load?: DiscoveryLoader; fetch?: typeof fetch } = {},
): Promise<{ stdout: string; stderr: string; code: number }> {
  const discovery = await (options.load ?? importDiscovery)()
  let stderr = ''
  if (discovery) {
    try {
      const inspection = await discovery.inspect(origin)
      return {
        stdout: discovery.formatInspection(inspection as never),
        stderr,
        code: inspection.valid ? 0 : 1,
      }
    } catch (error) {
      const why = unreadable(error)
      if (!why) throw error
      // A discovery error may quote what the origin answered.
      if (!why.missing)
        return { stdout: '', stderr: `mppkit inspect: ${printable(why.message, 1000)}\n`, code: 1 }
      stderr = `mppkit inspect: no discovery document (${printable(why.message, 1000)}); showing what ${printable(origin, 2000)} answers\n`
    }
  } else {
    stderr =
      'mppkit inspect: listing the paid operations of an origin needs @mppkit/discovery, which is not ' +
      'installed (or not built)\nhint: npm install @mppkit/discovery\n' +
      `mppkit inspect: showing what ${origin} answers instead\n`
  }
  // The origin's own 402 (with offers) is an answer; anything else is not the list that was asked for.
  const { text, ok, status } = await inspectUrl(origin, options)
  return { stdout: text, stderr, code: ok && status === 402 ? 0 : 1 }
}
