import type * as Challenge from '../Challenge.js'
import type * as Credential from '../Credential.js'
import type * as Receipt from '../Receipt.js'
import type { Problem } from './Issuance.js'

/** The `_meta` key of a credential in a JSON-RPC request. @see draft-payment-transport-mcp-00 */
export const credentialKey = 'org.paymentauth/credential'
/** The `_meta` key of a receipt in a JSON-RPC result. @see draft-payment-transport-mcp-00 */
export const receiptKey = 'org.paymentauth/receipt'

/** JSON-RPC error codes of the payment transport. */
export const codes = {
  /** "Payment required | -32042 | Payment challenge in `error.data`" */
  paymentRequired: -32042,
  /** "Payment verification failed | -32043 | Fresh challenge + failure reason" */
  verificationFailed: -32043,
  /** "Malformed credential | -32602 | Invalid params (bad JSON structure)" */
  invalidParams: -32602,
  /** "Internal payment error | -32603 | Payment processor failure" */
  internalError: -32603,
} as const

/** A JSON-RPC error object carrying a payment problem. */
export type JsonRpcError = {
  code: number
  message: string
  data: {
    httpStatus: number
    challenges: Challenge.Challenge[]
    problem: Record<string, unknown>
    failure?: { reason?: string; detail?: string }
  }
}

/**
 * Renders a refusal of the transport-neutral pipeline as a JSON-RPC error: `-32042` with the challenges
 * for a payment-required, `-32043` with fresh challenges and the failure for any other 402, `-32602` for
 * a malformed credential or another 4xx, `-32603` for a server-side failure. Each challenge carries its
 * `request` as a JSON object: "Servers MUST NOT base64url-encode the request when using JSON-RPC
 * transport." (draft-payment-transport-mcp-00 §Challenge Structure)
 *
 * @example
 * ```ts
 * const outcome = await server.authorizePayment({ route, request, credential })
 * if (outcome.status === 'problem') return { jsonrpc: '2.0', id, error: Mcp.toJsonRpcError(outcome) }
 * ```
 * @see draft-payment-transport-mcp-00 §Error Handling
 */
export function toJsonRpcError(problem: Problem): JsonRpcError {
  const { error } = problem
  // "The `error.data.httpStatus` field SHOULD be included" (§Signaling Payment Required)
  const data: JsonRpcError['data'] = {
    httpStatus: error.status,
    challenges: problem.challenges.map((issued) => ({ ...issued.challenge })),
    problem: error.toProblem(),
  }
  if (error.type === 'payment-required')
    return { code: codes.paymentRequired, message: 'Payment Required', data }
  if (
    error.type === 'malformed-credential' ||
    (error.status >= 400 && error.status < 500 && error.status !== 402)
  )
    return { code: codes.invalidParams, message: 'Invalid params', data }
  if (error.status === 402) {
    const failure: { reason?: string; detail?: string } = {}
    if (error.reason !== undefined) failure.reason = error.reason
    if (error.detail !== undefined) failure.detail = error.detail
    // "servers MUST return code `-32043` with a fresh challenge and failure details" (§Payment Verification Failure)
    return {
      code: codes.verificationFailed,
      message: 'Payment Verification Failed',
      data: { ...data, failure },
    }
  }
  return { code: codes.internalError, message: 'Internal error', data }
}

/**
 * Finds the credential of a JSON-RPC message: "Servers MUST check both locations for `_meta`" (root
 * `_meta` and `params._meta`). Returns the object as sent (the pipeline validates it), or undefined.
 *
 * @example
 * ```ts
 * const credential = Mcp.credentialOf(message)
 * ```
 * @see draft-payment-transport-mcp-00 §Metadata Placement
 */
export function credentialOf(message: unknown): Credential.Credential | undefined {
  if (typeof message !== 'object' || message === null) return undefined
  const { _meta: root, params } = message as { _meta?: unknown; params?: unknown }
  const nested =
    typeof params === 'object' && params !== null && !Array.isArray(params)
      ? (params as { _meta?: unknown })._meta
      : undefined
  for (const meta of [root, nested]) {
    if (typeof meta !== 'object' || meta === null) continue
    const credential = (meta as Record<string, unknown>)[credentialKey]
    if (credential !== undefined) return credential as Credential.Credential
  }
  return undefined
}

/**
 * The `_meta` member carrying a receipt: "Servers MUST return `org.paymentauth/receipt` on every
 * successful response to a paid request." (§Successful Payment Response)
 *
 * @example
 * ```ts
 * return { jsonrpc: '2.0', id, result: { ...result, _meta: Mcp.receiptMeta(outcome.receipt) } }
 * ```
 */
export function receiptMeta(receipt: Receipt.Receipt): { [receiptKey]: Receipt.Receipt } {
  return { [receiptKey]: receipt }
}
