import { ConfigurationError, type Method } from '@mppkit/core'
import type { Route } from '@mppkit/core/server'

/**
 * One operation of the service: its path and HTTP method, and its mppkit route when it is paid.
 *
 * @example
 * ```ts
 * const operation: Operation = { path: '/weather', route: { offers: [{ method: 'tempo', request: { amount: '1000' } }] } }
 * ```
 */
export type Operation = {
  path: string
  /** HTTP method, default `get`. */
  method?: string
  /** The route protecting it (the same object given to `server.protect`); absent for a free operation. */
  route?: Route
  summary?: string
  description?: string
  /** JSON Schema of the `application/json` request body. */
  requestBody?: Record<string, unknown>
}

/** `x-service-info`: categories and documentation links. @see draft-payment-discovery-00 §x-service-info */
export type ServiceInfo = {
  categories?: string[]
  docs?: { apiReference?: string; homepage?: string; llms?: string }
}

/**
 * What the discovery documents are generated from.
 *
 * @example
 * ```ts
 * const options: Options = { info: { title: 'Weather', version: '1.0.0' }, operations, methods: [tempoCharge] }
 * ```
 */
export type Options = {
  info: { title: string; version: string; description?: string }
  service?: ServiceInfo
  operations: readonly Operation[]
  /** The server's methods: their defaults (currency…) fill the offers' fields. */
  methods?: readonly Method.Server[]
}

/** A payment offer as discovery publishes it. @see draft-payment-discovery-00 §Payment Offer Object */
export type DiscoveredOffer = {
  intent: string
  method: string
  /** Base units, or null for a dynamic price. */
  amount: string | null
  currency?: string
  description?: string
}

export const httpMethods = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const

const amountPattern = /^(0|[1-9][0-9]*)$/

/**
 * The offers of a route as discovery publishes them, as the server's 402 challenges will carry them:
 * the method defaults under the offer's fixed request (an offer without `request` is its defaults alone),
 * and for a dynamic price (a function of the request) `amount: null` and no currency, since the function
 * may name another one. An amount that is not base units is a `ConfigurationError`.
 *
 * @example
 * ```ts
 * offersOf({ offers: [{ method: 'tempo', request: { amount: '1000' } }] }) // [{ intent: 'charge', method: 'tempo', amount: '1000' }]
 * ```
 * @see draft-payment-discovery-00 §x-payment-info, §Relationship to the 402 Challenge
 */
export function offersOf(route: Route, methods: readonly Method.Server[] = []): DiscoveredOffer[] {
  return route.offers.map((offer) => {
    const intent = offer.intent ?? 'charge'
    const method = methods.find((m) => m.definition.name === offer.method && m.definition.intent === intent)
    const discovered: DiscoveredOffer = { intent, method: offer.method, amount: null }
    // The same fields as the server's challenge (`{ ...defaults, ...request }`, a missing request is `{}`).
    if (typeof offer.request !== 'function') {
      const request: Record<string, unknown> = { ...(method?.defaults ?? {}), ...(offer.request ?? {}) }
      if (request.amount !== undefined) {
        // "When non-null, the value MUST be a string of ASCII digits (`0`-`9`) representing a non-negative
        // integer in the smallest denomination of the currency … Leading zeros MUST NOT be used"
        if (typeof request.amount !== 'string' || !amountPattern.test(request.amount))
          throw new ConfigurationError(
            `discovery: ${offer.method}/${intent} amount ${JSON.stringify(request.amount) ?? String(request.amount)} is not base units (a string of digits without leading zeros)`,
          )
        discovered.amount = request.amount
      }
      if (typeof request.currency === 'string') discovered.currency = request.currency
    }
    if (offer.description !== undefined) discovered.description = offer.description
    return discovered
  })
}

const literalSegment = /^[A-Za-z0-9\-._~!$&'()+,;=:@%]*$/
const parameterName = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * An operation path as OpenAPI templates it: `:name` and `{name}` become `{name}`, with the names of
 * its path parameters. Anything else (no leading `/`, a query, wildcards, optional parameters) is a
 * `ConfigurationError`: a path agents would request literally, or an invalid OpenAPI document.
 */
export function templateOf(path: string): { path: string; parameters: string[] } {
  const parameters: string[] = []
  const bad = () =>
    new ConfigurationError(
      `discovery: the path ${JSON.stringify(path)} must start with "/" (a URL path: segments, ":name" or "{name}" parameters)`,
    )
  if (typeof path !== 'string' || !path.startsWith('/')) throw bad()
  const segments = path
    .slice(1)
    .split('/')
    .map((segment) => {
      const name = segment.startsWith(':')
        ? segment.slice(1)
        : segment.startsWith('{') && segment.endsWith('}')
          ? segment.slice(1, -1)
          : undefined
      if (name === undefined) {
        if (!literalSegment.test(segment)) throw bad()
        return segment
      }
      if (!parameterName.test(name)) throw bad()
      if (parameters.includes(name))
        throw new ConfigurationError(
          `discovery: the path ${JSON.stringify(path)} names the parameter "${name}" twice`,
        )
      parameters.push(name)
      return `{${name}}`
    })
  return { path: `/${segments.join('/')}`, parameters }
}

/** The operations with their OpenAPI path and lowercase verb, checked (`ConfigurationError`) once each. */
export function operationsOf(
  options: Options,
): { operation: Operation; path: string; verb: string; parameters: string[] }[] {
  const seen = new Set<string>()
  return options.operations.map((operation) => {
    const { path, parameters } = templateOf(operation.path)
    const verb = String(operation.method ?? 'get').toLowerCase()
    if (!(httpMethods as readonly string[]).includes(verb))
      throw new ConfigurationError(
        `discovery: ${httpMethods
          .map((m) => m.toUpperCase())
          .join(', ')
          .replace(/, (?=TRACE$)/, ' or ')}, not ${JSON.stringify(operation.method)} (${operation.path})`,
      )
    // One path item per path and one operation per verb: a second one would replace the first in the
    // OpenAPI document while the manifest lists both.
    const key = `${verb.toUpperCase()} ${path}`
    if (seen.has(key)) throw new ConfigurationError(`discovery: ${key} is listed twice`)
    seen.add(key)
    return { operation, path, verb, parameters }
  })
}

/**
 * Generates the OpenAPI 3.1 discovery document: `x-service-info`, and on each paid operation
 * `x-payment-info` in the multi-offer form ("Servers publishing new discovery documents SHOULD use the
 * multi-offer form") with a `402` response ("Each payable operation MUST include a `402` response").
 *
 * @example
 * ```ts
 * const document = openapi({ info: { title: 'Weather', version: '1.0.0' }, operations })
 * ```
 * @see draft-payment-discovery-00 §OpenAPI Discovery
 */
export function openapi(options: Options): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const { operation, path, verb, parameters } of operationsOf(options)) {
    const entry: Record<string, unknown> = {}
    if (operation.summary !== undefined) entry.summary = operation.summary
    if (operation.description !== undefined) entry.description = operation.description
    // "Each template expression in the path MUST correspond to a path parameter" (OpenAPI 3.1 §4.8.2)
    if (parameters.length > 0)
      entry.parameters = parameters.map((name) => ({
        name,
        in: 'path',
        required: true,
        schema: { type: 'string' },
      }))
    if (operation.route) entry['x-payment-info'] = { offers: offersOf(operation.route, options.methods) }
    if (operation.requestBody)
      entry.requestBody = { content: { 'application/json': { schema: operation.requestBody } } }
    const responses: Record<string, { description: string }> = {
      '200': { description: 'Successful response' },
    }
    if (operation.route) responses['402'] = { description: 'Payment Required' }
    entry.responses = responses
    const item = paths[path] ?? {}
    item[verb] = entry
    paths[path] = item
  }
  const info: Record<string, string> = { title: options.info.title, version: options.info.version }
  if (options.info.description !== undefined) info.description = options.info.description
  const document: Record<string, unknown> = { openapi: '3.1.0', info }
  if (options.service) document['x-service-info'] = options.service
  document.paths = paths
  return document
}
