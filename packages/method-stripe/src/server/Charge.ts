import { createHash } from 'node:crypto'
import {
  BaseError,
  type Challenge,
  ConfigurationError,
  InvalidChallengeError,
  type Method,
  type Receipt,
  ServiceUnavailableError,
  VerificationFailedError,
} from '@mppkit/core'
import * as Connect from '../Connect.js'
import {
  fromStripeError,
  StripeRefundError,
  savedServerError,
  sptProblem,
  stripeErrorSummary,
} from '../internal/stripeErrors.js'
import { charge, SptId, type StripeChargeRequest } from '../Methods.js'

/**
 * The part of a `stripe` SDK client this rail calls (`new Stripe(key, { host, port, protocol })` fits;
 * typed structurally so any SDK version's client can be injected).
 */
export type StripeClient = {
  paymentIntents: {
    create(params: any, options?: any): Promise<any>
    retrieve(id: string, params?: any, options?: any): Promise<any>
    cancel(id: string, params?: any, options?: any): Promise<any>
  }
  refunds: { create(params: any, options?: any): Promise<any> }
  rawRequest(method: string, path: string, params?: any, options?: any): Promise<any>
}

/** What a `connect` function sees: the paid challenge and its request (never the client's payload). */
export type ConnectContext = { challenge: Challenge.Challenge; request: StripeChargeRequest }

/** Options of {@link chargeServer}. */
export type ChargeOptions = {
  /**
   * The seller's Stripe client (secret key and API version are configured on it). The calls a paid
   * request waits on take their timeout and retries from `timeout` and `maxNetworkRetries` below, not
   * from the client; {@link ChargeServer.refund} uses the client's own.
   */
  client: StripeClient
  /** The seller's Stripe profile id, advertised as `methodDetails.networkId`. */
  networkId: string
  /** `methodDetails.paymentMethodTypes` (default `['card']`). */
  paymentMethodTypes?: readonly string[]
  /** Default currency of offers (ISO code, sent lowercase). */
  currency?: string
  /** `methodDetails.metadata` advertised on every challenge and copied onto the PaymentIntent. */
  metadata?: Record<string, string>
  /**
   * Stripe Connect settlement parameters, from server configuration only: a fixed value, or a function
   * of the challenge (e.g. a `transferGroup` from the order id). Never read from the client.
   */
  connect?:
    | Connect.Settlement
    | ((context: ConnectContext) => Connect.Settlement | Promise<Connect.Settlement>)
  /** Connected accounts this server may route to (`stripeAccount`, `onBehalfOf`, `transferData.destination`). */
  connectedAccounts?: readonly string[]
  /**
   * Retrieve the granted token before creating the PaymentIntent (the spec's optional step 5) and answer
   * expired, over-limit, wrong-currency or used tokens without creating one (default false).
   */
  precheck?: boolean
  /** `Retry-After` seconds of a 503 when Stripe is unavailable: a positive whole number (default 1). */
  retryAfter?: number
  /**
   * How long each Stripe call a paid request waits on (pre-check, PaymentIntent create, retrieve and
   * cancel) may go without an answer, in milliseconds: the SDK's per-request `timeout` (default 15 000,
   * where the SDK's own default is 80 000). A call that times out answers the client 503 with
   * `Retry-After`, and the same credential may be retried.
   */
  timeout?: number
  /**
   * How many times the SDK resends one of those calls after a network error, a timeout, a 409 or a
   * retryable 5xx (default 1): a paid request waits at most about `(maxNetworkRetries + 1) × timeout`,
   * plus the SDK's backoff. Resends are safe: the PaymentIntent create carries the idempotency key of
   * the challenge and token, and the SDK keys its other POST (cancel) itself.
   */
  maxNetworkRetries?: number
  /**
   * How long a spent SPT is remembered in the Store, in seconds (default 7 days). For as long, a
   * credential whose settlement began before its challenge expired (a PaymentIntent left processing, a
   * create whose answer was lost) may still be retried and served after that expiry.
   */
  sptReplayTtlSeconds?: number
}

/** What verification hands to settlement. */
type Verified = { connect: Connect.Settlement | undefined }

/** The server method, with a refund helper bound to its Stripe client. */
export type ChargeServer = Method.Server<typeof charge, Verified> & {
  /**
   * Refunds a paid receipt (all of it, or `amount` in the smallest currency unit) on the account it was
   * paid on. Resolves to Stripe's Refund object; a refund Stripe refuses or cannot be reached for rejects
   * with a {@link StripeRefundError}.
   *
   * With a fixed `connect`, the refund goes to its `stripeAccount`. With a `connect` function the account
   * of each payment is not known here: pass `options.stripeAccount` (the connected account of a direct
   * charge, one of `connectedAccounts`, or `null` for a charge made on the platform account).
   */
  refund(
    receipt: Receipt.Receipt,
    amount?: number,
    options?: RefundOptions,
  ): Promise<{ id: string; amount: number; status: string }>
}

/** Options of {@link ChargeServer.refund}. */
export type RefundOptions = {
  /** Account the receipt was paid on: a connected account (`Stripe-Account`), or `null` for the platform. */
  stripeAccount?: string | null
}

/**
 * Creates the server side of `stripe/charge`: issues challenges with the seller's `networkId`, then
 * settles a credential's SPT with a confirmed PaymentIntent (idempotent per challenge and token). Only a
 * `succeeded` PaymentIntent pays; its id is the receipt reference.
 *
 * @example
 * ```ts
 * import Stripe from 'stripe'
 * import { stripe } from '@mppkit/method-stripe/server'
 * const server = Server.create({ realm, secrets, methods: [stripe({ client: new Stripe(key), networkId: 'profile_…', currency: 'usd' })] })
 * ```
 * @see draft-stripe-charge-00 §"Verification Procedure", §"Settlement Procedure"
 */
export function chargeServer(options: ChargeOptions): ChargeServer {
  const client = options.client
  if (!client || typeof client.paymentIntents?.create !== 'function')
    throw new ConfigurationError('stripe: pass a Stripe client as `client`')
  if (typeof options.networkId !== 'string' || options.networkId === '')
    throw new ConfigurationError('stripe: networkId (the seller Stripe profile id) is required')
  const currency = options.currency?.toLowerCase()
  if (currency !== undefined && !/^[a-z]{3}$/.test(currency))
    throw new ConfigurationError('stripe: currency must be a three-letter ISO code')
  const paymentMethodTypes = [...(options.paymentMethodTypes ?? ['card'])]
  if (paymentMethodTypes.length === 0)
    throw new ConfigurationError('stripe: paymentMethodTypes needs at least one type')
  const authorizedAccounts = [...(options.connectedAccounts ?? [])]
  if (options.connect !== undefined && typeof options.connect !== 'function')
    Connect.assertConfiguration(options.connect, authorizedAccounts)
  const retryAfter = options.retryAfter ?? 1
  // It becomes the `Retry-After` header (RFC 9110 §10.2.3: a whole number of seconds): NaN or 1.5 there
  // tells a client nothing it can use.
  if (typeof retryAfter !== 'number' || !Number.isSafeInteger(retryAfter) || retryAfter < 1)
    throw new ConfigurationError('stripe: retryAfter must be a positive whole number of seconds')
  const replayTtlSeconds = options.sptReplayTtlSeconds ?? 7 * 86_400
  if (typeof replayTtlSeconds !== 'number' || !Number.isFinite(replayTtlSeconds) || replayTtlSeconds <= 0)
    throw new ConfigurationError('stripe: sptReplayTtlSeconds must be a positive finite number of seconds')
  const replayTtlMs = replayTtlSeconds * 1000
  const requestSettings = stripeRequestSettings(options)
  const staticStripeAccount = typeof options.connect === 'object' ? options.connect.stripeAccount : undefined
  // The onError of every server this method is set up with (see Method.SetupContext), until that
  // server closes: a closed server is not kept alive by the method, nor told of later errors.
  const reporters = new Set<(error: unknown) => void>()
  const report = (error: unknown) => {
    for (const reporter of reporters) reporter(error)
  }

  const methodDetails: StripeChargeRequest['methodDetails'] = {
    networkId: options.networkId,
    paymentMethodTypes,
    ...(options.metadata ? { metadata: { ...options.metadata } } : {}),
  }

  const stripeCall = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (error) {
      throw fromStripeError(error, retryAfter) ?? error
    }
  }

  /** Spec step 5 (optional pre-check): the granted token's state and limits, read without side effects. */
  const precheck = async (spt: string, request: StripeChargeRequest, stripeAccount: string | undefined) => {
    const token = await stripeCall(() =>
      client.rawRequest('GET', `/v1/shared_payment/granted_tokens/${spt}`, undefined, {
        ...requestSettings,
        ...(stripeAccount ? { stripeAccount } : {}),
      }),
    )
    const reason = token?.deactivated_reason
    const limits = token?.usage_limits ?? {}
    if (
      reason === 'expired' ||
      (typeof limits.expires_at === 'number' && limits.expires_at * 1000 <= Date.now())
    )
      throw sptProblem('spt-expired')
    if (reason === 'revoked') throw sptProblem('spt-revoked')
    if (reason !== null && reason !== undefined) throw sptProblem('spt-already-used')
    if (typeof limits.currency === 'string' && limits.currency !== request.currency.toLowerCase())
      throw sptProblem('spt-currency-mismatch')
    const captured = Number(token?.usage_details?.amount_captured?.value ?? 0)
    if (typeof limits.max_amount === 'number' && limits.max_amount - captured < Number(request.amount))
      throw sptProblem('spt-amount-exceeded')
  }

  return {
    definition: charge,
    setup({ report, signal }) {
      if (signal.aborted) return
      reporters.add(report)
      signal.addEventListener('abort', () => reporters.delete(report), { once: true })
    },
    defaults: {
      ...(currency !== undefined ? { currency } : {}),
      methodDetails,
    } as Partial<StripeChargeRequest>,

    // A credential whose token settle bound to exactly this challenge (before any PaymentIntent create)
    // may have paid: a PaymentIntent left processing, or a create whose answer was lost in an outage
    // that lasted past the challenge's expiry. Its retry resumes (Stripe's idempotent replay, or the
    // pending intent read by id) instead of a `payment-expired` for a payer who may be charged. A token
    // bound to nothing, to another challenge, or to this one once it settled (`closedSuffix`), is not
    // resumed: the core refuses it as expired.
    resumeWindowMs: replayTtlMs,
    async resumesExpired({ challenge, payload, store }) {
      const spt = (payload as { spt?: unknown } | null)?.spt
      if (typeof spt !== 'string' || !SptId.safeParse(spt).success) return false
      return (await store.get(sptKeyOf(spt))) === challenge.id
    },

    async verify({ challenge, request, payload, store }): Promise<Verified> {
      // Steps 1–2 (challenge id and expiry) ran in the core before this: "Servers MUST complete challenge
      // ID validation and expiry checks (steps 1-2) before processing credential material (steps 3-5)."
      // The conformance vector stripe-external-id-binding: a request-bound externalId must be echoed by
      // the payload, so attribution can be neither forged nor stripped.
      if (request.externalId !== undefined && payload.externalId !== request.externalId)
        throw new InvalidChallengeError({
          detail: 'The credential externalId does not match the challenge externalId.',
          reason: 'external-id-mismatch',
        })
      // "Servers MUST NOT accept Connect settlement parameters from clients": they come from options.
      let connect: Connect.Settlement | undefined
      if (typeof options.connect === 'function') connect = await options.connect({ challenge, request })
      else connect = options.connect
      if (connect !== undefined)
        Connect.assertSettlement(connect, { amount: Number(request.amount), authorizedAccounts })
      // A token already bound to this challenge began settling on an earlier try of this credential
      // (settle binds it before any PaymentIntent create): the create may have spent it (a lost answer,
      // or an intent left processing), so the pre-check would read this very payment as a used token.
      // Its retry skips the pre-check; settlement replays the create (same idempotency key) or reads
      // the pending intent.
      if (options.precheck && (await store.get(sptKeyOf(payload.spt))) !== challenge.id)
        await precheck(payload.spt, request, connect?.stripeAccount)
      return { connect }
    },

    async settle({ challenge, request, payload, store, verified }) {
      // "Verify the SPT has not been previously used (replay protection)": a token is bound to the first
      // challenge that settles it; only a retry of that challenge (after an outage) may send it again.
      const sptKey = sptKeyOf(payload.spt)
      if (
        !(await store.putIfAbsent(sptKey, challenge.id, replayTtlMs)) &&
        (await store.get(sptKey)) !== challenge.id
      )
        throw sptProblem('spt-already-used')

      // Once this challenge's payment settled, or can never learn its outcome, the token's binding
      // says so: a resend of the credential is then never resumed past the challenge's expiry (see
      // resumesExpired), when the core no longer keeps the challenge consumed. A failed write is
      // reported; the payment stands.
      const close = () =>
        store.set(sptKey, `${challenge.id}${closedSuffix}`, replayTtlMs).catch((cause: unknown) =>
          report(
            new BaseError(`stripe: recording that challenge ${challenge.id} settled failed`, {
              code: 'stripe_store_failed',
              cause,
            }),
          ),
        )
      const connect = Connect.toStripe(verified.connect)
      const receipt = {
        // The receipt's externalId is the server-bound one, never the payload's.
        ...(request.externalId !== undefined ? { externalId: request.externalId } : {}),
      }
      // A PaymentIntent this credential left `processing` on an earlier try (see below): its state is read
      // by id, since a create with the same idempotency key would only replay the first answer.
      const intentKey = intentKeyOf(payload.spt, challenge.id)
      const pendingId = await store.get(intentKey)
      if (pendingId !== undefined) {
        const pending = await stripeCall(() =>
          client.paymentIntents.retrieve(pendingId, {}, { ...requestSettings, ...connect.options }),
        )
        // "Server MUST verify the PaymentIntent `status` is "succeeded" before returning 200"
        if (pending?.status === 'succeeded' && pending.id === pendingId) {
          await close()
          return { reference: pendingId, ...receipt }
        }
        if (isPending(pending?.status)) throw stillProcessing(pending.status)
        throw notSucceeded(pending?.status)
      }

      const details = request.methodDetails
      const params = {
        amount: Number(request.amount),
        currency: request.currency.toLowerCase(),
        shared_payment_granted_token: payload.spt,
        confirm: true,
        automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
        metadata: { ...(details.metadata ?? {}), challenge_id: challenge.id },
        ...(request.description !== undefined ? { description: request.description } : {}),
        ...connect.params,
      }
      // "Servers SHOULD include an idempotency key derived from the challenge ID and SPT": a retry of the
      // same credential after an outage is answered by Stripe's replay (`Idempotent-Replayed: true`) with
      // the same PaymentIntent. That replay is success, not a replay attack: the core consumes each
      // challenge id once, so only the one request holding the challenge can get here. (Not when what
      // Stripe saved for the key is its own failure: see below.)
      const paymentIntent = await client.paymentIntents
        .create(params, {
          idempotencyKey: `${challenge.id}_${payload.spt}`,
          ...requestSettings,
          ...connect.options,
        })
        .catch(async (error: unknown) => {
          // Stripe failed once it began executing, and keeps that failure for the idempotency key: the
          // token may be charged, and a resend of this credential would only replay the failure. "A
          // payment proof MUST be usable exactly once" (draft-httpauth-payment-00 §Replay Protection):
          // the challenge stays consumed, no Retry-After is sent, and the core reports the error for
          // reconciliation (the PaymentIntent, if any, carries metadata.challenge_id).
          if (savedServerError(error)) {
            await close()
            throw new ServiceUnavailableError({
              reason: 'stripe-outcome-unknown',
              detail:
                'Stripe failed after it began this payment and keeps that failure: whether the token was charged is unknown, and this credential cannot be used again.',
              consumed: true,
              cause: { challengeId: challenge.id, ...stripeErrorSummary(error) },
            })
          }
          // Anything else (a timeout or a lost connection included) is not kept for the key: a resend of
          // this credential gets Stripe's real result, so the challenge is released with Retry-After.
          const problem = fromStripeError(error, retryAfter) ?? error
          // A timeout or a lost connection may come after Stripe executed the create: the token may
          // be charged while the client is answered 503. Reported (by challenge id, never the token) so
          // that a payer who never retries can be reconciled (the PaymentIntent carries
          // metadata.challenge_id).
          if (mayHaveExecuted(problem))
            report(
              new BaseError(
                `stripe: the PaymentIntent create for challenge ${challenge.id} may have executed (no answer from Stripe); the client was asked to retry the same credential`,
                {
                  code: 'stripe_outcome_unknown',
                  cause: { challengeId: challenge.id, ...stripeErrorSummary(error) },
                },
              ),
            )
          throw problem
        })
      // "Server MUST verify the PaymentIntent `status` is "succeeded" before returning 200"
      if (paymentIntent?.status === 'succeeded' && typeof paymentIntent.id === 'string') {
        await close()
        return { reference: paymentIntent.id, ...receipt }
      }
      if (isPending(paymentIntent?.status) && typeof paymentIntent.id === 'string') {
        // An asynchronous payment method: the intent may still succeed, and the token is spent on it. Its
        // id is remembered, so that a retry of this credential reads its outcome instead of paying again.
        await store.set(intentKey, paymentIntent.id, replayTtlMs)
        report(
          new BaseError(
            `stripe: PaymentIntent ${paymentIntent.id} for challenge ${challenge.id} is ${paymentIntent.status}; the client was asked to retry the same credential`,
            {
              code: 'stripe_payment_intent_pending',
              cause: {
                challengeId: challenge.id,
                paymentIntent: paymentIntent.id,
                expires: challenge.expires,
              },
            },
          ),
        )
        throw stillProcessing(paymentIntent.status)
      }
      if (paymentIntent?.status === 'requires_action') {
        // An agent cannot complete 3-D Secure: the intent is canceled so it does not linger.
        await client.paymentIntents
          .cancel(paymentIntent.id, {}, { ...requestSettings, ...connect.options })
          .catch((cause: unknown) =>
            report(
              new BaseError(`stripe: canceling PaymentIntent ${paymentIntent.id} (requires_action) failed`, {
                code: 'stripe_cancel_failed',
                // Only what identifies the failure: an SDK error carries the raw PaymentIntent and its SPT.
                cause: stripeErrorSummary(cause),
              }),
            ),
          )
        throw new VerificationFailedError({
          reason: 'requires_action',
          detail:
            'The payment method requires customer authentication (3-D Secure), which this flow cannot complete; pay with a token whose payment method does not require it.',
        })
      }
      throw notSucceeded(paymentIntent?.status)
    },

    async refund(receipt, amount, refundOptions = {}) {
      if (receipt.method !== 'stripe' || !/^pi_[A-Za-z0-9_]+$/.test(receipt.reference))
        throw new ConfigurationError('stripe refund: the receipt is not a Stripe charge receipt')
      if (amount !== undefined && (!Number.isSafeInteger(amount) || amount < 1))
        throw new ConfigurationError('stripe refund: amount must be a positive integer')
      let stripeAccount: string | undefined
      if (refundOptions.stripeAccount === undefined) {
        // A `connect` function may route each payment to another account: refunding on the platform
        // would miss a direct charge on a connected account.
        if (typeof options.connect === 'function')
          throw new ConfigurationError(
            'stripe refund: with a connect function, pass options.stripeAccount (the connected account the receipt was paid on, or null for the platform)',
          )
        stripeAccount = staticStripeAccount
      } else if (refundOptions.stripeAccount !== null) {
        if (!authorizedAccounts.includes(refundOptions.stripeAccount))
          throw new ConfigurationError(
            "stripe refund: stripeAccount is not one of the server's connectedAccounts",
          )
        stripeAccount = refundOptions.stripeAccount
      }
      try {
        return await client.refunds.create(
          { payment_intent: receipt.reference, ...(amount !== undefined ? { amount } : {}) },
          // No fixed idempotency key: two equal partial refunds are two refunds (the SDK keys its own retries).
          stripeAccount ? { stripeAccount } : {},
        )
      } catch (error) {
        // Not a payment problem of a client: the seller's refund failed, and says why.
        throw new StripeRefundError(receipt.reference, error)
      }
    },
  }
}

/** The largest timeout Node's timers take (2^31 - 1 ms); a longer one would fire at once. */
const maxTimeoutMs = 2_147_483_647

/**
 * The `stripe` SDK's per-request `timeout` and `maxNetworkRetries` of the calls a paid request waits on.
 * The SDK's defaults (80 s, each timeout retried) would hold a paid request for minutes while Stripe
 * hangs; and the SDK silently ignores a non-integer value, so one is refused here.
 *
 * @example
 * ```ts
 * stripeRequestSettings({ timeout: 5_000 }) // { timeout: 5000, maxNetworkRetries: 1 }
 * ```
 */
function stripeRequestSettings(options: Pick<ChargeOptions, 'timeout' | 'maxNetworkRetries'>): {
  timeout: number
  maxNetworkRetries: number
} {
  const timeout = options.timeout ?? 15_000
  if (!Number.isInteger(timeout) || timeout <= 0 || timeout > maxTimeoutMs)
    throw new ConfigurationError(
      `stripe: timeout must be a positive integer number of milliseconds (at most ${maxTimeoutMs})`,
    )
  const maxNetworkRetries = options.maxNetworkRetries ?? 1
  if (!Number.isSafeInteger(maxNetworkRetries) || maxNetworkRetries < 0)
    throw new ConfigurationError('stripe: maxNetworkRetries must be a non-negative integer')
  return { timeout, maxNetworkRetries }
}

/** Store key binding a spent SPT (by hash, never the token itself) to the challenge that settles it. */
function sptKeyOf(spt: string): string {
  return `spt:${createHash('sha256').update(spt).digest('base64url')}`
}

/**
 * Appended to the challenge id a token is bound to once that challenge settled (or can never learn its
 * outcome): challenge ids are base64url, so no id ends with it.
 */
const closedSuffix = ' closed'

/** Store key of the PaymentIntent a credential (SPT and challenge) left processing. */
function intentKeyOf(spt: string, challengeId: string): string {
  return `${sptKeyOf(spt)}:intent:${challengeId}`
}

/**
 * True for a create failure that may come after Stripe executed it: no answer in time, a lost
 * connection, or a 5xx (a rate limit or refused credentials never execute).
 */
function mayHaveExecuted(problem: unknown): boolean {
  // No answer at all (a timeout, a lost connection). A 5xx answer Stripe did not keep for the key means
  // it did not begin the create (one it began keeps its failure: `savedServerError`, consumed above).
  const reason = (problem as { reason?: unknown } | null)?.reason
  return reason === 'stripe-unreachable'
}

/** `Retry-After` seconds of a 402 for a PaymentIntent that has not settled yet. */
const processingRetryAfter = 5

/** Statuses of a PaymentIntent that may still succeed without the client. */
function isPending(status: unknown): boolean {
  return status === 'processing' || status === 'requires_capture'
}

/** A 402 that asks the client to retry the same credential later (the intent has not settled yet). */
function stillProcessing(status: string): VerificationFailedError {
  return new VerificationFailedError({
    reason: 'payment-intent-processing',
    detail: `The PaymentIntent is ${status}; retry the same credential later.`,
    retryAfter: processingRetryAfter,
  })
}

/** "If the PaymentIntent fails or requires additional action, server returns 402 with a new challenge" */
function notSucceeded(status: unknown): VerificationFailedError {
  return new VerificationFailedError({
    reason: `payment-intent-${String(status ?? 'unknown')}`,
    detail: `The PaymentIntent did not succeed (status ${String(status ?? 'unknown')}).`,
  })
}
