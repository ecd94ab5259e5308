import { createHash } from 'node:crypto'
import { ConfigurationError, type Method, type PaymentError, VerificationFailedError } from '@mppkit/core'
import type { AuthenticatedLnd } from 'lightning'
import * as Invoice from '../Invoice.js'
import { issueInvoice } from '../internal/issue.js'
import { checkedTimeout, defaultNodeTimeouts } from '../internal/node.js'
import { charge, type LightningChargeRequest } from '../Methods.js'
import { LightningProblem } from '../Problems.js'
import { settledMsat } from './InvoiceLookup.js'

/** Options of {@link chargeServer}. */
export type ChargeOptions = {
  /** The payee's node: `authenticatedLndGrpc({ cert, macaroon, socket }).lnd` (invoice macaroon suffices). */
  lnd: AuthenticatedLnd
  /** How long a settled payment hash stays claimed in the Store, in seconds (default 7 days). */
  replayTtlSeconds?: number
  /**
   * How long a call to the node may take, in ms (default 10 000): one that gets no answer by then (a
   * stalled node, a connection that died silently) is answered 503 + Retry-After, as a node that is down.
   */
  nodeTimeoutMs?: number
}

/**
 * A Store lifetime option in seconds: a whole number, 1 or more (its milliseconds a safe integer), or
 * `fallback` when absent. Anything else throws `ConfigurationError` (`what` names the option): NaN would
 * make every Store write fail after the payer paid (the request answered 503, nothing served).
 *
 * @example
 * ```ts
 * const replayTtlMs = checkedSeconds(options.replayTtlSeconds, 7 * 86_400, 'lightning: replayTtlSeconds') * 1000
 * ```
 */
export function checkedSeconds(value: unknown, fallback: number, what: string): number {
  if (value === undefined) return fallback
  if (
    typeof value !== 'number' ||
    !Number.isSafeInteger(value) ||
    value < 1 ||
    value > Math.floor(Number.MAX_SAFE_INTEGER / 1000)
  )
    throw new ConfigurationError(`${what} must be a positive whole number of seconds`)
  return value
}

/** Payment hash as lowercase hex of SHA-256 of a hex preimage. */
export const sha256Hex = (hex: string): string =>
  createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')

/**
 * The problem a lightning method answers when the core refuses a challenge itself: `unknown-challenge`
 * for an unknown or consumed one, `malformed-credential`, and `expired` as the intent names it.
 */
export function challengeProblemFor(expired: 'expired-invoice' | 'challenge-expired') {
  return (_payload: unknown, kind: Method.ChallengeProblemKind): PaymentError | undefined => {
    if (kind === 'malformed')
      // "required fields … are absent or have the wrong type"
      return new LightningProblem('malformed-credential', 'The credential payload is missing or invalid.')
    if (kind === 'expired') return new LightningProblem(expired, 'The challenge has expired.')
    if (kind === 'consumed')
      return new LightningProblem('unknown-challenge', 'The challenge has already been consumed.')
    return new LightningProblem('unknown-challenge', 'The challenge was not issued by this server.')
  }
}

/**
 * Creates the server side of `lightning/charge`: a fresh invoice per challenge (amount, memo from the
 * description, expiring with the challenge), and verification of the preimage against that invoice's
 * hash and the node's record of the invoice as settled. The core consumes the challenge atomically
 * before settlement; the receipt `reference` is the payment hash, never the preimage.
 *
 * @example
 * ```ts
 * const { lnd } = authenticatedLndGrpc({ cert, macaroon, socket })
 * const server = Server.create({ realm, secrets, methods: [chargeServer({ lnd })] })
 * const handler = server.protect({ offers: [{ method: 'lightning', request: { amount: '100' } }] }, () => new Response('ok'))
 * ```
 * @see draft-lightning-charge-00
 */
export function chargeServer(options: ChargeOptions): Method.Server<typeof charge, { paymentHash: string }> {
  if (!options || typeof options !== 'object' || !options.lnd || typeof options.lnd !== 'object')
    throw new ConfigurationError('lightning: options.lnd (an authenticated LND gRPC object) is required')
  const { lnd } = options
  const replayTtlMs =
    checkedSeconds(options.replayTtlSeconds, 7 * 86_400, 'lightning: replayTtlSeconds') * 1000
  const nodeTimeoutMs = checkedTimeout(
    options.nodeTimeoutMs,
    defaultNodeTimeouts.callMs,
    'lightning: nodeTimeoutMs',
  )
  let now = () => Date.now()

  return {
    definition: charge,
    defaults: { currency: 'sat' },
    challengeProblem: challengeProblemFor('expired-invoice'),
    setup(context) {
      now = context.now
    },

    async prepare({ request, expires }): Promise<LightningChargeRequest> {
      const issued = await issueInvoice(lnd, {
        sats: BigInt(request.amount),
        description: request.description,
        expires,
        timeoutMs: nodeTimeoutMs,
      })
      // "The BOLT11 invoice (`methodDetails.invoice`) is the authoritative source for payment parameters."
      return {
        ...request,
        methodDetails: { invoice: issued.request, paymentHash: issued.paymentHash, network: issued.network },
      }
    },

    async verify({ request, payload }) {
      // The echoed request is HMAC-bound to this server, so its invoice is the one this challenge issued
      // ("A preimage that is valid for one challenge MUST NOT be accepted for a different challenge").
      const invoice = Invoice.tryDecode(request.methodDetails?.invoice)
      if (!invoice || (request.methodDetails?.paymentHash ?? invoice.paymentHash) !== invoice.paymentHash)
        throw new LightningProblem('unknown-challenge', 'The challenge carries no invoice issued here.')
      // "verify that the `amount` and `currency` in it match the invoice parameters" (step 5)
      if (invoice.amountMsat !== BigInt(request.amount) * 1000n)
        throw new VerificationFailedError({
          detail: 'The challenge amount does not match its invoice.',
          reason: 'amount-mismatch',
        })
      // "Servers MUST NOT accept credentials for expired invoices."
      if (invoice.expiresAt <= now())
        throw new LightningProblem('expired-invoice', 'The invoice of this challenge has expired.')
      // "Compute sha256(hex_to_bytes(preimage)) and verify the result equals the stored paymentHash." (step 6)
      if (sha256Hex(payload.preimage) !== invoice.paymentHash)
        throw new LightningProblem(
          'invalid-preimage',
          'SHA-256 of the provided preimage does not match the stored payment hash',
        )
      // The node must hold the invoice as settled for the full amount: a preimage alone could have
      // leaked from the node without a payment. Only the node's answer refuses (402); a lookup that
      // failed throws (503, the challenge kept for the same credential).
      const received = await settledMsat(lnd, invoice.paymentHash, nodeTimeoutMs)
      if (received === undefined || received < invoice.amountMsat)
        throw new VerificationFailedError({
          detail: 'The node has not received this payment.',
          reason: 'invoice-not-settled',
        })
      return { paymentHash: invoice.paymentHash }
    },

    async settle({ challenge, request, store, verified }) {
      // Second line of defence behind the core's consumed-challenge key: one payment hash, one challenge.
      const key = `hash:${verified.paymentHash}`
      if (
        !(await store.putIfAbsent(key, challenge.id, replayTtlMs)) &&
        (await store.get(key)) !== challenge.id
      )
        throw new LightningProblem('unknown-challenge', 'This payment has already been used.')
      const settlement: Method.Settlement = { reference: verified.paymentHash }
      if (request.externalId !== undefined) settlement.externalId = request.externalId
      return settlement
    },
  }
}
