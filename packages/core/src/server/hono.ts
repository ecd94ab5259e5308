import { type CorsOptions, checkCorsOptions, corsHeaders } from './Cors.js'
import { checkRoute } from './checkRoute.js'
import type { Route, Server } from './Server.js'

type HonoContext = {
  /** `arrayBuffer()` reads the body through Hono's cache, which still has it once `raw` is spent. */
  req: {
    raw: Request
    arrayBuffer?: () => Promise<ArrayBuffer>
    /** What Hono read the body as so far (`formData`, `text`…), each a promise of it. */
    bodyCache?: Partial<Record<string, Promise<unknown>>>
  }
  res: Response
  /** Set by Hono when a later handler threw (its `onError` response is then in `res`). */
  error?: unknown
  set(key: string, value: unknown): void
}

/**
 * Hono middleware: answers 402 until paid, then runs the route with `c.get('payment')` set and adds the
 * `Payment-Receipt` header to its 2xx response.
 *
 * @example
 * ```ts
 * app.get('/paid', payment(server, { offers: [{ method: 'tempo', request: { amount: '1000' } }] }), (c) => c.text('ok'))
 * ```
 */
export function payment(server: Server, route: Route) {
  checkRoute(server, route)
  return async (c: HonoContext, next: () => Promise<void>): Promise<Response | undefined> => {
    const authorization = await server.authorize(await readable(c.req), route)
    if (authorization.status === 'respond') return authorization.response
    if (authorization.response) return authorization.finalize(authorization.response)
    c.set('payment', authorization.payment)
    try {
      await next()
    } catch (error) {
      c.res = await authorization.fail(error)
      return c.res
    }
    // Hono catches a throwing handler itself and answers with its onError response: that is a failure
    // to deliver what was paid for, not the final answer to store for Idempotency-Key replays. An
    // `HTTPException` below 500 (a 404 for an unknown id, a 403) is the app's answer, not a failure: its
    // response (as the app's onError rendered it) is delivered and recorded, as Express keeps the 4xx
    // its error handler writes.
    if (c.error !== undefined && !isAnswer(c.error)) {
      c.res = await authorization.fail(c.error)
      return c.res
    }
    const final = await authorization.finalize(c.res)
    // Hand Hono a fresh Response: @hono/node-server's lightweight responses may not see in-place header
    // changes, and Hono copies the previous response's headers onto the new one.
    // Read the headers before the body: a lightweight response rebuilds itself from its original init
    // when its body is touched.
    const headers = new Headers(final.headers)
    const status = final.status
    c.res = new Response(final.body, { status, headers })
    return undefined
  }
}

/**
 * Whether a caught error is Hono's `HTTPException` with a status below 500: the app answering the
 * request (its `getResponse()`), not failing it. Recognized by shape, so any Hono copy's class counts.
 */
function isAnswer(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const { status, getResponse } = error as { status?: unknown; getResponse?: unknown }
  return typeof getResponse === 'function' && typeof status === 'number' && status >= 200 && status < 500
}

/**
 * The request to authorize. When a middleware before this one read the body (a validator's
 * `c.req.json()`), the raw request's stream is spent and could not be read for the digest binding
 * (every request, paid or not, was a 503): its bytes come from Hono's body cache instead, as Hono hands
 * them to the route (the text as read; a body only cached as parsed JSON is its re-serialization, the
 * same bytes for the same body, so the challenge's digest and the paid request's still agree).
 */
async function readable(req: HonoContext['req']): Promise<Request> {
  const raw = req.raw
  if (!raw.bodyUsed) return raw
  const cache = req.bodyCache
  // Only a FormData is cached (`c.req.parseBody()`, a form validator): Hono would re-encode it for
  // `arrayBuffer()` with a fresh multipart boundary, other bytes on every request, so the paid request's
  // digest could never match its challenge's. Its entries are encoded here the same way every time
  // instead, so the digest binds the form's names, values and files.
  if (cache?.formData && !cache.arrayBuffer && !cache.text && !cache.blob && !cache.json) {
    try {
      return new Request(raw, { body: await formBytes((await cache.formData) as FormData) })
    } catch {
      return raw
    }
  }
  if (typeof req.arrayBuffer !== 'function') return raw
  try {
    return new Request(raw, { body: await req.arrayBuffer() })
  } catch {
    // Unreadable even from the cache: the server answers it as a body it could not read.
    return raw
  }
}

/**
 * A form's entries in order as bytes, the same for the same entries however they were sent (multipart
 * with any boundary, or urlencoded): each entry is its name, then `s` and the value, or `f` and the
 * file's name, type and bytes, every field length-prefixed (so no two forms encode alike).
 */
async function formBytes(form: FormData): Promise<Uint8Array<ArrayBuffer>> {
  const encoder = new TextEncoder()
  const parts: Uint8Array<ArrayBuffer>[] = []
  const field = (bytes: Uint8Array<ArrayBuffer>) => parts.push(encoder.encode(`${bytes.byteLength}:`), bytes)
  for (const [name, value] of form) {
    field(encoder.encode(name))
    if (typeof value === 'string') {
      parts.push(encoder.encode('s'))
      field(encoder.encode(value))
    } else {
      parts.push(encoder.encode('f'))
      field(encoder.encode(value.name))
      field(encoder.encode(value.type))
      field(new Uint8Array(await value.arrayBuffer()))
    }
  }
  return new Uint8Array(await new Blob(parts).arrayBuffer())
}

/**
 * Hono CORS middleware for paid routes called from browsers: answers preflights (204) allowing the
 * payment request headers and exposes `WWW-Authenticate`, `Payment-Receipt` and the x402 headers on
 * every answer, 402s included. Mount it before the payment middleware.
 *
 * @example
 * ```ts
 * app.use('*', cors({ origins: ['https://app.example'] }))
 * ```
 * @see https://fetch.spec.whatwg.org/#http-cors-protocol
 */
export function cors(options: CorsOptions) {
  checkCorsOptions(options)
  return async (c: HonoContext, next: () => Promise<void>): Promise<Response | undefined> => {
    const decision = corsHeaders(c.req.raw.method, c.req.raw.headers, options)
    if (decision.preflight) return new Response(null, { status: 204, headers: decision.headers })
    await next()
    try {
      for (const [name, value] of decision.headers) c.res.headers.append(name, value)
    } catch {
      // Immutable headers (a fetch() response): answer with a copy.
      const headers = new Headers(c.res.headers)
      for (const [name, value] of decision.headers) headers.append(name, value)
      const { status, statusText } = c.res
      c.res = new Response(c.res.body, { status, statusText, headers })
    }
    return undefined
  }
}
