import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { ParseError, PaymentError } from '../Errors.js'

/**
 * Converts a node:http request to a Fetch `Request` (streams the body; no buffering). Throws
 * `ParseError` when the Host header and request target do not form a URL (the adapters answer 400).
 *
 * @example
 * ```ts
 * const request = toFetchRequest(req)
 * ```
 */
export function toFetchRequest(req: IncomingMessage, body?: Uint8Array): Request {
  // HTTP/2 requests (node:http2's compatibility API) carry the host as `:authority`, usually without Host.
  const host = req.headers.host ?? authorityOf(req) ?? 'localhost'
  const protocol = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'
  let url: URL
  try {
    url = new URL(req.url ?? '/', `${protocol}://${host}`)
  } catch (cause) {
    throw new ParseError('the Host header or request target is not a valid URL', { cause })
  }
  const headers = new Headers()
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!
    // HTTP/2 pseudo-headers (`:method`, `:path`…) are not valid field names: Headers would throw.
    if (name.charCodeAt(0) === 58 /* : */) continue
    headers.append(name, req.rawHeaders[i + 1]!)
  }
  const method = req.method ?? 'GET'
  const hasBody = method !== 'GET' && method !== 'HEAD'
  const init: RequestInit & { duplex?: 'half' } = { method, headers }
  if (hasBody) {
    if (body) init.body = body as unknown as BodyInit
    else if (!req.readableEnded) {
      init.body = Readable.toWeb(req) as unknown as ReadableStream
      init.duplex = 'half'
    }
  }
  return new Request(url, init)
}

/**
 * The 400 problem+json answer to a request whose Host header or target is malformed. "A server MUST
 * respond with a 400 (Bad Request) status code to any HTTP/1.1 request message that lacks a Host header
 * field and to any request message that contains more than one Host header field line or a Host header
 * field with an invalid field value." (RFC 9112 §3.2)
 *
 * @example
 * ```ts
 * await writeResponse(res, badRequest())
 * ```
 */
export function badRequest(): Response {
  const body = new PaymentError({
    type: 'about:blank',
    title: 'Bad Request',
    status: 400,
    detail: 'The Host header or request target is not a valid URL.',
  }).toProblem()
  return new Response(JSON.stringify(body), {
    status: 400,
    headers: { 'content-type': 'application/problem+json', 'cache-control': 'no-store' },
  })
}

/**
 * Writes a Fetch `Response` to a node:http response (streams the body; SSE friendly).
 *
 * @example
 * ```ts
 * await writeResponse(res, await handler(request))
 * ```
 */
export async function writeResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {}
  for (const [name, value] of response.headers) {
    if (name === 'set-cookie') headers[name] = response.headers.getSetCookie()
    else headers[name] = value
  }
  res.writeHead(response.status, response.statusText || undefined, headers)
  if (!response.body) {
    res.end()
    return
  }
  const reader = response.body.getReader()
  const onClose = () => void reader.cancel().catch(() => {})
  res.once('close', onClose)
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      if (!res.write(value)) await new Promise((resolve) => res.once('drain', resolve))
    }
  } catch {
    // Client went away or the stream failed: nothing more to send.
  } finally {
    res.off('close', onClose)
    res.end()
  }
}

function authorityOf(req: IncomingMessage): string | undefined {
  const authority = req.headers[':authority']
  return typeof authority === 'string' ? authority : undefined
}

/**
 * Adapts a Fetch handler (such as `server.protect(...)`) to a node:http request listener (node:http2's
 * compatibility API accepts it too).
 *
 * @example
 * ```ts
 * http.createServer(toNodeListener(server.protect(route, handler))).listen(0)
 * ```
 */
export function toNodeListener(handler: (request: Request) => Promise<Response> | Response): RequestListener {
  return (req, res) => {
    void (async () => {
      let request: Request
      try {
        request = toFetchRequest(req)
      } catch {
        return writeResponse(res, badRequest())
      }
      try {
        await writeResponse(res, await handler(request))
      } catch {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/problem+json' })
          res.end(JSON.stringify({ type: 'about:blank', title: 'Internal Server Error', status: 500 }))
        } else res.destroy()
      }
    })()
  }
}
