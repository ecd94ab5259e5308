import { createHash } from 'node:crypto'
import {
  Challenge,
  ConfigurationError,
  ContentTooLargeError,
  type Credential,
  IdempotencyCache,
  InvalidChallengeError,
  Jcs,
  MalformedCredentialError,
  MultipleCredentialsError,
  ParseError,
  type PaymentError,
  type Receipt,
  ServiceUnavailableError,
} from '@mppkit/core'
import { type Handler, type Route, readBody, type Server } from '@mppkit/core/server'
import { sameAddress } from '../Authorization.js'
import { Eip2612Permit, EvmChargeRequest } from '../Methods.js'
import { svmEntries, svmTransactionOf } from '../svm/Requirement.js'
import * as Wire from '../Wire.js'
import * as X402Eip2612 from '../X402Eip2612.js'
import { maxValidityOf, requirementOf, x402Permit2Of } from './Charge.js'
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
    /**
     * `maxTimeoutSeconds` of every requirement offered (default 300): x402 clients sign authorizations
     * valid this long. Keep it at most the `maxValiditySeconds` of the `evm` charges (default 3 600):
     * above it, `x402()` throws a `ConfigurationError` (and an `evm` method it cannot see refuses each
     * x402 payment with one: 503, reported to `onError`).
     */
    maxTimeoutSeconds?: number
    /**
     * Also take x402 v1 clients: the 402 body carries `x402Version: 1` and `accepts` (as extension
     * members of the problem object) and an `X-PAYMENT` credential is paid (default false).
     */
    v1?: boolean
    /** More v1 network names → EVM chain ids, beside {@link Wire.v1Networks}. */
    networks?: Readonly<Record<string, number>>
  }
}

const addressRule = /^0x[0-9a-fA-F]{40}$/
/** How long the challenge of an x402 payment is kept for Idempotency-Key retries (the core's default record TTL). */
const paidChallengeTtlMs = 86_400_000

function problemResponse(error: PaymentError, challenges: readonly { header: string }[]): Response {
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' })
  if (error.retryAfter !== undefined)
    headers.set('retry-after', String(Math.max(0, Math.ceil(error.retryAfter))))
  for (const challenge of challenges) headers.append('www-authenticate', challenge.header)
  return new Response(JSON.stringify(error.toProblem()), { status: error.status, headers })
}

function canonical(value: unknown): string | undefined {
  try {
    return Jcs.canonicalize(value)
  } catch {
    return undefined
  }
}

function withHeaders(response: Response, extra: Record<string, string>): Response {
  const headers = new Headers(response.headers)
  for (const [name, value] of Object.entries(extra)) headers.set(name, value)
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers })
}

/**
 * The x402 settlement header of a paid request: `PAYMENT-RESPONSE` (v2) or `X-PAYMENT-RESPONSE` (v1),
 * as the request spoke. Built from the receipt alone, so a replay (whose receipt is the stored one)
 * carries what the first answer carried, without settling again.
 */
function settlementHeader(
  version: 1 | 2,
  network: string,
  receipt: Receipt.Receipt,
  from: string | undefined,
): Record<string, string> {
  const settled: Wire.SettleResponse = {
    success: true,
    transaction: receipt.reference,
    network,
    payer: (receipt.payer as string | undefined) ?? from!,
  }
  const header = version === 2 ? Wire.headers.paymentResponse : Wire.headers.v1PaymentResponse
  return { [header]: Wire.encode(settled) }
}

/** The x402 exact-EVM payload of a `PAYMENT-SIGNATURE` document, or the reason it is not one. */
function exactPayload(document: Record<string, unknown>):
  | {
      signature: string
      authorization: Record<string, string>
      /** x402's Permit2 form (`extra.assetTransferMethod: "permit2"`), checked by the method's schema. */
      permit2Authorization?: Record<string, unknown>
      /** The payer's EIP-2612 approval of Permit2 (x402's `eip2612GasSponsoring`), with the Permit2 form. */
      eip2612?: Eip2612Permit
    }
  | string {
  const payload = document.payload as Record<string, unknown> | undefined
  if (typeof payload !== 'object' || payload === null) return 'payload is missing'
  const { signature, authorization, permit2Authorization } = payload as {
    signature?: unknown
    authorization?: Record<string, unknown>
    permit2Authorization?: Record<string, unknown>
  }
  if (authorization === undefined && permit2Authorization !== undefined) {
    if (
      typeof signature !== 'string' ||
      typeof permit2Authorization !== 'object' ||
      permit2Authorization === null
    )
      return 'payload is not an exact EVM Permit2 authorization'
    if (typeof permit2Authorization.from !== 'string' || !addressRule.test(permit2Authorization.from))
      return 'permit2Authorization.from is not an address'
    // The facilitator submits a permit it finds here whether or not this server advertised the extension
    // (x402 servers pass extensions on): one that is there is read whole, to be checked by the method.
    const info = X402Eip2612.permitOf(document.extensions)
    if (info === undefined)
      return { signature, authorization: { from: permit2Authorization.from }, permit2Authorization }
    const permit = Eip2612Permit.safeParse(info)
    if (!permit.success) {
      const issue = permit.error.issues[0]
      const field = ['info', ...(issue?.path ?? []).map(String)].join('.')
      return `extensions.${X402Eip2612.extensionKey}.${field} does not fit x402's EIP-2612 permit: ${issue?.message}`
    }
    return {
      signature,
      authorization: { from: permit2Authorization.from },
      permit2Authorization,
      eip2612: permit.data,
    }
  }
  if (typeof signature !== 'string' || typeof authorization !== 'object' || authorization === null)
    return 'payload is not an exact EVM authorization'
  for (const field of ['from', 'to', 'value', 'validAfter', 'validBefore', 'nonce'])
    if (typeof authorization[field] !== 'string') return `authorization.${field} is missing`
  if (!addressRule.test(authorization.from as string)) return 'authorization.from is not an address'
  return { signature, authorization: authorization as Record<string, string> }
}

/**
 * The `authorization` credential payload of an x402 exact-EVM payment: the six EIP-3009 fields and the
 * signature, nothing else. A client's `authorization` object may carry more members (`type`, `hash`,
 * `permit`…), and none of them may turn the payment into another credential type.
 */
function authorizationPayload(exact: { signature: string; authorization: Record<string, string> }) {
  const { from, to, value, validAfter, validBefore, nonce } = exact.authorization
  return {
    type: 'authorization',
    from,
    to,
    value,
    validAfter,
    validBefore,
    nonce,
    signature: exact.signature,
  }
}

/**
 * Serves one route to MPP and x402 clients alike: the 402 carries `WWW-Authenticate: Payment` and
 * `PAYMENT-REQUIRED` (one `exact` requirement per `evm` offer); a `PAYMENT-SIGNATURE` is matched to
 * what the route offers now, then paid through the same server pipeline (binding, digest, Store,
 * settlement, receipt) as an MPP credential; the response carries `Payment-Receipt` and `PAYMENT-RESPONSE`
 * (`X-PAYMENT-RESPONSE` for v1), and so does its replay to an `Idempotency-Key` retry.
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
  // What an x402 client signs for: `validBefore` = now + this. A year is the most an `evm` charge's
  // `maxValiditySeconds` takes; each evm method refuses (503, reported) one above its own.
  if (!Number.isSafeInteger(maxTimeoutSeconds) || maxTimeoutSeconds < 1 || maxTimeoutSeconds > 31_536_000)
    throw new ConfigurationError('x402: maxTimeoutSeconds must be a whole number of seconds, 1 to 31 536 000')
  // Checked at start too: an x402 client signs `validBefore` = now + maxTimeoutSeconds, which an `evm`
  // charge with a shorter maxValiditySeconds refuses on every payment.
  for (const method of server.methods ?? []) {
    const maxValidity = maxValidityOf.get(method)
    if (maxValidity !== undefined && maxTimeoutSeconds > maxValidity)
      throw new ConfigurationError(
        `x402: maxTimeoutSeconds (${maxTimeoutSeconds}) is above the evm charge's maxValiditySeconds (${maxValidity}): raise maxValiditySeconds or lower maxTimeoutSeconds`,
      )
  }

  // The chains and tokens whose `evm` methods also take x402's Permit2 transfer method.
  const permit2Assets = (server.methods ?? []).flatMap((method) => {
    const asset = x402Permit2Of.get(method)
    return asset ? [asset] : []
  })
  const permit2AssetOf = (request: EvmChargeRequest) =>
    permit2Assets.find(
      (asset) =>
        asset.chainId === request.methodDetails.chainId && sameAddress(asset.currency, request.currency),
    )

  /** The x402 requirements of the `evm` challenges among `WWW-Authenticate` values. */
  const v1Names = new Map<number, string>()
  for (const [name, id] of Object.entries({ ...Wire.v1Networks, ...options.networks }))
    if (!v1Names.has(id)) v1Names.set(id, name)

  const requirements = (challenges: readonly Challenge.Challenge[], url: string) =>
    challenges.flatMap((challenge) => {
      if (challenge.method === 'solana' && challenge.intent === 'charge')
        return svmEntries(challenge, url, maxTimeoutSeconds)
      if (challenge.method !== 'evm' || challenge.intent !== 'charge') return []
      const request = EvmChargeRequest.safeParse(challenge.request)
      if (!request.success) return []
      // x402 `exact` on EVM is an EIP-3009 authorization, or x402's Permit2 form where the method takes it
      // (`x402Permit2`, a second requirement after the EIP-3009 one). Splits have no x402 form, so such
      // offers are MPP-only.
      const { credentialTypes, eip712, splits } = request.data.methodDetails
      if (splits?.length) return []
      const asset = permit2AssetOf(request.data)
      // With EIP-2612 gas sponsoring, `extra` names the token's EIP-712 domain (x402 clients sign the
      // permit under it, and sign none without it), as `@x402/evm` servers do for such tokens.
      const permit2 = asset
        ? [
            {
              challenge,
              requirement: {
                ...requirementOf(request.data, maxTimeoutSeconds),
                extra: { assetTransferMethod: 'permit2', ...asset.eip2612 } as Record<string, unknown>,
              },
              // x402 v1 has no Permit2 transfer method.
              v1: undefined,
              permit2: true,
              eip2612: asset.eip2612 !== undefined,
            },
          ]
        : []
      if (!eip712 || !(credentialTypes ?? []).includes('authorization')) return permit2
      const requirement = requirementOf(request.data, maxTimeoutSeconds)
      const name = v1Names.get(request.data.methodDetails.chainId)
      const v1 =
        name === undefined
          ? undefined
          : {
              scheme: 'exact',
              network: name,
              maxAmountRequired: requirement.amount,
              resource: url,
              description: challenge.description ?? '',
              mimeType: '',
              payTo: requirement.payTo,
              maxTimeoutSeconds,
              asset: requirement.asset,
              extra: requirement.extra,
            }
      return [{ challenge, requirement, v1, permit2: false, eip2612: false }, ...permit2]
    })

  const paymentRequired = (request: Request, challenges: readonly Challenge.Challenge[], error?: string) => {
    const document: Record<string, unknown> = { x402Version: 2 }
    if (error !== undefined) document.error = error
    document.resource = { url: request.url }
    const entries = requirements(challenges, request.url)
    document.accepts = entries.map((entry) => entry.requirement)
    // "A Facilitator advertises support for this extension by including the `eip2612GasSponsoring` key in
    // the `extensions` object of the `402 Payment Required` response."
    if (entries.some((entry) => 'eip2612' in entry && entry.eip2612))
      document.extensions = { [X402Eip2612.extensionKey]: X402Eip2612.declaration }
    return Wire.encode(document)
  }

  // Adds PAYMENT-REQUIRED (and, with v1, the v1 members of the problem body) to a 402 that offers
  // challenges.
  const advertise = async (request: Request, response: Response, error?: string) => {
    if (response.status !== 402) return response
    let challenges: Challenge.Challenge[] = []
    try {
      challenges = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
    } catch {}
    if (challenges.length === 0) return response
    const extra = { [Wire.headers.paymentRequired]: paymentRequired(request, challenges, error) }
    if (!options.v1) return withHeaders(response, extra)
    // RFC 9457 problem objects may carry extension members: x402 v1 clients read these two.
    const accepts = requirements(challenges, request.url).flatMap((entry) => (entry.v1 ? [entry.v1] : []))
    let problem: Record<string, unknown> = {}
    try {
      problem = JSON.parse(await response.clone().text()) as Record<string, unknown>
    } catch {
      return withHeaders(response, extra)
    }
    const body = JSON.stringify({ ...problem, x402Version: 1, error: error ?? problem.detail, accepts })
    const headers = new Headers(response.headers)
    for (const [name, value] of Object.entries(extra)) headers.set(name, value)
    return new Response(body, { status: 402, headers })
  }

  /** Store key of the challenge an x402 payment (its signed payload) was paid under. */
  const paidChallengeKey = (payload: unknown): string | undefined => {
    const text = canonical(payload)
    if (text === undefined) return undefined
    return `x402:paid-challenge:${createHash('sha256').update(`${server.realm}\n${text}`).digest('base64url')}`
  }
  const paidChallenge = async (key: string): Promise<Challenge.Challenge | undefined> => {
    const stored = await server.store.get(key).catch(() => undefined)
    if (stored === undefined) return undefined
    try {
      const challenge = JSON.parse(stored) as Challenge.Challenge
      return typeof challenge?.id === 'string' && typeof challenge.method === 'string' ? challenge : undefined
    } catch {
      return undefined
    }
  }

  const protect = (route: Route, handler: Handler) => {
    const mpp = server.protect(route, handler)
    const refuse = async (request: Request, error: PaymentError) =>
      advertise(request, await server.challenge(request, route, error), error.detail)

    // Expected failures are problems already; anything left is a 503, never a 500 or a stack trace.
    return async (request: Request): Promise<Response> => {
      try {
        return await serve(request)
      } catch {
        return problemResponse(
          new ServiceUnavailableError({ detail: 'The payment could not be processed.' }),
          [],
        )
      }
    }

    async function serve(request: Request): Promise<Response> {
      const v2 = request.headers.get(Wire.headers.paymentSignature)
      const v1 = options.v1 ? request.headers.get(Wire.headers.v1Payment) : null
      if (v2 === null && v1 === null) return advertise(request, await mpp(request))
      // A request carrying an MPP credential and an x402 one (or two x402 ones) is ambiguous: pay none.
      if (/^\s*payment\s/i.test(request.headers.get('authorization') ?? '') || (v2 !== null && v1 !== null))
        return refuse(
          request,
          new MultipleCredentialsError({
            detail: 'Send exactly one credential: Payment, PAYMENT-SIGNATURE or X-PAYMENT.',
          }),
        )
      const version = v2 !== null ? 2 : 1
      const name = version === 2 ? Wire.headers.paymentSignature : Wire.headers.v1Payment
      let document: Record<string, unknown>
      try {
        document = Wire.decode((v2 ?? v1)!)
      } catch (cause) {
        const detail = cause instanceof ParseError ? cause.message : 'the header could not be decoded'
        return refuse(request, new MalformedCredentialError({ detail: `${name}: ${detail}.` }))
      }
      // Nothing deeper than the core reads anywhere (Jcs.maxDepth): such a document is refused here, not
      // forwarded to a facilitator whose JSON encoder would overflow its stack on it.
      if (canonical(document) === undefined)
        return refuse(request, new MalformedCredentialError({ detail: `${name} nests too deeply.` }))
      // x402 `exact` on Solana: the payload is the partially signed transaction alone.
      const transaction = svmTransactionOf(document)
      const exact =
        transaction !== undefined
          ? { signature: '', authorization: {} as Record<string, string> }
          : exactPayload(document)
      const problem =
        typeof exact === 'string'
          ? exact
          : document.x402Version !== version
            ? `x402Version is not ${version}`
            : version === 1 && (document.scheme !== 'exact' || typeof document.network !== 'string')
              ? 'scheme/network are not exact on a known network'
              : version === 1 && exact.permit2Authorization !== undefined
                ? 'x402 v1 has no Permit2 transfer method'
                : undefined
      if (problem !== undefined || typeof exact === 'string')
        return refuse(
          request,
          new MalformedCredentialError({ detail: `${name} is not an x402 exact payment: ${problem}.` }),
        )
      // v2 `resource` is an object whose `url` names what was paid for: anything else is not that.
      const resource = document.resource as { url?: unknown } | undefined
      if (
        resource !== undefined &&
        (typeof resource !== 'object' || resource === null || Array.isArray(resource))
      )
        return refuse(
          request,
          new MalformedCredentialError({ detail: `${name}: resource is not an object.` }),
        )
      if (resource?.url !== undefined && resource.url !== request.url)
        return refuse(request, new InvalidChallengeError({ detail: 'The payment names another resource.' }))

      // What the route offers now, for this request (its body bound by digest where the route does).
      // Read with the core's bounded reader: past maxBodyBytes it stops reading from the client (a
      // declared or streamed excess alike) and the request is a 413, never buffered whole.
      let body: Uint8Array | undefined
      try {
        body = await readBody(request, server.maxBodyBytes)
      } catch (cause) {
        if (cause instanceof ContentTooLargeError) return problemResponse(cause, [])
        throw cause
      }
      const offered = await server.issueChallenges({ request, body, route })
      const entries = requirements(
        offered.challenges.map((issued) => issued.challenge),
        request.url,
      )
      let match: (typeof entries)[number] | undefined
      if (version === 2) {
        // "checked against what the route offers now (deep-equal requirement)", and paid in the form that
        // requirement names (an EIP-3009 authorization, or x402's Permit2 form).
        const wanted = canonical(document.accepted)
        const permit2 = exact.permit2Authorization !== undefined
        match = entries.find(
          (entry) =>
            wanted !== undefined &&
            canonical(entry.requirement) === wanted &&
            ('permit2' in entry && entry.permit2) === permit2,
        )
      } else {
        // v1 names only scheme and network: the offer on that network paying this recipient and amount.
        const onNetwork = entries.filter((entry) => entry.v1?.network === document.network)
        match =
          onNetwork.find(
            (entry) =>
              entry.requirement.amount === exact.authorization.value &&
              entry.requirement.payTo.toLowerCase() === exact.authorization.to?.toLowerCase(),
          ) ?? onNetwork[0]
      }
      if (!match)
        return refuse(
          request,
          new InvalidChallengeError({ detail: 'The accepted requirement is not offered here now.' }),
        )

      // An x402 client signs no challenge, so each request gets a fresh one, and the core keys
      // Idempotency-Key records on (key, challenge id): a retry (same key, same PAYMENT-SIGNATURE) is
      // given back the challenge its payment was made under, so it finds its record (§11.5: "the server
      // SHOULD return the same response as the original successful request").
      const idempotencyKey = request.headers.get('idempotency-key')
      const paidUnder = idempotencyKey ? paidChallengeKey(document.payload) : undefined
      const earlier = paidUnder === undefined ? undefined : await paidChallenge(paidUnder)
      const credential: Credential.Credential = {
        challenge:
          earlier?.method === match.challenge.method && earlier.intent === match.challenge.intent
            ? earlier
            : match.challenge,
        payload:
          transaction !== undefined
            ? { type: 'transaction', transaction }
            : exact.permit2Authorization !== undefined
              ? {
                  type: 'x402-permit2',
                  permit2Authorization: exact.permit2Authorization,
                  signature: exact.signature,
                  ...(exact.eip2612 ? { eip2612: exact.eip2612 } : {}),
                }
              : authorizationPayload(exact),
      }
      // A facilitator is given the payment as v2, whatever version the client spoke.
      relayed.set(
        credential,
        version === 2
          ? { requirement: document.accepted as Record<string, unknown>, document }
          : {
              requirement: match.requirement,
              document: { x402Version: 2, accepted: match.requirement, payload: document.payload },
            },
      )
      const outcome = await server.authorizePayment({
        request,
        body,
        route,
        credential,
        idempotencyKey,
      })
      const network = version === 2 ? match.requirement.network : (document.network as string)
      const settlement = (receipt: Receipt.Receipt) =>
        settlementHeader(version, network, receipt, exact.authorization.from)
      // The stored response is what the handler answered, with Payment-Receipt: the x402 settlement
      // header is added again, from the stored receipt, so an x402 client reads its settlement on the
      // replay too (§11.5: "the same response as the original successful request").
      if (outcome.status === 'replay')
        return withHeaders(IdempotencyCache.restore(outcome.response), settlement(outcome.receipt))
      if (outcome.status === 'problem')
        return advertise(request, problemResponse(outcome.error, outcome.challenges), outcome.error.detail)
      // Best effort: without it a retry is refused as a used authorization, as before; the payment is
      // settled already, so a Store failure here must not turn into a 503.
      if (paidUnder !== undefined && earlier === undefined)
        await server.store
          .set(paidUnder, JSON.stringify(credential.challenge), paidChallengeTtlMs)
          .catch(() => {})
      let response: Response
      try {
        response = outcome.response ?? (await handler(request, outcome.payment))
      } catch (cause) {
        // Settled, then the handler failed: the 500 asks for a retry with the same Idempotency-Key, and
        // carries the settlement (the x402 client learns what it paid, with which transaction).
        return withHeaders(await outcome.fail(cause), settlement(outcome.payment.receipt))
      }
      const paid = outcome.idempotent ? await outcome.finalize(response) : outcome.decorate(response)
      return withHeaders(paid, settlement(outcome.payment.receipt))
    }
  }

  return { protect }
}
