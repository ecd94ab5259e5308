import * as Base64url from './Base64url.js'
import { FormatError, ParseError } from './Errors.js'

/**
 * A payment receipt (`Payment-Receipt: <base64url JSON>`). Methods may add fields.
 *
 * @see draft-httpauth-payment-00 §5.3: "Servers MUST NOT return a `Payment-Receipt` header on error
 *   responses."
 */
export type Receipt = {
  status: 'success'
  method: string
  /** RFC 3339 settlement time. */
  timestamp: string
  /** Method-specific reference (tx hash, invoice id, …). */
  reference: string
  externalId?: string
  /** The id of the challenge that was paid (servers built with this library always set it). */
  challengeId?: string
  [field: string]: unknown
}

/**
 * Parses a `Payment-Receipt` field value.
 *
 * @example
 * ```ts
 * const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
 * ```
 */
export function parse(value: string): Receipt {
  if (typeof value !== 'string') throw new ParseError('header must be a string')
  let json: unknown
  try {
    json = JSON.parse(Base64url.decodeText(value.trim()))
  } catch (cause) {
    throw new ParseError('receipt is not base64url JSON', { cause })
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ParseError('receipt must be a JSON object')
  const receipt = json as Record<string, unknown>
  // "The `status` field MUST be "success"" (§5.3.1)
  if (receipt.status !== 'success') throw new ParseError('receipt status must be "success"')
  for (const key of ['method', 'timestamp', 'reference'] as const)
    if (typeof receipt[key] !== 'string') throw new ParseError(`receipt ${key} is missing`)
  return receipt as Receipt
}

/**
 * Formats a receipt as a `Payment-Receipt` field value.
 *
 * @example
 * ```ts
 * Receipt.format({ status: 'success', method: 'tempo', timestamp, reference: txHash })
 * ```
 */
export function format(receipt: Receipt): string {
  if (receipt.status !== 'success') throw new FormatError('receipt status must be "success"')
  for (const key of ['method', 'timestamp', 'reference'] as const)
    if (typeof receipt[key] !== 'string') throw new FormatError(`receipt ${key} is missing`)
  return Base64url.encode(JSON.stringify(receipt))
}
