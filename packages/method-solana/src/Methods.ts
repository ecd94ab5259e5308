import { Method } from '@mppkit/core/client'
import { z } from 'zod'
import { tokenProgramIds } from './internal/programs.js'
import { isBase58Address } from './internal/wire.js'

const maxU64 = 18_446_744_073_709_551_615n
const utf8Length = (value: string) => new TextEncoder().encode(value).length

/** A base58 public key (32 bytes). */
export const Address = z.string().refine((value): boolean => isBase58Address(value), 'a base58 public key')

// "The value MUST be a positive integer that fits in a 64-bit unsigned integer"
// (draft-solana-charge-00 §"Shared Fields", `amount`).
const positiveU64 = z
  .string()
  .regex(/^[1-9]\d{0,19}$/, 'a positive base-unit integer string')
  .refine((value) => BigInt(value) <= maxU64, 'at most 2^64 - 1')

const memoText = z.string().refine((value) => utf8Length(value) <= 566, 'at most 566 bytes (Memo limit)')

/** A payment split. @see draft-solana-charge-00 §"Method Details", `splits` */
export const Split = z.looseObject({
  recipient: Address,
  amount: positiveU64,
  memo: memoText.optional(),
  ataCreationRequired: z.boolean().optional(),
})

/**
 * Networks: the spec's `mainnet`, `devnet`, `localnet`; `mainnet-beta` (the spelling `@solana/mpp`
 * sends) is read as `mainnet`.
 */
export const Network = z.enum(['mainnet', 'mainnet-beta', 'devnet', 'localnet'])
export type Network = z.infer<typeof Network>

/** The network name as the spec spells it (`mainnet-beta` is `mainnet`). */
export function normalizeNetwork(network: string | undefined): 'mainnet' | 'devnet' | 'localnet' | string {
  // "Defaults to "mainnet" if omitted."
  if (network === undefined || network === 'mainnet-beta') return 'mainnet'
  return network
}

const MethodDetails = z.looseObject({
  network: Network.optional(),
  decimals: z.number().int().min(0).max(9).optional(),
  tokenProgram: z.enum(tokenProgramIds).optional(),
  feePayer: z.boolean().optional(),
  feePayerKey: Address.optional(),
  splits: z.array(Split).max(8).optional(),
  recentBlockhash: z
    .string()
    .regex(/^[1-9A-HJ-NP-Za-km-z]{32,44}$/, 'a base58 blockhash')
    .optional(),
  confidential: z.boolean().optional(),
  auditorElgamalPubkey: z.string().optional(),
  recipientElgamalPubkey: z.string().optional(),
})

/**
 * The decoded `request` of a Solana charge challenge, wire field names exactly as the spec spells them.
 * Unknown fields are kept (forward compatibility); the cross-field rules of the spec are enforced.
 *
 * @example
 * ```ts
 * SolanaChargeRequest.parse({ amount: '1000000', currency: mint, recipient, methodDetails: { network: 'localnet', decimals: 6 } })
 * ```
 * @see draft-solana-charge-00 §"Request Schema"
 */
export const SolanaChargeRequest = z
  .looseObject({
    amount: positiveU64,
    // "For native SOL, MUST be the lowercase string "sol". For SPL tokens, MUST be the base58-encoded
    // mint address … MUST NOT exceed 128 characters."
    currency: z.union([z.literal('sol'), Address]),
    recipient: Address,
    // "MUST NOT exceed 256 characters."
    description: z.string().max(256).optional(),
    // "MUST NOT exceed 566 bytes (Solana Memo Program limit)."
    externalId: memoText.optional(),
    methodDetails: MethodDetails.optional(),
  })
  .superRefine((request, context) => {
    const details = request.methodDetails ?? {}
    const sol = request.currency === 'sol'
    const issue = (message: string) => context.addIssue({ code: 'custom', message })
    // "MUST be present when `currency` is a mint address; MUST be absent when `currency` is "sol"."
    if (sol && details.decimals !== undefined) issue('decimals must be absent for sol')
    if (!sol && details.decimals === undefined) issue('decimals is required for a mint')
    // tokenProgram: "MUST NOT be present when `currency` is "sol"."
    if (sol && details.tokenProgram !== undefined) issue('tokenProgram must be absent for sol')
    // "When `true`, the `feePayerKey` field MUST also be present." / "MUST be absent when `feePayer`
    // is `false` or omitted"
    if ((details.feePayer === true) !== (details.feePayerKey !== undefined))
      issue('feePayerKey goes with feePayer: true')
    const splits = details.splits ?? []
    // "This field MUST NOT be `true` unless `currency` is an SPL token mint address."
    if (sol && splits.some((split) => split?.ataCreationRequired === true))
      issue('ataCreationRequired needs an SPL mint')
    // "The sum of all split amounts MUST NOT exceed `amount` … this remainder MUST be greater than zero."
    const amounts = [request.amount, ...splits.map((split) => split?.amount)]
    if (amounts.every((value) => typeof value === 'string' && /^\d+$/.test(value))) {
      const total = splits.reduce((sum, split) => sum + BigInt(split.amount), 0n)
      if (total >= BigInt(request.amount)) issue('splits must sum to less than amount')
    }
    // "MUST NOT be `true` when `currency` is "sol""; "`splits` MUST NOT be present."
    if (details.confidential === true && (sol || splits.length > 0))
      issue('confidential needs a Token-2022 mint and no splits')
  })

/** The parsed charge request. */
export type SolanaChargeRequest = z.infer<typeof SolanaChargeRequest>

// "max 1232 bytes decoded": 1232 bytes are at most 1644 base64 characters.
const base64Transaction = z
  .string()
  .max(1644)
  .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64')

/**
 * The credential payload: `transaction` (pull, the signed transaction), `signature` (push, the
 * signature of a transaction the client sent) or `bundle` (confidential; refused by this server).
 *
 * @example
 * ```ts
 * SolanaChargePayload.parse({ type: 'signature', signature: '5UfDuX7hXbPjGUpTmt9PHRLsNGJe4dEny…' })
 * ```
 * @see draft-solana-charge-00 §"Credential Schema"
 */
export const SolanaChargePayload = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('transaction'), transaction: base64Transaction }),
  z.looseObject({
    type: z.literal('signature'),
    signature: z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{64,88}$/, 'a base58 signature'),
  }),
  z.looseObject({ type: z.literal('bundle'), transactions: z.array(base64Transaction).min(1).max(16) }),
])

/** The parsed charge payload. */
export type SolanaChargePayload = z.infer<typeof SolanaChargePayload>

/**
 * The `solana/charge` method definition shared by the server and client sides.
 *
 * @example
 * ```ts
 * Server.create({ realm, secrets, methods: [solana({ rpcUrl, currency: mint, decimals: 6, recipient })] })
 * ```
 * @see draft-solana-charge-00
 */
export const charge = Method.define({
  name: 'solana',
  intent: 'charge',
  request: SolanaChargeRequest,
  payload: SolanaChargePayload,
})
