import type { Method } from '@mppkit/core'
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

/**
 * The offers of a route as discovery publishes them: fixed prices with their amount, dynamic prices
 * (a function of the request) as `amount: null`.
 *
 * @example
 * ```ts
 * offersOf({ offers: [{ method: 'tempo', request: { amount: '1000' } }] }) // [{ intent: 'charge', method: 'tempo', amount: '1000' }]
 * ```
 * @see draft-payment-discovery-00 §x-payment-info
 */
export function offersOf(route: Route, methods: readonly Method.Server[] = []): DiscoveredOffer[] {
  return route.offers.map((offer) => {
    const intent = offer.intent ?? 'charge'
    const method = methods.find((m) => m.definition.name === offer.method && m.definition.intent === intent)
    const fixed = typeof offer.request === 'function' ? undefined : offer.request
    const request: Record<string, unknown> = { ...(method?.defaults ?? {}), ...(fixed ?? {}) }
    const amount =
      fixed !== undefined && (typeof request.amount === 'string' || typeof request.amount === 'number')
        ? String(request.amount)
        : null
    const discovered: DiscoveredOffer = { intent, method: offer.method, amount }
    if (typeof request.currency === 'string') discovered.currency = request.currency
    if (offer.description !== undefined) discovered.description = offer.description
    return discovered
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
  for (const operation of options.operations) {
    const verb = (operation.method ?? 'get').toLowerCase()
    const entry: Record<string, unknown> = {}
    if (operation.summary !== undefined) entry.summary = operation.summary
    if (operation.description !== undefined) entry.description = operation.description
    if (operation.route) entry['x-payment-info'] = { offers: offersOf(operation.route, options.methods) }
    if (operation.requestBody)
      entry.requestBody = { content: { 'application/json': { schema: operation.requestBody } } }
    const responses: Record<string, { description: string }> = {
      '200': { description: 'Successful response' },
    }
    if (operation.route) responses['402'] = { description: 'Payment Required' }
    entry.responses = responses
    const item = paths[operation.path] ?? {}
    item[verb] = entry
    paths[operation.path] = item
  }
  const info: Record<string, string> = { title: options.info.title, version: options.info.version }
  if (options.info.description !== undefined) info.description = options.info.description
  const document: Record<string, unknown> = { openapi: '3.1.0', info }
  if (options.service) document['x-service-info'] = options.service
  document.paths = paths
  return document
}
