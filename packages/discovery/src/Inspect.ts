import { BaseError } from '@mppkit/core'
import { paths } from './Discovery.js'
import { type Finding, type Report, validate } from './Validate.js'

/**
 * Fetching or reading a discovery document failed (unreachable, not JSON, too large, too slow).
 *
 * @example
 * ```ts
 * try { await inspect(origin) } catch (error) { if (error instanceof DiscoveryError) console.log(error.message) }
 * ```
 */
export class DiscoveryError extends BaseError {
  override name = 'DiscoveryError'
}

/** Options of {@link inspect}. */
export type InspectOptions = {
  fetch?: typeof fetch
  /** Largest document read, in bytes (default 1 MiB). */
  maxBytes?: number
  /** Time allowed for the whole fetch (default 10 s). */
  timeoutMs?: number
}

/** What {@link inspect} found at an origin. */
export type Inspection = Report & { url: string }

/** Redirects followed within the origin; more is a loop. */
const maxRedirects = 5

/** Settles with `promise`, or rejects with `timeout()` once `signal` aborts (a fetch may ignore it). */
function within<value>(promise: Promise<value>, signal: AbortSignal, timeout: () => Error): Promise<value> {
  if (signal.aborted) return Promise.reject(timeout())
  return new Promise((resolve, reject) => {
    const abort = () => reject(timeout())
    signal.addEventListener('abort', abort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', abort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', abort)
        reject(signal.aborted ? timeout() : error)
      },
    )
  })
}

async function readLimited(
  response: Response,
  maxBytes: number,
  read: <value>(promise: Promise<value>) => Promise<value>,
): Promise<string> {
  const declared = Number(response.headers.get('content-length'))
  if (Number.isFinite(declared) && declared > maxBytes)
    throw new DiscoveryError(`the discovery document is larger than ${maxBytes} bytes`, { code: 'too-large' })
  if (!response.body) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    for (;;) {
      const { done, value } = await read(reader.read())
      if (done) break
      total += value.byteLength
      if (total > maxBytes)
        throw new DiscoveryError(`the discovery document is larger than ${maxBytes} bytes`, {
          code: 'too-large',
        })
      chunks.push(value)
    }
  } catch (error) {
    reader.cancel().catch(() => {})
    throw error
  }
  return Buffer.concat(chunks).toString('utf8')
}

const parseUrl = (text: string, base?: string): URL | undefined => {
  try {
    return new URL(text, base)
  } catch {
    return undefined
  }
}

/** The document URL of an origin: http(s) only, and never credentials (sent, or echoed in messages). */
function documentUrl(origin: string): URL {
  const url = parseUrl(paths.openapi, origin)
  if (!url) throw new DiscoveryError('not an origin URL', { code: 'bad-origin' })
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new DiscoveryError('not an origin URL (https: or http:)', { code: 'bad-origin' })
  if (url.username !== '' || url.password !== '')
    throw new DiscoveryError('the origin URL carries credentials; inspect sends none', { code: 'bad-origin' })
  return url
}

/** A developer's own machine, where plain HTTP is no problem. */
const loopback = (hostname: string) =>
  hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname)

/**
 * Fetches `<origin>/openapi.json`, validates it against draft-payment-discovery-00 and lists every paid
 * operation with its offers. Redirects are followed within the origin only (never to another host, or
 * a private address behind it); the whole read is bounded in time and size; no credentials are sent.
 * Transport failures are a `DiscoveryError`; an invalid document is returned with its problems, among
 * them how it was served ("MUST be served over HTTPS with `Content-Type: application/json`").
 *
 * @example
 * ```ts
 * const { valid, operations } = await inspect('https://api.example.com')
 * ```
 * @see draft-payment-discovery-00 §Document Location
 */
export async function inspect(origin: string, options: InspectOptions = {}): Promise<Inspection> {
  const start = documentUrl(origin)
  const maxBytes = options.maxBytes ?? 1 << 20
  const timeoutMs = options.timeoutMs ?? 10_000
  const doFetch = options.fetch ?? globalThis.fetch
  const signal = AbortSignal.timeout(timeoutMs)
  let url = start.href
  const timeout = () =>
    new DiscoveryError(`${url} did not answer within ${timeoutMs} ms`, { code: 'timeout' })
  const read = <value>(promise: Promise<value>) => within(promise, signal, timeout)
  let text: string
  let response: Response
  try {
    for (let redirects = 0; ; redirects++) {
      response = await read(
        doFetch(url, {
          headers: { accept: 'application/json' },
          signal,
          redirect: 'manual',
          credentials: 'omit',
        }),
      )
      const location = response.headers.get('location')
      if (response.status < 300 || response.status > 399 || location === null) break
      response.body?.cancel().catch(() => {})
      const next = parseUrl(location, url)
      // Another origin (a host of the redirect's choosing: a private address, a metadata endpoint) is
      // not this service's document.
      if (!next || next.origin !== start.origin)
        throw new DiscoveryError(`${url} redirects to another origin (not followed)`, { code: 'redirect' })
      if (redirects === maxRedirects)
        throw new DiscoveryError(`${url} redirects more than ${maxRedirects} times`, { code: 'redirect' })
      url = next.href
    }
    if (!response.ok) throw new DiscoveryError(`${url} answered ${response.status}`, { code: 'http-status' })
    text = await readLimited(response, maxBytes, read)
  } catch (error) {
    if (error instanceof DiscoveryError) throw error
    throw new DiscoveryError(`could not fetch ${url}`, { code: 'unreachable', cause: error })
  }
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch {
    // Not JSON, or nested too deep for the parser.
    throw new DiscoveryError(`${url} is not a JSON document`, { code: 'not-json' })
  }
  const report = validate(document)
  const served: Finding[] = []
  // "The document MUST be served over HTTPS with `Content-Type: application/json`."
  const { protocol, hostname } = new URL(url)
  if (protocol !== 'https:' && !loopback(hostname))
    served.push({ path: '$', message: 'not served over HTTPS' })
  const type = response.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase()
  if (type !== 'application/json')
    served.push({ path: '$', message: 'not served with Content-Type: application/json' })
  return {
    ...report,
    valid: report.valid && served.length === 0,
    problems: [...served, ...report.problems],
    url,
  }
}

// Strings of a fetched document are the server's: printed without control or bidi characters, bounded.
const printable = (value: string) =>
  value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '?').slice(0, 200)

/**
 * Formats an inspection for a terminal: validity, problems, then one line per paid operation and offer.
 *
 * @example
 * ```ts
 * console.log(formatInspection(await inspect(origin)))
 * ```
 */
export function formatInspection(inspection: Inspection): string {
  const lines = [`${inspection.url}: ${inspection.valid ? 'valid' : 'INVALID'} discovery document`]
  for (const problem of inspection.problems)
    lines.push(`  problem ${printable(problem.path)}: ${problem.message}`)
  for (const warning of inspection.warnings)
    lines.push(`  warning ${printable(warning.path)}: ${warning.message}`)
  for (const operation of inspection.operations) {
    lines.push(`${operation.method} ${printable(operation.path)}`)
    for (const offer of operation.offers) {
      const price =
        offer.amount === null
          ? 'dynamic price'
          : `${offer.amount}${offer.currency ? ` ${printable(offer.currency)}` : ''}`
      lines.push(
        `  ${printable(offer.method)}/${offer.intent}: ${price}${offer.description ? ` (${printable(offer.description)})` : ''}`,
      )
    }
  }
  return lines.join('\n')
}
