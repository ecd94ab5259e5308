import * as Base64url from '../Base64url.js'
import * as Binding from '../Binding.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { BaseError, ParseError } from '../Errors.js'
import * as Receipt from '../Receipt.js'

/**
 * The JSON ABI of the MPP conformance harness (HARNESS_SPEC.md, schema 1): one request in, one response
 * out. Shared by the `mppkit-conformance-adapter` executable and the in-process vector tests.
 */
export type AdapterRequest = { schema: 1; op: string; input: unknown; context?: Record<string, unknown> }
export type AdapterResponse =
  | { ok: true; value: unknown }
  | { ok: false; error: { type: string; message: string } }

/** Operations this adapter implements. */
export const capabilities = [
  'challenge.parse',
  'challenge.format',
  'credential.parse',
  'credential.format',
  'receipt.parse',
  'receipt.format',
  'base64url.encode',
  'base64url.decode',
  'challenge.id',
  'http.payment_request',
] as const

const errorTypes: Record<string, string> = {
  'challenge.parse': 'parse_error',
  'credential.parse': 'parse_error',
  'receipt.parse': 'parse_error',
  'challenge.format': 'format_error',
  'credential.format': 'format_error',
  'receipt.format': 'format_error',
  'base64url.encode': 'encoding_error',
  'base64url.decode': 'encoding_error',
  'challenge.id': 'generation_error',
  'http.payment_request': 'http_error',
}

function header(input: unknown): string {
  const value = (input as { header?: unknown } | null)?.header
  if (typeof value !== 'string') throw new ParseError('input.header must be a string')
  return value
}

function text(input: unknown): string {
  const value = (input as { text?: unknown } | null)?.text
  if (typeof value !== 'string')
    throw new ParseError('input.text must be a string', { kind: 'encoding_error' })
  return value
}

function credentialFromInput(input: any): Credential.Credential {
  const credential: Credential.Credential = { challenge: input.challenge, payload: input.payload }
  if (typeof input.source === 'string') credential.source = input.source
  return credential
}

function run(op: string, input: any): unknown {
  switch (op) {
    case 'challenge.parse':
      return Challenge.parse(header(input))
    case 'challenge.format':
      return { header: Challenge.format(input as Challenge.Challenge) }
    case 'credential.parse': {
      const credential = Credential.parse(header(input))
      return { ...credential, source: credential.source ?? null }
    }
    case 'credential.format':
      return { header: Credential.format(credentialFromInput(input)) }
    case 'receipt.parse':
      return Receipt.parse(header(input))
    case 'receipt.format':
      return { header: Receipt.format(input as Receipt.Receipt) }
    case 'base64url.encode':
      return { text: Base64url.encode(text(input)) }
    case 'base64url.decode':
      return { text: Base64url.decodeText(text(input)) }
    case 'challenge.id': {
      const { secretKey, ...fields } = input as { secretKey: string } & Challenge.ChallengeFields & {
          description?: string
        }
      if (typeof secretKey !== 'string') throw new ParseError('secretKey is required')
      return { id: Binding.computeId(fields, secretKey) }
    }
    default:
      return undefined
  }
}

/**
 * Handles one adapter request; never throws.
 *
 * @example
 * ```ts
 * handle({ schema: 1, op: 'base64url.encode', input: { text: 'abc' } }) // { ok: true, value: { text: 'YWJj' } }
 * ```
 */
export function handle(request: AdapterRequest): AdapterResponse {
  const op = request?.op
  if (
    typeof op !== 'string' ||
    !(capabilities as readonly string[]).includes(op) ||
    op === 'http.payment_request'
  )
    return { ok: false, error: { type: 'unsupported_operation', message: String(op) } }
  try {
    return { ok: true, value: run(op, request.input) }
  } catch (error) {
    let type = errorTypes[op] ?? 'unknown_error'
    // A base64url decode failure inside a header parse is still a parse error of that header.
    if (op.startsWith('base64url.') && error instanceof ParseError) type = 'encoding_error'
    const message = BaseError.is(error) ? error.message : 'invalid input'
    return { ok: false, error: { type, message } }
  }
}

/** Input of the `http.payment_request` flow operation (HARNESS_SPEC.md "Flow Operation"). */
export type HttpPaymentRequest = {
  url: string
  method?: string
  headers?: Record<string, string>
  body?: string | null
  payment?: { payload?: Record<string, unknown>; source?: string | null }
  mode?: 'payment' | 'plain' | 'invalid_payload' | 'mismatched_request' | 'invalid_challenge_id'
}

/** Output of the flow operation: the final HTTP response, normalized. */
export type HttpResponse = { status: number; headers: Record<string, string>; body: string }

/**
 * The flow operation: sends one request through the payment transport the way the runner asks
 * (`mode`), using whatever challenge the server offers and the payload the runner supplies.
 */
export async function paymentRequest(
  input: HttpPaymentRequest,
  fetcher: typeof fetch = fetch,
): Promise<HttpResponse> {
  const mode = input.mode ?? 'payment'
  const init = (headers: Record<string, string>): RequestInit => {
    const requestInit: RequestInit = {
      method: input.method ?? 'GET',
      headers: { ...(input.headers ?? {}), ...headers },
    }
    if (input.body !== undefined && input.body !== null) requestInit.body = input.body
    return requestInit
  }
  let response = await fetcher(input.url, init({}))
  if (mode !== 'plain' && response.status === 402) {
    const challenge = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')[0]
    if (challenge) {
      const echoed: Challenge.Challenge = { ...challenge, request: { ...challenge.request } }
      if (mode === 'mismatched_request') {
        const amount = echoed.request.amount
        echoed.request.amount =
          typeof amount === 'string' && /^\d+$/.test(amount) ? String(BigInt(amount) + 1n) : '1'
      }
      if (mode === 'invalid_challenge_id') echoed.id = `${echoed.id.slice(0, -4)}AAAA`
      const credential: Credential.Credential = { challenge: echoed, payload: input.payment?.payload ?? {} }
      if (typeof input.payment?.source === 'string') credential.source = input.payment.source
      await response.arrayBuffer().catch(() => undefined)
      response = await fetcher(input.url, init({ authorization: Credential.format(credential) }))
    }
  }
  const headers: Record<string, string> = {}
  for (const [name, value] of response.headers) headers[name] = value
  return { status: response.status, headers, body: await response.text() }
}

/**
 * Handles any adapter request, including the asynchronous flow operation; never throws.
 *
 * @example
 * ```ts
 * await handleRequest({ schema: 1, op: 'http.payment_request', input: { url, mode: 'plain' } })
 * ```
 */
export async function handleRequest(
  request: AdapterRequest,
  fetcher?: typeof fetch,
): Promise<AdapterResponse> {
  if (request?.op !== 'http.payment_request') return handle(request)
  const input = request.input as HttpPaymentRequest | null
  if (!input || typeof input.url !== 'string')
    return { ok: false, error: { type: 'http_error', message: 'input.url is required' } }
  try {
    return { ok: true, value: await paymentRequest(input, fetcher) }
  } catch (error) {
    return {
      ok: false,
      error: { type: 'http_error', message: BaseError.is(error) ? error.message : 'request failed' },
    }
  }
}
