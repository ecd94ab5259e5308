import { type DiscoveredOffer, type Options, offersOf, openapi, operationsOf } from './Document.js'

/** Where each declaration is served. */
export const paths = {
  openapi: '/openapi.json',
  manifest: '/.well-known/mpp.json',
  agent: '/.well-known/ai-agent.json',
} as const

/**
 * The discovery declarations of a service, all generated from the same operations so they never
 * disagree: the OpenAPI document, the `/.well-known/mpp.json` manifest, `payments.mpp` of
 * `/.well-known/ai-agent.json`, and the `Link` header.
 *
 * @example
 * ```ts
 * const response = (await discovery.handle(request)) ?? (await app(request))
 * ```
 */
export type Discovery = {
  openapi(): Record<string, unknown>
  manifest(): Manifest
  agent(): { name: string; payments: { mpp: Record<string, unknown> } }
  /** `Link: </openapi.json>; rel="mpp-endpoint"`, for every response of the service. */
  readonly link: string
  /** Serves the three documents (GET/HEAD), or undefined for any other request. */
  handle(request: Request): Response | undefined
}

/** `/.well-known/mpp.json`: the paid endpoints, their methods and prices. */
export type Manifest = {
  version: 1
  name: string
  openapi: string
  methods: Record<string, { intents: string[] }>
  endpoints: { method: string; path: string; offers: DiscoveredOffer[] }[]
}

/**
 * Creates the discovery declarations of a service. They are generated on each call from `options`,
 * so a changed route (an offer added, a price changed) shows up in every declaration at once.
 *
 * @example
 * ```ts
 * const discovery = Discovery.create({ info: { title: 'Weather', version: '1.0.0' }, operations: [{ path: '/weather', route }] })
 * ```
 * @see draft-payment-discovery-00
 */
export function create(options: Options): Discovery {
  // An operation or offer the documents cannot describe is a ConfigurationError now, at startup.
  openapi(options)
  const manifest = (): Manifest => {
    const methods: Manifest['methods'] = {}
    const endpoints: Manifest['endpoints'] = []
    for (const { operation, path, verb } of operationsOf(options)) {
      if (!operation.route) continue
      const offers = offersOf(operation.route, options.methods)
      for (const offer of offers) {
        const entry = methods[offer.method] ?? { intents: [] }
        methods[offer.method] = entry
        if (!entry.intents.includes(offer.intent)) entry.intents.push(offer.intent)
      }
      endpoints.push({ method: verb.toUpperCase(), path, offers })
    }
    return { version: 1, name: options.info.title, openapi: paths.openapi, methods, endpoints }
  }
  const agent = () => {
    const { methods } = manifest()
    return {
      name: options.info.title,
      payments: { mpp: { openapi: paths.openapi, manifest: paths.manifest, methods } },
    }
  }
  const documents: Record<string, () => unknown> = {
    [paths.openapi]: () => openapi(options),
    [paths.manifest]: manifest,
    [paths.agent]: agent,
  }
  return {
    openapi: () => openapi(options),
    manifest,
    agent,
    link: `<${paths.openapi}>; rel="mpp-endpoint"`,
    handle(request) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return undefined
      const document = documents[new URL(request.url).pathname]
      if (!document) return undefined
      const body = JSON.stringify(document())
      return new Response(request.method === 'HEAD' ? null : body, {
        headers: {
          // "The document MUST be served … with `Content-Type: application/json`."
          'content-type': 'application/json',
          // "A maximum age of 5 minutes is RECOMMENDED"
          'cache-control': 'max-age=300',
          // "Servers that intend to support browser-based clients SHOULD include appropriate CORS headers"
          'access-control-allow-origin': '*',
          link: `<${paths.openapi}>; rel="mpp-endpoint"`,
        },
      })
    },
  }
}
