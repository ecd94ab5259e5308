import * as Credential from '../Credential.js'
import {
  BaseError,
  ContentTooLargeError,
  MultipleCredentialsError,
  PaymentError,
  ServiceUnavailableError,
} from '../Errors.js'
import * as IdempotencyCache from '../IdempotencyCache.js'
import type { Outcome, PaymentInput } from './Authorize.js'
import type { Core } from './Core.js'
import { type ChallengeInput, type Problem, paymentRequired } from './Issuance.js'
import type { CompiledRoute, Route } from './Offers.js'
import { type Handler, isServable, type Paid } from './Paid.js'
import * as Problems from './Problems.js'

/** The outcome of `server.authorize` over HTTP: a response to send, or a paid request to serve. */
export type Authorization = { status: 'respond'; response: Response } | Paid

/**
 * The Payment credentials of a request, from every header the route's offers name (`Authorization` by
 * default, or an offer's `header`), as raw base64url tokens. Other schemes (a Bearer API key) are ignored.
 *
 * @example
 * ```ts
 * credentials(request.headers, ['payment-authorization']) // ['eyJj…']
 * ```
 * @see draft-httpauth-payment-00 §5.2
 */
export function credentials(headers: Headers, names: readonly string[]): string[] {
  if (names.length === 1) return Credential.extract(headers.get(names[0]!))
  return names.flatMap((name) => Credential.extract(headers.get(name)))
}

/**
 * Reads a request body for the digest binding (a clone, so the handler can still read it), refusing
 * more than `maxBytes` with a `ContentTooLargeError` (413) before buffering it. GET/HEAD and empty
 * bodies are undefined.
 *
 * @example
 * ```ts
 * const body = await readBody(request, 1 << 20)
 * ```
 */
export async function readBody(request: Request, maxBytes: number): Promise<Uint8Array | undefined> {
  if (request.body === null || request.method === 'GET' || request.method === 'HEAD') return undefined
  const tooLarge = () => new ContentTooLargeError({ detail: `The request body exceeds ${maxBytes} bytes.` })
  const declared = Number(request.headers.get('content-length') ?? Number.NaN)
  if (declared > maxBytes) throw tooLarge()
  const reader = request.clone().body!.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > maxBytes) {
      // Both branches of the clone are cancelled (a tee branch's cancel settles only with the other's),
      // which stops the source: nothing more is read from the client.
      void reader.cancel().catch(() => {})
      void request.body?.cancel().catch(() => {})
      throw tooLarge()
    }
    chunks.push(value)
  }
  if (total === 0) return undefined
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
}

// Node's codes for a connection the client closed or reset before the body ended: `aborted`
// (ECONNRESET) from node:http's IncomingMessage, which Readable.toWeb and the Hono/Express adapters
// pass through unchanged, and a stream's premature close.
const clientGoneCodes = new Set(['ECONNRESET', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE'])

/**
 * Whether a failed body read is the client going away (the request's signal aborted, or the connection
 * was closed or reset mid-body) rather than a server fault worth reporting.
 *
 * @example
 * ```ts
 * if (!clientWentAway(request, cause)) core.report(cause, 'challenge')
 * ```
 */
export function clientWentAway(request: Request, cause: unknown): boolean {
  if (request.signal.aborted) return true
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined
  return typeof code === 'string' && clientGoneCodes.has(code)
}

/** Renders a transport-neutral outcome for HTTP. */
export function toAuthorization(outcome: Outcome): Authorization {
  if (outcome.status === 'paid') return outcome
  if (outcome.status === 'replay')
    return { status: 'respond', response: IdempotencyCache.restore(outcome.response) }
  return { status: 'respond', response: Problems.render(outcome) }
}

/** What the HTTP transport needs from the server. */
export type Dependencies = {
  core: Core
  compile: (route: Route) => CompiledRoute
  refuse: (compiled: CompiledRoute, input: ChallengeInput, error?: PaymentError) => Problem | Promise<Problem>
  authorize: (compiled: CompiledRoute, input: PaymentInput) => Promise<Outcome>
}

/**
 * The HTTP transport over the payment pipeline: the credential comes from the header(s) the route's
 * offers name, challenges render as `WWW-Authenticate` fields of a problem+json response, and the
 * receipt is the `Payment-Receipt` header of a 2xx.
 *
 * @example
 * ```ts
 * const http = Http.transport(dependencies)
 * const authorization = await http.authorize(request, route)
 * ```
 * @see draft-httpauth-payment-00 §4–§5
 */
export function transport(dependencies: Dependencies) {
  const { core, compile, refuse } = dependencies

  /** Body and preferences of a request, or the problem of a body that could not be read. */
  const inputOf = async (request: Request): Promise<ChallengeInput | PaymentError> => {
    let body: Uint8Array | undefined
    if (request.body !== null) {
      try {
        body = await readBody(request, core.maxBodyBytes)
      } catch (cause) {
        if (PaymentError.is(cause)) return cause
        // A client that went away mid-body is no server fault: answered the same, but not reported.
        if (!clientWentAway(request, cause)) core.report(cause, 'challenge')
        return new ServiceUnavailableError({ detail: 'Could not read the request body' })
      }
    }
    return { request, body, acceptPayment: request.headers.get('accept-payment') }
  }

  const respond = async (
    compiled: CompiledRoute,
    input: ChallengeInput,
    error: PaymentError,
  ): Promise<Authorization> => ({
    status: 'respond',
    response: Problems.render(await refuse(compiled, input, error)),
  })

  const challenge = async (request: Request, route: Route, error: PaymentError = paymentRequired) => {
    const compiled = compile(route)
    // Fast path: no body to digest needs no awaits for static offers.
    if (request.body === null)
      return Problems.render(
        await refuse(compiled, { request, acceptPayment: request.headers.get('accept-payment') }, error),
      )
    const input = await inputOf(request)
    if (PaymentError.is(input)) return Problems.toResponse(input)
    return Problems.render(await refuse(compiled, input, error))
  }

  const authorize = async (request: Request, route: Route): Promise<Authorization> => {
    const compiled = compile(route)
    const tokens = credentials(request.headers, compiled.headers)
    if (tokens.length === 0) return { status: 'respond', response: await challenge(request, route) }
    // Without a body there is nothing to read: no await.
    const input = request.body === null ? undefined : await inputOf(request)
    if (PaymentError.is(input)) return { status: 'respond', response: Problems.toResponse(input) }
    const paymentInput: PaymentInput = {
      route,
      request,
      body: input?.body,
      acceptPayment: request.headers.get('accept-payment'),
      credential: tokens[0]!,
      idempotencyKey: request.headers.get('idempotency-key'),
    }
    // "Servers receiving multiple Payment credentials in a single request SHOULD reject with 400" (§A)
    if (tokens.length > 1)
      return respond(
        compiled,
        paymentInput,
        new MultipleCredentialsError({ detail: 'Send exactly one Payment credential.' }),
      )
    return toAuthorization(await dependencies.authorize(compiled, paymentInput))
  }

  const protect = (route: Route, handler: Handler) => {
    compile(route)
    return async (request: Request): Promise<Response> => {
      let authorization: Authorization
      try {
        authorization = await authorize(request, route)
      } catch (cause) {
        // Defensive: authorize maps every expected failure itself; anything left is a 503, not a 500.
        core.report(cause, 'verify')
        return Problems.toResponse(
          BaseError.is(cause) && PaymentError.is(cause) ? cause : new ServiceUnavailableError(),
        )
      }
      if (authorization.status === 'respond') return authorization.response
      let response: Response
      try {
        response = authorization.response ?? (await handler(request, authorization.payment))
      } catch (cause) {
        return authorization.fail(cause)
      }
      // A network error (`Response.error()`, status 0) or a non-Response cannot carry a receipt: the paid
      // request failed to deliver, which fail() records for an Idempotency-Key retry.
      if (!isServable(response))
        return authorization.fail(new TypeError('the route handler did not return a servable Response'))
      // Without an idempotency record to write, the receipt headers are added synchronously.
      return authorization.idempotent ? authorization.finalize(response) : authorization.decorate(response)
    }
  }

  return { authorize, challenge, protect }
}
