import { ServiceUnavailableError } from '@mppkit/core/client'

/**
 * True for a rejection of the `lightning` package that means the node could not be reached (its
 * `[503, 'Message', { err: { code: 14 } }]` arrays: gRPC UNAVAILABLE / DEADLINE_EXCEEDED).
 */
export function isUnavailable(error: unknown): boolean {
  if (!Array.isArray(error)) return false
  const grpcCode = (error[2] as { err?: { code?: unknown } } | undefined)?.err?.code
  return grpcCode === 14 || grpcCode === 4 || (error[0] === 503 && grpcCode === undefined)
}

/** The node's failure as a 503 + Retry-After (nothing from the node's message: it may name hosts). */
export function unavailable(cause: unknown): ServiceUnavailableError {
  return new ServiceUnavailableError({
    detail: 'The Lightning node is unavailable.',
    reason: 'node-unavailable',
    retryAfter: 2,
    cause,
  })
}

/** Runs a node call, turning "node unreachable" into {@link unavailable}. */
export async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (error) {
    if (isUnavailable(error)) throw unavailable(error)
    throw error
  }
}

/** The `lightning` package's error name (`[code, 'Name', …]`), for logs without secrets. */
export function errorName(error: unknown): string {
  if (Array.isArray(error) && typeof error[1] === 'string') return error[1]
  return error instanceof Error ? error.name : 'unknown error'
}
