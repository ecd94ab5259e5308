import { ParseError } from '@mppkit/core/client'

/**
 * x402's header names (v2, then v1).
 *
 * @example
 * ```ts
 * response.headers.get(headers.paymentRequired)
 * ```
 */
export const headers = {
  paymentRequired: 'PAYMENT-REQUIRED',
  paymentSignature: 'PAYMENT-SIGNATURE',
  paymentResponse: 'PAYMENT-RESPONSE',
  v1Payment: 'X-PAYMENT',
  v1PaymentResponse: 'X-PAYMENT-RESPONSE',
} as const

/** An x402 payment requirement (v2 `accepts[]` entry; v1 entries carry `maxAmountRequired` instead of `amount`). */
export type Requirement = {
  scheme: string
  network: string
  asset: string
  amount: string
  payTo: string
  maxTimeoutSeconds: number
  extra: Record<string, unknown>
}

/** An x402 v1 payment requirement. */
export type RequirementV1 = Omit<Requirement, 'amount'> & {
  maxAmountRequired: string
  resource: string
  description: string
  mimeType: string
}

/** The resource an x402 v2 requirement sells. */
export type Resource = { url: string; description?: string; mimeType?: string }

/** An x402 v2 `PAYMENT-REQUIRED` document. */
export type PaymentRequired = {
  x402Version: 2
  error?: string
  resource: Resource
  accepts: Requirement[]
  extensions?: Record<string, unknown>
}

/** An x402 v1 402 body. */
export type PaymentRequiredV1 = { x402Version: 1; error?: string; accepts: RequirementV1[] }

/** An x402 settlement response (`PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`). */
export type SettleResponse = {
  success: boolean
  transaction: string
  network: string
  payer?: string
  errorReason?: string
}

const base64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Decodes an x402 header (standard base64 of a JSON object). Throws `ParseError` on anything else.
 *
 * @example
 * ```ts
 * decode('eyJ4NDAyVmVyc2lvbiI6Mn0=') // { x402Version: 2 }
 * ```
 */
export function decode(value: string): Record<string, unknown> {
  const trimmed = value.trim()
  if (trimmed === '' || !base64.test(trimmed)) throw new ParseError('x402 header is not base64')
  let text: string
  try {
    const binary = atob(trimmed)
    text = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)))
  } catch (cause) {
    throw new ParseError('x402 header is not base64 of UTF-8', { kind: 'encoding_error', cause })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    throw new ParseError('x402 header is not JSON', { cause })
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ParseError('x402 header is not a JSON object')
  return parsed as Record<string, unknown>
}

/**
 * Encodes a value as an x402 header (standard base64 of its JSON).
 *
 * @example
 * ```ts
 * encode({ x402Version: 2 }) // 'eyJ4NDAyVmVyc2lvbiI6Mn0='
 * ```
 */
export function encode(value: unknown): string {
  const bytes = new TextEncoder().encode(JSON.stringify(value))
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

/**
 * EVM chain ids of x402 v1 network names (v2 uses CAIP-2 `eip155:<id>`). Names not listed are skipped.
 *
 * @example
 * ```ts
 * v1Networks['base-sepolia'] // 84532
 * ```
 */
export const v1Networks: Readonly<Record<string, number>> = {
  base: 8453,
  'base-sepolia': 84532,
  polygon: 137,
  'polygon-amoy': 80002,
  avalanche: 43114,
  'avalanche-fuji': 43113,
  iotex: 4689,
  sei: 1329,
  'sei-testnet': 1328,
  abstract: 2741,
  'abstract-testnet': 11124,
  peaq: 3338,
  story: 1514,
  educhain: 41923,
  'skale-base-sepolia': 324705682,
}

/**
 * The EVM chain id an x402 network names (`eip155:8453`, or a v1 name from {@link v1Networks} or the
 * caller's own table), or undefined.
 *
 * @example
 * ```ts
 * chainIdOf('eip155:8453') // 8453
 * ```
 */
export function chainIdOf(network: string, extra: Readonly<Record<string, number>> = {}): number | undefined {
  const caip = /^eip155:([1-9]\d{0,15})$/.exec(network)
  if (caip) return Number(caip[1])
  const id = Object.hasOwn(extra, network)
    ? extra[network]
    : Object.hasOwn(v1Networks, network)
      ? v1Networks[network]
      : undefined
  return Number.isSafeInteger(id) && (id as number) > 0 ? id : undefined
}
