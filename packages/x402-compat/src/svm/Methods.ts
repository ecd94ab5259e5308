import { Method } from '@mppkit/core/client'
import { z } from 'zod'

const base58Key = z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{32,44}$/, 'a base58 public key')
// "The value MUST be a positive integer that fits in a 64-bit unsigned integer" (draft-solana-charge-00
// §"Shared Fields"); x402 `exact` moves exactly this amount with TransferChecked (a u64).
const positiveU64 = z
  .string()
  .regex(/^[1-9]\d{0,19}$/, 'a positive base-unit integer string')
  .refine((value) => BigInt(value) <= 18_446_744_073_709_551_615n, 'at most 2^64 - 1')

/**
 * The decoded `request` of a `solana` charge as x402-compat reads and writes it: the fields of
 * draft-solana-charge-00 an x402 SVM `exact` requirement maps to (a mint, a fee-sponsored transfer), plus
 * `methodDetails.caip2` (the x402 network) and `methodDetails.memo` (x402's `extra.memo`).
 *
 * @example
 * ```ts
 * SvmChargeRequest.parse({ amount: '1000', currency: mint, recipient, methodDetails: { network: 'devnet', decimals: 6, feePayer: true, feePayerKey } })
 * ```
 * @see draft-solana-charge-00 §"Request Schema"
 */
export const SvmChargeRequest = z.looseObject({
  amount: positiveU64,
  currency: base58Key,
  recipient: base58Key,
  description: z.string().optional(),
  externalId: z.string().optional(),
  methodDetails: z.looseObject({
    network: z.string().optional(),
    // "MUST be present when `currency` is a mint address"
    decimals: z.number().int().min(0).max(255),
    tokenProgram: base58Key.optional(),
    // x402 SVM: the facilitator always pays the fee ("feePayer" in the requirement's `extra`).
    feePayer: z.literal(true),
    feePayerKey: base58Key,
    recentBlockhash: z
      .string()
      .regex(/^[1-9A-HJ-NP-Za-km-z]{32,44}$/)
      .optional(),
    caip2: z.string().optional(),
    // x402's `extra.memo`: the one Memo instruction's text; `''` means none (v1 facilitators accept three
    // instructions only); absent: a random memo, so no two payments share bytes.
    memo: z.string().optional(),
  }),
})

/** The decoded request of a `solana` charge paid through x402. */
export type SvmChargeRequest = z.infer<typeof SvmChargeRequest>

/**
 * A pull-mode credential payload: the base64 wire transaction, signed by the payer, fee payer slot empty.
 * "max 1232 bytes decoded": at most 1644 base64 characters.
 *
 * @see draft-solana-charge-00 §"Credential Schema"
 */
export const SvmTransactionPayload = z.looseObject({
  type: z.literal('transaction'),
  transaction: z
    .string()
    .max(1644)
    .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64'),
})

/** The transaction payload of a `solana` charge. */
export type SvmTransactionPayload = z.infer<typeof SvmTransactionPayload>

/**
 * The `solana` charge as x402-compat pays and takes it: SPL/Token-2022 `TransferChecked` transactions whose
 * fee an x402 facilitator pays. Same name and intent as `@mppkit/method-solana`'s charge (register one of
 * the two per client or server).
 *
 * @example
 * ```ts
 * import { svmCharge } from '@mppkit/x402-compat'
 * svmCharge.name // 'solana'
 * ```
 * @see draft-solana-charge-00
 */
export const svmCharge = Method.define({
  name: 'solana',
  intent: 'charge',
  request: SvmChargeRequest,
  payload: SvmTransactionPayload,
})
