import type { Route, Server } from './Server.js'

/** The handler of the `protect` call that only checks a route: never called. */
const unreachable = () => new Response(null, { status: 500 })

/**
 * Checks a route as `server.protect` does (a `ConfigurationError` for an unknown method or no offers),
 * for the framework adapters, which check when they are mounted rather than failing every request with
 * a 500 (which Express renders with its stack trace).
 *
 * @example
 * ```ts
 * checkRoute(server, route) // throws ConfigurationError now, not at the first request
 * ```
 */
export function checkRoute(server: Server, route: Route): void {
  server.protect(route, unreachable)
}
