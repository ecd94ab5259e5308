import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { DevnetError } from '../errors.js'
import type { InjectedFault, StripeFault } from './faults.js'
import { objectId, randomBase62 } from './ids.js'
import { StripeSimulator } from './simulator.js'

export { testCards } from './cards.js'
export type { InjectedFault, StripeFault } from './faults.js'
export { sptErrorCodes } from './simulator.js'

/**
 * The API version the simulator renders when a request sends no `Stripe-Version` header (the version
 * an account would be pinned to). Requests may send any `YYYY-MM-DD[.suffix]` version; it is echoed back.
 */
export const defaultStripeApiVersion = '2026-04-22.dahlia'

/**
 * Connection facts of a running Stripe simulator; plain JSON, safe to pass to another process.
 *
 * @example
 * ```ts
 * const { host, port, protocol, secretKey } = info
 * const stripe = new Stripe(secretKey, { host, port, protocol })
 * ```
 */
export type StripeInfo = {
  host: string
  port: number
  protocol: 'http'
  /** `http://host:port`: pass as `apiBase` to `fetch` callers, or use host/port/protocol with the SDK. */
  apiBase: string
  /** The only API key the simulator accepts (`Authorization: Bearer …` or HTTP basic user name). */
  secretKey: string
  /** The version rendered when a request has no `Stripe-Version` header. */
  apiVersion: string
  /**
   * The platform account's Stripe profile id (`profile_test_…`): the `methodDetails.networkId` a seller
   * on this account advertises, and the `seller_details[network_business_profile]` agents issue SPTs to.
   */
  networkId: string
  accounts: {
    /** Stripe profile id of every account (platform and connected), keyed by account id. */
    profiles: Record<string, string>
    /** The account the secret key belongs to. */
    platform: string
    /** Connected accounts usable in the `Stripe-Account` header, `on_behalf_of` and `transfer_data[destination]`. */
    connected: string[]
  }
}

/**
 * Options of {@link startStripe}.
 *
 * @example
 * ```ts
 * await startStripe({ connectedAccounts: 1, latencyMs: 50 })
 * ```
 */
export type StartStripeOptions = {
  /** The accepted secret key; default a random `sk_test_…`. Must start with `sk_test_`. */
  secretKey?: string
  /** How many connected accounts to create (default 2). */
  connectedAccounts?: number
  /** Version used when a request sends no `Stripe-Version` (default {@link defaultStripeApiVersion}). */
  apiVersion?: string
  /** Artificial latency per POST, in ms (default 0); lets tests observe concurrent use of one Idempotency-Key. */
  latencyMs?: number
  /** How long an Idempotency-Key is remembered, in ms (Stripe: 24 hours, the default). */
  idempotencyTtlMs?: number
}

/**
 * A running Stripe simulator.
 *
 * @example
 * ```ts
 * const node: StripeDevnet = await startStripe()
 * node.advanceClock(3600)
 * await node.stop()
 * ```
 */
export type StripeDevnet = {
  info: StripeInfo
  /** Moves the simulator clock forward, e.g. past an SPT's `usage_limits[expires_at]`. */
  advanceClock(seconds: number): void
  /**
   * Makes matching requests fail with a 5xx, a 429 or a timeout, before or after they execute (also
   * reachable over HTTP: `POST /_devnet/faults` with the fault as JSON and the secret key as bearer).
   */
  injectFault(fault: StripeFault): InjectedFault
  /** Disarms every injected fault. */
  clearFaults(): void
  /** Stops the server; safe to call more than once. */
  stop(): Promise<void>
}

/**
 * Starts a Stripe-API-compatible HTTP server on 127.0.0.1 (OS-assigned port) that the unmodified
 * `stripe` SDK can talk to: PaymentIntents (create/confirm/capture/cancel/retrieve) paid with test
 * PaymentMethods or Shared Payment Tokens, the SPT test helper, refunds, idempotent replays,
 * `Stripe-Account` scoping, declines and 3DS `requires_action`, with Stripe's error envelopes; the
 * agent side of SPTs (`POST /v1/shared_payment/issued_tokens`, granted to the seller whose Stripe profile
 * is named), PaymentIntent listing, and injected outages ({@link StripeFault}).
 *
 * @example
 * ```ts
 * const stripeNode = await startStripe()
 * const { host, port, protocol, secretKey } = stripeNode.info
 * const stripe = new Stripe(secretKey, { host, port, protocol })
 * const spt = await createTestSpt(stripeNode.info, { maxAmount: 5000 })
 * await stripe.paymentIntents.create({ amount: 5000, currency: 'usd', confirm: true,
 *   automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
 *   shared_payment_granted_token: spt.id } as Stripe.PaymentIntentCreateParams)
 * await stripeNode.stop()
 * ```
 * @see draft-stripe-charge-00 §Settlement Procedure
 */
export async function startStripe(options: StartStripeOptions = {}): Promise<StripeDevnet> {
  const secretKey = options.secretKey ?? `sk_test_${randomBase62(32)}`
  if (!secretKey.startsWith('sk_test_'))
    throw new DevnetError('startStripe: secretKey must be a test-mode key starting with sk_test_', {
      code: 'devnet_invalid_option',
    })
  const count = options.connectedAccounts ?? 2
  if (!Number.isInteger(count) || count < 0)
    throw new DevnetError('startStripe: connectedAccounts must be a non-negative integer', {
      code: 'devnet_invalid_option',
    })
  const platform = objectId('acct', 16)
  const connected = Array.from({ length: count }, () => objectId('acct', 16))
  const apiVersion = options.apiVersion ?? defaultStripeApiVersion
  let apiBase = ''
  const simulator = new StripeSimulator({
    secretKey,
    platformAccount: platform,
    connectedAccounts: connected,
    apiVersion,
    latencyMs: options.latencyMs ?? 0,
    idempotencyTtlMs: options.idempotencyTtlMs ?? 24 * 60 * 60 * 1000,
    publicBase: () => apiBase,
  })
  const server: Server = createServer((req, res) => {
    void simulator.handle(req, res)
  })
  // The SDK keeps connections alive; a short idle timeout lets stop() finish promptly.
  server.keepAliveTimeout = 1000
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new DevnetError('the Stripe simulator could not listen on 127.0.0.1', {
          code: 'devnet_start_failed',
          cause: error,
        }),
      ),
    )
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const host = '127.0.0.1'
  apiBase = `http://${host}:${port}`
  let stopping: Promise<void> | undefined
  return {
    info: {
      host,
      port,
      protocol: 'http',
      apiBase,
      secretKey,
      apiVersion,
      networkId: simulator.profileOf(platform) as string,
      accounts: {
        platform,
        connected,
        profiles: Object.fromEntries(
          [platform, ...connected].map((account) => [account, simulator.profileOf(account) as string]),
        ),
      },
    },
    advanceClock: (seconds) => simulator.advanceClock(seconds),
    injectFault: (fault) => simulator.faults.inject(fault),
    clearFaults: () => simulator.faults.clear(),
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return stopping
    },
  }
}

/**
 * Parameters of {@link createTestSpt}; names follow the SPT test helper's wire fields.
 *
 * @example
 * ```ts
 * const parameters: CreateTestSptParameters = { maxAmount: 5000, currency: 'usd', paymentMethod: 'pm_card_visa' }
 * ```
 */
export type CreateTestSptParameters = {
  /** Largest amount the token may pay, in the currency's smallest unit (`usage_limits[max_amount]`). */
  maxAmount: number
  /** `usage_limits[currency]`; default `usd`. */
  currency?: string
  /** `usage_limits[expires_at]`, Unix seconds; default: no expiry. */
  expiresAt?: number
  /** The test PaymentMethod behind the token; default `pm_card_visa` (see `testCards`). */
  paymentMethod?: string
  /** Grant the token to this connected account (sent as `Stripe-Account`); default the platform. */
  stripeAccount?: string
  /** `seller_details[network_id]` / `seller_details[external_id]`. */
  sellerDetails?: { networkId?: string; externalId?: string }
  /** `shared_metadata[…]`. */
  sharedMetadata?: Record<string, string>
}

/**
 * A SharedPaymentGrantedToken as the API returns it (fields used by rails typed; the rest kept).
 *
 * @example
 * ```ts
 * if (token.deactivated_reason !== null) console.log('token unusable:', token.deactivated_reason)
 * ```
 */
export type StripeGrantedToken = {
  id: string
  object: 'shared_payment.granted_token'
  created: number
  deactivated_at: number | null
  deactivated_reason: 'consumed' | 'expired' | 'resolved' | 'revoked' | null
  livemode: boolean
  usage_limits: { currency: string; max_amount: number; expires_at: number | null }
  usage_details: { amount_captured: { value: number; currency: string } }
  [field: string]: unknown
}

/**
 * Grants a Shared Payment Token to the simulator's account through `POST
 * /v1/test_helpers/shared_payment/granted_tokens` (what a payer's agent would do), for rail tests.
 *
 * @example
 * ```ts
 * const spt = await createTestSpt(stripeNode.info, { maxAmount: 5000, currency: 'usd' })
 * const payload = { spt: spt.id }
 * ```
 * @see draft-stripe-charge-00 §Request Schema (the client creates an SPT with usage limits)
 */
export async function createTestSpt(
  info: StripeInfo,
  parameters: CreateTestSptParameters,
): Promise<StripeGrantedToken> {
  const body = new URLSearchParams({
    payment_method: parameters.paymentMethod ?? 'pm_card_visa',
    'usage_limits[currency]': parameters.currency ?? 'usd',
    'usage_limits[max_amount]': String(parameters.maxAmount),
  })
  if (parameters.expiresAt !== undefined) body.set('usage_limits[expires_at]', String(parameters.expiresAt))
  if (parameters.sellerDetails?.networkId !== undefined)
    body.set('seller_details[network_id]', parameters.sellerDetails.networkId)
  if (parameters.sellerDetails?.externalId !== undefined)
    body.set('seller_details[external_id]', parameters.sellerDetails.externalId)
  for (const [key, value] of Object.entries(parameters.sharedMetadata ?? {}))
    body.set(`shared_metadata[${key}]`, value)
  const headers: Record<string, string> = {
    Authorization: `Bearer ${info.secretKey}`,
    'Content-Type': 'application/x-www-form-urlencoded',
  }
  if (parameters.stripeAccount !== undefined) headers['Stripe-Account'] = parameters.stripeAccount
  const response = await fetch(`${info.apiBase}/v1/test_helpers/shared_payment/granted_tokens`, {
    method: 'POST',
    headers,
    body,
  })
  const json = (await response.json()) as { error?: { message?: string; code?: string } } & StripeGrantedToken
  if (!response.ok || json.error !== undefined)
    throw new DevnetError(
      `createTestSpt: the simulator refused the token (${response.status}): ${json.error?.message ?? 'no message'}`,
      {
        code: json.error?.code ?? 'devnet_stripe_error',
      },
    )
  return json
}
