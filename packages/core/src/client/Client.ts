import * as AcceptPayment from '../AcceptPayment.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { BaseError, ConfigurationError, PolicyError, problemBase } from '../Errors.js'
import * as Expires from '../Expires.js'
import { mayHaveSettled } from '../internal/settled.js'
import type * as Method from '../Method.js'
import type * as Receipt from '../Receipt.js'
import * as Registry from '../Registry.js'
import { Ledger, type Policy } from './Policy.js'
import { credentialHeader, mpp, type Protocol } from './Protocol.js'

/** True when a payment error says money may have moved (a booking to keep, a retry to refuse). */
export { mayHaveSettled }

/**
 * Options of {@link create}.
 *
 * @example
 * ```ts
 * const options: Options = { methods: [tempo({ account, rpcUrl })], policy: { currencies: [usd], maxAmount: 100n } }
 * ```
 */
export type Options = {
  /** Methods this client can pay with, in preference order. */
  methods: readonly Method.Client[]
  /** Spend policy checked before any payload is created (validated here: see `Ledger`). */
  policy?: Policy
  /** Where challenges are read from and credentials sent, in preference order (default `[mpp]`). */
  protocols?: readonly Protocol[]
  /** Underlying fetch (default: global fetch). */
  fetch?: typeof fetch
  /** Send `Accept-Payment` built from `methods` (default true). */
  acceptPayment?: boolean
  /**
   * Add an `Idempotency-Key` to every paid request unless the caller set one (default true): GET, HEAD
   * and OPTIONS included for a `charge` (a session's requests by those methods get none: each voucher
   * pays one small price, and the server would store every response). It is what lets a server serve a settled payment again when its response failed
   * (see `fetch`: the one resend after a `handler-failed` answer); without it, that resend is refused
   * as a used credential by servers that keep no other record.
   */
  idempotencyKeys?: boolean
  /**
   * Pay over plain `http:` to hosts other than loopback (default false: "Clients MUST NOT send Payment
   * credentials over unencrypted HTTP").
   */
  allowInsecureTransport?: boolean
  /**
   * Called after each successful payment, with its receipt (never one naming another challenge). Within
   * `fetch`, an exception it throws is ignored: the paid response is still returned, since losing it
   * would invite paying again.
   */
  onReceipt?: (receipt: Receipt.Receipt, challenge: Challenge.Challenge) => void
  /**
   * When the paid retry is answered 503 with `Retry-After` (the rail was unavailable: the server
   * released the challenge and settled nothing), or 402 with `Retry-After` (the rail has not finished
   * the payment yet, e.g. a Stripe PaymentIntent still `processing`), send the same credential again
   * this many times
   * (default 2), waiting what `Retry-After` asks up to `maxRetryDelay` seconds. The same credential is
   * never charged twice: the server consumes a challenge once, and rails settle idempotently per
   * challenge (Stripe replays the PaymentIntent). Never once the challenge has expired, nor when the
   * wait would outlast it. When the retries run out on such an answer (or it asks for a longer wait
   * than `maxRetryDelay`, or one the challenge would not outlive), `fetch` throws `PaymentFailedError`
   * with code `outcome-pending` and `mayHaveSettled` true, the payment kept booked: it may still go
   * through, and fetching again would pay a second time.
   */
  retries?: number
  /** Longest `Retry-After` (seconds) worth waiting for before a retry (default 5). */
  maxRetryDelay?: number
}

/**
 * What {@link Client.pay} is told about the payment.
 *
 * @example
 * ```ts
 * const options: PayOptions = { url: 'mcp://weather.example/tools/forecast' }
 * ```
 */
export type PayOptions = {
  /** What is being paid for: the URL, or the transport's name for it (e.g. `mcp://server/tool`). */
  url: string
  signal?: AbortSignal
}

/**
 * A credential ready to send, for the challenge the client chose, booked in the ledger.
 *
 * @example
 * ```ts
 * const payment = await client.pay(challenges, { url })
 * request.headers.set(payment.header, payment.authorization)
 * ```
 * @see draft-httpauth-payment-00 §5.2
 */
export type Payment = {
  challenge: Challenge.Challenge
  credential: Credential.Credential
  /** The credential as a Payment-scheme field value, `Payment <base64url>`. */
  authorization: string
  /** The HTTP header it goes in: the challenge's `header` parameter, else `Authorization`. */
  header: string
  /** The price the ledger booked. */
  quote: Method.Quote
  /**
   * Hands back the receipt the transport returned (feeds the method, e.g. a session's spent amount, then
   * `onReceipt`). Only the first receipt of this payment counts: one whose `challengeId` names another
   * challenge is ignored.
   */
  receipt(receipt: Receipt.Receipt): void
}

/**
 * A paying client.
 *
 * @example
 * ```ts
 * const client: Client = Client.create({ methods })
 * ```
 */
export type Client = {
  /**
   * Like `fetch`, paying a 402 once with the best acceptable challenge. When the paid request fails
   * after its credential left (a dropped connection, an abort), it throws `PaymentFailedError` (code
   * `outcome-unknown`, `mayHaveSettled` true, the failure as `cause`): the payment may have gone through.
   * When the server still answers 402 or 503 with `Retry-After` once the resends of the same credential
   * are over (a payment the rail has not finished, see `retries`), it throws `PaymentFailedError` (code
   * `outcome-pending`, `mayHaveSettled` true, that answer as `response`). A 402 without `Retry-After` (a
   * refusal) is returned as is. When the server answers the paid request 500 `handler-failed` (it settled
   * the payment, then its handler failed), the same credential is sent once more with the same
   * `Idempotency-Key` (never a new payment, never once the challenge has expired), which such a server
   * answers by running the handler again without settling again; when that fails too (or cannot be
   * sent), it throws `PaymentFailedError` (code `handler-failed`, `mayHaveSettled` true, the last answer
   * as `response`).
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>
  /**
   * Picks the best challenge it can and may pay and creates its credential, under the same ledger and
   * policy as `fetch`: the seam for transports other than HTTP (e.g. MCP, whose challenges arrive in a
   * JSON-RPC error). Throws `PolicyError` when the policy refused every candidate and
   * `PaymentFailedError` (code `no-payable-challenge`) when no method matches.
   */
  pay(challenges: readonly Challenge.Challenge[], options: PayOptions): Promise<Payment>
  /** The policy ledger (spent amounts). */
  readonly ledger: Ledger
}

/**
 * Client-side failure creating or sending a payment (the rail refused, the server answered oddly).
 *
 * @example
 * ```ts
 * throw new PaymentFailedError('tempo: the payment transaction reverted')
 * ```
 */
export class PaymentFailedError extends BaseError {
  override name = 'PaymentFailedError'
  /**
   * True when the failure came after the rail may already have moved money (a transaction broadcast but
   * not confirmed, a Lightning payment whose outcome the node did not report): the client keeps such a
   * payment booked against its spend policy, so retrying cannot pay past a limit. False when nothing
   * was sent.
   */
  readonly mayHaveSettled: boolean
  /** The challenge that was paid, when a credential was created (the id a rail records, for reconciling). */
  readonly challenge: Challenge.Challenge | undefined
  /**
   * The server's last answer to the paid request, its body unread, when that answer left the outcome open
   * (code `outcome-pending`: a 402 or 503 with `Retry-After`) or said the payment was settled but not
   * delivered (code `handler-failed`).
   */
  readonly response: Response | undefined
  constructor(
    message: string,
    options: {
      code?: string
      cause?: unknown
      mayHaveSettled?: boolean
      challenge?: Challenge.Challenge
      response?: Response
    } = {},
  ) {
    super(message, options)
    this.mayHaveSettled = options.mayHaveSettled === true
    this.challenge = options.challenge
    this.response = options.response
  }
}

// The receipts of responses `fetch` returned after paying: `null` where it refused the one the response
// carried (not 2xx, another origin, another challenge).
const receipts = new WeakMap<Response, Receipt.Receipt | null>()

/**
 * The decoded `Payment-Receipt` of a response returned by {@link Client.fetch} (or parsed from the header
 * of another 2xx response), or `undefined`: never one the client refused to credit (on a non-2xx
 * answer, from another origin, or naming another challenge than the one paid).
 *
 * @example
 * ```ts
 * const response = await client.fetch(url)
 * console.log(receipt(response)?.reference)
 * ```
 */
export function receipt(response: Response): Receipt.Receipt | undefined {
  if (receipts.has(response)) return receipts.get(response) ?? undefined
  // "Receipts are only issued on successful payment responses (2xx status codes)." (§5.3.1)
  return response.ok ? mpp.receipt?.(response) : undefined
}

// A receipt is this challenge's unless it names another one (servers built with this library always
// name it; the spec's receipt has no such field, so a receipt without it is taken).
function receiptOf(receipt: Receipt.Receipt, challenge: Challenge.Challenge): boolean {
  return receipt.challengeId === undefined || receipt.challengeId === challenge.id
}

// Loopback is `localhost`, 127.0.0.0/8 and `[::1]`, not `*.localhost`: Node.js resolves such a name
// through the system resolver (DNS when no hosts entry names it), so a resolver on the network would
// choose where a cleartext credential goes.
function secureOrLocal(url: string): boolean {
  const { protocol, hostname } = new URL(url)
  if (protocol === 'https:') return true
  if (protocol !== 'http:') return false
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
}

function defaultQuote(challenge: Challenge.Challenge): Method.Quote {
  const { amount, currency, decimals, methodDetails } = challenge.request as Record<string, any>
  if ((typeof amount !== 'string' && typeof amount !== 'number') || typeof currency !== 'string')
    throw new PolicyError('quote', 'challenge has no amount/currency and the method gives no quote')
  if (!/^\d+$/.test(String(amount)))
    throw new PolicyError('quote', 'challenge amount is not a base-unit integer')
  // A JSON number past 2^53 was already rounded when it was parsed: it no longer says what was asked.
  if (typeof amount === 'number' && !Number.isSafeInteger(amount))
    throw new PolicyError('quote', 'challenge amount is a JSON number beyond 2^53: send it as a string')
  const quote: Method.Quote = { amount: BigInt(amount), currency }
  if (Number.isInteger(decimals) && decimals >= 0 && decimals <= 255) quote.decimals = decimals
  const chainId = methodDetails?.chainId
  if (typeof methodDetails?.network === 'string') quote.network = methodDetails.network
  else if (Number.isInteger(chainId)) quote.network = `${challenge.method}:${chainId}`
  return quote
}

// A v4 UUID from getRandomValues (randomUUID needs a secure context in browsers).
function uuid(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16))
  bytes[6] = (bytes[6]! & 0x0f) | 0x40
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

type Offer = { challenge: Challenge.Challenge; protocol: Protocol }

const redirectStatuses = new Set([301, 302, 303, 307, 308])
// fetch's own limit (WHATWG Fetch §4.4, HTTP-redirect fetch).
const maxRedirects = 20
// Headers describing a body, dropped with it when a redirect turns the request into a GET.
const bodyHeaders = ['content-encoding', 'content-language', 'content-location', 'content-type']

// The request a same-origin redirect leads to, as fetch builds it: 303 (and 301/302 after a POST)
// becomes a GET without body; 307/308 send the same method and body again (`body`: the bytes kept, as
// the request sent has used its own).
function redirected(
  request: Request,
  location: URL,
  status: number,
  body: Uint8Array<ArrayBuffer> | undefined,
): Request {
  const toGet =
    (status === 303 && request.method !== 'GET' && request.method !== 'HEAD') ||
    ((status === 301 || status === 302) && request.method === 'POST')
  const headers = new Headers(request.headers)
  if (toGet) for (const name of bodyHeaders) headers.delete(name)
  const init: RequestInit = {
    method: toGet ? 'GET' : request.method,
    headers,
    redirect: request.redirect,
    signal: request.signal,
  }
  if (!toGet && request.body !== null && body) init.body = body
  return new Request(location, init)
}

// Seconds to wait before resending after a 503, or undefined when the server gave no usable
// Retry-After or asks for longer than the caller is willing to wait (an HTTP date counts from now).
function retryDelay(header: string | null, max: number): number | undefined {
  if (header === null) return undefined
  const trimmed = header.trim()
  let seconds: number
  if (/^\d{1,9}$/.test(trimmed)) seconds = Number(trimmed)
  else {
    const at = Date.parse(trimmed)
    if (Number.isNaN(at)) return undefined
    seconds = Math.max(0, (at - Date.now()) / 1000)
  }
  return seconds <= max ? seconds : undefined
}

// An answer to a paid request that asks for the same credential again later: 402 or 503 with `Retry-After`.
function pending(response: Response): boolean {
  return (response.status === 402 || response.status === 503) && response.headers.has('retry-after')
}

const handlerFailedType = `${problemBase}handler-failed`

// A paid request's answer saying the payment settled but the response failed: a 500 whose problem is
// mppkit's `handler-failed` (see server/Paid.ts).
async function handlerFailed(response: Response): Promise<boolean> {
  return response.status === 500 && (await problemOf(response))?.type === handlerFailedType
}

// The answer to the resend after `handler-failed` that still is not the resource: a 5xx, a 402 (the
// credential refused as used: the server kept no record), or another payment problem of the server (a
// 409 while another request serves the record). The handler's own answers (a 404, a 422) are the
// caller's.
async function undelivered(response: Response): Promise<boolean> {
  if (response.ok || response.status < 400) return false
  if (response.status >= 500 || response.status === 402) return true
  const type = (await problemOf(response))?.type
  return typeof type === 'string' && type.startsWith(problemBase)
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Largest problem body read from a refused paid request (bytes). */
const maxProblemBytes = 64 * 1024

/** The JSON object a refusal carries, read from a clone (at most 64 KiB), else undefined. */
async function problemOf(response: Response): Promise<Record<string, unknown> | undefined> {
  if (!/json/i.test(response.headers.get('content-type') ?? '')) return undefined
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  if (declared > maxProblemBytes) return undefined
  try {
    const reader = response.clone().body?.getReader()
    if (!reader) return undefined
    const decoder = new TextDecoder()
    let text = ''
    let total = 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      total += value.byteLength
      if (total > maxProblemBytes) {
        await reader.cancel().catch(() => {})
        return undefined
      }
      text += decoder.decode(value, { stream: true })
    }
    const parsed: unknown = JSON.parse(text + decoder.decode())
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

function hasScalarLimit(policy: Policy | undefined): boolean {
  if (!policy) return false
  return [policy.maxAmount, policy.budget, policy.maxDeposit, policy.maxLocked].some(
    (limit) => limit !== undefined && typeof limit !== 'object',
  )
}

/**
 * Creates a paying client: on a 402 it picks a challenge it can and may pay (method list, spend policy,
 * request schema, expiry), creates the payload, and retries once with the credential. `pay` does the
 * same for challenges that arrived over another transport.
 *
 * @example
 * ```ts
 * const client = Client.create({ methods: [tempoClient], policy: { currencies: [usd], maxAmount: 10_000n, budget: 1_000_000n } })
 * const response = await client.fetch('https://api.example.com/paid')
 * ```
 * @see draft-httpauth-payment-00 §4.1
 */
export function create(options: Options): Client {
  const registry = Registry.from(options.methods)
  if (registry.entries.length === 0) throw new ConfigurationError('a client needs at least one method')
  const protocols = options.protocols ?? [mpp]
  if (protocols.length === 0) throw new ConfigurationError('a client needs at least one protocol')
  const ledger = new Ledger(options.policy)
  const retries = options.retries ?? 2
  const maxRetryDelay = options.maxRetryDelay ?? 5
  if (!Number.isInteger(retries) || retries < 0)
    throw new ConfigurationError('retries must be a non-negative integer')
  if (!Number.isFinite(maxRetryDelay) || maxRetryDelay < 0)
    throw new ConfigurationError('maxRetryDelay must be a non-negative number of seconds')
  // A scalar limit without `currencies` pins itself to the first currency paid. With methods of several
  // rails (USDC on Tempo, sats on Lightning, cents on Stripe) that first currency is a race, and 1_000_000
  // could be read as a million sats: refuse to guess.
  const rails = new Set(registry.entries.map((method) => method.definition.name))
  if (rails.size > 1 && ledger.pinned === undefined && hasScalarLimit(options.policy))
    throw new ConfigurationError(
      `a scalar spend limit is in one currency's base units, but this client pays on ${rails.size} rails (${[...rails].join(', ')}): give limits per currency ({ [currency]: amount }) or pin one with currencies: [currency]`,
    )
  const baseFetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  const accept = AcceptPayment.format(
    registry.entries.map((m, i) => ({
      method: m.definition.name,
      intent: m.definition.intent,
      q: Math.max(0.001, Number((1 - i * 0.001).toFixed(3))),
    })),
  )

  // The method that made each payment (for retryRefused).
  const paidWith = new WeakMap<Payment, Method.Client>()
  const refusedAsStale = async (response: Response, payment: Payment): Promise<boolean> => {
    const method = paidWith.get(payment)
    // A 402 too: a credential that moved no money (a Lightning session's bearer) refused because the
    // server closed or lost its session. The method decides; never a 5xx (nothing said about its state).
    if (!method?.retryRefused || response.status < 400 || response.status >= 500) return false
    const problem = await problemOf(response)
    try {
      return method.retryRefused({ status: response.status, problem }, payment.challenge) === true
    } catch {
      return false
    }
  }

  // Chooses and pays one offer: undefined when no method matches and the policy refused nothing.
  const settle = async (offers: readonly Offer[], context: PayOptions): Promise<Payment | undefined> => {
    const candidates: (Offer & { method: Method.Client; rank: number })[] = []
    offers.forEach((offer, order) => {
      try {
        Challenge.validate(offer.challenge)
      } catch {
        return
      }
      const method = registry.get(offer.challenge.method, offer.challenge.intent)
      if (!method) return
      const rank = registry.entries.indexOf(method) * 1e6 + protocols.indexOf(offer.protocol) * 1e3 + order
      candidates.push({ ...offer, method, rank })
    })
    candidates.sort((a, b) => a.rank - b.rank)

    let refusal: PolicyError | undefined
    for (const { challenge, method } of candidates) {
      // "Clients MUST NOT submit credentials for expired challenges." (§5.1.2)
      if (challenge.expires !== undefined) {
        const minValidity = (options.policy?.minValiditySeconds ?? 0) * 1000
        if (Expires.isExpired(challenge.expires, Date.now() + minValidity)) continue
      }
      const header = credentialHeader(challenge)
      if (header === undefined) continue
      // Never pay a challenge whose request fails the method's schema.
      const parsed = method.definition.request.safeParse(challenge.request)
      if (!parsed.success) continue
      const book = (quote: Method.Quote) =>
        ledger.reserve({ method: challenge.method, intent: challenge.intent, realm: challenge.realm, quote })
      let quote: Method.Quote
      let release: () => void
      try {
        quote = method.quote ? method.quote(parsed.data, challenge) : defaultQuote(challenge)
        // Booked synchronously, before any payload exists: concurrent payments never overrun a limit.
        release = book(quote)
      } catch (error) {
        if (error instanceof PolicyError) {
          refusal ??= error
          continue
        }
        throw error
      }
      let created: { payload: unknown; source?: string }
      try {
        created = await method.createPayload({
          challenge,
          request: parsed.data,
          url: context.url,
          ...(context.signal ? { signal: context.signal } : {}),
          spend: book,
        })
      } catch (error) {
        // Released only when the rail failed before anything was sent. A rail that may already have moved
        // money (broadcast, then no confirmation in time) says so, and the booking stays: releasing it
        // would let a retry pay again past the budget.
        if (!mayHaveSettled(error)) release()
        // A limit the method met while preparing (a side payment it booked, e.g. a session's new deposit
        // past `maxLocked`): nothing was signed or sent, so another offer may be paid, as when the quote
        // is refused. A person declining is final.
        if (error instanceof PolicyError && error.reason !== 'declined' && !mayHaveSettled(error)) {
          refusal ??= error
          continue
        }
        throw error
      }
      // The money may have moved once the payload exists: the spend stays booked whatever happens next.
      const credential: Credential.Credential = {
        challenge,
        payload: created.payload as Record<string, unknown>,
      }
      if (created.source !== undefined) credential.source = created.source
      let received = false
      const payment: Payment = {
        challenge,
        credential,
        authorization: Credential.format(credential),
        header,
        quote,
        receipt(decoded) {
          if (received || !receiptOf(decoded, challenge)) return
          received = true
          // Both hear of it even when the first throws; the first failure is then rethrown.
          let failure: { error: unknown } | undefined
          for (const listener of [method.onReceipt, options.onReceipt])
            try {
              listener?.(decoded, challenge)
            } catch (error) {
              failure ??= { error }
            }
          if (failure) throw failure.error
        },
      }
      paidWith.set(payment, method)
      return payment
    }
    if (refusal) throw refusal
    return undefined
  }

  const pay = async (challenges: readonly Challenge.Challenge[], context: PayOptions): Promise<Payment> => {
    const payment = await settle(
      challenges.map((challenge) => ({ challenge, protocol: mpp })),
      context,
    )
    if (!payment)
      throw new PaymentFailedError('none of the challenges names a method this client pays with', {
        code: 'no-payable-challenge',
      })
    return payment
  }

  const paidFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const original = new Request(input, init)
    // Keep the body so the paid retry sends the same bytes (the challenge digest binds them).
    const body = original.body ? new Uint8Array(await original.arrayBuffer()) : undefined
    const build = (extra: Record<string, string>, redirect: RequestRedirect = original.redirect) => {
      const headers = new Headers(original.headers)
      for (const [k, v] of Object.entries(extra)) headers.set(k, v)
      const requestInit: RequestInit = {
        method: original.method,
        headers,
        redirect,
        signal: original.signal,
      }
      if (body) requestInit.body = body
      return new Request(original.url, requestInit)
    }
    const origin = new URL(original.url).origin
    // The paid request carries the credential, possibly in a header the challenge named: fetch drops only
    // `Authorization` on a cross-origin redirect, so it must never follow one itself. Redirects within
    // the origin are followed here, with the credential (that origin issued the challenge and already
    // holds it; it consumes the challenge once, so a re-sent credential is never charged again, and a
    // path redirected before authentication, such as a trailing slash, still gets paid). A redirect to
    // another origin is handed back unfollowed: the caller decides whether to go there, without it.
    const sendPaid = async (extra: Record<string, string>): Promise<Response> => {
      // `manual` and `error` already never send the credential on: fetch returns or throws.
      if (original.redirect !== 'follow') return baseFetch(build(extra))
      let request = build(extra, 'manual')
      for (let hops = 0; ; hops++) {
        const response = await baseFetch(request)
        const location = redirectStatuses.has(response.status) ? response.headers.get('location') : null
        // A browser's manual redirect is opaque (status 0, no Location): it is handed back as is.
        if (location === null || hops >= maxRedirects) return response
        let next: URL
        try {
          next = new URL(location, request.url)
        } catch {
          return response
        }
        if (next.origin !== origin) return response
        await response.body?.cancel().catch(() => {})
        request = redirected(request, next, response.status, body)
      }
    }
    const attempt = async (recovering: boolean): Promise<Response> => {
      const first = await baseFetch(
        build(
          options.acceptPayment === false || original.headers.has('accept-payment')
            ? {}
            : { 'accept-payment': accept },
        ),
      )
      if (first.status !== 402) return first

      // A 402 reached through a redirect to another origin is that origin's demand, not the one the caller
      // asked: never pay it.
      if (first.redirected && first.url && new URL(first.url).origin !== new URL(original.url).origin)
        throw new PolicyError(
          'cross-origin-redirect',
          'refusing to pay a challenge reached through a cross-origin redirect',
        )
      // "Clients MUST NOT send Payment credentials over unencrypted HTTP" (§12.2). Loopback is local.
      if (!options.allowInsecureTransport && !secureOrLocal(original.url))
        throw new PolicyError(
          'insecure-transport',
          'refusing to pay over unencrypted HTTP to a non-loopback host',
        )

      const offers: Offer[] = []
      for (const protocol of protocols) {
        let found: readonly Challenge.Challenge[] = []
        try {
          found = await protocol.challenges(first.clone())
        } catch {
          // A protocol that cannot read this 402 offers nothing.
        }
        if (Array.isArray(found)) for (const challenge of found) offers.push({ challenge, protocol })
      }
      const payment = await settle(offers, {
        url: original.url,
        ...(original.signal ? { signal: original.signal } : {}),
      })
      if (!payment) return first
      const protocol = offers.find((o) => o.challenge === payment.challenge)?.protocol ?? mpp
      const extra = protocol.headers(payment)
      // fetch's refusal of a header value quotes the value, which is the credential: refused here, without
      // it. "Servers and intermediaries MUST NOT log Payment credentials or include them in error messages"
      // and "Implementations MUST treat Payment credentials with the same care as authentication
      // passwords" (Security Considerations, Credential Handling).
      try {
        new Headers(extra)
      } catch {
        throw new PaymentFailedError(
          `protocol ${protocol.name} gave credential headers that are not valid HTTP fields (${Object.keys(extra).length} header(s)); the payment was created and stays booked`,
          { code: 'invalid-credential-header', mayHaveSettled: true },
        )
      }
      // Every paid request gets a key, safe methods too: a paid GET has a side effect (the settlement),
      // and a server keeping records can then serve it again when its response failed. The draft asks it
      // of non-idempotent methods and forbids it for none: "For non-idempotent methods (POST, PUT,
      // DELETE), servers SHOULD accept an `Idempotency-Key` header to enable safe client retries. When a
      // client retries a request with the same `Idempotency-Key` and a valid Payment credential, the
      // server SHOULD return the same response as the original successful request without re-executing
      // the operation." (§11.5)
      // Safe methods only for a `charge`: a session's voucher pays one request's small price (a resend
      // of it after `handler-failed` pays one unit more), and a key on each of its requests would have
      // the server buffer and store every response, a Store operation more per voucher.
      const safe = ['GET', 'HEAD', 'OPTIONS'].includes(original.method)
      if (
        options.idempotencyKeys !== false &&
        (!safe || payment.challenge.intent === 'charge') &&
        !original.headers.has('idempotency-key')
      )
        extra['idempotency-key'] = uuid()
      // "Clients MUST NOT submit credentials for expired challenges." (§5.1.2): nor resend one.
      const { expires } = payment.challenge
      const expiredIn = (ms: number) => expires !== undefined && Expires.isExpired(expires, Date.now() + ms)
      // Why the resends of the credential ended while the server still asked to wait (undefined: they did
      // not, or it never asked).
      let stopped: string | undefined
      const deliver = async (): Promise<Response> => {
        let response = await sendPaid(extra)
        // A 503 + Retry-After on the paid request means nothing was settled and the challenge was released
        // (draft-httpauth-payment-00 §11.6): the same credential may be sent again. So does a 402 +
        // Retry-After ("Servers SHOULD use the `Retry-After` HTTP header to indicate when clients may
        // retry", with a 402 as the spec's example): a payment the rail has not finished (a Stripe
        // PaymentIntent `processing`). Paying the fresh challenge instead would pay twice once the first
        // payment completes; the same credential is never charged twice (a server consumes a challenge
        // once). Only while the challenge lives: a wait that outlasts it ends the retries.
        for (let attempt = 0; pending(response); attempt++) {
          if (attempt >= retries) {
            stopped = retries === 0 ? 'retries are off' : `after ${retries} resend(s)`
            break
          }
          const delay = retryDelay(response.headers.get('retry-after'), maxRetryDelay)
          if (delay === undefined) {
            stopped = `its Retry-After is not a wait of at most maxRetryDelay (${maxRetryDelay} s)`
            break
          }
          const expiring = 'its challenge expires before the wait is over'
          if (expiredIn(delay * 1000)) {
            stopped = expiring
            break
          }
          await sleep(delay * 1000, original.signal)
          // Timers may fire late: checked again before the credential leaves.
          if (expiredIn(0)) {
            stopped = expiring
            break
          }
          await response.body?.cancel().catch(() => {})
          response = await sendPaid(extra)
        }
        return response
      }
      // Why the resend after `handler-failed` did not deliver (undefined: there was no such answer).
      let undeliveredReason: string | undefined
      let response: Response
      try {
        response = await deliver()
        // The server settled, then its handler failed: it keeps the payment for a retry with the same
        // Idempotency-Key and credential, which it serves without settling again. Sent once (a handler
        // failing twice is not transient), with the very same headers: never a new payment. Not after
        // the pending resends stopped (that answer asks to wait), nor for an expired challenge.
        if (stopped === undefined && (await handlerFailed(response))) {
          if (expiredIn(0)) undeliveredReason = 'its challenge expired before the credential could be resent'
          else {
            await response.body?.cancel().catch(() => {})
            response = await deliver()
            undeliveredReason = `the same credential, resent${'idempotency-key' in extra || original.headers.has('idempotency-key') ? ' with the same Idempotency-Key' : ''}, failed too`
          }
        }
      } catch (error) {
        // The credential left (and a push rail already moved the money): no answer says what became of it.
        // Rethrown as is, a dropped connection or an abort would look like any failed request, and
        // fetching again would pay again.
        throw new PaymentFailedError(
          'the paid request failed after the credential was sent; the payment may have gone through: check before paying again',
          { code: 'outcome-unknown', cause: error, mayHaveSettled: true },
        )
      }
      const decoded = protocol.receipt?.(response)
      // A receipt counts only on a 2xx ("Receipts are only issued on successful payment responses (2xx
      // status codes)", §5.3.1), from the origin that was paid (an injected fetch may still have followed
      // a redirect elsewhere), for the challenge that was paid (not another payment's, replayed).
      const credited =
        decoded !== undefined &&
        response.ok &&
        (!response.url || new URL(response.url).origin === origin) &&
        receiptOf(decoded, payment.challenge)
      receipts.set(response, credited ? decoded : null)
      if (credited)
        try {
          payment.receipt(decoded)
        } catch {
          // A listener's failure: the paid response is the caller's all the same (losing it would invite
          // paying again).
        }
      // The server still says "retry later" and the client has stopped: the rail may finish this payment
      // (a PaymentIntent `processing` succeeds, a pull transfer is broadcast once the node is back), so
      // the answer is not a refusal to hand back. Returned as one, it would be read as "unpaid", and
      // fetching again would pay a second time. The booking stays (the credential exists).
      if (stopped !== undefined) {
        const reason = (await problemOf(response))?.reason
        const named = typeof reason === 'string' && /^[a-z0-9][a-z0-9_/-]{0,63}$/i.test(reason)
        throw new PaymentFailedError(
          `the server has not finished the payment (HTTP ${response.status}${named ? ` ${reason}` : ''} with Retry-After) ` +
            `and the client stopped resending its credential (${stopped}); the payment may have gone through: check before paying again`,
          { code: 'outcome-pending', mayHaveSettled: true, challenge: payment.challenge, response },
        )
      }
      // Settled and still not delivered: handed back as an error, since the caller could not tell this
      // 500 (or a 402 refusing the used credential) from an unpaid failure, and fetching again would pay
      // a second time. The booking stays.
      if (undeliveredReason !== undefined && (await undelivered(response))) {
        const type = (await problemOf(response))?.type
        const named =
          typeof type === 'string' &&
          type.startsWith(problemBase) &&
          /^[a-z0-9/-]{1,64}$/.test(type.slice(problemBase.length))
            ? ` ${type.slice(problemBase.length)}`
            : ''
        throw new PaymentFailedError(
          `the server settled the payment but its response failed (handler-failed), and ${undeliveredReason} (HTTP ${response.status}${named}); ` +
            'the payment may have gone through: check before paying again',
          { code: 'handler-failed', mayHaveSettled: true, challenge: payment.challenge, response },
        )
      }
      // After the pending check (an answer asking to wait is never a stale refusal to pay afresh): a
      // refusal the paying method reads as its own stale state, with nothing moved (a session channel
      // the server no longer has): the resource's fresh challenge is paid once more, within this fetch.
      // Never after `handler-failed`: that payment settled, and paying the fresh challenge would pay twice.
      if (
        !credited &&
        !recovering &&
        undeliveredReason === undefined &&
        (await refusedAsStale(response, payment))
      ) {
        await response.body?.cancel().catch(() => {})
        return attempt(true)
      }
      return response
    }
    return attempt(false)
  }

  return { fetch: paidFetch, pay, ledger }
}
