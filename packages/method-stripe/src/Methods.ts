import { Method } from '@mppkit/core'
import { z } from 'zod'

// Amounts are integers in the smallest currency unit, sent to Stripe as a JSON number: positive and at
// most 15 digits, so `Number(amount)` is exact. (Stripe itself caps amounts at eight digits.)
const amount = z.string().regex(/^[1-9]\d{0,14}$/, 'a positive integer string in the smallest currency unit')

/**
 * Stripe metadata as Stripe accepts it: at most 50 keys of at most 40 characters, string values of at
 * most 500 characters. One key is reserved for `challenge_id`, which settlement adds.
 */
const metadata = z
  .record(z.string().min(1).max(40), z.string().max(500))
  .refine((value) => Object.keys(value).length <= 49, 'at most 49 metadata keys')
  .refine((value) => !Object.hasOwn(value, 'challenge_id'), 'metadata.challenge_id is reserved')

/**
 * The decoded `request` of a Stripe charge challenge, field names exactly as draft-stripe-charge-00
 * spells them. Unknown fields are kept (forward compatibility). `currency` is a three-letter ISO code;
 * servers of this package issue it lowercase (Stripe's form) and accept any case on the way back,
 * since other SDKs and the conformance vectors spell it `USD`.
 *
 * @example
 * ```ts
 * StripeChargeRequest.parse({ amount: '5000', currency: 'usd', methodDetails: { networkId: 'profile_1Mq…', paymentMethodTypes: ['card'] } })
 * ```
 * @see draft-stripe-charge-00 §"Request Schema"
 */
export const StripeChargeRequest = z.looseObject({
  amount,
  currency: z.string().regex(/^[A-Za-z]{3}$/, 'a three-letter ISO currency code'),
  description: z.string().max(1000).optional(),
  externalId: z.string().min(1).max(255).optional(),
  recipient: z.string().max(255).optional(),
  methodDetails: z.looseObject({
    // "`methodDetails.networkId` | string | REQUIRED | Stripe Business Network Profile ID"
    networkId: z.string().min(1).max(255),
    // "`methodDetails.paymentMethodTypes` | []string | REQUIRED"
    paymentMethodTypes: z
      .array(z.string().regex(/^[a-z][a-z0-9_]{0,63}$/))
      .min(1)
      .max(32),
    metadata: metadata.optional(),
  }),
})

/** The parsed charge request. */
export type StripeChargeRequest = z.infer<typeof StripeChargeRequest>

/**
 * An SPT id as it travels in a credential: "A single-use token (prefixed with `spt_`)".
 *
 * @example
 * ```ts
 * SptId.parse('spt_1N4Zv32eZvKYlo2CPhVPkJlW')
 * ```
 * @see draft-stripe-charge-00 §"Terminology"
 */
export const SptId = z.string().regex(/^spt_[A-Za-z0-9_]{1,250}$/, 'an SPT id (spt_…)')

/**
 * The credential payload of a Stripe charge: the SPT and an optional `externalId` (which must repeat the
 * challenge's `externalId` when the challenge has one). Other members are ignored, so a client can never
 * slip Stripe Connect parameters in.
 *
 * @example
 * ```ts
 * StripeChargePayload.parse({ spt: 'spt_1N4Zv32eZvKYlo2CPhVPkJlW', externalId: 'order_12345' })
 * ```
 * @see draft-stripe-charge-00 §"Credential Schema"
 */
export const StripeChargePayload = z.object({
  spt: SptId,
  externalId: z.string().min(1).max(255).optional(),
})

/** The parsed charge payload. */
export type StripeChargePayload = z.infer<typeof StripeChargePayload>

/**
 * The `stripe/charge` method definition shared by the server and client sides.
 *
 * @example
 * ```ts
 * Server.create({ realm, secrets, methods: [stripe({ client, networkId })] })
 * ```
 * @see draft-stripe-charge-00 §"Intent: charge"
 */
export const charge = Method.define({
  name: 'stripe',
  intent: 'charge',
  request: StripeChargeRequest,
  payload: StripeChargePayload,
})
