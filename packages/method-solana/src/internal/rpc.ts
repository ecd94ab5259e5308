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

/** One HTTP POST of a JSON body: the status and the body text, or a thrown transport failure. */
type Post = (body: string, timeout: number) => Promise<{ status: number; text: string }>

/**
 * Creates a JSON-RPC caller for a Solana node URL. Without `fetchImpl`, on Node it posts through
 * `node:http(s)` with a keep-alive agent (about a millisecond less per call than `fetch`, which matters
 * when a verification is two or three calls); elsewhere, or with `fetchImpl`, it uses `fetch`.
 *
 * @example
 * ```ts
 * const rpc = createRpc('http://127.0.0.1:8899', 10_000)
 * const slot = await rpc<number>('getSlot', [])
 * ```
 */
export function createRpc(url: string, timeout = 10_000, fetchImpl?: typeof fetch): Rpc {
  let id = 0
  const post: Post = fetchImpl || !isNode() ? fetchPost(url, fetchImpl ?? fetch) : nodePost(url)
  return async <T>(method: string, params: unknown[]): Promise<T> => {
    let answer: { status: number; text: string }
    try {
      answer = await post(JSON.stringify({ jsonrpc: '2.0', id: ++id, method, params }), timeout)
    } catch (error) {
      throw new RpcUnavailableError(`${method}: ${describe(error)}`, { cause: error })
    }
    if (answer.status >= 500 || answer.status === 429)
      throw new RpcUnavailableError(`${method}: HTTP ${answer.status}`)
    let body: { result?: T; error?: { code?: number; message?: string; data?: unknown } }
    try {
      body = JSON.parse(answer.text) as typeof body
    } catch (error) {
      throw new RpcUnavailableError(`${method}: unreadable answer`, { cause: error })
    }
    if (body === null || typeof body !== 'object')
      throw new RpcUnavailableError(`${method}: unreadable answer`)
    if (body.error) {
      // -32603 internal errors and node-behind answers are transient.
      if (body.error.code === -32603 || body.error.code === -32005)
        throw new RpcUnavailableError(`${method}: ${body.error.message ?? 'internal error'}`)
      throw new RpcAnswerError(body.error.code ?? 0, body.error.message ?? 'RPC error', body.error.data)
    }
    return body.result as T
  }
}

function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string'
}

function fetchPost(url: string, fetchImpl: typeof fetch): Post {
  return async (body, timeout) => {
    const response = await fetchImpl(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(timeout),
    })
    return { status: response.status, text: await response.text() }
  }
}

/** Largest RPC answer read (a `getTransaction` is a few kB; this only bounds a misbehaving node). */
const maxAnswerBytes = 16 * 1024 * 1024

function nodePost(url: string): Post {
  const target = new URL(url)
  // Loaded on first use, so bundles for other runtimes never see node:http; then used without an await.
  type Transport = { request: typeof import('node:http').request; agent: import('node:http').Agent }
  let loaded: Transport | undefined
  let loading: Promise<Transport> | undefined
  const load = () => {
    loading ??= (target.protocol === 'https:' ? import('node:https') : import('node:http')).then((module) => {
      loaded = {
        request: module.request as typeof import('node:http').request,
        agent: new module.Agent({ keepAlive: true }),
      }
      return loaded
    })
    return loading
  }
  const once = async (body: string, timeout: number) => {
    const { request, agent } = loaded ?? (await load())
    return new Promise<{ status: number; text: string; reused: boolean }>((resolve, reject) => {
      const call = request(
        target,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          const chunks: Buffer[] = []
          let size = 0
          response.on('data', (chunk: Buffer) => {
            size += chunk.length
            if (size > maxAnswerBytes) call.destroy(new Error('answer too large'))
            else chunks.push(chunk)
          })
          response.on('end', () => {
            clearTimeout(timer)
            resolve({
              status: response.statusCode ?? 0,
              text: (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8'),
              reused: call.reusedSocket,
            })
          })
          response.on('error', fail)
        },
      )
      const fail = (error: Error) => {
        clearTimeout(timer)
        reject(Object.assign(error, { reused: call.reusedSocket }))
      }
      const timer = setTimeout(
        () => call.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })),
        timeout,
      )
      call.on('error', fail)
      call.end(body)
    })
  }
  return async (body, timeout) => {
    try {
      return await once(body, timeout)
    } catch (error) {
      // A kept-alive socket the node closed while idle fails on reuse before any answer: send once
      // more on a fresh socket (Node's documented pattern). Every call here is safe to repeat: reads,
      // and sendTransaction of the same signed bytes, which cannot land twice.
      const { reused, code } = error as { reused?: boolean; code?: string }
      if (reused && code === 'ECONNRESET') return once(body, timeout)
      throw error
    }
  }
}

function describe(error: unknown): string {
  const own = (error as { code?: unknown })?.code
  if (typeof own === 'string') return own
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
