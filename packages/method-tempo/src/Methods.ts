import { Method } from '@mppkit/core/client'
import { z } from 'zod'

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'an address')
const bytes32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'a bytes32 hex value')
const hex = z.string().regex(/^0x(?:[0-9a-fA-F]{2})+$/, 'a hex string')
// "The `amount` field … MUST be a base-10 integer string with no sign, decimal point, exponent, or
// surrounding whitespace." (draft-tempo-charge-00 §"Split Entry Schema"; the same rule for `amount`).
const amount = z.string().regex(/^(0|[1-9]\d{0,77})$/, 'a base-unit integer string')
const positiveAmount = z.string().regex(/^[1-9]\d{0,77}$/, 'a positive base-unit integer string')

/** A split entry of a charge. @see draft-tempo-charge-00 §"Split Entry Schema" */
export const Split = z.looseObject({ amount: positiveAmount, memo: bytes32.optional(), recipient: address })

/**
 * The decoded `request` of a Tempo charge challenge, with wire field names exactly as the spec spells
 * them. Unknown fields are kept (forward compatibility).
 *
 * @example
 * ```ts
 * TempoChargeRequest.parse({ amount: '1000', currency: '0x20c0…', recipient: '0x…', methodDetails: { chainId: 42431 } })
 * ```
 * @see draft-tempo-charge-00 §"Request Schema"
 */
export const TempoChargeRequest = z
  .looseObject({
    amount,
    currency: address,
    recipient: address,
    description: z.string().optional(),
    externalId: z.string().optional(),
    methodDetails: z
      .looseObject({
        chainId: z.number().int().nonnegative().optional(),
        feePayer: z.boolean().optional(),
        memo: bytes32.optional(),
        // "If present, `splits` MUST contain at least 1 entry." Servers SHOULD limit them to 10.
        splits: z.array(Split).min(1).max(10).optional(),
        // "If `supportedModes` is present, it MUST contain at least one of `pull` or `push`"
        supportedModes: z
          .array(z.enum(['pull', 'push']))
          .min(1)
          .optional(),
      })
      .optional(),
  })
  .refine(
    (request) => {
      // "Servers MUST NOT generate a request where the sum of `splits[].amount` values is greater than
      // or equal to `amount`. Clients MUST reject any request that violates this constraint."
      const splits = request.methodDetails?.splits
      if (!splits) return true
      // zod still runs this check when a field failed its own (the parse fails anyway): only sum
      // well-formed integers, so a malformed amount is a parse failure and never a thrown SyntaxError.
      const amounts = [request.amount, ...(Array.isArray(splits) ? splits : []).map((s) => s?.amount)]
      if (!Array.isArray(splits) || !amounts.every((a) => typeof a === 'string' && /^\d+$/.test(a)))
        return true
      return splits.reduce((sum, s) => sum + BigInt(s.amount), 0n) < BigInt(request.amount)
    },
    { message: 'splits must sum to less than amount' },
  )

/** The parsed charge request. */
export type TempoChargeRequest = z.infer<typeof TempoChargeRequest>

/**
 * The credential payload of a Tempo charge: `transaction` (pull), `hash` (push) or `proof` (zero amount).
 *
 * @example
 * ```ts
 * TempoChargePayload.parse({ type: 'hash', hash: '0x…' })
 * ```
 * @see draft-tempo-charge-00 §"Credential Schema"
 */
export const TempoChargePayload = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('transaction'), signature: hex }),
  z.looseObject({ type: z.literal('hash'), hash: bytes32 }),
  z.looseObject({ type: z.literal('proof'), signature: hex }),
])

/** The parsed charge payload. */
export type TempoChargePayload = z.infer<typeof TempoChargePayload>

/**
 * The `tempo/charge` method definition shared by the server and client sides.
 *
 * @example
 * ```ts
 * Server.create({ realm, secrets, methods: [tempo({ currency, recipient, rpcUrl })] })
 * ```
 * @see draft-tempo-charge-00
 */
export const charge = Method.define({
  name: 'tempo',
  intent: 'charge',
  request: TempoChargeRequest,
  payload: TempoChargePayload,
})

const descriptor = z.looseObject({
  payer: address,
  payee: address,
  operator: address,
  token: address,
  salt: bytes32,
  authorizedSigner: address,
  expiringNonceHash: bytes32,
})

/**
 * The decoded `request` of a Tempo session challenge.
 *
 * @example
 * ```ts
 * TempoSessionRequest.parse({ amount: '25', currency, recipient, methodDetails: { escrowContract, chainId, sessionProtocol: 'v1' } })
 * ```
 * @see draft-tempo-session-00 §"Request Schema"
 */
export const TempoSessionRequest = z.looseObject({
  amount: positiveAmount,
  unitType: z.string().optional(),
  suggestedDeposit: amount.optional(),
  currency: address,
  recipient: address,
  description: z.string().optional(),
  externalId: z.string().optional(),
  methodDetails: z.looseObject({
    escrowContract: address,
    channelId: bytes32.optional(),
    minVoucherDelta: amount.optional(),
    chainId: z.number().int().nonnegative().optional(),
    feePayer: z.boolean().optional(),
    operator: address.optional(),
    sessionProtocol: z.enum(['v1', 'v2']).optional(),
  }),
})

/** The parsed session request. */
export type TempoSessionRequest = z.infer<typeof TempoSessionRequest>

/** A v2 channel descriptor. @see draft-tempo-session-00 §"Channel Descriptor" */
export const ChannelDescriptor = descriptor
/** A parsed v2 channel descriptor. */
export type ChannelDescriptor = z.infer<typeof ChannelDescriptor>

/**
 * The credential payload of a Tempo session: `open`, `topUp`, `voucher` or `close`.
 *
 * @example
 * ```ts
 * TempoSessionPayload.parse({ action: 'voucher', channelId, cumulativeAmount: '250000', signature })
 * ```
 * @see draft-tempo-session-00 §"Payload Actions"
 */
export const TempoSessionPayload = z.discriminatedUnion('action', [
  z.looseObject({
    action: z.literal('open'),
    type: z.literal('transaction'),
    channelId: bytes32,
    transaction: hex,
    authorizedSigner: address.optional(),
    descriptor: descriptor.optional(),
    cumulativeAmount: amount,
    signature: hex,
  }),
  z.looseObject({
    action: z.literal('topUp'),
    type: z.literal('transaction'),
    channelId: bytes32,
    transaction: hex,
    descriptor: descriptor.optional(),
    additionalDeposit: positiveAmount,
  }),
  z.looseObject({
    action: z.literal('voucher'),
    channelId: bytes32,
    descriptor: descriptor.optional(),
    cumulativeAmount: amount,
    signature: hex,
  }),
  z.looseObject({
    action: z.literal('close'),
    channelId: bytes32,
    descriptor: descriptor.optional(),
    cumulativeAmount: amount,
    signature: hex,
  }),
])

/** The parsed session payload. */
export type TempoSessionPayload = z.infer<typeof TempoSessionPayload>

/**
 * The `tempo/session` method definition shared by the server and client sides.
 *
 * @example
 * ```ts
 * Server.create({ realm, secrets, methods: [tempo.session({ currency, recipient, escrow, account, rpcUrl })] })
 * ```
 * @see draft-tempo-session-00
 */
export const session = Method.define({
  name: 'tempo',
  intent: 'session',
  request: TempoSessionRequest,
  payload: TempoSessionPayload,
})
