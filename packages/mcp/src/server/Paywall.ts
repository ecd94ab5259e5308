import { UriTemplate } from '@modelcontextprotocol/sdk/shared/uriTemplate.js'
import { ConfigurationError, Digest, Jcs } from '@mppkit/core'
import type { Offer, Route } from '@mppkit/core/server'

/** The MCP operations that may require payment, and the parameter naming their target. */
export const coveredMethods = {
  'tools/call': 'name',
  'resources/read': 'uri',
  'prompts/get': 'name',
} as const

/** A covered MCP method: `tools/call`, `resources/read` or `prompts/get`. */
export type CoveredMethod = keyof typeof coveredMethods

/** What a paid target costs: a route, or its offers. */
export type Price = Route | readonly Offer[]

/**
 * Which tools, resources and prompts are paid, by tool name, resource URI and prompt name. A resource
 * key may be a URI template (`data://items/{id}`): every URI it matches is paid, each challenge bound to
 * the URI read.
 *
 * @example
 * ```ts
 * const prices: Prices = { tools: { forecast: [{ method: 'tempo', request: { amount: '1000' } }] } }
 * ```
 */
export type Prices = {
  tools?: Record<string, Price>
  resources?: Record<string, Price>
  prompts?: Record<string, Price>
}

/**
 * One paid target: the route handed to the core (offers pinned to this target), and the key of the price
 * list it comes from (a resource's URI as written, or the URI template it matches).
 */
export type Gate = { method: CoveredMethod; target: string; route: Route; key: string }

/** One entry of the price list as written: its operation, its key (name, URI or URI template), its route. */
export type Priced = { method: CoveredMethod; key: string; route: Route }

/** The compiled price list: finds the gate of a JSON-RPC request, if it is paid. */
export type Paywall = {
  gateOf(method: unknown, params: unknown): Gate | undefined
  /** Every priced entry, in the price list's order (a template's route is bound to the template). */
  readonly priced: readonly Priced[]
  /** Every method/intent any gate offers, for capability advertisement. */
  readonly methods: Record<string, { intents: string[] }>
}

/**
 * Compiles a price list: every offer gets `opaque.mcp` naming its operation and target, which the
 * challenge id binds, so that "a challenge issued for one operation" is never "used for another"
 * (draft-payment-transport-mcp-00 §Challenge Binding).
 *
 * @example
 * ```ts
 * const paywall = Paywall.compile({ tools: { forecast: [{ method: 'test', request }] } })
 * paywall.gateOf('tools/call', { name: 'forecast' })
 * ```
 * @see draft-payment-transport-mcp-00 §MCP Covered Operations
 */
export function compile(prices: Prices): Paywall {
  const gates = new Map<string, Gate>()
  /** Priced resource templates, in the price list's order: each matching URI gets its own gate. */
  const templates: { key: string; template: UriTemplate; offers: readonly Offer[] }[] = []
  const methods: Record<string, { intents: string[] }> = {}
  const priced: Priced[] = []
  const sections: [CoveredMethod, Record<string, Price> | undefined, string][] = [
    ['tools/call', prices.tools, 'tools'],
    ['resources/read', prices.resources, 'resources'],
    ['prompts/get', prices.prompts, 'prompts'],
  ]
  for (const [method, section, name] of sections) {
    if (section !== undefined && (typeof section !== 'object' || section === null || Array.isArray(section)))
      throw new ConfigurationError(
        `${name} must be an object of prices by ${method === 'resources/read' ? 'URI' : 'name'}`,
      )
    for (const [key, price] of Object.entries(section ?? {})) {
      const offers = Array.isArray(price) ? (price as readonly Offer[]) : (price as Route).offers
      if (!Array.isArray(offers) || offers.length === 0)
        throw new ConfigurationError(`${method} ${key} needs at least one offer`)
      for (const offer of offers) {
        if (offer.opaque?.mcp !== undefined) throw new ConfigurationError('opaque.mcp is reserved')
        const intent = offer.intent ?? 'charge'
        // draft-payment-transport-mcp-00 carries any intent's challenge and credential, but a session also
        // needs its management requests (top-up, close, metered vouchers), which draft-tempo-session-00
        // sends to "the same resource URI" over HTTP and which MCP has no call for: a channel opened here
        // could be paid from, never topped up or closed cooperatively (the deposit stays locked until the
        // escrow's forced close). Refused rather than half-supported.
        if (intent === 'session')
          throw new ConfigurationError(
            `${method} ${key}: the session intent is not sold over MCP (no MCP call carries a session's ` +
              'top-up or close); offer a charge here, and sessions on HTTP routes',
          )
        const entry = methods[offer.method] ?? { intents: [] }
        methods[offer.method] = entry
        if (!entry.intents.includes(intent)) entry.intents.push(intent)
      }
      if (method === 'resources/read' && UriTemplate.isTemplate(key)) {
        let template: UriTemplate
        try {
          template = new UriTemplate(key)
        } catch {
          throw new ConfigurationError(`${method} ${key} is not a valid URI template`)
        }
        templates.push({ key, template, offers })
        priced.push({ method, key, route: gateFor(method, key, key, offers).route })
        continue
      }
      // Resources are priced by the URI the SDK serves, which it looks up normalized: two spellings of
      // one priced URI would otherwise be two prices.
      const target = method === 'resources/read' ? normalizedUri(key) : key
      if (gates.has(`${method}\n${target}`))
        throw new ConfigurationError(`${method} ${key} is priced twice (as ${target})`)
      const gate = gateFor(method, key, target, offers)
      gates.set(`${method}\n${target}`, gate)
      priced.push({ method, key, route: gate.route })
    }
  }
  return {
    methods,
    priced,
    gateOf(method, params) {
      if (typeof method !== 'string' || !(method in coveredMethods)) return undefined
      if (typeof params !== 'object' || params === null) return undefined
      const target = (params as Record<string, unknown>)[coveredMethods[method as CoveredMethod]]
      if (typeof target !== 'string') return undefined
      if (method !== 'resources/read') return gates.get(`${method}\n${target}`)
      // The SDK's `resources/read` reads `new URL(uri)`: its exact resources by `uri.toString()`, then its
      // templates matched against that string. The paywall looks the URI up the same way, so that every
      // spelling the SDK resolves to a priced resource (`DATA://…`, `./`, `../`, `:443`, host case) is
      // gated. A URI matching a priced template is gated even if a free resource of the server has it:
      // fail closed.
      const uri = normalizedUri(target)
      const exact = gates.get(`${method}\n${uri}`)
      if (exact) return exact
      for (const { key, template, offers } of templates) {
        let matched: unknown
        try {
          matched = template.match(uri)
        } catch {
          // Too long to match: the SDK's own match refuses it too, priced or not.
          return gateFor(method, key, uri, offers)
        }
        if (matched) return gateFor(method, key, uri, offers)
      }
      return undefined
    },
  }
}

/**
 * A resource URI as the SDK's `resources/read` resolves it (`new URL(uri)`, serialized), or the string
 * as is when it is not a URL (the SDK serves nothing for it).
 *
 * @example
 * ```ts
 * normalizedUri('DATA://premium/x/../market') // 'data://premium/market'
 * ```
 */
export function normalizedUri(uri: string): string {
  try {
    return new URL(uri).href
  } catch {
    return uri
  }
}

/** The gate of one target: its offers pinned to the operation and target (`opaque.mcp`). */
function gateFor(method: CoveredMethod, key: string, target: string, offers: readonly Offer[]): Gate {
  const route: Route = {
    offers: offers.map((offer) => ({ ...offer, opaque: { ...offer.opaque, mcp: `${method} ${target}` } })),
  }
  return { method, target, route, key }
}

/**
 * The digest a paid tool call binds: the JCS form of its arguments, so a challenge paid for one set of
 * arguments (one price) does not pay for another.
 *
 * @example
 * ```ts
 * argumentsDigest({ city: 'Paris' }) // 'sha-256=:…:'
 * ```
 */
export function argumentsDigest(args: unknown): string {
  return Digest.compute(new TextEncoder().encode(Jcs.canonicalize(args ?? {})))
}
