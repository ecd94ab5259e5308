import type { Phase } from './Core.js'

/** What an adapter tells of a failure after a handler answered: the server's `report`. */
export type Reporter = { report(error: unknown, phase: Phase): void }

// The server each handler of `protect` belongs to: `toNodeListener(handler)` reports to it without being
// given the server (a body failing after its status was sent, a handler that throws).
const owners = new WeakMap<object, Reporter>()

/** Marks `handler` as one of `server`'s; returns it. */
export function own<handler extends object>(handler: handler, server: Reporter): handler {
  owners.set(handler, server)
  return handler
}

/** The server `handler` belongs to, when `protect` made it. */
export function ownerOf(handler: object): Reporter | undefined {
  return owners.get(handler)
}
