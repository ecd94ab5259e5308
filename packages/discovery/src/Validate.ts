import { type DiscoveredOffer, httpMethods } from './Document.js'

/** One thing wrong with a discovery document, at a JSON path. */
export type Finding = { path: string; message: string }

/** A paid operation found in a document, with its offers in the multi-offer form. */
export type PaidOperation = { method: string; path: string; offers: DiscoveredOffer[] }

/**
 * What {@link validate} found: `problems` break a MUST of the spec; `warnings` are SHOULDs.
 *
 * @example
 * ```ts
 * const report: Report = validate(document)
 * if (!report.valid) console.log(report.problems)
 * ```
 */
export type Report = {
  valid: boolean
  problems: Finding[]
  warnings: Finding[]
  operations: PaidOperation[]
}

/** Limits against hostile documents: past them validation stops with a problem. */
export const limits = { paths: 10_000, offers: 100, findings: 200 } as const

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

const amountPattern = /^(0|[1-9][0-9]*)$/

// RFC 3986 §3: `scheme ":" hier-part [ "?" query ] [ "#" fragment ]`, in unreserved, reserved and
// percent-encoded characters only. WHATWG URL parsing alone accepts (and repairs) spaces, backslashes,
// non-ASCII and stray `%`.
const uriCharacters = /^[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/
const isUri = (value: unknown): boolean =>
  typeof value === 'string' && uriCharacters.test(value) && URL.canParse(value)
const offerKeys = new Set(['intent', 'method', 'amount', 'currency', 'description'])

function checkOffer(offer: unknown, at: string, problems: Finding[]): DiscoveredOffer | undefined {
  if (!isObject(offer)) {
    problems.push({ path: at, message: 'an offer must be an object' })
    return undefined
  }
  let ok = true
  const problem = (field: string, message: string) => {
    ok = false
    problems.push({ path: `${at}.${field}`, message })
  }
  // "intent": REQUIRED, `"charge"` or `"session"`; "method": REQUIRED; "amount": REQUIRED, string or null.
  if (offer.intent !== 'charge' && offer.intent !== 'session')
    problem('intent', 'must be "charge" or "session"')
  if (typeof offer.method !== 'string' || offer.method === '') problem('method', 'must be a non-empty string')
  if (!('amount' in offer)) problem('amount', 'is required (null for a dynamic price)')
  else if (offer.amount !== null && (typeof offer.amount !== 'string' || !amountPattern.test(offer.amount)))
    problem('amount', 'must be null or base units as ASCII digits without leading zeros')
  if ('currency' in offer && typeof offer.currency !== 'string') problem('currency', 'must be a string')
  if ('description' in offer && typeof offer.description !== 'string')
    problem('description', 'must be a string')
  for (const key of Object.keys(offer)) if (!offerKeys.has(key)) problem(key, 'is not an offer field')
  return ok ? (offer as DiscoveredOffer) : undefined
}

/** "Clients and registries MUST accept both forms": the single-offer shorthand is one offer. */
function offersOf(info: unknown, at: string, problems: Finding[]): DiscoveredOffer[] {
  if (!isObject(info)) {
    problems.push({ path: at, message: 'x-payment-info must be an object' })
    return []
  }
  if (!('offers' in info)) {
    const one = checkOffer(info, at, problems)
    return one ? [one] : []
  }
  const { offers } = info
  if (!Array.isArray(offers) || offers.length === 0) {
    problems.push({ path: `${at}.offers`, message: 'must be an array of one or more offers' })
    return []
  }
  if (offers.length > limits.offers) {
    problems.push({ path: `${at}.offers`, message: `more than ${limits.offers} offers` })
    return []
  }
  for (const key of Object.keys(info))
    if (key !== 'offers') problems.push({ path: `${at}.${key}`, message: 'is not allowed beside offers' })
  return offers.flatMap((offer, i) => checkOffer(offer, `${at}.offers[${i}]`, problems) ?? [])
}

function checkServiceInfo(info: unknown, problems: Finding[]): void {
  const at = '$.x-service-info'
  if (!isObject(info)) {
    problems.push({ path: at, message: 'must be an object' })
    return
  }
  // "The `categories` field, when present, MUST be an array of strings."
  if ('categories' in info) {
    const { categories } = info
    if (!Array.isArray(categories) || !categories.every((c) => typeof c === 'string'))
      problems.push({ path: `${at}.categories`, message: 'must be an array of strings' })
  }
  // "The `docs` field, when present, MUST be a JSON object"; "All URI values MUST conform to RFC 3986."
  if ('docs' in info) {
    const { docs } = info
    if (!isObject(docs)) problems.push({ path: `${at}.docs`, message: 'must be an object' })
    else
      for (const key of ['apiReference', 'homepage', 'llms'])
        if (key in docs && !isUri(docs[key]))
          problems.push({ path: `${at}.docs.${key}`, message: 'must be a URI' })
  }
}

/**
 * Checks a discovery document against draft-payment-discovery-00: the required top-level fields,
 * `x-service-info`, and on every operation `x-payment-info` (both forms) with its `402` response. Never
 * throws, whatever the input (wrong types, huge, cyclic objects): only the fields the spec names are read.
 *
 * @example
 * ```ts
 * const { valid, problems, operations } = validate(await (await fetch(`${origin}/openapi.json`)).json())
 * ```
 * @see draft-payment-discovery-00 §OpenAPI Discovery
 */
export function validate(document: unknown): Report {
  const problems: Finding[] = []
  const warnings: Finding[] = []
  const operations: PaidOperation[] = []
  const report = (): Report => ({
    valid: problems.length === 0,
    problems: problems.slice(0, limits.findings),
    warnings: warnings.slice(0, limits.findings),
    operations,
  })
  if (!isObject(document)) {
    problems.push({ path: '$', message: 'the document must be a JSON object' })
    return report()
  }
  // "The OpenAPI document MUST include": openapi, info.title, info.version, paths (at least one).
  if (typeof document.openapi !== 'string' || !/^3\.\d+\.\d+/.test(document.openapi))
    problems.push({ path: '$.openapi', message: 'must be an OpenAPI 3.x version string' })
  const info = document.info
  if (!isObject(info)) problems.push({ path: '$.info', message: 'must be an object' })
  else {
    if (typeof info.title !== 'string') problems.push({ path: '$.info.title', message: 'must be a string' })
    if (typeof info.version !== 'string')
      problems.push({ path: '$.info.version', message: 'must be a string' })
  }
  if ('x-service-info' in document) checkServiceInfo(document['x-service-info'], problems)
  const paths = document.paths
  if (!isObject(paths)) {
    problems.push({ path: '$.paths', message: 'must be an object' })
    return report()
  }
  const entries = Object.entries(paths)
  if (entries.length > limits.paths) {
    problems.push({ path: '$.paths', message: `more than ${limits.paths} paths` })
    return report()
  }
  let operationCount = 0
  for (const [path, item] of entries) {
    // OpenAPI 3.1 §4.8.8.1: "The field name MUST begin with a forward slash (`/`)."
    if (!path.startsWith('/'))
      problems.push({ path: `$.paths[${JSON.stringify(path)}]`, message: 'a path must start with "/"' })
    if (!isObject(item)) {
      problems.push({ path: `$.paths[${JSON.stringify(path)}]`, message: 'must be an object' })
      continue
    }
    for (const verb of httpMethods) {
      const operation = item[verb]
      if (operation === undefined) continue
      operationCount++
      const at = `$.paths[${JSON.stringify(path)}].${verb}`
      if (!isObject(operation)) {
        problems.push({ path: at, message: 'must be an object' })
        continue
      }
      const responses = isObject(operation.responses) ? operation.responses : undefined
      if (!('x-payment-info' in operation)) {
        if (responses && '402' in responses)
          warnings.push({ path: at, message: 'declares a 402 response but no x-payment-info' })
        continue
      }
      const offers = offersOf(operation['x-payment-info'], `${at}.x-payment-info`, problems)
      // "Each payable operation MUST include a `402` response in its `responses` object"
      if (!responses || !('402' in responses))
        problems.push({ path: `${at}.responses`, message: 'a payable operation must declare a 402 response' })
      // "Each operation SHOULD define its input schema" (schema-missing)
      if (!['get', 'head', 'delete', 'options'].includes(verb) && !isObject(operation.requestBody))
        warnings.push({ path: at, message: 'schema-missing: no requestBody schema' })
      if (offers.length > 0) operations.push({ method: verb.toUpperCase(), path, offers })
    }
  }
  if (operationCount === 0) problems.push({ path: '$.paths', message: 'must hold at least one operation' })
  return report()
}
