import { Method } from '@mppkit/core/client'
import { z } from 'zod'

// "The value MUST be a positive integer." (draft-lightning-charge-00 §"Shared Fields", `amount`)
const positiveAmount = z.string().regex(/^[1-9]\d{0,17}$/, 'a positive integer string of satoshis')
// "a 64-character lowercase hex string" (draft-lightning-charge-00 §"Verification Procedure" step 2)
export const hex32 = z.string().regex(/^[0-9a-f]{64}$/, 'a 32-byte lowercase hex string')
// A BOLT11 payment request: bech32 `ln…1…`, bounded so a hostile echo cannot make decoding expensive.
const invoice = z
  .string()
  .min(20)
  .max(7_089)
  .regex(/^(ln|LN)[a-zA-Z0-9]+$/, 'a BOLT11 invoice')

/** Networks a lightning challenge may name. @see draft-lightning-charge-00 §"Method Details" */
export const LightningNetwork = z.enum(['mainnet', 'regtest', 'signet'])
/** A lightning network name. */
export type LightningNetwork = z.infer<typeof LightningNetwork>

/**
 * The decoded `request` of a lightning charge challenge, with wire field names as the spec spells them.
 *
 * @example
 * ```ts
 * LightningChargeRequest.parse({ amount: '100', currency: 'sat', methodDetails: { invoice: 'lnbcrt1u1p…' } })
 * ```
 * @see draft-lightning-charge-00 §"Request Schema"
 */
export const LightningChargeRequest = z.looseObject({
  amount: positiveAmount,
  // "MUST be the string "sat" (lowercase)."
  currency: z.literal('sat'),
  description: z.string().max(639).optional(),
  recipient: z.string().optional(),
  externalId: z.string().optional(),
  // Optional in the schema so a route can be declared without it; the server fills it at issuance.
  methodDetails: z
    .looseObject({
      invoice,
      paymentHash: hex32.optional(),
      network: LightningNetwork.optional(),
    })
    .optional(),
})
/** The parsed charge request. */
export type LightningChargeRequest = z.infer<typeof LightningChargeRequest>

/**
 * The credential payload of a lightning charge: the preimage of the challenge's invoice.
 *
 * @example
 * ```ts
 * LightningChargePayload.parse({ preimage: 'a3f1…e209' })
 * ```
 * @see draft-lightning-charge-00 §"Credential Schema"
 */
export const LightningChargePayload = z.looseObject({ preimage: hex32 })
/** The parsed charge payload. */
export type LightningChargePayload = z.infer<typeof LightningChargePayload>

/**
 * The `lightning/charge` method definition shared by the server and client sides.
 *
 * @example
 * ```ts
 * Server.create({ realm, secrets, methods: [lightning({ lnd })] })
 * ```
 * @see draft-lightning-charge-00
 */
export const charge = Method.define({
  name: 'lightning',
  intent: 'charge',
  request: LightningChargeRequest,
  payload: LightningChargePayload,
})

/**
 * The decoded `request` of a lightning session challenge.
 *
 * @example
 * ```ts
 * LightningSessionRequest.parse({ amount: '2', currency: 'sat', depositInvoice: 'lnbcrt…', paymentHash: '7f3a…', depositAmount: '300' })
 * ```
 * @see draft-lightning-session-00 §"Challenge Request"
 */
export const LightningSessionRequest = z.looseObject({
  amount: positiveAmount,
  currency: z.literal('sat'),
  description: z.string().max(639).optional(),
  unitType: z.string().optional(),
  depositInvoice: invoice.optional(),
  // REQUIRED on the wire; optional here so a route can be declared without it (filled at issuance).
  paymentHash: hex32.optional(),
  depositAmount: positiveAmount.optional(),
  idleTimeout: z
    .string()
    .regex(/^\d{1,9}$/)
    .optional(),
})
/** The parsed session request. */
export type LightningSessionRequest = z.infer<typeof LightningSessionRequest>

/**
 * The credential payload of a lightning session: `open`, `bearer`, `topUp` or `close`. Unknown fields
 * are ignored ("Implementations MUST ignore unknown fields").
 *
 * @example
 * ```ts
 * LightningSessionPayload.parse({ action: 'bearer', sessionId: '7f3a…', preimage: 'a3f1…' })
 * ```
 * @see draft-lightning-session-00 §"Credential Schema"
 */
export const LightningSessionPayload = z.discriminatedUnion('action', [
  z.looseObject({ action: z.literal('open'), preimage: hex32, returnInvoice: invoice }),
  z.looseObject({ action: z.literal('bearer'), sessionId: hex32, preimage: hex32 }),
  z.looseObject({ action: z.literal('topUp'), sessionId: hex32, topUpPreimage: hex32 }),
  z.looseObject({ action: z.literal('close'), sessionId: hex32, preimage: hex32 }),
])
/** The parsed session payload. */
export type LightningSessionPayload = z.infer<typeof LightningSessionPayload>

/**
 * The `lightning/session` method definition shared by the server and client sides.
 *
 * @example
 * ```ts
 * Server.create({ realm, secrets, methods: [lightning.session({ lnd })] })
 * ```
 * @see draft-lightning-session-00
 */
export const session = Method.define({
  name: 'lightning',
  intent: 'session',
  request: LightningSessionRequest,
  payload: LightningSessionPayload,
})
