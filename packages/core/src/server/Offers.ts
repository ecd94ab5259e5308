import * as Challenge from '../Challenge.js'
import { ConfigurationError, FormatError } from '../Errors.js'
import * as Jcs from '../Jcs.js'
import type * as Method from '../Method.js'
import { type Core, checkSeconds } from './Core.js'

/** One payment option offered on a route. */
export type Offer = {
  method: string
  /** Default `charge`. */
  intent?: string
  /**
   * Pinned request fields (amount, currency, recipient…), or a function of the HTTP request for dynamic
   * prices. A credential's echoed request must still equal these fields when it comes back.
   */
  request?:
    | Record<string, unknown>
    | ((request: Request) => Record<string, unknown> | Promise<Record<string, unknown>>)
  /** Human-readable purpose (display only, never verified). */
  description?: string
  /** Overrides the server's challenge lifetime (seconds). */
  expiresIn?: number
  /**
   * Server correlation data, bound into the id (flat string map) and pinned: a credential must echo
   * exactly this map (plus the server's nonce), so a challenge of one route never pays another.
   */
  opaque?: Record<string, string>
  /**
   * The request header that carries the credential (default `Authorization`). Challenges then carry
   * `header="…"`, bound into the id, and the server reads the credential from that header, which
   * leaves `Authorization` to the service's own API keys.
   */
  header?: string
}

/** A protected route: what it costs, in one or more methods. */
export type Route = { offers: readonly Offer[] }

/** An offer resolved against the server's methods, with what can be computed once. */
export type CompiledOffer = {
  offer: Offer
  method: Method.Server
  intent: string
  staticRequest: Record<string, unknown> | undefined
  /** The non-default credential header (as configured), or undefined for `Authorization`. */
  header: string | undefined
  /** The opaque map a credential must echo (without the nonce). */
  opaque: Readonly<Record<string, string>>
  /** The JCS text of that map with an empty nonce: what an echoed opaque must decode to, nonce aside. */
  opaqueTemplate: string
  /** Precomputed wire pieces when the request is static (no dynamic price, no `prepare`). */
  template?: { bindingPrefix: string; headerTail: string; requestB64: string }
}

/** A compiled route: its offers and the (lowercase) headers a credential may arrive in. */
export type CompiledRoute = {
  offers: readonly CompiledOffer[]
  headers: readonly string[]
  /** True when an offer's method may let a credential be presented again (`reusesChallenge`). */
  reusable: boolean
}

const token = /^[A-Za-z0-9-]+$/
const latin1 = /^[\u0000-\u00ff]*$/

/**
 * Formats a challenge through the checked codec path. A value the codec cannot encode in a header is a
 * configuration mistake of the route, reported when the route is created rather than as a 503 later.
 */
export function formatChallenge(challenge: Challenge.Challenge, requestB64: string): string {
  let header: string
  try {
    header = Challenge.format(challenge, requestB64)
  } catch (cause) {
    if (cause instanceof FormatError)
      throw new ConfigurationError(`the offer cannot be sent as a challenge: ${cause.message}`)
    throw cause
  }
  // "field-value = *field-content" of visible ASCII and obs-text (RFC 9110 §5.5): Headers refuse more.
  if (!latin1.test(header))
    throw new ConfigurationError('the offer cannot be sent as a challenge: a parameter is not Latin-1')
  // The credential header is bound into the id; the codec may not write the parameter itself yet.
  if (challenge.header !== undefined && !header.includes(', header="'))
    header += `, header="${challenge.header}"`
  return header
}

type Issue = { path?: readonly PropertyKey[]; message?: unknown }

/** The issues of a failed `safeParse` (zod's shape: `error.issues`), or none when it has another shape. */
function issuesOf(error: unknown): readonly Issue[] {
  const issues = (error as { issues?: unknown } | null)?.issues
  return Array.isArray(issues)
    ? issues.filter((issue): issue is Issue => typeof issue === 'object' && issue !== null)
    : []
}

/**
 * Runs the method's request schema on a static offer's request (its fields over the method defaults),
 * the object its challenges carry: a field the schema refuses (`amount: '0.01'` where base units are
 * asked) is refused by every paying client and by `verify`, so the route would answer 402 forever. A
 * method with `prepare` fills fields at issuance (an invoice, a mint's decimals), so only the fields the
 * offer itself pins are held against the schema there.
 */
function checkRequest(
  offer: Offer,
  method: Method.Server,
  intent: string,
  request: Record<string, unknown>,
): void {
  const result = method.definition.request.safeParse(request)
  if (result.success) return
  const pinned = Object.keys(offer.request ?? {})
  const issues = issuesOf(result.error)
  const first = method.prepare
    ? issues.find((issue) => typeof issue.path?.[0] === 'string' && pinned.includes(issue.path[0]))
    : issues[0]
  if (method.prepare && first === undefined) return
  throw new ConfigurationError(
    `route offer ${method.definition.name}/${intent}: ${misfit(first)} (every payment would be refused)`,
  )
}

/** A schema issue as `request.<field> does not fit the method's request schema: <why>`. */
function misfit(issue: Issue | undefined): string {
  const field = issue?.path?.length ? `request.${issue.path.map(String).join('.')}` : 'request'
  const why = typeof issue?.message === 'string' ? `: ${issue.message}` : ''
  return `${field} does not fit the method's request schema${why}`
}

/**
 * Holds the request a challenge is about to carry (a price function's fields, or what the method's
 * `prepare` made of them) against the method's request schema, as the verification of its credential
 * will: a challenge that verification refuses must not be issued, since the payer pays before presenting
 * it. Each registered method "has an associated specification that defines the `request` and `payload`
 * schemas" (draft-httpauth-payment-00 §"Method Registry"). Static offers without `prepare` are checked
 * once, when their route is compiled, and never get here.
 *
 * @example
 * ```ts
 * checkIssuedRequest(entry, await entry.method.prepare({ request, httpRequest, realm, expires }))
 * ```
 */
export function checkIssuedRequest(entry: CompiledOffer, request: Record<string, unknown>): void {
  const result = entry.method.definition.request.safeParse(request)
  if (result.success) return
  const made = entry.method.prepare ? 'prepared' : 'priced'
  throw new ConfigurationError(
    `route offer ${entry.method.definition.name}/${entry.intent}: the ${made} ${misfit(issuesOf(result.error)[0])}; the offer was left out of the 402 (its payment would be refused)`,
  )
}

function compileOffer(core: Core, offer: Offer): CompiledOffer {
  const intent = offer.intent ?? 'charge'
  const method = core.registry.get(offer.method, intent)
  if (!method) throw new ConfigurationError(`route offers ${offer.method}/${intent}, which is not registered`)
  let header: string | undefined
  if (offer.header !== undefined) {
    if (typeof offer.header !== 'string' || !token.test(offer.header))
      throw new ConfigurationError('an offer header must be a header name (letters, digits, "-")')
    // "Authorization" is the default: an explicit one changes neither the challenge nor its id.
    header = offer.header.toLowerCase() === 'authorization' ? undefined : offer.header
  }
  // The same check as the server's `expiresIn`: a string or NaN here would fail every 402 of the route.
  if (offer.expiresIn !== undefined) {
    checkSeconds('an offer expiresIn', offer.expiresIn, 1)
    // As the server's: an Idempotency-Key record gone before the challenge expires refuses a paid retry.
    if (offer.expiresIn * 1000 > core.idempotencyTtlMs)
      throw new ConfigurationError(
        `an offer expiresIn (${offer.expiresIn} s) must be at most the server's idempotencyTtl (${core.idempotencyTtlMs / 1000} s)`,
      )
  }
  const opaque = offer.opaque ?? {}
  for (const [key, value] of Object.entries(opaque)) {
    if (typeof value !== 'string') throw new ConfigurationError('opaque values must be strings')
    if (key === 'nonce') throw new ConfigurationError('opaque.nonce is reserved for the server')
  }
  const staticRequest =
    typeof offer.request === 'function' ? undefined : { ...(method.defaults ?? {}), ...(offer.request ?? {}) }
  if (staticRequest) checkRequest(offer, method, intent, staticRequest)
  const fields: Challenge.Challenge = {
    id: 'x',
    realm: core.realm,
    method: method.definition.name,
    intent,
    request: staticRequest ?? {},
  }
  if (offer.description !== undefined) fields.description = offer.description
  // Every offer is formatted once here, so an unencodable description fails at route creation.
  const sample = formatChallenge(fields, Challenge.encodeRequest(fields.request))
  const opaqueTemplate = Jcs.canonicalize({ ...opaque, nonce: '' })
  const entry: CompiledOffer = { offer, method, intent, staticRequest, header, opaque, opaqueTemplate }
  if (staticRequest && !method.prepare) {
    const requestB64 = Challenge.encodeRequest(staticRequest)
    entry.template = {
      bindingPrefix: `${core.realm}|${method.definition.name}|${intent}|${requestB64}|`,
      headerTail: sample.slice('Payment id="x"'.length),
      requestB64,
    }
  }
  return entry
}

/**
 * Returns the route compiler of a server: resolves each offer's method once per route object, checks
 * the offers (unknown method, bad header name, reserved opaque key, unencodable description, bad
 * `expiresIn`, a static request the method's request schema refuses → `ConfigurationError`) and precomputes the wire pieces of static offers.
 *
 * @example
 * ```ts
 * const compile = Offers.compiler(core)
 * compile({ offers: [{ method: 'tempo', request: { amount: '1000' } }] })
 * ```
 * @see draft-httpauth-payment-00 §5.1
 */
export function compiler(core: Core): (route: Route) => CompiledRoute {
  const compiled = new WeakMap<Route, CompiledRoute>()
  return (route) => {
    let result = compiled.get(route)
    if (result) return result
    if (!route || !Array.isArray(route.offers) || route.offers.length === 0)
      throw new ConfigurationError('a route needs at least one offer')
    const offers = route.offers.map((offer) => compileOffer(core, offer))
    const headers = [...new Set(offers.map((entry) => (entry.header ?? 'authorization').toLowerCase()))]
    const reusable = offers.some((entry) => typeof entry.method.reusesChallenge === 'function')
    result = { offers, headers, reusable }
    compiled.set(route, result)
    return result
  }
}

/** The request fields an offer pins now: its static fields, or its price function's, over the defaults. */
export async function pinnedRequest(
  entry: CompiledOffer,
  request: Request,
): Promise<Record<string, unknown>> {
  if (entry.staticRequest) return entry.staticRequest
  const dynamic = await (
    entry.offer.request as (r: Request) => Record<string, unknown> | Promise<Record<string, unknown>>
  )(request)
  return { ...(entry.method.defaults ?? {}), ...dynamic }
}
