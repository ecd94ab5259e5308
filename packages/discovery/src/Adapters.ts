import type { IncomingMessage, ServerResponse } from 'node:http'
import { writeResponse } from '@mppkit/core/server'
import type { Discovery } from './Discovery.js'

/**
 * The Fetch request discovery sees, or undefined when the request target is no URL path. Discovery
 * reads only the pathname, so the host is a constant: a client's Host header (`a:b`, `[`) never
 * reaches URL parsing, where it would throw inside the listener (a process exit on bare node:http).
 */
const requestOf = (req: IncomingMessage, method: string): Request | undefined => {
  try {
    return new Request(`http://localhost${req.url ?? '/'}`, { method })
  } catch {
    return undefined
  }
}

/**
 * node:http and Express middleware: serves the discovery documents, and adds the `Link` header to every
 * other response before handing it on.
 *
 * @example
 * ```ts
 * app.use(discoveryMiddleware(discovery)) // Express; or in a node:http listener: discoveryMiddleware(discovery)(req, res, next)
 * ```
 * @see draft-payment-discovery-00 §Document Location
 */
export function node(discovery: Discovery) {
  return (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void): void => {
    const method = req.method ?? 'GET'
    if (method === 'GET' || method === 'HEAD') {
      const request = requestOf(req, method)
      let response: Response | undefined
      try {
        response = request && discovery.handle(request)
      } catch (error) {
        // A document that cannot be generated (a route changed to a price it cannot publish): the app's
        // error handler answers, instead of a throw in the listener (a process exit on bare node:http).
        next(error)
        return
      }
      if (response) {
        writeResponse(res, response).catch(next)
        return
      }
    }
    if (!res.headersSent) res.setHeader('link', discovery.link)
    next()
  }
}

/** The Hono context members the middleware uses (structural, so hono stays a peer of the app). */
type HonoContext = {
  req: { raw: Request }
  header(name: string, value: string, options?: { append?: boolean }): void
}

/**
 * Hono middleware: serves the discovery documents, and adds the `Link` header to every other response.
 *
 * @example
 * ```ts
 * app.use(hono(discovery))
 * ```
 */
export function hono(discovery: Discovery) {
  return async (c: HonoContext, next: () => Promise<void>): Promise<Response | undefined> => {
    const response = discovery.handle(c.req.raw)
    if (response) return response
    await next()
    // Appended: the app's own Link header (preloads, pagination) stays.
    c.header('link', discovery.link, { append: true })
    return undefined
  }
}

/**
 * Wraps a Fetch handler: discovery documents first, then the handler, whose responses get the `Link`.
 *
 * @example
 * ```ts
 * const handler = withDiscovery(discovery, server.protect(route, serve))
 * ```
 */
export function withDiscovery(
  discovery: Discovery,
  handler: (request: Request) => Response | Promise<Response>,
): (request: Request) => Promise<Response> {
  return async (request) => {
    const own = discovery.handle(request)
    if (own) return own
    const response = await handler(request)
    try {
      response.headers.append('link', discovery.link)
      return response
    } catch {
      // Immutable headers (a fetch() response): copy.
      const headers = new Headers(response.headers)
      headers.append('link', discovery.link)
      return new Response(response.body, {
        status: response.status,
        statusText: response.statusText,
        headers,
      })
    }
  }
}
