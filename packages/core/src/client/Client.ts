import { randomUUID } from 'node:crypto'
import * as AcceptPayment from '../AcceptPayment.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { BaseError, ConfigurationError, PolicyError } from '../Errors.js'
import * as Expires from '../Expires.js'
import type * as Method from '../Method.js'
import * as Receipt from '../Receipt.js'
import * as Registry from '../Registry.js'
import { Ledger, type Policy } from './Policy.js'

/** Options of {@link create}. */
export type Options = {
  /** Methods this client can pay with, in preference order. */
  methods: readonly Method.Client[]
  /** Spend policy checked before any payload is created. */
  policy?: Policy
  /** Underlying fetch (default: global fetch). */
  fetch?: typeof fetch
  /** Send `Accept-Payment` built from `methods` (default true). */
  acceptPayment?: boolean
  /** Add an `Idempotency-Key` to paid retries of non-idempotent requests (default true). */
  idempotencyKeys?: boolean
  /**
   * Pay over plain `http:` to hosts other than loopback (default false: "Clients MUST NOT send Payment
   * credentials over unencrypted HTTP").
   */
  allowInsecureTransport?: boolean
  /** Called after each successful payment. */
  onReceipt?: (receipt: Receipt.Receipt, challenge: Challenge.Challenge) => void
}

/** A paying fetch. */
export type Client = {
  /** Like `fetch`, paying a 402 once with the best acceptable challenge. */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>
  /** The policy ledger (spent amounts). */
  readonly ledger: Ledger
}

/** Client-side failure creating or sending a payment (the rail refused, the server answered oddly). */
export class PaymentFailedError extends BaseError {
  override name = 'PaymentFailedError'
}

const receipts = new WeakMap<Response, Receipt.Receipt>()

/**
 * The decoded `Payment-Receipt` of a response returned by {@link Client.fetch} (or parsed from its
 * header), or `undefined`.
 *
 * @example
 * ```ts
 * const response = await client.fetch(url)
 * console.log(receipt(response)?.reference)
 * ```
 */
export function receipt(response: Response): Receipt.Receipt | undefined {
  const known = receipts.get(response)
  if (known) return known
  const header = response.headers.get('payment-receipt')
  if (!header) return undefined
  try {
    return Receipt.parse(header)
  } catch {
    return undefined
  }
}

function secureOrLocal(url: string): boolean {
  const { protocol, hostname } = new URL(url)
  if (protocol === 'https:') return true
  if (protocol !== 'http:') return false
  return (
    hostname === 'localhost' ||
    hostname.endsWith('.localhost') ||
    hostname === '[::1]' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
  )
}

function defaultQuote(request: Record<string, unknown>): Method.Quote {
  const amount = request.amount
  const currency = request.currency
  if ((typeof amount !== 'string' && typeof amount !== 'number') || typeof currency !== 'string')
    throw new PolicyError('quote', 'challenge has no amount/currency and the method gives no quote')
  if (!/^\d+$/.test(String(amount)))
    throw new PolicyError('quote', 'challenge amount is not a base-unit integer')
  return { amount: BigInt(amount), currency }
}

/**
 * Creates a paying fetch: on a 402 it picks a challenge it can and may pay (method list, spend policy,
 * request schema, expiry), creates the payload, and retries once with `Authorization: Payment`.
 *
 * @example
 * ```ts
 * const client = Client.create({ methods: [tempoClient], policy: { maxAmount: 10_000n, budget: 1_000_000n } })
 * const response = await client.fetch('https://api.example.com/paid')
 * ```
 * @see draft-httpauth-payment-00 §4.1
 */
export function create(options: Options): Client {
  const registry = Registry.from(options.methods)
  if (registry.entries.length === 0) throw new ConfigurationError('a client needs at least one method')
  const ledger = new Ledger(options.policy)
  const baseFetch = options.fetch ?? globalThis.fetch
  const accept = AcceptPayment.format(
    registry.entries.map((m, i) => ({
      method: m.definition.name,
      intent: m.definition.intent,
      q: Math.max(0.001, Number((1 - i * 0.001).toFixed(3))),
    })),
  )

  const paidFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const original = new Request(input, init)
    // Keep the body so the paid retry sends the same bytes (the challenge digest binds them).
    const body = original.body ? new Uint8Array(await original.arrayBuffer()) : undefined
    const build = (extra: Record<string, string>) => {
      const headers = new Headers(original.headers)
      for (const [k, v] of Object.entries(extra)) headers.set(k, v)
      const requestInit: RequestInit = {
        method: original.method,
        headers,
        redirect: original.redirect,
        signal: original.signal,
      }
      if (body) requestInit.body = body
      return new Request(original.url, requestInit)
    }
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

    const challenges = Challenge.parseAll(first.headers.get('www-authenticate') ?? '')
    const candidates: { challenge: Challenge.Challenge; method: Method.Client; rank: number }[] = []
    challenges.forEach((challenge, order) => {
      const method = registry.get(challenge.method, challenge.intent)
      if (!method) return
      candidates.push({ challenge, method, rank: registry.entries.indexOf(method) * 1000 + order })
    })
    candidates.sort((a, b) => a.rank - b.rank)

    let refusal: PolicyError | undefined
    for (const { challenge, method } of candidates) {
      // "Clients MUST NOT submit credentials for expired challenges." (§5.1.2)
      if (challenge.expires !== undefined) {
        const minValidity = (options.policy?.minValiditySeconds ?? 0) * 1000
        if (Expires.isExpired(challenge.expires, Date.now() + minValidity)) continue
      }
      // Never pay a challenge whose request fails the method's schema.
      const parsed = method.definition.request.safeParse(challenge.request)
      if (!parsed.success) continue
      let release: () => void
      try {
        const quote = method.quote ? method.quote(parsed.data) : defaultQuote(challenge.request)
        release = ledger.reserve({
          method: challenge.method,
          intent: challenge.intent,
          realm: challenge.realm,
          quote,
        })
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
          url: original.url,
          ...(original.signal ? { signal: original.signal } : {}),
        })
      } catch (error) {
        release()
        throw error
      }
      const credential: Credential.Credential = {
        challenge,
        payload: created.payload as Record<string, unknown>,
      }
      if (created.source !== undefined) credential.source = created.source
      const extra: Record<string, string> = { authorization: Credential.format(credential) }
      if (
        options.idempotencyKeys !== false &&
        !['GET', 'HEAD', 'OPTIONS'].includes(original.method) &&
        !original.headers.has('idempotency-key')
      )
        extra['idempotency-key'] = randomUUID()
      // The money may have moved once the payload exists: the spend stays recorded whatever happens next.
      const response = await baseFetch(build(extra))
      const decoded = receipt(response)
      if (decoded && response.ok) {
        receipts.set(response, decoded)
        method.onReceipt?.(decoded, challenge)
        options.onReceipt?.(decoded, challenge)
      }
      return response
    }
    if (refusal) throw refusal
    return first
  }

  return { fetch: paidFetch, ledger }
}
