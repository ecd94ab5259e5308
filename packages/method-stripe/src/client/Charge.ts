import { type Challenge, ConfigurationError, type Method, PolicyError } from '@mppkit/core'
import { PaymentFailedError } from '@mppkit/core/client'
import { charge, SptId } from '../Methods.js'

/**
 * What the client asks its platform to allow when it creates an SPT for one challenge: exactly the
 * challenge's amount, currency and seller network, until the challenge expires.
 */
export type TokenRequest = {
  /** `usage_limits[max_amount]`: the challenge amount, in the smallest currency unit. */
  amount: number
  /** `usage_limits[currency]`, lowercase. */
  currency: string
  /** The seller's Stripe profile (`seller_details[network_business_profile]`). */
  networkId: string
  /** `usage_limits[expires_at]`, Unix seconds: the challenge expiry, capped by `maxValiditySeconds`. */
  expiresAt: number
  paymentMethodTypes: readonly string[]
  metadata?: Record<string, string>
  externalId?: string
  challenge: Challenge.Challenge
  signal?: AbortSignal
}

/**
 * A created token: its id, and when the platform returns them, the limits it granted (checked against
 * the {@link TokenRequest} before the token is sent).
 */
export type IssuedToken = {
  id: string
  /** `null`: no limits at all (refused, like a `null` limit). */
  usage_limits?: { currency?: string | null; max_amount?: number | null; expires_at?: number | null } | null
  /** `null`: any seller (refused, like a `null` profile). */
  seller_details?: { network_business_profile?: string | null } | null
}

/** Creates an SPT for a challenge (the agent's platform holds the payment method and the Stripe key). */
export type CreateToken = (request: TokenRequest) => Promise<string | IssuedToken>

/** Options of {@link chargeClient}. */
export type ChargeClientOptions = {
  /** Creates the SPT; `issuedTokens({ client, paymentMethod })` is a ready one. */
  createToken: CreateToken
  /** The payment method type the platform pays with; challenges that do not list it are skipped (default `card`). */
  paymentMethodType?: string
  /** Client reference sent as the payload `externalId` when the challenge binds none. */
  externalId?: string
  /** Longest token validity asked for, in whole seconds: a positive safe integer (default 3600). */
  maxValiditySeconds?: number
}

/** The client method {@link chargeClient} returns: it names the Stripe profile its tokens are granted to. */
export type ChargeClient = Method.Client<typeof charge> & {
  /**
   * Who a charge pays, for a person to read before paying (`mppkit pay` shows it after "to"): the
   * seller's Stripe profile, `methodDetails.networkId`, to which the token is granted. The request's
   * `recipient` is free text the server chooses, bound to nothing.
   */
  payee(request: Record<string, unknown>): string | undefined
}

/**
 * Creates the client side of `stripe/charge`: after the spend policy accepts the challenge, asks the
 * platform for an SPT limited to exactly the challenge's amount, currency, seller network and expiry,
 * checks what was granted, and sends it.
 *
 * @example
 * ```ts
 * import { stripe, issuedTokens } from '@mppkit/method-stripe/client'
 * const client = Client.create({ methods: [stripe({ createToken: issuedTokens({ client: platformStripe, paymentMethod: 'pm_…' }) })], policy: { maxAmount: { usd: 5_000n } } })
 * ```
 * @see draft-stripe-charge-00 §"Credential Schema", §"Amount Verification"
 */
export function chargeClient(options: ChargeClientOptions): ChargeClient {
  if (typeof options.createToken !== 'function')
    throw new ConfigurationError('stripe client: createToken is required')
  const paymentMethodType = options.paymentMethodType ?? 'card'
  // Checked here, not when a challenge comes: a string (from an env var) or NaN once made the expiry asked
  // for NaN or tens of thousands of years away, and the check of the granted expiry compared against it.
  if (typeof paymentMethodType !== 'string' || paymentMethodType === '')
    throw new ConfigurationError(
      'stripe client: paymentMethodType must be a payment method type such as card',
    )
  if (
    options.externalId !== undefined &&
    (typeof options.externalId !== 'string' || options.externalId === '')
  )
    throw new ConfigurationError('stripe client: externalId must be a non-empty string')
  const maxValidity = options.maxValiditySeconds ?? 3600
  if (!Number.isSafeInteger(maxValidity) || maxValidity <= 0)
    throw new ConfigurationError(
      'stripe client: maxValiditySeconds must be a positive whole number of seconds',
    )

  return {
    definition: charge,

    payee(request) {
      const networkId = (request.methodDetails as { networkId?: unknown } | undefined)?.networkId
      return typeof networkId === 'string' ? `Stripe profile ${networkId}` : undefined
    },

    // The core checks the spend policy with this quote before createPayload runs, so "Spend policy
    // applies before any token is created".
    quote(request) {
      if (!request.methodDetails.paymentMethodTypes.includes(paymentMethodType))
        throw new PolicyError(
          'payment-method-type',
          `the challenge does not accept ${paymentMethodType} (it lists ${request.methodDetails.paymentMethodTypes.join(', ')})`,
        )
      return { amount: BigInt(request.amount), currency: request.currency.toLowerCase() }
    },

    async createPayload({ challenge, request, signal }) {
      // "Clients MUST verify the payment amount in the challenge matches their expectation before
      // creating an SPT": the policy did (quote); the token is limited to exactly that amount.
      const now = Math.floor(Date.now() / 1000)
      const challengeExpiry =
        challenge.expires === undefined ? undefined : Math.floor(Date.parse(challenge.expires) / 1000)
      const expiresAt = Math.min(challengeExpiry ?? now + maxValidity, now + maxValidity)
      // An expiry that is no time (an unreadable `expires`) bounds nothing, nor can a grant be checked against it.
      if (!Number.isSafeInteger(expiresAt))
        throw new PaymentFailedError(
          'stripe client: the challenge expiry is not a time; no token was created',
          {
            code: 'token-mismatch',
          },
        )
      const asked: TokenRequest = {
        amount: Number(request.amount),
        currency: request.currency.toLowerCase(),
        networkId: request.methodDetails.networkId,
        expiresAt,
        paymentMethodTypes: request.methodDetails.paymentMethodTypes,
        challenge,
        ...(request.methodDetails.metadata ? { metadata: request.methodDetails.metadata } : {}),
        ...(request.externalId !== undefined ? { externalId: request.externalId } : {}),
        ...(signal ? { signal } : {}),
      }
      const created = await options.createToken(asked)
      const token = typeof created === 'string' ? { id: created } : created
      if (!SptId.safeParse(token?.id).success)
        throw new PaymentFailedError('stripe client: createToken did not return an SPT id (spt_…)')
      // "The client never sends an SPT for a challenge whose amount, currency or network differs from
      // what it asked Stripe to allow."
      const mismatch = grantedMismatch(token, asked)
      if (mismatch)
        throw new PaymentFailedError(
          `stripe client: the created token's ${mismatch} differs from the challenge; it was not sent`,
          { code: 'token-mismatch' },
        )
      // A challenge-bound externalId is echoed (the server refuses a credential that drops or changes it).
      const externalId = request.externalId ?? options.externalId
      return { payload: { spt: token.id, ...(externalId !== undefined ? { externalId } : {}) } }
    },
  }
}

/**
 * The first limit of a created token that differs from what was asked, or undefined. A limit the platform
 * leaves out is not known and not refused; one it returns as `null` (no currency, no expiry, any seller)
 * or as anything but the value asked grants more than was asked. So does a whole `usage_limits` or
 * `seller_details` returned as `null` (or as anything but an object): no limits at all, any seller.
 */
function grantedMismatch(token: IssuedToken, asked: TokenRequest): string | undefined {
  if (token.usage_limits !== undefined && !isRecord(token.usage_limits)) return 'usage_limits'
  if (token.seller_details !== undefined && !isRecord(token.seller_details)) return 'seller_details'
  const limits = token.usage_limits
  if (
    limits?.currency !== undefined &&
    (typeof limits.currency !== 'string' || limits.currency.toLowerCase() !== asked.currency)
  )
    return 'usage_limits[currency]'
  if (limits?.max_amount !== undefined && limits.max_amount !== asked.amount)
    return 'usage_limits[max_amount]'
  // A token without an expiry, or outliving the challenge, grants more than was asked (NaN outlives
  // nothing by `>`: only a finite number is compared).
  const expiry = limits?.expires_at
  if (
    expiry !== undefined &&
    (typeof expiry !== 'number' || !Number.isFinite(expiry) || expiry > asked.expiresAt)
  )
    return 'usage_limits[expires_at]'
  // `null`: a token any seller may charge.
  const network = token.seller_details?.network_business_profile
  if (network !== undefined && network !== asked.networkId) return 'seller_details[network_business_profile]'
  return undefined
}

/** A plain object (not `null`, not an array). */
function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
