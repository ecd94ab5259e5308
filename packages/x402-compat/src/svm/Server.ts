import { ConfigurationError, Jcs, type Method, VerificationFailedError } from '@mppkit/core'
import type { Facilitator } from '../server/Charge.js'
import { confirmedSvmTransaction } from '../server/Facilitated.js'
import { relayed } from '../server/Relayed.js'
import { facilitate } from '../server/Shared.js'
import { landedTransaction, payerOfMessage } from './Landed.js'
import { type SvmChargeRequest, svmCharge } from './Methods.js'
import { clusterOf, solanaCaip2Of } from './Networks.js'
import { svmRequirementOf } from './Requirement.js'
import { messageBytes, messageKey } from './Transaction.js'

/**
 * Options of {@link svm}.
 *
 * @example
 * ```ts
 * const options: svm.Options = { network: solanaNetworks.devnet, currency: mint, decimals: 6, recipient, feePayer, facilitator }
 * ```
 */
export declare namespace svm {
  type Options = {
    /** The x402 network: a Solana CAIP-2 id (`solanaNetworks.devnet`) or a v1 name (`solana-devnet`). */
    network: string
    /** The SPL Token or Token-2022 mint. */
    currency: string
    /** The mint's decimals, advertised to clients for their spend policy. */
    decimals: number
    /** The payee (owner of the associated token account that receives). */
    recipient: string
    /** The facilitator's fee payer key (the `extra.feePayer` of its `getSupported()` kinds). */
    feePayer: string
    /** Verifies and settles (an in-process `@x402/core` facilitator with `@x402/svm`, or `HTTPFacilitatorClient`). */
    facilitator: Facilitator
    /** Milliseconds the facilitator may take before the request is a 503 (default 15 000). */
    timeout?: number
    /** `maxTimeoutSeconds` of the requirement handed to the facilitator for MPP credentials (default 300). */
    maxTimeoutSeconds?: number
    /**
     * A Solana JSON-RPC URL of the network. With it, a settlement that fails (including one whose answer
     * was lost after the facilitator broadcast the transaction, which a retry cannot settle again) is
     * looked up on chain first: this very transaction, confirmed and successful, serves its payer once.
     */
    rpcUrl?: string
  }
}

const base58Alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** Whether `value` is a base58 string of exactly 32 bytes (a Solana public key). */
function isPublicKey(value: unknown): boolean {
  if (typeof value !== 'string' || !/^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(value)) return false
  let number = 0n
  for (const char of value) number = number * 58n + BigInt(base58Alphabet.indexOf(char))
  const zeros = value.length - value.replace(/^1+/, '').length
  const bytes = number === 0n ? 0 : number.toString(16).length / 2
  return zeros + Math.ceil(bytes) === 32
}

/**
 * Refuses options every payment would fail on after the payer signed (each throws `ConfigurationError`
 * naming the option): keys that are not 32-byte base58, decimals outside 0–9, timeouts outside what Node's
 * timers take.
 */
function checkOptions(options: svm.Options): void {
  const bad = (field: string, what: string): never => {
    throw new ConfigurationError(`solana charge: ${field} must be ${what}`)
  }
  for (const field of ['currency', 'recipient', 'feePayer'] as const)
    if (!isPublicKey(options[field])) bad(field, 'a base58 public key')
  // "The number of decimal places for the token (0–9)" (draft-solana-charge-00 §"Method Details")
  if (!(Number.isInteger(options.decimals) && options.decimals >= 0 && options.decimals <= 9))
    bad('decimals', 'an integer from 0 to 9')
  if (typeof options.facilitator?.verify !== 'function' || typeof options.facilitator?.settle !== 'function')
    bad('facilitator', 'an object with verify and settle (an @x402/core FacilitatorClient)')
  if (
    options.timeout !== undefined &&
    !(Number.isSafeInteger(options.timeout) && options.timeout >= 1 && options.timeout <= 2_147_483_647)
  )
    bad('timeout', 'a whole number of milliseconds, 1 to 2147483647')
  const seconds = options.maxTimeoutSeconds
  if (seconds !== undefined && !(Number.isSafeInteger(seconds) && seconds >= 1 && seconds <= 31_536_000))
    bad('maxTimeoutSeconds', 'a whole number of seconds, 1 to 31 536 000')
  if (
    options.rpcUrl !== undefined &&
    !(typeof options.rpcUrl === 'string' && /^https?:\/\//.test(options.rpcUrl))
  )
    bad('rpcUrl', 'an http(s) URL')
}

/**
 * The server half of a `solana` charge settled through an x402 facilitator (`exact` on Solana): the
 * payer's partially signed transaction is claimed once in the Store (by its message hash, so copies and
 * other processes are refused while the first settles), then verified and settled by the facilitator,
 * which adds its fee payer signature and broadcasts it. Offered to x402 clients by `x402(server)`.
 *
 * @example
 * ```ts
 * import { svm, x402 } from '@mppkit/x402-compat/server'
 * const server = Server.create({ realm, secrets, methods: [svm({ network, currency: mint, decimals: 6, recipient, feePayer, facilitator })] })
 * const handler = x402(server).protect({ offers: [{ method: 'solana', request: { amount: '1000' } }] }, () => new Response('ok'))
 * ```
 * @see draft-solana-charge-00 §"Fee Sponsorship"
 */
export function svm(options: svm.Options): Method.Server<typeof svmCharge> {
  if (!options || typeof options !== 'object')
    throw new ConfigurationError('solana charge: options are required')
  const caip2 = solanaCaip2Of(options.network)
  if (caip2 === undefined)
    throw new ConfigurationError(`solana charge: ${options.network} is not a known Solana network`)
  checkOptions(options)
  const timeout = options.timeout ?? 15_000
  // Longer than one attempt can take: the facilitator's verify and settle, and the lookup's calls.
  const staleClaimMs = 4 * timeout + 1_000
  const methodDetails: SvmChargeRequest['methodDetails'] = {
    network: clusterOf(caip2),
    caip2,
    decimals: options.decimals,
    feePayer: true,
    feePayerKey: options.feePayer,
  }
  return {
    definition: svmCharge,
    defaults: { currency: options.currency, recipient: options.recipient, methodDetails },
    async verify({ request }) {
      const details = request.methodDetails
      if (request.currency !== options.currency || details.caip2 !== caip2)
        throw new VerificationFailedError({
          detail: 'The challenge names another mint or network.',
          reason: 'wrong-asset',
        })
      if (details.feePayerKey !== options.feePayer)
        throw new VerificationFailedError({
          detail: 'The challenge names another fee payer.',
          reason: 'wrong-fee-payer',
        })
      // The transfer itself (amount, mint, recipient ATA, layout, signatures) is checked by the facilitator.
      return undefined
    },
    async settle({ request, payload, credential, store }) {
      const hash = await messageKey(payload.transaction)
      if (hash === undefined)
        throw new VerificationFailedError({
          detail: 'The transaction could not be decoded.',
          reason: 'malformed-transaction',
        })
      // "settles at most once": claimed in the Store before the facilitator sees it.
      const key = `svm:${hash}`
      const verifiedKey = `svm:verified:${hash}`
      const ttl = 10 * 60_000
      // The claim names when it was taken: one still `settling` long after any attempt could take (its
      // process stopped before releasing it) is taken over, so that a lost answer can still be looked up
      // while the verification note lives, instead of every retry being refused until the claim expires.
      const claim = `settling:${Date.now()}`
      let claimed = await store.putIfAbsent(key, claim, ttl)
      if (!claimed) {
        const current = await store.get(key)
        if (current === undefined) claimed = await store.putIfAbsent(key, claim, ttl)
        else {
          // `released`: an attempt that settled nothing let go (its value expires at once).
          const since =
            current === 'released'
              ? 0
              : current.startsWith('settling:')
                ? Number(current.slice('settling:'.length))
                : Number.NaN
          if (Date.now() - since > staleClaimMs) claimed = await store.compareAndSet(key, current, claim, ttl)
        }
      }
      const used = () =>
        new VerificationFailedError({
          detail: 'This transaction was already used.',
          reason: 'transaction-used',
        })
      if (!claimed) throw used()
      let reference: string
      const receipt: Record<string, unknown> = { network: caip2 }
      const original = relayed.get(credential)
      const requirement = original?.requirement ?? svmRequirementOf(request, options.maxTimeoutSeconds ?? 300)
      // Once the facilitator has checked this transaction against the requirement (amount, mint,
      // recipient, signatures), and before it may broadcast it, the Store notes that it did: only a
      // transaction noted so, for the same requirement, is ever looked up on chain below. The note
      // expires before the replay claim taken after a settlement, so it never outlives it.
      const verifiedFor = Jcs.canonicalize(requirement)
      try {
        const document = original?.document ?? {
          x402Version: 2,
          accepted: requirement,
          payload: { transaction: payload.transaction },
        }
        const settled = await facilitate(options.facilitator, document, requirement, timeout, () =>
          store.set(verifiedKey, verifiedFor, ttl),
        )
        // The facilitator's word is checked against this payment before it serves anyone.
        const message = messageBytes(payload.transaction)
        reference = confirmedSvmTransaction(settled, {
          caip2,
          payer: message && payerOfMessage(message),
          networkOf: (named) => solanaCaip2Of(named),
        })
        if (typeof settled.payer === 'string' && settled.payer !== '') receipt.payer = settled.payer
      } catch (cause) {
        // The transaction may have landed without the facilitator's answer reaching us (now, or on an
        // earlier attempt whose claim was released, so the facilitator refuses it as already used).
        // Looked up only for a transaction the facilitator verified for this very requirement (on this
        // attempt or an earlier one): confirmed and successful on chain.
        let landed: string | undefined
        if (options.rpcUrl)
          landed = await store
            .get(verifiedKey)
            .then((noted) =>
              noted === verifiedFor
                ? landedTransaction(options.rpcUrl!, payload.transaction, timeout)
                : undefined,
            )
            .catch(() => undefined)
        if (!landed) {
          // Nothing settled: release this attempt's claim (not one taken over since) so the payer may retry.
          await store.compareAndSet(key, claim, 'released', 1).catch(() => {})
          throw cause
        }
        reference = landed
      }
      // Served only while this attempt holds the claim: one that outlived `staleClaimMs` and was taken
      // over leaves the payment to the attempt that took it (which finds it on chain), so it is served once.
      // A Store failure here serves anyway rather than lose a settled payment.
      if (!(await store.compareAndSet(key, claim, reference, ttl).catch(() => true))) throw used()
      return { reference, receipt }
    },
  }
}
