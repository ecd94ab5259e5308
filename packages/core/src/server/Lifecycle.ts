import type { Core } from './Core.js'

/**
 * Sets up every method of a server once, before any request, and returns the server's `close`: it
 * aborts the signal the methods received and awaits each method's `close()` (timers stopped, settlement
 * batches flushed). Closing twice returns the same promise; a failing `close` is reported as
 * `background`, never thrown, so one method cannot keep the others from closing.
 *
 * @example
 * ```ts
 * const close = Lifecycle.start(core)
 * await close()
 * ```
 */
export function start(core: Core): () => Promise<void> {
  const lifetime = new AbortController()
  for (const method of core.registry.entries)
    method.setup?.({
      store: core.storeFor(method),
      report: (error) => core.report(error, 'background'),
      signal: lifetime.signal,
      realm: core.realm,
      now: core.now,
    })
  let closing: Promise<void> | undefined
  return () => {
    closing ??= (async () => {
      lifetime.abort()
      const results = await Promise.allSettled(core.registry.entries.map(async (method) => method.close?.()))
      for (const result of results) if (result.status === 'rejected') core.report(result.reason, 'background')
    })()
    return closing
  }
}
