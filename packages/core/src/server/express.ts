import type { IncomingMessage, ServerResponse } from 'node:http'
import { ConfigurationError, ContentTooLargeError } from '../Errors.js'
import * as IdempotencyCache from '../IdempotencyCache.js'
import { type CorsOptions, checkCorsOptions, corsHeaders } from './Cors.js'
import { checkRoute } from './checkRoute.js'
import { badRequest, toFetchRequest, writeResponse } from './node.js'
import type { Paid } from './Paid.js'
import * as Problems from './Problems.js'
import type { Route, Server } from './Server.js'

type ExpressRequest = IncomingMessage & { body?: unknown; [rawBodyKey]?: Buffer }

/** Where {@link keepRawBody} leaves the bytes a body parser read. */
const rawBodyKey = Symbol.for('mppkit.express.rawBody')

/**
 * A body-parser `verify` hook that keeps the request's bytes for the payment's digest binding, so a
 * parser can run before `payment` (e.g. `app.use(express.json({ verify: keepRawBody }))`). Bytes the
 * parser decoded from a `Content-Encoding` are not the content the client digested, and are not kept.
 *
 * @example
 * ```ts
 * app.use(express.json({ verify: keepRawBody }))
 * ```
 */
export function keepRawBody(req: IncomingMessage, _res: unknown, bytes: Buffer): void {
  const coding = req.headers['content-encoding']
  if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') return
  ;(req as ExpressRequest)[rawBodyKey] = bytes
}
type ExpressResponse = ServerResponse & { locals?: Record<string, unknown> }
type Next = (error?: unknown) => void

/**
 * Express middleware: answers 402 until paid, then calls `next()` with `res.locals.payment` set and the
 * `Payment-Receipt` header added to 2xx responses. It reads the raw body for the digest check (at most
 * the server's `maxBodyBytes`, else a 413): mount it after a parser that leaves a Buffer/string in
 * `req.body` (`express.raw`, `express.text`) or that was given `verify: keepRawBody`, or before any
 * parser, in which case `req.body` becomes the raw Buffer. After any other parser the body cannot be
 * bound: the server's logger and `onError` are told once (phase `configuration`).
 *
 * What later handlers write is captured, receipt-stamped and stored for Idempotency-Key replays; a
 * `text/event-stream` (or NDJSON) response instead flows to the client as written, recorded as not
 * replayable.
 *
 * @example
 * ```ts
 * app.get('/paid', payment(server, { offers: [{ method: 'tempo', request: { amount: '1000' } }] }), (req, res) => res.json(res.locals.payment.receipt))
 * ```
 */
export function payment(server: Server, route: Route) {
  checkRoute(server, route)
  let warned = false
  return (req: ExpressRequest, res: ExpressResponse, next: Next): void => {
    void (async () => {
      let raw =
        typeof req.body === 'string'
          ? Buffer.from(req.body)
          : Buffer.isBuffer(req.body)
            ? req.body
            : req[rawBodyKey]
      // A parser (express.json, express.urlencoded…) read the body before this middleware and kept only
      // what it parsed: the challenge cannot bind the body (no digest). Said once, then served as before.
      const parsed = req.body !== undefined || (req as { _body?: boolean })._body === true
      if (raw === undefined && !warned && req.readableEnded && parsed) {
        warned = true
        server.report(
          new ConfigurationError(
            'a body parser ran before the payment middleware, so its challenges cannot bind the request body: mount payment() before the parser, or give the parser `verify: keepRawBody`',
          ),
          'configuration',
        )
      }
      if (raw === undefined && req.method !== 'GET' && req.method !== 'HEAD' && !req.readableEnded) {
        // Buffer the body once for the digest, and hand it on as `req.body` (marked parsed for body-parser).
        const chunks: Buffer[] = []
        let total = 0
        for await (const chunk of req) {
          total += (chunk as Buffer).byteLength
          if (total > server.maxBodyBytes) {
            const error = new ContentTooLargeError({
              detail: `The request body exceeds ${server.maxBodyBytes} bytes.`,
            })
            // Stop reading: the rest of the upload is discarded, never buffered.
            req.resume()
            return writeResponse(res, Problems.toResponse(error))
          }
          chunks.push(chunk as Buffer)
        }
        raw = Buffer.concat(chunks)
        req.body = raw
        ;(req as { _body?: boolean })._body = true
      }
      let request: Request
      try {
        request = toFetchRequest(req, raw)
      } catch {
        return writeResponse(res, badRequest())
      }
      const authorization = await server.authorize(request, route)
      if (authorization.status === 'respond') return writeResponse(res, authorization.response, { server })
      if (authorization.response)
        return writeResponse(res, await authorization.finalize(authorization.response), { server })
      res.locals = { ...(res.locals ?? {}), payment: authorization.payment }
      capture(res, authorization)
      next()
    })().catch((error) => next(error))
  }
}

/** The headers set on `res` so far, removed from it (they are written again with the receipt). */
function takeHeaders(res: ServerResponse): Headers {
  const headers = new Headers()
  for (const [k, v] of Object.entries(res.getHeaders())) {
    if (v === undefined) continue
    if (Array.isArray(v)) for (const item of v) headers.append(k, item)
    else headers.set(k, String(v))
    res.removeHeader(k)
  }
  return headers
}

/**
 * Captures what downstream handlers write, then lets finalize add the receipt and store it. A streamed
 * content type switches to pass-through at the first write or flush.
 */
function capture(res: ExpressResponse, authorization: Paid): void {
  const chunks: Buffer[] = []
  const write = res.write.bind(res)
  const end = res.end.bind(res)
  const writeHead = res.writeHead.bind(res)
  const flushHeaders = res.flushHeaders.bind(res)
  let statusOverride: number | undefined
  // Set when the route ends its answer: that answer is final. Calls after it (a second `end`, a late
  // `write`, `setHeader` + `flushHeaders`) must neither reach the socket before the receipt-stamped
  // response does (the client would get a bare 200 without receipt or content, and the write of the
  // paid response would then throw ERR_HTTP_HEADERS_SENT as an unhandled rejection) nor change it.
  let ended = false
  const restore = () => {
    res.write = write
    res.end = end
    res.writeHead = writeHead
    res.flushHeaders = flushHeaders
  }
  // A stream is receipt-stamped and recorded now, then written through as it is produced.
  const streamed = () => {
    const type = res.getHeader('content-type')
    if (typeof type !== 'string') return false
    const status = statusOverride ?? res.statusCode
    // A bodiless status is never a stream, and the Response constructor refuses it any body; the probe
    // only tests the content type, so it keeps the default status.
    if (IdempotencyCache.isNullBodyStatus(status)) return false
    const probe = new Response('', { headers: { 'content-type': type } })
    if (!IdempotencyCache.isStreamed(probe)) return false
    restore()
    const decorated = authorization.decorate(new Response(null, { status, headers: takeHeaders(res) }))
    res.statusCode = status
    // Headers iterate each Set-Cookie separately: setHeader would keep only the last one.
    for (const [name, value] of decorated.headers) if (name !== 'set-cookie') res.setHeader(name, value)
    const cookies = decorated.headers.getSetCookie()
    if (cookies.length > 0) res.setHeader('set-cookie', cookies)
    void (status >= 500
      ? authorization.failed(new Error(`streamed ${status}`))
      : authorization.delivered('streamed'))
    for (const chunk of chunks.splice(0)) write(chunk)
    return true
  }
  res.writeHead = ((status: number, ...rest: unknown[]) => {
    if (ended) return res
    statusOverride = status
    const headers = rest.find((r) => typeof r === 'object' && r !== null) as
      | Record<string, string>
      | undefined
    if (headers) for (const [k, v] of Object.entries(headers)) res.setHeader(k, v)
    return res
  }) as typeof res.writeHead
  res.flushHeaders = () => {
    if (!ended && streamed()) res.flushHeaders()
  }
  // Node's write/end accept (chunk, encoding?, callback?): keep the bytes, ignore the callback.
  const keep = (chunk: unknown, encoding: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return
    chunks.push(
      Buffer.isBuffer(chunk)
        ? chunk
        : Buffer.from(chunk as string, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8'),
    )
  }
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (ended) return true
    if (streamed()) return (res.write as (...args: unknown[]) => boolean)(chunk, ...rest)
    keep(chunk, rest[0])
    return true
  }) as typeof res.write
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (ended) return res
    if (streamed()) return (res.end as (...args: unknown[]) => ServerResponse)(chunk, ...rest)
    keep(chunk, rest[0])
    ended = true
    const headers = takeHeaders(res)
    const status = statusOverride ?? res.statusCode
    const body = IdempotencyCache.isNullBodyStatus(status) ? null : Buffer.concat(chunks)
    void (async () => {
      let answer: Response | undefined
      try {
        answer = new Response(body, { status, headers })
      } catch {
        // A status no Response can carry (an interim 1xx, above 599): finalize records it as failed.
      }
      const final = await authorization.finalize(answer as Response)
      restore()
      // Headers the route set after ending its answer are not part of it.
      for (const name of res.getHeaderNames()) res.removeHeader(name)
      await writeResponse(res, final)
    })().catch(() => res.destroy())
    return res
  }) as typeof res.end
}

/**
 * Express CORS middleware for paid routes called from browsers: answers preflights (204) allowing the
 * payment request headers and exposes `WWW-Authenticate`, `Payment-Receipt` and the x402 headers on
 * every answer. Mount it before the payment middleware.
 *
 * @example
 * ```ts
 * app.use(cors({ origins: ['https://app.example'] }))
 * ```
 * @see https://fetch.spec.whatwg.org/#http-cors-protocol
 */
export function cors(options: CorsOptions) {
  checkCorsOptions(options)
  return (req: IncomingMessage, res: ServerResponse, next: Next): void => {
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers))
      if (typeof value === 'string') headers.set(name, value)
    const decision = corsHeaders(req.method ?? 'GET', headers, options)
    for (const [name, value] of decision.headers) res.appendHeader(name, value)
    if (decision.preflight) {
      res.statusCode = 204
      res.end()
      return
    }
    next()
  }
}
