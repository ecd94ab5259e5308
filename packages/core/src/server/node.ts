import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { BaseError, ParseError, PaymentError } from '../Errors.js'
import { ownerOf } from './Owner.js'
import type { Server } from './Server.js'

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

/** Options of {@link writeResponse} and {@link toNodeListener}. */
export type NodeListenerOptions = {
  /**
   * The server told (its `onError` and logger, phase `handler`) when a response body fails after its
   * status was sent, or a handler throws. `toNodeListener` defaults it to the server whose `protect`
   * made the handler; without one such failures only abort the response.
   */
  server?: Pick<Server, 'report'> | undefined
}

/** Whether the client is gone: the response was destroyed (socket closed or reset, or aborted). */
function gone(res: ServerResponse): boolean {
  // node:http2's compatibility response has no `destroyed` of its own: its stream's says it.
  const stream = (res as { stream?: { destroyed?: boolean } }).stream
  return res.destroyed === true || stream?.destroyed === true
}

/** Resolves on the next `drain` or `close` of `res`, whichever comes first. */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.once('drain', done)
    res.once('close', done)
  })
}

/**
 * Writes a Fetch `Response` to a node:http response (streams the body; SSE friendly). A body that
 * fails after the status was sent aborts the response (the connection closed before the last chunk, an
 * HTTP/2 stream reset): the client sees an incomplete body, never what was sent framed as a complete
 * 200 with its `Payment-Receipt`, and `options.server` is told (phase `handler`). A client that goes
 * away (stops reading and disconnects) cancels the body and ends the write loop.
 *
 * @example
 * ```ts
 * await writeResponse(res, await handler(request), { server })
 * ```
 */
export async function writeResponse(
  res: ServerResponse,
  response: Response,
  options: NodeListenerOptions = {},
): Promise<void> {
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
  const cancel = () => void reader.cancel().catch(() => {})
  res.once('close', cancel)
  let failure: { error: unknown } | undefined
  try {
    for (;;) {
      // The client went away: the body is cancelled (the 'close' listener, or here if it came first).
      if (gone(res)) {
        cancel()
        break
      }
      const { done, value } = await reader.read()
      if (done) break
      if (gone(res)) {
        cancel()
        break
      }
      // A destroyed socket never drains: its close ends the wait as well.
      if (!res.write(value)) await drainedOrClosed(res)
    }
  } catch (error) {
    failure = { error }
  } finally {
    res.off('close', cancel)
  }
  if (failure === undefined) {
    if (!gone(res)) res.end()
    return
  }
  // The body failed: nothing more to send. Ending here would frame what was sent as the whole body.
  if (gone(res)) return
  options.server?.report(failure.error, 'handler')
  abort(res)
}

/**
 * Aborts a response mid-body, so the client sees it incomplete. HTTP/1.1: the connection is closed
 * before the last chunk (destroyed without an error, which node:http would hand the server's
 * `clientError` listeners as if the client had failed). node:http2: the stream is reset with
 * `INTERNAL_ERROR` (destroyed with an error; without one it is reset with `NO_ERROR` and the client
 * reads a clean end).
 */
function abort(res: ServerResponse): void {
  if ((res as { stream?: unknown }).stream !== undefined)
    res.destroy(
      new BaseError('the response body failed after its status was sent', { code: 'response_body_failed' }),
    )
  else res.destroy()
}

function authorityOf(req: IncomingMessage): string | undefined {
  const authority = req.headers[':authority']
  return typeof authority === 'string' ? authority : undefined
}

/**
 * Adapts a Fetch handler (such as `server.protect(...)`) to a node:http request listener (node:http2's
 * compatibility API accepts it too). A handler that throws or a response body that fails mid-stream
 * (the response is then aborted, see {@link writeResponse}) is reported to the `onError` and logger
 * (phase `handler`) of `options.server`, by default the server whose `protect` made the handler.
 *
 * @example
 * ```ts
 * http.createServer(toNodeListener(server.protect(route, handler))).listen(0)
 * ```
 */
export function toNodeListener(
  handler: (request: Request) => Promise<Response> | Response,
  options: NodeListenerOptions = {},
): RequestListener {
  // A handler made by `server.protect` reports to its own server unless another is given.
  const server = options.server ?? ownerOf(handler)
  const writing: NodeListenerOptions = { server }
  return (req, res) => {
    void (async () => {
      let request: Request
      try {
        request = toFetchRequest(req)
      } catch {
        return writeResponse(res, badRequest())
      }
      try {
        await writeResponse(res, await handler(request), writing)
      } catch (error) {
        server?.report(error, 'handler')
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/problem+json' })
          res.end(JSON.stringify({ type: 'about:blank', title: 'Internal Server Error', status: 500 }))
        } else abort(res)
      }
    })()
  }
}
