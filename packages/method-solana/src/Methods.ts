import { Method } from '@mppkit/core/client'
import { z } from 'zod'
import { tokenProgramIds } from './internal/programs.js'
import { fromBase58, isBase58Address } from './internal/wire.js'

const maxU64 = 18_446_744_073_709_551_615n
const utf8Length = (value: string) => new TextEncoder().encode(value).length

// Patterns and limits, each spelled once: the zod schemas and the acceptance check below use the same.
const u64Pattern = /^[1-9]\d{0,19}$/
const blockhashPattern = /^[1-9A-HJ-NP-Za-km-z]{32,44}$/
const signaturePattern = /^[1-9A-HJ-NP-Za-km-z]{64,88}$/
/** A base58 ed25519 signature: 64 bytes (a base58 string of the right length may decode to fewer or more). */
const isSignature = (value: string) => signaturePattern.test(value) && fromBase58(value)?.length === 64
const base64Pattern = /^[A-Za-z0-9+/]+={0,2}$/
const maxMemoBytes = 566
const maxDescription = 256
const maxDecimals = 9
const maxSplits = 8
// "max 1232 bytes decoded": 1232 bytes are at most 1644 base64 characters.
const maxTransactionChars = 1644

/** A base58 public key (32 bytes). */
export const Address = z.string().refine((value): boolean => isBase58Address(value), 'a base58 public key')

// "The value MUST be a positive integer that fits in a 64-bit unsigned integer"
// (draft-solana-charge-00 §"Shared Fields", `amount`).
const positiveU64 = z
  .string()
  .regex(u64Pattern, 'a positive base-unit integer string')
  .refine((value) => BigInt(value) <= maxU64, 'at most 2^64 - 1')

const memoText = z
  .string()
  .refine((value) => utf8Length(value) <= maxMemoBytes, 'at most 566 bytes (Memo limit)')

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
  decimals: z.number().int().min(0).max(maxDecimals).optional(),
  tokenProgram: z.enum(tokenProgramIds).optional(),
  feePayer: z.boolean().optional(),
  feePayerKey: Address.optional(),
  splits: z.array(Split).max(maxSplits).optional(),
  recentBlockhash: z.string().regex(blockhashPattern, 'a base58 blockhash').optional(),
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
    description: z.string().max(maxDescription).optional(),
    // "MUST NOT exceed 566 bytes (Solana Memo Program limit)."
    externalId: memoText.optional(),
    methodDetails: MethodDetails.optional(),
  })
  .superRefine((request, context) => {
    for (const message of crossFieldIssues(request)) context.addIssue({ code: 'custom', message })
  })

/** The fields {@link crossFieldIssues} reads (the shape the field schemas have already checked). */
type CrossFields = {
  amount: string
  currency: string
  methodDetails?:
    | {
        decimals?: number | undefined
        tokenProgram?: string | undefined
        feePayer?: boolean | undefined
        feePayerKey?: string | undefined
        splits?: { amount: string; ataCreationRequired?: boolean | undefined }[] | undefined
        confidential?: boolean | undefined
      }
    | undefined
}

/** The spec's rules across fields of a request whose fields are each valid (messages, empty if none). */
function crossFieldIssues(request: CrossFields): string[] {
  const details = request.methodDetails ?? {}
  const sol = request.currency === 'sol'
  const issues: string[] = []
  // "MUST be present when `currency` is a mint address; MUST be absent when `currency` is "sol"."
  if (sol && details.decimals !== undefined) issues.push('decimals must be absent for sol')
  if (!sol && details.decimals === undefined) issues.push('decimals is required for a mint')
  // tokenProgram: "MUST NOT be present when `currency` is "sol"."
  if (sol && details.tokenProgram !== undefined) issues.push('tokenProgram must be absent for sol')
  // "When `true`, the `feePayerKey` field MUST also be present." / "MUST be absent when `feePayer`
  // is `false` or omitted"
  if ((details.feePayer === true) !== (details.feePayerKey !== undefined))
    issues.push('feePayerKey goes with feePayer: true')
  const splits = details.splits ?? []
  // "This field MUST NOT be `true` unless `currency` is an SPL token mint address."
  if (sol && splits.some((split) => split?.ataCreationRequired === true))
    issues.push('ataCreationRequired needs an SPL mint')
  // "The sum of all split amounts MUST NOT exceed `amount` … this remainder MUST be greater than zero."
  const amounts = [request.amount, ...splits.map((split) => split?.amount)]
  if (amounts.every((value) => typeof value === 'string' && /^\d+$/.test(value))) {
    const total = splits.reduce((sum, split) => sum + BigInt(split.amount), 0n)
    if (total >= BigInt(request.amount)) issues.push('splits must sum to less than amount')
  }
  // "MUST NOT be `true` when `currency` is "sol""; "`splits` MUST NOT be present."
  if (details.confidential === true && (sol || splits.length > 0))
    issues.push('confidential needs a Token-2022 mint and no splits')
  return issues
}

/** The parsed charge request. */
export type SolanaChargeRequest = z.infer<typeof SolanaChargeRequest>

const base64Transaction = z.string().max(maxTransactionChars).regex(base64Pattern, 'base64')

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
    signature: z.string().refine(isSignature, 'a base58 signature (64 bytes)'),
  }),
  z.looseObject({ type: z.literal('bundle'), transactions: z.array(base64Transaction).min(1).max(16) }),
])

/** The parsed charge payload. */
export type SolanaChargePayload = z.infer<typeof SolanaChargePayload>

// A server checks every credential's echoed request (its recent blockhash makes each one new) and
// payload. Interleaved with the rest of a request's work, zod's generic parsers cost ~30 µs per
// credential here (measured in the push bench; a few µs in a tight loop), so the method definition puts
// a hand-written acceptance check in front of each schema. The check only says yes to values the zod
// schema accepts (a property test holds it to that); anything it does not accept goes to zod, which
// decides and explains.
const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
const isU64 = (value: unknown) =>
  typeof value === 'string' && u64Pattern.test(value) && (value.length < 20 || BigInt(value) <= maxU64)
const isMemo = (value: unknown) => typeof value === 'string' && utf8Length(value) <= maxMemoBytes
const networks: readonly unknown[] = Network.options
const programIds: readonly unknown[] = tokenProgramIds

function isSplit(value: unknown): boolean {
  return (
    isRecord(value) &&
    isBase58Address(value.recipient) &&
    isU64(value.amount) &&
    (value.memo === undefined || isMemo(value.memo)) &&
    (value.ataCreationRequired === undefined || typeof value.ataCreationRequired === 'boolean')
  )
}

function isDetails(value: unknown): boolean {
  if (value === undefined) return true
  if (!isRecord(value)) return false
  const { network, decimals, tokenProgram, feePayer, feePayerKey, splits, recentBlockhash } = value
  return (
    (network === undefined || networks.includes(network)) &&
    (decimals === undefined ||
      (typeof decimals === 'number' &&
        Number.isInteger(decimals) &&
        decimals >= 0 &&
        decimals <= maxDecimals)) &&
    (tokenProgram === undefined || programIds.includes(tokenProgram)) &&
    (feePayer === undefined || typeof feePayer === 'boolean') &&
    (feePayerKey === undefined || isBase58Address(feePayerKey)) &&
    (splits === undefined ||
      (Array.isArray(splits) && splits.length <= maxSplits && splits.every(isSplit))) &&
    (recentBlockhash === undefined ||
      (typeof recentBlockhash === 'string' && blockhashPattern.test(recentBlockhash))) &&
    (value.confidential === undefined || typeof value.confidential === 'boolean') &&
    (value.auditorElgamalPubkey === undefined || typeof value.auditorElgamalPubkey === 'string') &&
    (value.recipientElgamalPubkey === undefined || typeof value.recipientElgamalPubkey === 'string')
  )
}

/**
 * True only for a request {@link SolanaChargeRequest} accepts (false says nothing: zod then decides).
 *
 * @example
 * ```ts
 * acceptsRequest({ amount: '1', currency: 'sol', recipient }) // true
 * ```
 */
export function acceptsRequest(value: unknown): value is SolanaChargeRequest {
  return (
    isRecord(value) &&
    isU64(value.amount) &&
    (value.currency === 'sol' || isBase58Address(value.currency)) &&
    isBase58Address(value.recipient) &&
    (value.description === undefined ||
      (typeof value.description === 'string' && value.description.length <= maxDescription)) &&
    (value.externalId === undefined || isMemo(value.externalId)) &&
    isDetails(value.methodDetails) &&
    crossFieldIssues(value as CrossFields).length === 0
  )
}

/**
 * True only for a `transaction` or `signature` payload {@link SolanaChargePayload} accepts (false says
 * nothing: zod then decides; `bundle` always goes to zod).
 *
 * @example
 * ```ts
 * acceptsPayload({ type: 'signature', signature }) // true
 * ```
 */
export function acceptsPayload(value: unknown): value is SolanaChargePayload {
  if (!isRecord(value)) return false
  if (value.type === 'signature') return typeof value.signature === 'string' && isSignature(value.signature)
  return (
    value.type === 'transaction' &&
    typeof value.transaction === 'string' &&
    value.transaction.length <= maxTransactionChars &&
    base64Pattern.test(value.transaction)
  )
}

/** The request schema as the method definition uses it: the check first, zod for the rest. */
const requestSchema: Method.Schema<SolanaChargeRequest> = {
  // A frozen value (what the core's decoder hands over) is returned as it is; zod would return a copy.
  safeParse: (value) =>
    Object.isFrozen(value) && acceptsRequest(value)
      ? { success: true, data: value }
      : SolanaChargeRequest.safeParse(value),
}

/** The payload schema as the method definition uses it (a shallow copy, as zod's looseObject gives). */
const payloadSchema: Method.Schema<SolanaChargePayload> = {
  safeParse: (value) =>
    acceptsPayload(value) ? { success: true, data: { ...value } } : SolanaChargePayload.safeParse(value),
}

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
  request: requestSchema,
  payload: payloadSchema,
})
