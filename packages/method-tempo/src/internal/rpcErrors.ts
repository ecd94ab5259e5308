import { BaseError } from '@mppkit/core/client'

/** What identifies an error from a Tempo RPC request (a viem error), without the rest of it. */
export type RpcErrorSummary = {
  /** The error's class name, e.g. `InternalRpcError`, `HttpRequestError`. */
  name?: string
  /** viem's one-line summary, e.g. `An internal error was received.` */
  shortMessage?: string
  /** The node's own message, first line only (e.g. `txpool is full`). */
  details?: string
  /** The JSON-RPC error code the node answered with (e.g. -32000). */
  code?: number
  /** The HTTP status the RPC endpoint answered with. */
  status?: number
  /** The origin of the RPC URL (never its userinfo, path or query). */
  rpcOrigin?: string
  /** The system error behind a failed request (`ECONNREFUSED`, …), as a plain object. */
  cause?: { code: string; message?: string; address?: string; port?: number }
}

type Errorish = {
  name?: unknown
  shortMessage?: unknown
  message?: unknown
  details?: unknown
  code?: unknown
  status?: unknown
  url?: unknown
  address?: unknown
  port?: unknown
  cause?: unknown
}

/**
 * One line of a text from an RPC error, safe to keep: only its first line (viem appends the URL and the
 * JSON-RPC request body, which for a broadcast is the signed transaction), URL userinfo removed and any
 * `0x` hex longer than a 32-byte hash replaced (a signed transaction, calldata).
 *
 * @example
 * ```ts
 * redactRpcText('nonce too low: 0x76f8…') // 'nonce too low: 0x…'
 * ```
 */
export function redactRpcText(text: string, maxLength = 200): string {
  const line = text
    .split('\n')[0]!
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s@]*@/gi, '$1')
    .replace(/0x[0-9a-f]{65,}/gi, '0x…')
    .trim()
  return line.length > maxLength ? `${line.slice(0, maxLength)}…` : line
}

function* chain(error: unknown): Generator<Errorish> {
  for (let e: unknown = error, depth = 0; e && typeof e === 'object' && depth < 8; depth++) {
    yield e as Errorish
    e = (e as Errorish).cause
  }
}

/**
 * The identifying fields of an error from a Tempo RPC request and nothing else: name, first line of its
 * short message and of the node's message (without long hex), JSON-RPC code, HTTP status, the RPC URL's
 * origin and the system error behind it. A viem error keeps the full RPC URL in `url` (with any
 * `user:password@`) and the JSON-RPC request body in its message, which for a broadcast is the signed
 * transaction: "Messages never contain credentials, preimages, tokens or keys." Store this as `cause`,
 * never the viem error.
 *
 * @example
 * ```ts
 * throw new VerificationFailedError({ reason: 'transaction-rejected', cause: rpcErrorSummary(error) })
 * ```
 */
export function rpcErrorSummary(error: unknown): RpcErrorSummary {
  if (typeof error !== 'object' || error === null) return {}
  const top = error as Errorish
  const summary: RpcErrorSummary = {}
  if (typeof top.name === 'string') summary.name = top.name
  const short =
    typeof top.shortMessage === 'string'
      ? top.shortMessage
      : typeof top.message === 'string'
        ? top.message
        : undefined
  if (short !== undefined) summary.shortMessage = redactRpcText(short)
  if (typeof top.details === 'string' && top.details !== '') summary.details = redactRpcText(top.details)
  for (const e of chain(error)) {
    if (summary.code === undefined && typeof e.code === 'number') summary.code = e.code
    if (summary.status === undefined && typeof e.status === 'number') summary.status = e.status
    if (summary.rpcOrigin === undefined && typeof e.url === 'string')
      try {
        const origin = new URL(e.url).origin
        if (origin !== 'null') summary.rpcOrigin = origin
      } catch {}
    if (summary.cause === undefined && typeof e.code === 'string' && /^E[A-Z_]+$|^UND_ERR/.test(e.code))
      summary.cause = {
        code: e.code,
        ...(typeof e.message === 'string' ? { message: redactRpcText(e.message) } : {}),
        ...(typeof e.address === 'string' ? { address: e.address } : {}),
        ...(typeof e.port === 'number' ? { port: e.port } : {}),
      }
  }
  return summary
}

/**
 * True when an error is (or wraps) one from a viem RPC request: something in its cause chain has a
 * `shortMessage` (viem's errors) or an RPC `url`.
 */
function isRpcError(error: unknown): boolean {
  for (const e of chain(error))
    if (typeof e.shortMessage === 'string' || typeof e.url === 'string') return true
  return false
}

/**
 * An RPC request to the Tempo node failed outside a payment problem (e.g. a background settlement
 * batch the node refused), code `tempo_rpc_error`. Its `cause` is only an {@link rpcErrorSummary}.
 *
 * @example
 * ```ts
 * report(new TempoRpcError(error))
 * ```
 */
export class TempoRpcError extends BaseError {
  override name = 'TempoRpcError'
  constructor(error: unknown) {
    const summary = rpcErrorSummary(error)
    const what = [summary.shortMessage, summary.details].filter(Boolean).join(' ')
    super(
      `Tempo RPC request failed${summary.rpcOrigin ? ` at ${summary.rpcOrigin}` : ''}${what ? `: ${what}` : ''}`,
      { code: 'tempo_rpc_error', cause: summary },
    )
  }
}

/**
 * The error to hand to a reporter (`onError`, a background `report`): a viem RPC error becomes a
 * {@link TempoRpcError} holding only its summary; mppkit errors (their causes already summarized) and
 * others are returned as they are.
 *
 * @example
 * ```ts
 * settle(store).catch((error) => report(reportableRpcError(error)))
 * ```
 */
export function reportableRpcError(error: unknown): unknown {
  if (BaseError.is(error) || !isRpcError(error)) return error
  return new TempoRpcError(error)
}
