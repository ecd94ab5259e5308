import { ConfigurationError } from '../Errors.js'

/** Options of {@link cors}. */
export type CorsOptions = {
  /** Allowed origins: a list (exact `scheme://host[:port]`), `'*'`, or a predicate. */
  origins: readonly string[] | '*' | ((origin: string) => boolean)
  /** Sends `Access-Control-Allow-Credentials: true` (cookies); not allowed with `'*'`. */
  credentials?: boolean
  /** More request headers browsers may send (besides the payment ones and `Content-Type`). */
  allowHeaders?: readonly string[]
  /** More response headers scripts may read (besides the payment ones). */
  exposeHeaders?: readonly string[]
  /** Seconds a browser may cache a preflight (default 600). */
  maxAge?: number
}

/**
 * Request headers a paying browser sends: MPP credentials (in `Authorization` or an offer's
 * `Payment-Authorization`), `Idempotency-Key`, `Accept-Payment`, and x402's `X-Payment` /
 * `Payment-Signature`.
 */
export const paymentRequestHeaders = [
  'Authorization',
  'Payment-Authorization',
  'Idempotency-Key',
  'Accept-Payment',
  'X-Payment',
  'Payment-Signature',
  'Content-Type',
] as const

/** Response headers a paying script must read: challenges, receipts, and x402's requirement/response. */
export const paymentResponseHeaders = [
  'WWW-Authenticate',
  'Payment-Receipt',
  'Payment-Required',
  'Payment-Response',
  'Retry-After',
] as const

const methods = 'GET, HEAD, POST, PUT, PATCH, DELETE'

/** What {@link corsHeaders} decides for one request. */
export type CorsDecision = {
  /** A preflight (`OPTIONS` with `Access-Control-Request-Method`): answer 204 with `headers`, do not route. */
  preflight: boolean
  /** Headers to add to the answer (empty for a request without an allowed `Origin`). */
  headers: [string, string][]
}

/**
 * Decides the CORS headers of a request: the building block of {@link cors} and of the Express and Hono
 * middlewares. Browsers hide `WWW-Authenticate` and `Payment-Receipt` from scripts unless exposed, and
 * preflight any request carrying `Authorization`: a paid API called from a web page needs both.
 *
 * @example
 * ```ts
 * const { preflight, headers } = corsHeaders(request.method, request.headers, { origins: ['https://app.example'] })
 * ```
 * @see https://fetch.spec.whatwg.org/#http-cors-protocol
 */
export function corsHeaders(method: string, requestHeaders: Headers, options: CorsOptions): CorsDecision {
  const preflight = method === 'OPTIONS' && requestHeaders.has('access-control-request-method')
  const origin = requestHeaders.get('origin')
  const headers: [string, string][] = [['vary', 'Origin']]
  if (origin === null || !allowed(origin, options)) return { preflight, headers }
  headers.push([
    'access-control-allow-origin',
    options.origins === '*' && !options.credentials ? '*' : origin,
  ])
  if (options.credentials) headers.push(['access-control-allow-credentials', 'true'])
  if (preflight) {
    headers.push(['access-control-allow-methods', methods])
    headers.push([
      'access-control-allow-headers',
      [...paymentRequestHeaders, ...(options.allowHeaders ?? [])].join(', '),
    ])
    headers.push(['access-control-max-age', String(options.maxAge ?? 600)])
  } else {
    headers.push([
      'access-control-expose-headers',
      [...paymentResponseHeaders, ...(options.exposeHeaders ?? [])].join(', '),
    ])
  }
  return { preflight, headers }
}

function allowed(origin: string, options: CorsOptions): boolean {
  const { origins } = options
  if (origins === '*') return true
  if (typeof origins === 'function') return origins(origin)
  return origins.includes(origin)
}

function check(options: CorsOptions): void {
  if (options.origins === '*' && options.credentials)
    throw new ConfigurationError('CORS: credentials cannot be allowed for every origin ("*")')
  if (Array.isArray(options.origins))
    for (const origin of options.origins)
      if (!/^https?:\/\/[^/]+$/.test(origin))
        throw new ConfigurationError(`CORS: an origin is scheme://host[:port] without a path: ${origin}`)
}

/**
 * Wraps a Fetch handler (such as `server.protect(...)`) for browsers: answers preflights (204) and
 * exposes the payment headers on every answer, 402s included.
 *
 * @example
 * ```ts
 * const handler = cors(server.protect(route, serve), { origins: ['https://app.example'] })
 * ```
 * @see https://fetch.spec.whatwg.org/#http-cors-protocol
 */
export function cors(
  handler: (request: Request) => Response | Promise<Response>,
  options: CorsOptions,
): (request: Request) => Promise<Response> {
  check(options)
  return async (request) => {
    const decision = corsHeaders(request.method, request.headers, options)
    if (decision.preflight) return new Response(null, { status: 204, headers: decision.headers })
    const response = await handler(request)
    let headers: Headers
    try {
      headers = response.headers
      for (const [name, value] of decision.headers) headers.append(name, value)
      return response
    } catch {
      // Immutable headers (a fetch() response): copy.
      headers = new Headers(response.headers)
      for (const [name, value] of decision.headers) headers.append(name, value)
      const { status, statusText } = response
      return new Response(response.body, { status, statusText, headers })
    }
  }
}

/** Validates CORS options once (for the framework middlewares). */
export const checkCorsOptions = check
