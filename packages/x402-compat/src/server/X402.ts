import {
  Challenge,
  type Credential,
  IdempotencyCache,
  InvalidChallengeError,
  Jcs,
  MalformedCredentialError,
  MultipleCredentialsError,
  ParseError,
  type PaymentError,
} from '@mppkit/core'
import type { Handler, Route, Server } from '@mppkit/core/server'
import { EvmChargeRequest } from '../Methods.js'
import * as Wire from '../Wire.js'
import { requirementOf } from './Charge.js'
import { relayed } from './Relayed.js'

/**
 * Options of {@link x402}.
 *
 * @example
 * ```ts
 * const options: x402.Options = { maxTimeoutSeconds: 120 }
 * ```
 */
export declare namespace x402 {
  type Options = {
    /** `maxTimeoutSeconds` of every requirement offered (default 300). */
    maxTimeoutSeconds?: number
  }
}

const addressRule = /^0x[0-9a-fA-F]{40}$/

function problemResponse(error: PaymentError, challenges: readonly { header: string }[]): Response {
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' })
  if (error.retryAfter !== undefined)
    headers.set('retry-after', String(Math.max(0, Math.ceil(error.retryAfter))))
  for (const challenge of challenges) headers.append('www-authenticate', challenge.header)
  return new Response(JSON.stringify(error.toProblem()), { status: error.status, headers })
}

function withHeaders(response: Response, extra: Record<string, string>): Response {
  const headers = new Headers(response.headers)
  for (const [name, value] of Object.entries(extra)) headers.set(name, value)
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers })
}

/** The x402 v2 exact-EVM payload of a `PAYMENT-SIGNATURE` document, or the reason it is not one. */
function exactPayload(
  document: Record<string, unknown>,
): { signature: string; authorization: Record<string, string> } | string {
  const payload = document.payload as Record<string, unknown> | undefined
  if (typeof payload !== 'object' || payload === null) return 'payload is missing'
  const { signature, authorization } = payload as {
    signature?: unknown
    authorization?: Record<string, unknown>
  }
  if (typeof signature !== 'string' || typeof authorization !== 'object' || authorization === null)
    return 'payload is not an exact EVM authorization'
  for (const field of ['from', 'to', 'value', 'validAfter', 'validBefore', 'nonce'])
    if (typeof authorization[field] !== 'string') return `authorization.${field} is missing`
  if (!addressRule.test(authorization.from as string)) return 'authorization.from is not an address'
  return { signature, authorization: authorization as Record<string, string> }
}

/**
 * Serves one route to MPP and x402 clients alike: the 402 carries `WWW-Authenticate: Payment` and
 * `PAYMENT-REQUIRED` (one `exact` requirement per `evm` offer); a `PAYMENT-SIGNATURE` is matched to
 * what the route offers now, then paid through the same server pipeline (binding, digest, Store,
 * settlement, receipt) as an MPP credential; the response carries `Payment-Receipt` and `PAYMENT-RESPONSE`.
 *
 * @example
 * ```ts
 * import { charge, x402 } from '@mppkit/x402-compat/server'
 * const server = Server.create({ realm, secrets, methods: [charge({ chainId, currency, recipient, domain, facilitator })] })
 * const handler = x402(server).protect({ offers: [{ method: 'evm', request: { amount: '1000' } }] }, () => new Response('ok'))
 * ```
 * @see draft-evm-charge-00 §"Authorization Verification"
 */
export function x402(server: Server.Server, options: x402.Options = {}) {
  const maxTimeoutSeconds = options.maxTimeoutSeconds ?? 300

  /** The x402 requirements of the `evm` challenges among `WWW-Authenticate` values. */
  const requirements = (challenges: readonly Challenge.Challenge[]) =>
    challenges.flatMap((challenge) => {
      if (challenge.method !== 'evm' || challenge.intent !== 'charge') return []
      const request = EvmChargeRequest.safeParse(challenge.request)
      if (!request.success) return []
      return [{ challenge, requirement: requirementOf(request.data, maxTimeoutSeconds) }]
    })

  const paymentRequired = (request: Request, challenges: readonly Challenge.Challenge[], error?: string) => {
    const document: Record<string, unknown> = { x402Version: 2 }
    if (error !== undefined) document.error = error
    document.resource = { url: request.url }
    document.accepts = requirements(challenges).map((entry) => entry.requirement)
    return Wire.encode(document)
  }

  // Adds PAYMENT-REQUIRED to a 402 that offers challenges.
  const advertise = (request: Request, response: Response, error?: string) => {
    if (response.status !== 402) return response
    let challenges: Challenge.Challenge[] = []
    try {
      challenges = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
    } catch {}
    if (challenges.length === 0) return response
    return withHeaders(response, {
      [Wire.headers.paymentRequired]: paymentRequired(request, challenges, error),
    })
  }

  const protect = (route: Route, handler: Handler) => {
    const mpp = server.protect(route, handler)
    const refuse = async (request: Request, error: PaymentError) =>
      advertise(request, await server.challenge(request, route, error), error.detail)

    return async (request: Request): Promise<Response> => {
      const signature = request.headers.get(Wire.headers.paymentSignature)
      if (signature === null) return advertise(request, await mpp(request))
      // A request carrying an MPP credential and an x402 one is ambiguous: pay neither.
      if (/^\s*payment\s/i.test(request.headers.get('authorization') ?? ''))
        return refuse(
          request,
          new MultipleCredentialsError({
            detail: 'Send either a Payment credential or PAYMENT-SIGNATURE, not both.',
          }),
        )
      let document: Record<string, unknown>
      try {
        document = Wire.decode(signature)
      } catch (cause) {
        const detail = cause instanceof ParseError ? cause.message : 'PAYMENT-SIGNATURE could not be decoded'
        return refuse(request, new MalformedCredentialError({ detail: `${detail}.` }))
      }
      const exact = exactPayload(document)
      if (document.x402Version !== 2 || typeof exact === 'string')
        return refuse(
          request,
          new MalformedCredentialError({
            detail: `PAYMENT-SIGNATURE is not an x402 v2 exact payment: ${typeof exact === 'string' ? exact : 'x402Version'}.`,
          }),
        )
      const resource = document.resource as { url?: unknown } | undefined
      if (resource?.url !== undefined && resource.url !== request.url)
        return refuse(request, new InvalidChallengeError({ detail: 'The payment names another resource.' }))

      // What the route offers now, for this request (its body bound by digest where the route does).
      let body: Uint8Array | undefined
      if (request.body !== null && request.method !== 'GET' && request.method !== 'HEAD') {
        const bytes = new Uint8Array(await request.clone().arrayBuffer())
        if (bytes.byteLength > server.maxBodyBytes) return mpp(request)
        if (bytes.byteLength > 0) body = bytes
      }
      const offered = await server.issueChallenges({ request, body, route })
      const accepted = document.accepted
      const canonical = (value: unknown) => {
        try {
          return Jcs.canonicalize(value)
        } catch {
          return undefined
        }
      }
      const wanted = canonical(accepted)
      const match = requirements(offered.challenges.map((issued) => issued.challenge)).find(
        (entry) => wanted !== undefined && canonical(entry.requirement) === wanted,
      )
      // "checked against what the route offers now (deep-equal requirement)".
      if (!match)
        return refuse(
          request,
          new InvalidChallengeError({ detail: 'The accepted requirement is not offered here now.' }),
        )

      const credential: Credential.Credential = {
        challenge: match.challenge,
        payload: { type: 'authorization', ...exact.authorization, signature: exact.signature },
      }
      relayed.set(credential, { requirement: accepted as Record<string, unknown>, document })
      const outcome = await server.authorizePayment({
        request,
        body,
        route,
        credential,
        idempotencyKey: request.headers.get('idempotency-key'),
      })
      if (outcome.status === 'replay') return IdempotencyCache.restore(outcome.response)
      if (outcome.status === 'problem') {
        const response = problemResponse(outcome.error, outcome.challenges)
        return advertise(request, response, outcome.error.detail)
      }
      let response: Response
      try {
        response = outcome.response ?? (await handler(request, outcome.payment))
      } catch (cause) {
        return outcome.fail(cause)
      }
      const paid = outcome.idempotent ? await outcome.finalize(response) : outcome.decorate(response)
      const settled: Wire.SettleResponse = {
        success: true,
        transaction: outcome.payment.receipt.reference,
        network: match.requirement.network,
        payer: exact.authorization.from!,
      }
      return withHeaders(paid, { [Wire.headers.paymentResponse]: Wire.encode(settled) })
    }
  }

  return { protect }
}
