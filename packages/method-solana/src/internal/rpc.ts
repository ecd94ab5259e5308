import { ServiceUnavailableError } from '@mppkit/core/client'

/** A JSON-RPC error answer of the node (a definite answer, not an outage). */
export class RpcAnswerError extends Error {
  override name = 'RpcAnswerError'
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message)
  }
}

/** Thrown when the node cannot be reached, times out or answers with a 5xx. */
export class RpcUnavailableError extends Error {
  override name = 'RpcUnavailableError'
}

/** A minimal Solana JSON-RPC caller: one POST per call, a timeout, outages told apart from answers. */
export type Rpc = <T = unknown>(method: string, params: unknown[]) => Promise<T>

/**
 * Creates a JSON-RPC caller for a Solana node URL.
 *
 * @example
 * ```ts
 * const rpc = createRpc('http://127.0.0.1:8899', 10_000)
 * const slot = await rpc<number>('getSlot', [])
 * ```
 */
export function createRpc(url: string, timeout = 10_000, fetchImpl: typeof fetch = fetch): Rpc {
  let id = 0
  return async <T>(method: string, params: unknown[]): Promise<T> => {
    let response: Response
    try {
      response = await fetchImpl(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params }),
        signal: AbortSignal.timeout(timeout),
      })
    } catch (error) {
      throw new RpcUnavailableError(`${method}: ${describe(error)}`, { cause: error })
    }
    if (response.status >= 500 || response.status === 429)
      throw new RpcUnavailableError(`${method}: HTTP ${response.status}`)
    let body: { result?: T; error?: { code?: number; message?: string; data?: unknown } }
    try {
      body = (await response.json()) as typeof body
    } catch (error) {
      throw new RpcUnavailableError(`${method}: unreadable answer`, { cause: error })
    }
    if (body.error) {
      // -32603 internal errors and node-behind answers are transient.
      if (body.error.code === -32603 || body.error.code === -32005)
        throw new RpcUnavailableError(`${method}: ${body.error.message ?? 'internal error'}`)
      throw new RpcAnswerError(body.error.code ?? 0, body.error.message ?? 'RPC error', body.error.data)
    }
    return body.result as T
  }
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } })?.cause
  if (cause && typeof cause.code === 'string') return cause.code
  return error instanceof Error ? error.name : 'network error'
}

/**
 * Maps an RPC outage to a 503 problem with Retry-After (retry the same credential); other errors pass.
 */
export async function guard<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    if (error instanceof RpcUnavailableError) throw unavailable(error)
    throw error
  }
}

/** The 503 problem of an unreachable RPC node. */
export function unavailable(error: unknown, retryAfter = 2): ServiceUnavailableError {
  const problem = new ServiceUnavailableError({
    detail: 'The Solana RPC node is unavailable; retry the same credential later.',
    reason: 'rpc-unavailable',
    retryAfter,
    cause: error,
  })
  problem.message = `Solana RPC unreachable: ${error instanceof Error ? error.message : 'unknown'}`
  return problem
}
