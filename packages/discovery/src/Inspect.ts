import { BaseError } from '@mppkit/core'
import { paths } from './Discovery.js'
import { type Report, validate } from './Validate.js'

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

async function readLimited(response: Response, maxBytes: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'))
  if (Number.isFinite(declared) && declared > maxBytes)
    throw new DiscoveryError(`the discovery document is larger than ${maxBytes} bytes`, { code: 'too-large' })
  if (!response.body) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > maxBytes) {
      await reader.cancel().catch(() => {})
      throw new DiscoveryError(`the discovery document is larger than ${maxBytes} bytes`, {
        code: 'too-large',
      })
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * Fetches `<origin>/openapi.json`, validates it against draft-payment-discovery-00 and lists every paid
 * operation with its offers. Transport failures are a `DiscoveryError`; an invalid document is returned
 * with its problems.
 *
 * @example
 * ```ts
 * const { valid, operations } = await inspect('https://api.example.com')
 * ```
 * @see draft-payment-discovery-00 §Document Location
 */
export async function inspect(origin: string, options: InspectOptions = {}): Promise<Inspection> {
  let url: string
  try {
    url = new URL(paths.openapi, origin).href
  } catch {
    throw new DiscoveryError('not an origin URL', { code: 'bad-origin' })
  }
  const maxBytes = options.maxBytes ?? 1 << 20
  const doFetch = options.fetch ?? globalThis.fetch
  const signal = AbortSignal.timeout(options.timeoutMs ?? 10_000)
  let text: string
  try {
    const response = await doFetch(url, {
      headers: { accept: 'application/json' },
      signal,
      redirect: 'follow',
    })
    if (!response.ok) throw new DiscoveryError(`${url} answered ${response.status}`, { code: 'http-status' })
    text = await readLimited(response, maxBytes)
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
  return { ...validate(document), url }
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
