import type { IncomingMessage, ServerResponse } from 'node:http'
import { authenticationRequiredDecline, type CardBehaviour, type TestCard, testCards } from './cards.js'
import {
  docUrl,
  invalidParam,
  missingParam,
  resourceMissing,
  type StripeErrorBody,
  StripeHttpError,
  unexpectedState,
  unknownParam,
} from './errors.js'
import { FaultTable, faultBody } from './faults.js'
import { type FormObject, fingerprint, parseForm } from './form.js'
import { objectId, randomBase62 } from './ids.js'

/**
 * Error codes the simulator answers for a Shared Payment Token that cannot pay. Stripe does not publish
 * the codes of these preview-API failures; `token_already_used` is Stripe's public code for a reused
 * single-use token, the others are the simulator's own. All come as a 400 `invalid_request_error` with
 * `param: 'shared_payment_granted_token'`, so a rail should key on the param, not on the exact code.
 *
 * @example
 * ```ts
 * if (error.raw.code === sptErrorCodes.expired) retryWithNewToken()
 * ```
 */
export const sptErrorCodes = {
  alreadyUsed: 'token_already_used',
  expired: 'shared_payment_granted_token_expired',
  revoked: 'shared_payment_granted_token_revoked',
  amountExceeded: 'shared_payment_granted_token_usage_limit_exceeded',
  currencyMismatch: 'shared_payment_granted_token_currency_mismatch',
  /** The token was issued to another seller's Stripe profile (`seller_details[network_business_profile]`). */
  sellerMismatch: 'shared_payment_granted_token_seller_mismatch',
} as const

type Json = Record<string, unknown>

/** A SharedPaymentGrantedToken as the simulator stores it (the API object plus private state). */
type GrantedTokenRecord = {
  object: Json & {
    id: string
    created: number
    deactivated_at: number | null
    deactivated_reason: 'consumed' | 'expired' | 'resolved' | 'revoked' | null
    usage_details: { amount_captured: { value: number; currency: string } }
    usage_limits: { currency: string; max_amount: number; expires_at: number | null }
  }
  card: TestCard
  /** The PaymentIntent the token is bound to (set on first confirmation that did not decline). */
  boundTo: string | null
}

/** A SharedPaymentIssuedToken: the issuer's view of a token granted to a seller's account. */
type IssuedTokenRecord = {
  granted: GrantedTokenRecord
  paymentMethod: string
  sellerDetails: { external_id: string | null; network_business_profile: string }
  setupFutureUsage: string | null
}

type PaymentMethodRecord = { object: Json & { id: string }; card: TestCard }

type PaymentIntentObject = Json & {
  id: string
  amount: number
  amount_capturable: number
  amount_received: number
  application_fee_amount: number | null
  automatic_payment_methods: { enabled: boolean; allow_redirects: 'always' | 'never' } | null
  canceled_at: number | null
  cancellation_reason: string | null
  capture_method: 'automatic' | 'automatic_async' | 'manual'
  client_secret: string
  currency: string
  last_payment_error: Json | null
  latest_charge: string | null
  metadata: Record<string, string>
  next_action: Json | null
  on_behalf_of: string | null
  payment_method: string | null
  payment_method_types: string[]
  shared_payment_granted_token: string | null
  status:
    | 'requires_payment_method'
    | 'requires_confirmation'
    | 'requires_action'
    | 'processing'
    | 'requires_capture'
    | 'canceled'
    | 'succeeded'
  transfer_data: { destination: string; amount?: number } | null
  transfer_group: string | null
}

type PaymentIntentRecord = {
  object: PaymentIntentObject
  returnUrl: string | null
  offSession: boolean
  errorOnRequiresAction: boolean
  /** The secret of the hosted 3DS page while the intent is in `requires_action`. */
  authenticationToken: string | null
}

type ChargeObject = Json & {
  id: string
  amount: number
  amount_captured: number
  amount_refunded: number
  captured: boolean
  refunded: boolean
  status: 'succeeded' | 'failed' | 'pending'
  currency: string
  payment_intent: string
}

type Account = {
  id: string
  /** The account's Stripe profile id (Business Network Profile), what `networkId` names in MPP. */
  profile: string
  connected: boolean
  issuedTokens: Map<string, IssuedTokenRecord>
  paymentIntents: Map<string, PaymentIntentRecord>
  charges: Map<string, ChargeObject>
  refunds: Map<string, Json & { id: string; charge: string; payment_intent: string }>
  paymentMethods: Map<string, PaymentMethodRecord>
  grantedTokens: Map<string, GrantedTokenRecord>
  idempotency: Map<string, IdempotencyEntry>
}

type IdempotencyEntry = {
  route: string
  fingerprint: string
  status: number
  body: string
  requestId: string
  createdMs: number
  headers: Record<string, string>
}

type Context = {
  requestId: string
  apiVersion: string
  account: Account
  params: FormObject
  /** True when the request acts on a connected account through the Stripe-Account header. */
  viaStripeAccount: boolean
}

type Reply = { status: number; body: Json; headers?: Record<string, string> }

/**
 * Options of the simulator core (`startStripe` fills them from its documented public options).
 *
 * @example
 * ```ts
 * new StripeSimulator({ secretKey, platformAccount, connectedAccounts: [], apiVersion, latencyMs: 0, idempotencyTtlMs: 86_400_000, publicBase: () => base })
 * ```
 */
export type SimulatorOptions = {
  secretKey: string
  platformAccount: string
  connectedAccounts: string[]
  apiVersion: string
  latencyMs: number
  idempotencyTtlMs: number
  publicBase: () => string
}

/** Stripe rejects versions that are not a date with an optional release suffix. */
const versionPattern = /^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$/
/** From this version on, an intent without payment_method_types gets automatic_payment_methods (Stripe changelog 2023-08-16). */
const automaticPaymentMethodsDefaultFrom = '2023-08-16'
/** From this version on, capture_method defaults to automatic_async (Stripe changelog 2024-04-10). */
const automaticAsyncDefaultFrom = '2024-04-10'

/** Stripe's documented minimum charge amounts, in the currency's smallest unit. */
const minimumAmounts: Record<string, number> = {
  usd: 50,
  eur: 50,
  gbp: 30,
  cad: 50,
  aud: 50,
  chf: 50,
  jpy: 50,
  nzd: 50,
  sgd: 50,
  brl: 50,
  inr: 50,
  mxn: 1000,
  dkk: 250,
  nok: 300,
  sek: 300,
  hkd: 400,
  pln: 200,
}
/**
 * The presentment currencies of a US account, the country the simulated accounts report
 * (docs.stripe.com/currencies#presentment-currencies). Stripe refuses any other code: "Invalid currency:
 * xyz. Stripe currently supports these currencies: usd, aed, …" (param `currency`).
 */
const supportedCurrencies = new Set(
  (
    'usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bif bmd bnd bob brl bsd bwp byn bzd cad ' +
    'cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd hkd ' +
    'hnl htg huf idr ils inr isk jmd jpy kes kgs khr kmf krw kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd ' +
    'mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab pen pgk php pkr pln pyg qar ron rsd ' +
    'rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs top try ttd twd tzs uah ugx uyu uzs vnd ' +
    'vuv wst xaf xcd xof xpf yer zar zmw'
  ).split(' '),
)
/**
 * Two-decimal currencies whose card amounts must be whole units: Stripe enforces ISK amounts "in
 * multiples of 100" (`invalid_charge_amount_no_decimal_compatible`, support.stripe.com "Deprecation of
 * fractional ISK charges and refunds"), for charges and refunds alike.
 */
const wholeUnitOnly = new Set(['isk'])
const zeroDecimal = new Set([
  'bif',
  'clp',
  'djf',
  'gnf',
  'jpy',
  'kmf',
  'krw',
  'mga',
  'pyg',
  'rwf',
  'ugx',
  'vnd',
  'vuv',
  'xaf',
  'xof',
  'xpf',
])
/** Stripe's largest amount: "up to eight digits". */
const maximumAmount = 99_999_999

const cardSetAlias = 'card'

/**
 * The in-memory Stripe account state and the HTTP request handler of the simulator.
 *
 * @example
 * ```ts
 * const simulator = new StripeSimulator(options)
 * http.createServer((req, res) => simulator.handle(req, res))
 * ```
 */
export class StripeSimulator {
  readonly #options: SimulatorOptions
  readonly #accounts = new Map<string, Account>()
  readonly #authentications = new Map<string, { account: string; paymentIntent: string }>()
  readonly #inFlight = new Set<string>()
  /** The seller account of each issued token, so a token used by another seller is named as such. */
  readonly #tokenOwners = new Map<string, string>()
  /** Injected failures (see {@link StripeFault}). */
  readonly faults = new FaultTable()
  #clockOffsetMs = 0

  constructor(options: SimulatorOptions) {
    this.#options = options
    this.#accounts.set(options.platformAccount, newAccount(options.platformAccount, false))
    for (const id of options.connectedAccounts) this.#accounts.set(id, newAccount(id, true))
  }

  /** The Stripe profile id (`profile_test_…`) of an account of this simulator. */
  profileOf(accountId: string): string | undefined {
    return this.#accounts.get(accountId)?.profile
  }

  /** Moves the simulator's clock forward (token expiry, idempotency key expiry, `created`). */
  advanceClock(seconds: number): void {
    this.#clockOffsetMs += seconds * 1000
  }

  /** The simulator's current Unix time in seconds. */
  now(): number {
    return Math.floor(this.#nowMs() / 1000)
  }

  #nowMs(): number {
    return Date.now() + this.#clockOffsetMs
  }

  /** Handles one HTTP request; never throws. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = `req_${randomBase62(14)}`
    const headers: Record<string, string> = {
      'Request-Id': requestId,
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, no-store',
      'Access-Control-Allow-Origin': '*',
    }
    try {
      const body = await readBody(req)
      const url = new URL(req.url ?? '/', 'http://localhost')
      if (url.pathname.startsWith('/_devnet/3ds/')) {
        await this.#authenticationPage(req.method ?? 'GET', url, res, requestId)
        return
      }
      if (url.pathname === '/_devnet/faults') {
        this.#faultControl(req, body, res, headers)
        return
      }
      const fault = this.faults.take(req.method ?? 'GET', url.pathname)
      if (fault?.when === 'before') {
        this.#sendFault(res, fault, headers)
        return
      }
      // A `saved` fault is the request's own answer (and what its Idempotency-Key replays); an `after`
      // fault loses the answer.
      const saved = fault?.when === 'saved' ? fault : undefined
      const lost = fault?.when === 'after' ? fault : undefined
      let reply: Reply
      try {
        reply = await this.#api(req, url, body, requestId, headers, saved)
      } catch (error) {
        // An `after` fault loses the answer whatever it was (the result is already saved).
        if (lost) {
          this.#sendFault(res, lost, headers)
          return
        }
        throw error
      }
      if (lost) {
        this.#sendFault(res, lost, headers)
        return
      }
      send(res, reply.status, { ...headers, ...(reply.headers ?? {}) }, JSON.stringify(reply.body, null, 2))
    } catch (error) {
      if (error instanceof StripeHttpError) {
        send(res, error.status, { ...headers, ...error.headers }, errorJson(error.body, requestId))
        return
      }
      const body: StripeErrorBody = {
        type: 'api_error',
        message: 'An unknown error occurred in the simulator.',
      }
      send(res, 500, headers, errorJson(body, requestId))
    }
  }

  #sendFault(
    res: ServerResponse,
    fault: { kind: number | 'timeout'; holdMs: number },
    headers: Record<string, string>,
  ): void {
    if (fault.kind === 'timeout') {
      // The connection is held open, then dropped: the caller's timeout fires first.
      const timer = setTimeout(() => res.destroy(), fault.holdMs)
      timer.unref()
      res.once('close', () => clearTimeout(timer))
      return
    }
    const { status, body, headers: extra } = faultBody(fault.kind)
    send(res, status, { ...headers, ...extra }, body)
  }

  /**
   * `POST /_devnet/faults` (JSON {@link StripeFault}) arms a fault; `DELETE /_devnet/faults` clears all.
   * Authenticated with the simulator's secret key, for processes that did not start the simulator.
   */
  #faultControl(
    req: IncomingMessage,
    body: string,
    res: ServerResponse,
    headers: Record<string, string>,
  ): void {
    this.#authenticate(req.headers.authorization)
    if (req.method === 'DELETE') {
      this.faults.clear()
      send(res, 200, headers, '{"cleared":true}')
      return
    }
    if (req.method !== 'POST')
      throw new StripeHttpError(405, { type: 'invalid_request_error', message: 'Use POST or DELETE.' })
    let fault: unknown
    try {
      fault = JSON.parse(body)
    } catch {
      throw new StripeHttpError(400, {
        type: 'invalid_request_error',
        message: 'The body must be a JSON fault.',
      })
    }
    try {
      this.faults.inject(fault as Parameters<FaultTable['inject']>[0])
    } catch (error) {
      throw new StripeHttpError(400, { type: 'invalid_request_error', message: (error as Error).message })
    }
    send(res, 200, headers, '{"injected":true}')
  }

  async #api(
    req: IncomingMessage,
    url: URL,
    body: string,
    requestId: string,
    headers: Record<string, string>,
    saved?: { kind: number | 'timeout' },
  ): Promise<Reply> {
    const method = (req.method ?? 'GET').toUpperCase()
    this.#authenticate(req.headers.authorization)

    const requestedVersion = header(req, 'stripe-version')
    if (requestedVersion !== undefined && !versionPattern.test(requestedVersion))
      throw new StripeHttpError(400, {
        type: 'invalid_request_error',
        message: `Invalid Stripe API version: ${requestedVersion}`,
      })
    const apiVersion = requestedVersion ?? this.#options.apiVersion
    // Stripe answers with the version the request was rendered in.
    headers['Stripe-Version'] = apiVersion

    const accountHeader = header(req, 'stripe-account')
    let account = this.#accounts.get(this.#options.platformAccount) as Account
    if (accountHeader !== undefined) {
      const connected = this.#accounts.get(accountHeader)
      if (connected === undefined)
        throw new StripeHttpError(403, {
          type: 'invalid_request_error',
          code: 'account_invalid',
          doc_url: docUrl('account_invalid'),
          message:
            'The provided key does not have access to account ' +
            `'${accountHeader}' (or that account does not exist). Application access may have been revoked.`,
        })
      account = connected
      headers['Stripe-Account'] = accountHeader
    }

    const params = parseForm(method === 'POST' ? body : url.search.slice(1))
    const ctx: Context = {
      requestId,
      apiVersion,
      account,
      params,
      viaStripeAccount: account.connected,
    }
    const route = `${method} ${url.pathname}`

    // A `saved` fault: the endpoint executed (whatever it answered once it began), then Stripe failed.
    const failed = (run: () => Reply): Reply => {
      if (saved === undefined) return run()
      try {
        run()
      } catch (error) {
        if (!(error instanceof StripeHttpError && error.persist)) throw error
      }
      const fault = faultBody(saved.kind as number, 'saved')
      return { status: fault.status, body: JSON.parse(fault.body) as Json, headers: fault.headers }
    }
    if (method !== 'POST') return failed(() => this.#route(method, url.pathname, ctx))

    const key = header(req, 'idempotency-key')
    if (key === undefined) {
      await this.#delay()
      return failed(() => this.#route(method, url.pathname, ctx))
    }
    headers['Idempotency-Key'] = key
    if (key.length > 255)
      throw invalidParam('Idempotency-Key', 'Idempotency-Key must be at most 255 characters long.')

    const print = fingerprint(params)
    const stored = account.idempotency.get(key)
    if (stored !== undefined && this.#nowMs() - stored.createdMs > this.#options.idempotencyTtlMs)
      account.idempotency.delete(key)
    const entry = account.idempotency.get(key)
    if (entry !== undefined) {
      if (entry.route !== route)
        throw new StripeHttpError(400, {
          type: 'idempotency_error',
          message:
            'Keys for idempotent requests can only be used for the same endpoint they were first used for ' +
            `('${entry.route}' vs '${route}'). Try using a key other than '${key}' if you meant to execute a different request.`,
        })
      if (entry.fingerprint !== print)
        throw new StripeHttpError(400, {
          type: 'idempotency_error',
          message:
            'Keys for idempotent requests can only be used with the same parameters they were first used with. ' +
            `Try using a key other than '${key}' if you meant to execute a different request.`,
        })
      // "Subsequent requests with the same key return the same result, including 500 errors", marked as
      // a replay (https://docs.stripe.com/api/idempotent_requests).
      return {
        status: entry.status,
        body: JSON.parse(entry.body) as Json,
        headers: { ...entry.headers, 'Idempotent-Replayed': 'true', 'Original-Request': entry.requestId },
      }
    }

    const flightKey = `${account.id}\u0000${key}`
    if (this.#inFlight.has(flightKey))
      throw new StripeHttpError(
        409,
        {
          type: 'invalid_request_error',
          code: 'idempotency_key_in_use',
          doc_url: docUrl('idempotency_key_in_use'),
          message:
            'There is currently another in-progress request using this Idempotent Key (that probably means you ' +
            'submitted twice, and the other request is still going through). Please try again later.',
        },
        { headers: { 'Stripe-Should-Retry': 'true' } },
      )
    this.#inFlight.add(flightKey)
    try {
      await this.#delay()
      let reply: Reply
      try {
        reply = failed(() => this.#route(method, url.pathname, ctx))
      } catch (error) {
        if (error instanceof StripeHttpError && error.persist)
          account.idempotency.set(key, {
            route,
            fingerprint: print,
            status: error.status,
            body: JSON.stringify({ error: errorEnvelope(error.body, requestId) }),
            requestId,
            createdMs: this.#nowMs(),
            headers: error.headers,
          })
        throw error
      }
      account.idempotency.set(key, {
        route,
        fingerprint: print,
        status: reply.status,
        body: JSON.stringify(reply.body),
        requestId,
        createdMs: this.#nowMs(),
        headers: reply.headers ?? {},
      })
      return reply
    } finally {
      this.#inFlight.delete(flightKey)
    }
  }

  async #delay(): Promise<void> {
    if (this.#options.latencyMs > 0)
      await new Promise((resolve) => setTimeout(resolve, this.#options.latencyMs))
  }

  #authenticate(authorization: string | undefined): void {
    let key: string | undefined
    if (authorization !== undefined) {
      const [scheme, value = ''] = authorization.trim().split(/\s+/, 2)
      if (scheme?.toLowerCase() === 'bearer') key = value
      else if (scheme?.toLowerCase() === 'basic') {
        // curl -u sk_test_…: sends the key as the user name with an empty password.
        const decoded = Buffer.from(value, 'base64').toString('utf8')
        key = decoded.split(':', 1)[0]
      }
    }
    const challenge = { 'WWW-Authenticate': 'Basic realm="Stripe"' }
    if (key === undefined || key === '')
      throw new StripeHttpError(
        401,
        {
          type: 'invalid_request_error',
          message:
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
        },
        { headers: challenge },
      )
    if (key !== this.#options.secretKey)
      // The key itself is never echoed (Stripe masks it; the simulator leaves it out entirely).
      throw new StripeHttpError(
        401,
        { type: 'invalid_request_error', code: 'api_key_invalid', message: 'Invalid API Key provided.' },
        { headers: challenge },
      )
  }

  #route(method: string, path: string, ctx: Context): Reply {
    const parts = path
      .split('/')
      .filter((part) => part !== '')
      .map(decodeURIComponent)
    const [version, resource, id, action, extra] = parts
    if (version === 'v1') {
      if (method === 'POST' && resource === 'payment_intents') {
        if (id === undefined) return this.#createPaymentIntent(ctx)
        if (action === 'confirm' && extra === undefined) return this.#confirmPaymentIntent(ctx, id)
        if (action === 'capture' && extra === undefined) return this.#capturePaymentIntent(ctx, id)
        if (action === 'cancel' && extra === undefined) return this.#cancelPaymentIntent(ctx, id)
      }
      if (method === 'GET' && resource === 'payment_intents' && id === undefined)
        return this.#listPaymentIntents(ctx)
      if (method === 'GET' && resource === 'payment_intents' && id !== undefined && action === undefined)
        return this.#ok(ctx, this.#renderPaymentIntent(ctx, this.#paymentIntent(ctx.account, id, 'intent')))
      if (method === 'POST' && resource === 'refunds' && id === undefined) return this.#createRefund(ctx)
      if (method === 'GET' && resource === 'refunds' && id !== undefined && action === undefined)
        return this.#ok(ctx, this.#renderRefund(ctx, this.#refund(ctx.account, id)))
      if (method === 'GET' && resource === 'charges' && id !== undefined && action === undefined)
        return this.#ok(ctx, this.#renderCharge(ctx, this.#charge(ctx.account, id, 'charge')))
      if (method === 'GET' && resource === 'payment_methods' && id !== undefined && action === undefined) {
        const record = ctx.account.paymentMethods.get(id)
        if (record === undefined) throw resourceMissing('PaymentMethod', 'payment_method', id)
        return this.#ok(ctx, clone(record.object))
      }
      if (method === 'GET' && resource === 'account' && id === undefined)
        return this.#ok(ctx, this.#accountObject(ctx))
      if (
        resource === 'shared_payment' &&
        id === 'granted_tokens' &&
        method === 'GET' &&
        action !== undefined &&
        extra === undefined
      )
        return this.#ok(ctx, this.#renderToken(this.#grantedToken(ctx.account, action)))
      if (resource === 'shared_payment' && id === 'issued_tokens') {
        if (method === 'POST' && action === undefined) return this.#issueToken(ctx)
        if (method === 'GET' && action !== undefined && extra === undefined)
          return this.#ok(ctx, this.#renderIssued(this.#issuedToken(ctx.account, action)))
        if (method === 'POST' && action !== undefined && extra === 'revoke') {
          checkParams(ctx.params, { expand: '*' })
          const issued = this.#issuedToken(ctx.account, action)
          this.#deactivate(issued.granted, 'revoked')
          return this.#ok(ctx, this.#renderIssued(issued))
        }
      }
      if (
        resource === 'test_helpers' &&
        id === 'shared_payment' &&
        action === 'granted_tokens' &&
        method === 'POST'
      ) {
        const [, , , , tokenId, verb, more] = parts
        if (tokenId === undefined) return this.#createGrantedToken(ctx)
        if (verb === 'revoke' && more === undefined) return this.#revokeGrantedToken(ctx, tokenId)
      }
    }
    throw new StripeHttpError(404, {
      type: 'invalid_request_error',
      message: `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
    })
  }

  #ok(_ctx: Context, body: Json): Reply {
    return { status: 200, body }
  }

  #accountObject(ctx: Context): Json {
    checkParams(ctx.params, { expand: '*' })
    return {
      id: ctx.account.id,
      object: 'account',
      business_type: 'company',
      capabilities: { card_payments: 'active', transfers: 'active' },
      charges_enabled: true,
      country: 'US',
      default_currency: 'usd',
      details_submitted: true,
      payouts_enabled: true,
      type: ctx.account.connected ? 'custom' : 'standard',
      metadata: {},
    }
  }

  // ---------------------------------------------------------------- Shared Payment Tokens

  #createGrantedToken(ctx: Context): Reply {
    const { params } = ctx
    checkParams(params, {
      payment_method: true,
      usage_limits: { currency: true, max_amount: true, expires_at: true },
      seller_details: { network_id: true, external_id: true, network_business_profile: true },
      agent_details: { network_business_profile: true },
      customer: true,
      shared_metadata: '*',
      setup_future_usage: true,
      expand: '*',
    })
    const card = this.#card(ctx.account, requiredString(params, 'payment_method'), 'payment_method')
    const agent = params.agent_details
    const networkProfile =
      typeof agent === 'object' && typeof agent.network_business_profile === 'string'
        ? agent.network_business_profile
        : null
    const record = this.#grant(ctx.account, card, params, networkProfile)
    return { status: 200, body: this.#renderToken(record) }
  }

  /** Creates a granted token in `seller` from the `usage_limits` and `shared_metadata` params. */
  #grant(
    seller: Account,
    card: TestCard,
    params: FormObject,
    agentProfile: string | null,
  ): GrantedTokenRecord {
    const limits = params.usage_limits
    if (limits === undefined || typeof limits !== 'object') throw missingParam('usage_limits')
    const currency = currencyParam(limits, 'currency', 'usage_limits[currency]')
    const maxAmount = integerParam(limits, 'max_amount', 'usage_limits[max_amount]')
    if (maxAmount === undefined) throw missingParam('usage_limits[max_amount]')
    if (maxAmount < 1)
      throw invalidParam('usage_limits[max_amount]', 'usage_limits[max_amount] must be positive.')
    const expiresAt = integerParam(limits, 'expires_at', 'usage_limits[expires_at]') ?? null
    const now = this.now()
    if (expiresAt !== null && expiresAt <= now)
      throw invalidParam('usage_limits[expires_at]', 'usage_limits[expires_at] must be in the future.')
    const sharedMetadata = metadataParam(params, 'shared_metadata') ?? {}
    const id = objectId('spt')
    const record: GrantedTokenRecord = {
      card,
      boundTo: null,
      object: {
        id,
        object: 'shared_payment.granted_token',
        agent_details: { network_business_profile: agentProfile },
        created: now,
        deactivated_at: null,
        deactivated_reason: null,
        livemode: false,
        payment_method_details: paymentMethodDetails(card),
        shared_metadata: sharedMetadata,
        usage_details: { amount_captured: { value: 0, currency } },
        usage_limits: { currency, expires_at: expiresAt, max_amount: maxAmount },
      },
    }
    seller.grantedTokens.set(id, record)
    return record
  }

  /**
   * `POST /v1/shared_payment/issued_tokens`: the agent's account shares one of its payment methods with
   * the seller whose Stripe profile is `seller_details[network_business_profile]` (the spec's example
   * spells it `seller_details[network_id]`; both are accepted). The seller sees it as a granted token.
   */
  #issueToken(ctx: Context): Reply {
    const { params } = ctx
    checkParams(params, {
      payment_method: true,
      usage_limits: { currency: true, max_amount: true, expires_at: true },
      seller_details: { network_id: true, external_id: true, network_business_profile: true },
      shared_metadata: '*',
      setup_future_usage: true,
      expand: '*',
    })
    const paymentMethod = requiredString(params, 'payment_method')
    const card = this.#card(ctx.account, paymentMethod, 'payment_method')
    const details = params.seller_details
    if (details === undefined || typeof details !== 'object') throw missingParam('seller_details')
    const profile =
      optionalString(details, 'network_business_profile') ?? optionalString(details, 'network_id')
    if (profile === undefined) throw missingParam('seller_details[network_business_profile]')
    const seller = [...this.#accounts.values()].find((account) => account.profile === profile)
    if (seller === undefined)
      throw invalidParam(
        'seller_details[network_business_profile]',
        `No such network business profile: '${profile}'`,
        'resource_missing',
      )
    const setupFutureUsage = enumParam(params, 'setup_future_usage', ['on_session', 'off_session']) ?? null
    const granted = this.#grant(seller, card, params, ctx.account.profile)
    // Issued tokens name their seller: another account using one is told so (test-helper tokens, granted
    // to the caller itself, stay plain `resource_missing` elsewhere).
    this.#tokenOwners.set(granted.object.id, seller.id)
    const issued: IssuedTokenRecord = {
      granted,
      paymentMethod,
      sellerDetails: {
        external_id: optionalString(details, 'external_id') ?? null,
        network_business_profile: profile,
      },
      setupFutureUsage,
    }
    ctx.account.issuedTokens.set(granted.object.id, issued)
    return { status: 200, body: this.#renderIssued(issued) }
  }

  #issuedToken(account: Account, id: string): IssuedTokenRecord {
    const issued = account.issuedTokens.get(id)
    if (issued === undefined)
      throw resourceMissing('shared_payment_issued_token', 'shared_payment_issued_token', undefined)
    return issued
  }

  #renderIssued(issued: IssuedTokenRecord): Json {
    const granted = this.#renderToken(issued.granted)
    return {
      id: granted.id,
      object: 'shared_payment.issued_token',
      created: granted.created,
      deactivated_at: granted.deactivated_at,
      deactivated_reason: granted.deactivated_reason,
      livemode: false,
      next_action: null,
      payment_method: issued.paymentMethod,
      seller_details: clone(issued.sellerDetails),
      setup_future_usage: issued.setupFutureUsage,
      shared_metadata: granted.shared_metadata,
      status: granted.deactivated_reason === null ? 'active' : 'deactivated',
      usage_details: granted.usage_details,
      usage_limits: granted.usage_limits,
    }
  }

  #deactivate(record: GrantedTokenRecord, reason: 'revoked'): void {
    this.#refreshToken(record)
    if (record.object.deactivated_reason === null) {
      record.object.deactivated_reason = reason
      record.object.deactivated_at = this.now()
    }
  }

  #listPaymentIntents(ctx: Context): Reply {
    checkParams(ctx.params, { limit: true, expand: '*', starting_after: true, customer: true, created: '*' })
    const limit = integerParam(ctx.params, 'limit', 'limit') ?? 10
    if (limit < 1 || limit > 100) throw invalidParam('limit', 'limit must be between 1 and 100.')
    // Newest first, as Stripe lists.
    let all = [...ctx.account.paymentIntents.values()].reverse()
    const after = optionalString(ctx.params, 'starting_after')
    if (after !== undefined) {
      const index = all.findIndex((record) => record.object.id === after)
      if (index === -1) throw resourceMissing('payment_intent', 'starting_after', after)
      all = all.slice(index + 1)
    }
    const page = all.slice(0, limit)
    return {
      status: 200,
      body: {
        object: 'list',
        url: '/v1/payment_intents',
        has_more: all.length > limit,
        data: page.map((record) => this.#renderPaymentIntent({ ...ctx, params: {} }, record)),
      },
    }
  }

  #revokeGrantedToken(ctx: Context, id: string): Reply {
    checkParams(ctx.params, { expand: '*' })
    const record = this.#grantedToken(ctx.account, id)
    this.#deactivate(record, 'revoked')
    return { status: 200, body: this.#renderToken(record) }
  }

  #grantedToken(account: Account, id: string): GrantedTokenRecord {
    const record = account.grantedTokens.get(id)
    // The token id is a payment credential: it is not echoed in the message.
    if (record === undefined)
      throw resourceMissing('shared_payment_granted_token', 'shared_payment_granted_token', undefined)
    return record
  }

  /** Applies lazy expiry: a token past `usage_limits.expires_at` reads as deactivated `expired`. */
  #refreshToken(record: GrantedTokenRecord): void {
    const expiresAt = record.object.usage_limits.expires_at
    if (record.object.deactivated_reason === null && expiresAt !== null && expiresAt <= this.now()) {
      record.object.deactivated_reason = 'expired'
      record.object.deactivated_at = expiresAt
    }
  }

  #renderToken(record: GrantedTokenRecord): Json {
    this.#refreshToken(record)
    return clone(record.object)
  }

  /** Checks that a token may pay `amount` `currency` for `paymentIntent`; throws Stripe's 400 otherwise. */
  #checkToken(record: GrantedTokenRecord, paymentIntent: PaymentIntentObject): void {
    this.#refreshToken(record)
    const param = 'shared_payment_granted_token'
    const fail = (code: string, message: string) => invalidParam(param, message, code)
    const reason = record.object.deactivated_reason
    if (reason === 'expired') throw fail(sptErrorCodes.expired, 'This shared payment token has expired.')
    if (reason === 'revoked') throw fail(sptErrorCodes.revoked, 'This shared payment token has been revoked.')
    if (reason !== null || (record.boundTo !== null && record.boundTo !== paymentIntent.id))
      // SPTs are single-use: "Stripe automatically prevents SPT reuse at the API level"
      // (draft-stripe-charge-00, SPT Single-Use Constraint).
      throw fail(sptErrorCodes.alreadyUsed, 'You cannot use a shared payment token more than once.')
    const limits = record.object.usage_limits
    if (limits.currency !== paymentIntent.currency)
      throw fail(
        sptErrorCodes.currencyMismatch,
        `The PaymentIntent currency (${paymentIntent.currency}) does not match the shared payment token's usage_limits[currency] (${limits.currency}).`,
      )
    const remaining = limits.max_amount - record.object.usage_details.amount_captured.value
    if (paymentIntent.amount > remaining)
      throw fail(
        sptErrorCodes.amountExceeded,
        `The PaymentIntent amount (${paymentIntent.amount}) exceeds the shared payment token's usage_limits[max_amount] (${remaining} remaining).`,
      )
  }

  // ---------------------------------------------------------------- PaymentIntents

  #createPaymentIntent(ctx: Context): Reply {
    const { params } = ctx
    checkParams(params, paymentIntentCreateParams)
    const amount = integerParam(params, 'amount', 'amount')
    if (amount === undefined) throw missingParam('amount')
    const currency = currencyParam(params, 'currency', 'currency')
    checkAmount(amount, currency)
    const confirm = booleanParam(params, 'confirm') ?? false
    const captureMethod =
      enumParam(params, 'capture_method', ['automatic', 'automatic_async', 'manual']) ??
      (ctx.apiVersion >= automaticAsyncDefaultFrom ? 'automatic_async' : 'automatic')
    const metadata = metadataParam(params, 'metadata') ?? {}

    let types = stringArrayParam(params, 'payment_method_types')
    let automatic: PaymentIntentObject['automatic_payment_methods'] = null
    const apm = params.automatic_payment_methods
    if (apm !== undefined) {
      if (types !== undefined)
        throw invalidParam(
          'automatic_payment_methods',
          'You may only specify one of these parameters: automatic_payment_methods, payment_method_types.',
        )
      if (typeof apm !== 'object') throw invalidParam('automatic_payment_methods', 'Invalid object')
      const enabled = booleanParam(apm, 'enabled', 'automatic_payment_methods[enabled]')
      if (enabled === undefined) throw missingParam('automatic_payment_methods[enabled]')
      if (enabled)
        automatic = {
          enabled,
          allow_redirects:
            enumParam(
              apm,
              'allow_redirects',
              ['always', 'never'],
              'automatic_payment_methods[allow_redirects]',
            ) ?? 'always',
        }
    } else if (types === undefined && ctx.apiVersion >= automaticPaymentMethodsDefaultFrom) {
      // Since API version 2023-08-16 automatic_payment_methods is enabled by default.
      automatic = { enabled: true, allow_redirects: 'always' }
    }
    if (types === undefined) types = [cardSetAlias]

    const applicationFee = integerParam(params, 'application_fee_amount', 'application_fee_amount') ?? null
    const onBehalfOf = optionalString(params, 'on_behalf_of') ?? null
    if (onBehalfOf !== null) this.#connectedAccount(onBehalfOf, 'on_behalf_of')
    let transferData: PaymentIntentObject['transfer_data'] = null
    const transfer = params.transfer_data
    if (transfer !== undefined) {
      if (typeof transfer !== 'object') throw invalidParam('transfer_data', 'Invalid object')
      const destination = optionalString(transfer, 'destination')
      if (destination === undefined) throw missingParam('transfer_data[destination]')
      this.#connectedAccount(destination, 'transfer_data[destination]')
      const transferAmount = integerParam(transfer, 'amount', 'transfer_data[amount]')
      if (transferAmount !== undefined && transferAmount > amount)
        throw invalidParam('transfer_data[amount]', 'transfer_data[amount] cannot be greater than amount.')
      transferData = transferAmount === undefined ? { destination } : { destination, amount: transferAmount }
    }
    if (applicationFee !== null) {
      if (!ctx.viaStripeAccount && transferData === null)
        throw invalidParam(
          'application_fee_amount',
          'Can only apply an application_fee_amount when the PaymentIntent is attempting a direct payment (using an OAuth key or Stripe-Account header) or destination payment (using `transfer_data[destination]`).',
        )
      if (applicationFee > amount)
        throw invalidParam('application_fee_amount', 'application_fee_amount cannot be greater than amount.')
    }

    const id = objectId('pi')
    const object: PaymentIntentObject = {
      id,
      object: 'payment_intent',
      amount,
      amount_capturable: 0,
      amount_details: { tip: {} },
      amount_received: 0,
      application: null,
      application_fee_amount: applicationFee,
      automatic_payment_methods: automatic,
      canceled_at: null,
      cancellation_reason: null,
      capture_method: captureMethod,
      client_secret: `${id}_secret_${randomBase62(25)}`,
      confirmation_method: enumParam(params, 'confirmation_method', ['automatic', 'manual']) ?? 'automatic',
      created: this.now(),
      currency,
      customer: optionalString(params, 'customer') ?? null,
      description: optionalString(params, 'description') ?? null,
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      metadata,
      next_action: null,
      on_behalf_of: onBehalfOf,
      payment_method: null,
      payment_method_configuration_details: null,
      payment_method_options: { card: { request_three_d_secure: 'automatic' } },
      payment_method_types: types,
      processing: null,
      receipt_email: optionalString(params, 'receipt_email') ?? null,
      review: null,
      setup_future_usage: enumParam(params, 'setup_future_usage', ['on_session', 'off_session']) ?? null,
      shared_payment_granted_token: null,
      shipping: null,
      source: null,
      statement_descriptor: optionalString(params, 'statement_descriptor') ?? null,
      statement_descriptor_suffix: optionalString(params, 'statement_descriptor_suffix') ?? null,
      status: 'requires_payment_method',
      transfer_data: transferData,
      transfer_group: optionalString(params, 'transfer_group') ?? null,
    }
    const record: PaymentIntentRecord = {
      object,
      returnUrl: null,
      offSession: false,
      errorOnRequiresAction: false,
      authenticationToken: null,
    }
    const plan = this.#planConfirmation(ctx, record, confirm)
    if (plan.source !== null) object.status = 'requires_confirmation'
    this.#applySource(ctx.account, record, plan)
    ctx.account.paymentIntents.set(id, record)
    if (confirm) this.#executeConfirmation(ctx, record)
    return { status: 200, body: this.#renderPaymentIntent(ctx, record) }
  }

  #confirmPaymentIntent(ctx: Context, id: string): Reply {
    checkParams(ctx.params, paymentIntentConfirmParams)
    const record = this.#paymentIntent(ctx.account, id, 'intent')
    const status = record.object.status
    if (
      status !== 'requires_payment_method' &&
      status !== 'requires_confirmation' &&
      status !== 'requires_action'
    )
      throw unexpectedState(
        `You cannot confirm this PaymentIntent because it has a status of ${status}. Only a PaymentIntent with one of the following statuses may be confirmed: requires_confirmation, requires_payment_method, requires_action.`,
      )
    const plan = this.#planConfirmation(ctx, record, true)
    this.#applySource(ctx.account, record, plan)
    this.#executeConfirmation(ctx, record)
    return { status: 200, body: this.#renderPaymentIntent(ctx, record) }
  }

  /**
   * Validates everything a confirmation needs before any state changes, so a request rejected here
   * creates nothing and (like Stripe's parameter validation) is not stored against its Idempotency-Key.
   */
  #planConfirmation(
    ctx: Context,
    record: PaymentIntentRecord,
    confirm: boolean,
  ): { source: { paymentMethod: string } | { token: GrantedTokenRecord } | null } {
    const { params } = ctx
    const paymentMethod = optionalString(params, 'payment_method')
    let tokenId = optionalString(params, 'shared_payment_granted_token')
    const data = params.payment_method_data
    if (data !== undefined) {
      if (typeof data !== 'object') throw invalidParam('payment_method_data', 'Invalid object')
      const nested = optionalString(data, 'shared_payment_granted_token')
      if (nested === undefined)
        throw invalidParam(
          'payment_method_data',
          'The simulator accepts payment_method_data only with payment_method_data[shared_payment_granted_token]. Raw card numbers are not accepted by the Stripe API either.',
        )
      if (tokenId !== undefined && tokenId !== nested)
        throw invalidParam('shared_payment_granted_token', 'Conflicting shared_payment_granted_token values.')
      tokenId = nested
    }
    if (paymentMethod !== undefined && tokenId !== undefined)
      throw invalidParam(
        'shared_payment_granted_token',
        'You may only specify one of these parameters: payment_method, shared_payment_granted_token.',
      )
    const returnUrl = optionalString(params, 'return_url')
    if (returnUrl !== undefined) {
      if (!/^https?:\/\//.test(returnUrl)) throw invalidParam('return_url', 'Not a valid URL')
      if (!confirm) throw invalidParam('return_url', 'return_url can only be provided when confirm=true.')
    }
    const offSession = params.off_session
    if (offSession !== undefined && !confirm)
      throw invalidParam('off_session', 'off_session can only be provided when confirm=true.')

    let source: { paymentMethod: string } | { token: GrantedTokenRecord } | null = null
    if (paymentMethod !== undefined) {
      this.#card(ctx.account, paymentMethod, 'payment_method')
      source = { paymentMethod }
    } else if (tokenId !== undefined) {
      const token = ctx.account.grantedTokens.get(tokenId)
      if (token === undefined && this.#tokenOwners.has(tokenId))
        // A token is granted to one seller's profile; another account cannot pay with it.
        throw invalidParam(
          'shared_payment_granted_token',
          "This shared payment token was granted to another seller's Stripe profile.",
          sptErrorCodes.sellerMismatch,
        )
      if (token === undefined)
        throw resourceMissing('shared_payment_granted_token', 'shared_payment_granted_token', undefined)
      this.#checkToken(token, record.object)
      source = { token }
    } else if (confirm && record.object.shared_payment_granted_token !== null) {
      // The token attached earlier must still be valid when the intent is confirmed.
      const token = ctx.account.grantedTokens.get(record.object.shared_payment_granted_token)
      if (token !== undefined) this.#checkToken(token, record.object)
    }
    if (!confirm) return { source }

    const hasMethod = source !== null || record.object.payment_method !== null
    if (!hasMethod)
      throw unexpectedState(
        "You cannot confirm this PaymentIntent because it's missing a payment method. You can either update the PaymentIntent with a payment method and then confirm it again, or confirm it again directly with a payment method or ConfirmationToken.",
      )
    if (!record.object.payment_method_types.includes('card'))
      throw invalidParam(
        'payment_method',
        `The PaymentMethod provided (card) is not allowed for this PaymentIntent. Please attach a PaymentMethod of one of the following types: ${record.object.payment_method_types.join(', ')}.`,
      )
    const automatic = record.object.automatic_payment_methods
    const effectiveReturnUrl = returnUrl ?? record.returnUrl
    if (automatic?.enabled && automatic.allow_redirects !== 'never' && effectiveReturnUrl === null)
      throw invalidParam(
        'return_url',
        'A return_url must be specified because this Payment Intent is configured to automatically accept the payment methods enabled in the Dashboard, some of which may require a full page redirect to succeed. If you do not want to accept redirect-based payment methods, set automatic_payment_methods[enabled] to true and automatic_payment_methods[allow_redirects] to never when creating Setup Intents and Payment Intents.',
      )
    if (returnUrl !== undefined) record.returnUrl = returnUrl
    record.offSession = offSession !== undefined && offSession !== 'false'
    record.errorOnRequiresAction = booleanParam(params, 'error_on_requires_action') ?? false
    const receiptEmail = optionalString(params, 'receipt_email')
    if (receiptEmail !== undefined) record.object.receipt_email = receiptEmail
    const metadata = metadataParam(params, 'metadata')
    if (metadata !== undefined) Object.assign(record.object.metadata, metadata)
    return { source }
  }

  #applySource(
    account: Account,
    record: PaymentIntentRecord,
    plan: { source: { paymentMethod: string } | { token: GrantedTokenRecord } | null },
  ): void {
    const { source } = plan
    if (source === null) return
    if ('token' in source) {
      // A payment made with an SPT gets its own PaymentMethod built from the token's card.
      const method = this.#createPaymentMethod(account, source.token.card)
      record.object.payment_method = method
      record.object.shared_payment_granted_token = source.token.object.id
    } else {
      const existing = account.paymentMethods.get(source.paymentMethod)
      record.object.payment_method =
        existing === undefined
          ? this.#createPaymentMethod(account, testCards[source.paymentMethod] as TestCard)
          : existing.object.id
      record.object.shared_payment_granted_token = null
    }
  }

  #executeConfirmation(ctx: Context, record: PaymentIntentRecord): void {
    const pi = record.object
    const method = paymentMethodOf(ctx.account, pi.payment_method)
    let behaviour: CardBehaviour = method.card.behaviour
    pi.last_payment_error = null
    pi.next_action = null
    if (record.authenticationToken !== null) {
      // A new confirmation starts a new authentication; the old hosted page stops working.
      this.#authentications.delete(record.authenticationToken)
      record.authenticationToken = null
    }
    if (behaviour.kind === 'authenticate') {
      if (record.offSession || record.errorOnRequiresAction) behaviour = authenticationRequiredDecline
      else {
        this.#bindToken(ctx.account, pi)
        this.#requireAction(ctx.account, record)
        return
      }
    }
    if (behaviour.kind === 'decline') {
      this.#decline(ctx, record, method, behaviour)
      return
    }
    this.#succeed(ctx.account, record, method)
  }

  #bindToken(account: Account, pi: PaymentIntentObject): void {
    if (pi.shared_payment_granted_token === null) return
    const token = account.grantedTokens.get(pi.shared_payment_granted_token)
    if (token !== undefined) token.boundTo = pi.id
  }

  #requireAction(account: Account, record: PaymentIntentRecord): void {
    const pi = record.object
    const secret = randomBase62(32)
    record.authenticationToken = secret
    this.#authentications.set(secret, { account: account.id, paymentIntent: pi.id })
    const url = `${this.#options.publicBase()}/_devnet/3ds/${secret}`
    pi.status = 'requires_action'
    pi.next_action =
      record.returnUrl === null
        ? {
            type: 'use_stripe_sdk',
            use_stripe_sdk: {
              type: 'three_d_secure_redirect',
              stripe_js: url,
              source: objectId('src'),
              directory_server_name: 'visa',
            },
          }
        : { type: 'redirect_to_url', redirect_to_url: { url, return_url: record.returnUrl } }
  }

  #decline(
    ctx: Context,
    record: PaymentIntentRecord,
    method: PaymentMethodRecord,
    behaviour: CardBehaviour & { kind: 'decline' },
  ): never {
    const pi = record.object
    const charge = this.#createCharge(ctx.account, pi, method, 'failed', behaviour)
    const error: StripeErrorBody = {
      type: 'card_error',
      code: behaviour.code,
      decline_code: behaviour.declineCode,
      doc_url: docUrl(behaviour.code),
      message: behaviour.message,
      charge: charge.id,
      ...(behaviour.param === undefined ? {} : { param: behaviour.param }),
    }
    pi.status = 'requires_payment_method'
    pi.latest_charge = charge.id
    pi.last_payment_error = { ...error, payment_method: clone(method.object) }
    pi.payment_method = null
    pi.next_action = null
    // A declined token stays usable (nothing was captured), but not by another intent.
    this.#bindToken(ctx.account, pi)
    const paymentIntent = this.#renderPaymentIntent({ ...ctx, params: {} }, record)
    throw new StripeHttpError(
      402,
      { ...error, payment_intent: paymentIntent, payment_method: clone(method.object) },
      { persist: true },
    )
  }

  #succeed(account: Account, record: PaymentIntentRecord, method: PaymentMethodRecord): void {
    const pi = record.object
    const manual = pi.capture_method === 'manual'
    const charge = this.#createCharge(account, pi, method, 'succeeded', undefined)
    pi.latest_charge = charge.id
    pi.next_action = null
    pi.last_payment_error = null
    pi.payment_method = method.object.id
    if (manual) {
      pi.status = 'requires_capture'
      pi.amount_capturable = pi.amount
    } else {
      pi.status = 'succeeded'
      pi.amount_received = pi.amount
    }
    record.authenticationToken = null
    if (pi.shared_payment_granted_token !== null) {
      const token = account.grantedTokens.get(pi.shared_payment_granted_token)
      if (token !== undefined) {
        token.boundTo = pi.id
        token.object.usage_details.amount_captured.value += manual ? 0 : pi.amount
        // Single use: the token is spent by the first payment that goes through.
        token.object.deactivated_reason = 'consumed'
        token.object.deactivated_at = this.now()
      }
    }
  }

  #capturePaymentIntent(ctx: Context, id: string): Reply {
    checkParams(ctx.params, {
      amount_to_capture: true,
      metadata: '*',
      expand: '*',
      application_fee_amount: true,
    })
    const record = this.#paymentIntent(ctx.account, id, 'intent')
    const pi = record.object
    if (pi.status !== 'requires_capture')
      throw unexpectedState(
        `This PaymentIntent could not be captured because it has a status of ${pi.status}. Only a PaymentIntent with one of the following statuses may be captured: requires_capture.`,
      )
    const amount = integerParam(ctx.params, 'amount_to_capture', 'amount_to_capture') ?? pi.amount_capturable
    if (amount > pi.amount_capturable || amount < 1)
      throw invalidParam(
        'amount_to_capture',
        'The amount to capture must be positive and at most the amount capturable.',
      )
    const charge = this.#charge(ctx.account, pi.latest_charge ?? '', 'charge')
    charge.amount_captured = amount
    charge.captured = true
    pi.amount_received = amount
    pi.amount_capturable = 0
    pi.status = 'succeeded'
    const metadata = metadataParam(ctx.params, 'metadata')
    if (metadata !== undefined) Object.assign(pi.metadata, metadata)
    if (pi.shared_payment_granted_token !== null) {
      const token = ctx.account.grantedTokens.get(pi.shared_payment_granted_token)
      if (token !== undefined) token.object.usage_details.amount_captured.value += amount
    }
    return { status: 200, body: this.#renderPaymentIntent(ctx, record) }
  }

  #cancelPaymentIntent(ctx: Context, id: string): Reply {
    checkParams(ctx.params, { cancellation_reason: true, expand: '*' })
    const record = this.#paymentIntent(ctx.account, id, 'intent')
    const pi = record.object
    if (pi.status === 'succeeded' || pi.status === 'canceled' || pi.status === 'processing')
      throw unexpectedState(
        `You cannot cancel this PaymentIntent because it has a status of ${pi.status}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action.`,
      )
    pi.cancellation_reason =
      enumParam(ctx.params, 'cancellation_reason', [
        'duplicate',
        'fraudulent',
        'requested_by_customer',
        'abandoned',
      ]) ?? null
    pi.status = 'canceled'
    pi.canceled_at = this.now()
    pi.next_action = null
    pi.amount_capturable = 0
    if (record.authenticationToken !== null) this.#authentications.delete(record.authenticationToken)
    record.authenticationToken = null
    return { status: 200, body: this.#renderPaymentIntent(ctx, record) }
  }

  #paymentIntent(account: Account, id: string, param: string): PaymentIntentRecord {
    const record = account.paymentIntents.get(id)
    if (record === undefined) throw resourceMissing('payment_intent', param, id)
    return record
  }

  #renderPaymentIntent(ctx: Context, record: PaymentIntentRecord): Json {
    const body: Json = clone(record.object)
    for (const field of expandParam(ctx.params)) {
      if (field === 'latest_charge') {
        const id = record.object.latest_charge
        body.latest_charge =
          id === null
            ? null
            : this.#renderCharge({ ...ctx, params: {} }, this.#charge(ctx.account, id, 'charge'))
      } else if (field === 'payment_method') {
        const id = record.object.payment_method
        body.payment_method = id === null ? null : clone(paymentMethodOf(ctx.account, id).object)
      } else throw invalidParam('expand', `This property cannot be expanded (${field}).`)
    }
    return body
  }

  // ---------------------------------------------------------------- Charges, PaymentMethods

  #createPaymentMethod(account: Account, card: TestCard): string {
    const id = objectId('pm')
    account.paymentMethods.set(id, {
      card,
      object: {
        id,
        object: 'payment_method',
        allow_redisplay: 'unspecified',
        billing_details: emptyBillingDetails(),
        card: cardDetails(card),
        created: this.now(),
        customer: null,
        livemode: false,
        metadata: {},
        type: 'card',
      },
    })
    return id
  }

  #card(account: Account, id: string, param: string): TestCard {
    const stored = account.paymentMethods.get(id)
    if (stored !== undefined) return stored.card
    const card = testCards[id]
    if (card === undefined) throw resourceMissing('PaymentMethod', param, id)
    return card
  }

  #createCharge(
    account: Account,
    pi: PaymentIntentObject,
    method: PaymentMethodRecord,
    status: 'succeeded' | 'failed',
    decline: (CardBehaviour & { kind: 'decline' }) | undefined,
  ): ChargeObject {
    const id = objectId('ch')
    const captured = status === 'succeeded' && pi.capture_method !== 'manual'
    const charge: ChargeObject = {
      id,
      object: 'charge',
      amount: pi.amount,
      amount_captured: captured ? pi.amount : 0,
      amount_refunded: 0,
      application_fee_amount: pi.application_fee_amount,
      balance_transaction: status === 'succeeded' ? objectId('txn') : null,
      billing_details: emptyBillingDetails(),
      captured,
      created: this.now(),
      currency: pi.currency,
      description: pi.description,
      failure_code: decline?.code ?? null,
      failure_message: decline?.message ?? null,
      livemode: false,
      metadata: { ...pi.metadata },
      on_behalf_of: pi.on_behalf_of,
      outcome:
        decline === undefined
          ? {
              network_status: 'approved_by_network',
              reason: null,
              risk_level: 'normal',
              seller_message: 'Payment complete.',
              type: 'authorized',
            }
          : {
              network_status: 'declined_by_network',
              reason: decline.declineCode,
              risk_level: 'normal',
              seller_message: 'The bank did not return any further details with this decline.',
              type: 'issuer_declined',
            },
      paid: status === 'succeeded',
      payment_intent: pi.id,
      payment_method: method.object.id,
      payment_method_details: { type: 'card', card: cardDetails(method.card) },
      refunded: false,
      status,
      transfer_data: pi.transfer_data,
      transfer_group: pi.transfer_group,
    }
    account.charges.set(id, charge)
    return charge
  }

  #charge(account: Account, id: string, param: string): ChargeObject {
    const charge = account.charges.get(id)
    if (charge === undefined) throw resourceMissing('charge', param, id)
    return charge
  }

  #renderCharge(ctx: Context, charge: ChargeObject): Json {
    const body: Json = clone(charge)
    for (const field of expandParam(ctx.params)) {
      if (field === 'payment_intent')
        body.payment_intent = this.#renderPaymentIntent(
          { ...ctx, params: {} },
          this.#paymentIntent(ctx.account, charge.payment_intent, 'payment_intent'),
        )
      else throw invalidParam('expand', `This property cannot be expanded (${field}).`)
    }
    return body
  }

  // ---------------------------------------------------------------- Refunds

  #createRefund(ctx: Context): Reply {
    const { params } = ctx
    checkParams(params, {
      payment_intent: true,
      charge: true,
      amount: true,
      reason: true,
      metadata: '*',
      expand: '*',
      refund_application_fee: true,
      reverse_transfer: true,
      instructions_email: true,
      origin: true,
    })
    const paymentIntentId = optionalString(params, 'payment_intent')
    const chargeId = optionalString(params, 'charge')
    if (paymentIntentId === undefined && chargeId === undefined)
      throw invalidParam(
        'payment_intent',
        'One of the following params should be provided for this request: payment_intent or charge.',
        'parameter_missing',
      )
    let charge: ChargeObject
    if (paymentIntentId !== undefined) {
      const pi = this.#paymentIntent(ctx.account, paymentIntentId, 'payment_intent').object
      if (pi.status !== 'succeeded' || pi.latest_charge === null)
        throw invalidParam(
          'payment_intent',
          `This PaymentIntent (${pi.id}) does not have a successful charge to refund.`,
          'charge_not_refundable',
        )
      charge = this.#charge(ctx.account, pi.latest_charge, 'charge')
      if (chargeId !== undefined && chargeId !== charge.id)
        throw invalidParam('charge', 'The charge does not belong to the given payment_intent.')
    } else {
      charge = this.#charge(ctx.account, chargeId as string, 'charge')
      if (charge.status !== 'succeeded' || !charge.captured)
        throw invalidParam('charge', `Charge ${charge.id} has not been captured.`, 'charge_not_refundable')
    }
    const remaining = charge.amount_captured - charge.amount_refunded
    if (remaining <= 0)
      throw invalidParam(
        'charge',
        `Charge ${charge.id} has already been refunded.`,
        'charge_already_refunded',
      )
    const amount = integerParam(params, 'amount', 'amount') ?? remaining
    if (amount < 1) throw invalidParam('amount', 'Refund amount must be positive.', 'amount_too_small')
    checkWholeUnits(amount, charge.currency, 'amount')
    if (amount > remaining)
      throw invalidParam(
        'amount',
        `Refund amount (${formatAmount(amount, charge.currency)}) is greater than unrefunded amount on charge (${formatAmount(remaining, charge.currency)})`,
        'amount_too_large',
      )
    const reason = enumParam(params, 'reason', ['duplicate', 'fraudulent', 'requested_by_customer']) ?? null
    charge.amount_refunded += amount
    charge.refunded = charge.amount_refunded === charge.amount_captured
    const id = objectId('re')
    const refund = {
      id,
      object: 'refund',
      amount,
      balance_transaction: objectId('txn'),
      charge: charge.id,
      created: this.now(),
      currency: charge.currency,
      destination_details: {
        type: 'card',
        card: { reference_status: 'pending', reference_type: 'acquirer_reference_number', type: 'refund' },
      },
      metadata: metadataParam(params, 'metadata') ?? {},
      payment_intent: charge.payment_intent,
      reason,
      receipt_number: null,
      source_transfer_reversal: null,
      status: 'succeeded',
      transfer_reversal: null,
    }
    ctx.account.refunds.set(id, refund)
    return { status: 200, body: this.#renderRefund(ctx, refund) }
  }

  #refund(account: Account, id: string): Json & { id: string; charge: string; payment_intent: string } {
    const refund = account.refunds.get(id)
    if (refund === undefined) throw resourceMissing('refund', 'refund', id)
    return refund
  }

  #renderRefund(ctx: Context, refund: Json & { charge: string; payment_intent: string }): Json {
    const body: Json = clone(refund)
    for (const field of expandParam(ctx.params)) {
      if (field === 'charge')
        body.charge = this.#renderCharge(
          { ...ctx, params: {} },
          this.#charge(ctx.account, refund.charge, 'charge'),
        )
      else if (field === 'payment_intent')
        body.payment_intent = this.#renderPaymentIntent(
          { ...ctx, params: {} },
          this.#paymentIntent(ctx.account, refund.payment_intent, 'payment_intent'),
        )
      else throw invalidParam('expand', `This property cannot be expanded (${field}).`)
    }
    return body
  }

  #connectedAccount(id: string, param: string): void {
    const account = this.#accounts.get(id)
    if (account === undefined || !account.connected)
      throw invalidParam(param, `No such destination: '${id}'`, 'resource_missing')
  }

  // ---------------------------------------------------------------- hosted 3DS page

  /**
   * The page a buyer is sent to by `next_action` (Stripe's hosted 3DS test page analogue):
   * `GET` shows Complete/Fail buttons, `POST …/complete` or `…/fail` decides the outcome.
   */
  async #authenticationPage(method: string, url: URL, res: ServerResponse, requestId: string): Promise<void> {
    const [, , , secret, outcome] = url.pathname.split('/')
    const entry = secret === undefined ? undefined : this.#authentications.get(secret)
    const html = { 'Content-Type': 'text/html; charset=utf-8', 'Request-Id': requestId }
    if (entry === undefined) {
      send(res, 404, html, '<!doctype html><p>This authentication session does not exist or has ended.</p>')
      return
    }
    if (method === 'GET' && outcome === undefined) {
      send(
        res,
        200,
        html,
        `<!doctype html><title>3D Secure test page</title><h1>3D Secure test payment</h1>` +
          `<form method="post" action="/_devnet/3ds/${secret}/complete"><button>Complete</button></form>` +
          `<form method="post" action="/_devnet/3ds/${secret}/fail"><button>Fail</button></form>`,
      )
      return
    }
    if (method !== 'POST' || (outcome !== 'complete' && outcome !== 'fail')) {
      send(res, 405, html, '<!doctype html><p>Use POST …/complete or …/fail.</p>')
      return
    }
    const account = this.#accounts.get(entry.account) as Account
    const record = account.paymentIntents.get(entry.paymentIntent) as PaymentIntentRecord
    this.#authentications.delete(secret as string)
    const pi = record.object
    record.authenticationToken = null
    if (outcome === 'complete') {
      this.#succeed(account, record, paymentMethodOf(account, pi.payment_method))
    } else {
      pi.status = 'requires_payment_method'
      pi.next_action = null
      pi.last_payment_error = {
        type: 'invalid_request_error',
        code: 'payment_intent_authentication_failure',
        doc_url: docUrl('payment_intent_authentication_failure'),
        message:
          'The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.',
        payment_method: clone(paymentMethodOf(account, pi.payment_method).object),
      }
      pi.payment_method = null
    }
    const redirectStatus = outcome === 'complete' ? 'succeeded' : 'failed'
    if (record.returnUrl !== null) {
      const target = new URL(record.returnUrl)
      target.searchParams.set('payment_intent', pi.id)
      target.searchParams.set('payment_intent_client_secret', pi.client_secret)
      target.searchParams.set('redirect_status', redirectStatus)
      send(res, 302, { Location: target.toString(), 'Request-Id': requestId }, '')
      return
    }
    send(res, 200, html, `<!doctype html><p>Authentication ${redirectStatus}. You can close this page.</p>`)
  }
}

// ---------------------------------------------------------------- helpers

function newAccount(id: string, connected: boolean): Account {
  return {
    id,
    profile: `profile_test_${randomBase62(40)}`,
    connected,
    issuedTokens: new Map(),
    paymentIntents: new Map(),
    charges: new Map(),
    refunds: new Map(),
    paymentMethods: new Map(),
    grantedTokens: new Map(),
    idempotency: new Map(),
  }
}

function paymentMethodOf(account: Account, id: string | null): PaymentMethodRecord {
  const record = id === null ? undefined : account.paymentMethods.get(id)
  if (record === undefined)
    throw unexpectedState(
      "You cannot confirm this PaymentIntent because it's missing a payment method. You can either update the PaymentIntent with a payment method and then confirm it again, or confirm it again directly with a payment method or ConfirmationToken.",
    )
  return record
}

type ParamSpec = { [key: string]: true | '*' | ParamSpec }

const paymentIntentConfirmParams: ParamSpec = {
  payment_method: true,
  shared_payment_granted_token: true,
  payment_method_data: '*',
  payment_method_options: '*',
  payment_method_types: '*',
  return_url: true,
  off_session: true,
  error_on_requires_action: true,
  receipt_email: true,
  setup_future_usage: true,
  capture_method: true,
  mandate_data: '*',
  radar_options: '*',
  shipping: '*',
  use_stripe_sdk: true,
  expand: '*',
  metadata: '*',
}

const paymentIntentCreateParams: ParamSpec = {
  ...paymentIntentConfirmParams,
  amount: true,
  currency: true,
  confirm: true,
  automatic_payment_methods: { enabled: true, allow_redirects: true },
  confirmation_method: true,
  customer: true,
  description: true,
  statement_descriptor: true,
  statement_descriptor_suffix: true,
  application_fee_amount: true,
  on_behalf_of: true,
  transfer_data: { destination: true, amount: true },
  transfer_group: true,
  hooks: '*',
  payment_method_configuration: true,
  excluded_payment_method_types: '*',
}

/** Rejects parameters the endpoint does not know, as Stripe does (`parameter_unknown`). */
function checkParams(params: FormObject, spec: ParamSpec, prefix = ''): void {
  for (const [key, value] of Object.entries(params)) {
    const name = prefix === '' ? key : `${prefix}[${key}]`
    const rule = spec[key]
    if (rule === undefined) throw unknownParam(name)
    if (rule === '*' || rule === true) continue
    if (typeof value === 'object') checkParams(value, rule, name)
    else if (value !== '') throw invalidParam(name, `Invalid object`)
  }
}

function optionalString(params: FormObject, key: string): string | undefined {
  const value = params[key]
  if (value === undefined) return undefined
  if (typeof value !== 'string') throw invalidParam(key, `Invalid string: ${key} must be a string.`)
  return value === '' ? undefined : value
}

function requiredString(params: FormObject, key: string): string {
  const value = optionalString(params, key)
  if (value === undefined) throw missingParam(key)
  return value
}

function integerParam(params: FormObject, key: string, name: string): number | undefined {
  const value = params[key]
  if (value === undefined || value === '') return undefined
  if (typeof value !== 'string' || !/^-?\d+$/.test(value) || !Number.isSafeInteger(Number(value)))
    throw invalidParam(
      name,
      `Invalid integer: ${typeof value === 'string' ? value : 'object'}`,
      'parameter_invalid_integer',
    )
  return Number(value)
}

function booleanParam(params: FormObject, key: string, name = key): boolean | undefined {
  const value = params[key]
  if (value === undefined || value === '') return undefined
  if (value === 'true') return true
  if (value === 'false') return false
  throw invalidParam(name, `Invalid boolean: ${typeof value === 'string' ? value : 'object'}`)
}

function enumParam<const T extends string>(
  params: FormObject,
  key: string,
  values: readonly T[],
  name = key,
): T | undefined {
  const value = optionalString(params, key)
  if (value === undefined) return undefined
  if (!(values as readonly string[]).includes(value))
    throw invalidParam(name, `Invalid ${name}: must be one of ${values.join(', ')}`)
  return value as T
}

function currencyParam(params: FormObject, key: string, name: string): string {
  const value = optionalString(params, key)
  if (value === undefined) throw missingParam(name)
  const currency = value.toLowerCase()
  if (!supportedCurrencies.has(currency))
    throw invalidParam(
      name,
      `Invalid currency: ${currency}. Stripe currently supports these currencies: ${[...supportedCurrencies].join(', ')}`,
    )
  return currency
}

function stringArrayParam(params: FormObject, key: string): string[] | undefined {
  const value = params[key]
  if (value === undefined) return undefined
  if (typeof value === 'string') throw invalidParam(key, `Invalid array`)
  const entries = Object.entries(value).sort(([a], [b]) => Number(a) - Number(b))
  return entries.map(([index, item]) => {
    if (typeof item !== 'string') throw invalidParam(`${key}[${index}]`, 'Invalid string')
    return item
  })
}

function expandParam(params: FormObject): string[] {
  const value = params.expand
  if (value === undefined) return []
  if (typeof value === 'string') return [value]
  return Object.values(value).filter((item): item is string => typeof item === 'string')
}

/** Stripe's metadata rules: up to 50 keys, keys up to 40 characters, values up to 500 characters. */
function metadataParam(params: FormObject, key: string): Record<string, string> | undefined {
  const value = params[key]
  if (value === undefined) return undefined
  if (value === '') return {}
  if (typeof value === 'string') throw invalidParam(key, 'Invalid object')
  const entries = Object.entries(value)
  if (entries.length > 50) throw invalidParam(key, `You can specify up to 50 keys in ${key}.`)
  const out: Record<string, string> = {}
  for (const [name, item] of entries) {
    if (typeof item !== 'string') throw invalidParam(`${key}[${name}]`, 'Invalid string')
    if (name.length > 40)
      throw invalidParam(`${key}[${name}]`, `Keys in ${key} can be at most 40 characters long.`)
    if (item.length > 500)
      throw invalidParam(`${key}[${name}]`, `Values in ${key} can be at most 500 characters long.`)
    out[name] = item
  }
  return out
}

function checkAmount(amount: number, currency: string): void {
  if (amount < 1)
    throw invalidParam(
      'amount',
      'This value must be greater than or equal to 1.',
      'parameter_invalid_integer',
    )
  checkWholeUnits(amount, currency, 'amount')
  const minimum = minimumAmounts[currency]
  if (minimum !== undefined && amount < minimum)
    throw invalidParam(
      'amount',
      `Amount must be at least ${formatAmount(minimum, currency)}`,
      'amount_too_small',
    )
  if (amount > maximumAmount)
    throw invalidParam(
      'amount',
      `Amount must be no more than ${formatAmount(maximumAmount, currency)}`,
      'amount_too_large',
    )
}

function checkWholeUnits(amount: number, currency: string, param: string): void {
  if (wholeUnitOnly.has(currency) && amount % 100 !== 0)
    throw invalidParam(
      param,
      `Invalid amount. Currency ${currency.toUpperCase()} has become effectively zero-decimal and charged amounts must be evenly divisible by 100. See https://stripe.com/docs/currencies#special-cases for more information.`,
      'invalid_charge_amount_no_decimal_compatible',
    )
}

function formatAmount(amount: number, currency: string): string {
  const major = zeroDecimal.has(currency) ? String(amount) : (amount / 100).toFixed(2)
  return currency === 'usd' ? `$${major} usd` : `${major} ${currency}`
}

function cardDetails(card: TestCard): Json {
  return {
    brand: card.brand,
    checks: { address_line1_check: null, address_postal_code_check: null, cvc_check: 'pass' },
    country: 'US',
    display_brand: card.brand,
    exp_month: 12,
    exp_year: new Date().getUTCFullYear() + 3,
    fingerprint: `fp${card.last4}${card.brand}`.slice(0, 16),
    funding: card.funding,
    last4: card.last4,
    networks: { available: [card.brand], preferred: null },
    three_d_secure_usage: { supported: true },
    wallet: null,
  }
}

function paymentMethodDetails(card: TestCard): Json {
  return { type: 'card', billing_details: emptyBillingDetails(), card: cardDetails(card) }
}

function emptyBillingDetails(): Json {
  return {
    address: { city: null, country: null, line1: null, line2: null, postal_code: null, state: null },
    email: null,
    name: null,
    phone: null,
  }
}

function clone<T>(value: T): T & Json {
  return structuredClone(value) as T & Json
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name]
  const single = Array.isArray(value) ? value[0] : value
  return single === undefined || single === '' ? undefined : single
}

function errorEnvelope(
  body: StripeErrorBody,
  requestId: string,
): StripeErrorBody & { request_log_url?: string } {
  return body.code === undefined
    ? body
    : { ...body, request_log_url: `https://dashboard.stripe.com/test/logs/${requestId}` }
}

function errorJson(body: StripeErrorBody, requestId: string): string {
  return JSON.stringify({ error: errorEnvelope(body, requestId) }, null, 2)
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res.writeHead(status, { ...headers, 'Content-Length': String(Buffer.byteLength(body)) })
  res.end(body)
}

const maximumBodyBytes = 1 << 20

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    const buffer = chunk as Buffer
    size += buffer.length
    if (size > maximumBodyBytes)
      throw new StripeHttpError(413, { type: 'invalid_request_error', message: 'Request body too large.' })
    chunks.push(buffer)
  }
  return Buffer.concat(chunks).toString('utf8')
}
