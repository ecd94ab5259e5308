import { VerificationFailedError } from '@mppkit/core'
import { address, getAddressEncoder, getProgramDerivedAddress } from '@solana/kit'
import type { SolanaChargeRequest } from '../Methods.js'
import { isMemoProgram, programs } from './programs.js'
import { readTransaction, toBase58, type WireTransaction } from './wire.js'

/** "does not exceed the 1232-byte transaction size limit" (draft-solana-charge-00 §"Transaction Payload"). */
export const maxTransactionBytes = 1232

/** A decoded wire transaction: its accounts, instructions and signatures. */
export type Decoded = {
  bytes: Uint8Array
  /** Static account keys; index 0 is the fee payer. */
  accounts: string[]
  numSigners: number
  instructions: { program: string; accounts: number[]; data: Uint8Array }[]
  /** Signer address → base58 signature, or null when the slot is empty. */
  signatures: [string, string | null][]
  blockhash: string
}

const fail = (detail: string, reason: string): never => {
  throw new VerificationFailedError({ detail, reason })
}

/**
 * Decodes a wire transaction (legacy or v0 without lookup tables) strictly: minimal lengths and no
 * trailing byte, so one signed transaction has one encoding (and one signature to consume).
 */
export function decodeTransaction(bytes: Uint8Array): Decoded {
  if (bytes.length === 0 || bytes.length > maxTransactionBytes)
    fail('The transaction exceeds the 1232-byte size limit.', 'invalid-transaction')
  let wire: WireTransaction
  try {
    wire = readTransaction(bytes)
  } catch {
    return fail('The transaction could not be decoded.', 'invalid-transaction')
  }
  if (wire.lookups > 0) fail('Address lookup tables are not accepted.', 'invalid-transaction')
  const { accounts } = wire
  const instructions = wire.instructions.map((instruction) => {
    const program = accounts[instruction.programIndex]
    if (program === undefined || instruction.accounts.some((index) => index >= accounts.length))
      fail('An instruction names an account the transaction lacks.', 'invalid-transaction')
    return { program: program!, accounts: instruction.accounts, data: instruction.data }
  })
  return {
    bytes,
    accounts,
    numSigners: wire.numSigners,
    instructions,
    signatures: wire.signatures.map((signature, i) => [
      accounts[i]!,
      signature.some((byte) => byte !== 0) ? toBase58(signature) : null,
    ]),
    blockhash: wire.blockhash,
  }
}

const readU64 = (data: Uint8Array, offset: number) =>
  new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(offset, true)
const readU32 = (data: Uint8Array, offset: number) =>
  new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(offset, true)

// Derivations are pure (same owner, mint and program: same address) and cost two base58 decodes, a
// SHA-256 per bump and curve checks, so they are remembered (the derivation in flight, then its
// address); the map is bounded by clearing it.
const ataCache = new Map<string, string | Promise<string>>()
const ataCacheLimit = 4096
const ataKey = (owner: string, mint: string, tokenProgram: string) => `${owner}:${mint}:${tokenProgram}`

/** The associated token account when its derivation already completed, without a promise. */
function knownTokenAddress(owner: string, mint: string, tokenProgram: string): string | undefined {
  const cached = ataCache.get(ataKey(owner, mint, tokenProgram))
  return typeof cached === 'string' ? cached : undefined
}

/**
 * The associated token account of an owner for a mint under a token program (memoized).
 *
 * @example
 * ```ts
 * const ata = await associatedTokenAddress(owner, mint, programs.token)
 * ```
 */
export function associatedTokenAddress(owner: string, mint: string, tokenProgram: string): Promise<string> {
  const key = ataKey(owner, mint, tokenProgram)
  const cached = ataCache.get(key)
  if (cached !== undefined) return typeof cached === 'string' ? Promise.resolve(cached) : cached
  const encode = getAddressEncoder()
  const derived = getProgramDerivedAddress({
    programAddress: address(programs.associatedToken),
    seeds: [
      encode.encode(address(owner)),
      encode.encode(address(tokenProgram)),
      encode.encode(address(mint)),
    ],
  }).then(([ata]) => {
    const text = String(ata)
    if (ataCache.get(key) === derived) ataCache.set(key, text)
    return text
  })
  if (ataCache.size >= ataCacheLimit) ataCache.clear()
  ataCache.set(key, derived)
  derived.catch(() => ataCache.delete(key))
  return derived
}

/**
 * The bytes of a base64 transaction, refused unless the text is their canonical encoding (trailing
 * '=' aside), so one signed transaction has one accepted spelling.
 *
 * @example
 * ```ts
 * const decoded = decodeTransaction(decodeBase64(payload.transaction))
 * ```
 */
export function decodeBase64(value: string): Uint8Array {
  const decoded = Buffer.from(value, 'base64')
  // Only canonical base64 is accepted (one credential, one encoding): re-encoding the bytes gives the
  // text back, trailing '=' aside.
  const again = decoded.toString('base64')
  if (again.slice(0, unpadded(again)) !== value.slice(0, unpadded(value)))
    throw new VerificationFailedError({
      detail: 'The transaction is not canonical base64.',
      reason: 'invalid-transaction',
    })
  return new Uint8Array(decoded)
}

/** The length of `text` without its trailing '=' characters. */
function unpadded(text: string): number {
  let end = text.length
  while (end > 0 && text.charCodeAt(end - 1) === 61) end--
  return end
}

/** One payment leg the transaction must carry. @see draft-solana-charge-00 §"Native SOL Verification" */
export type Leg = { recipient: string; amount: bigint; destination: string; ataCreationRequired: boolean }

/**
 * The legs of a request: the primary remainder first, then each split (never aggregated). Without a
 * promise when every destination ATA was derived before (the usual case: the same recipients).
 */
export function expectedLegs(
  request: SolanaChargeRequest,
  tokenProgram: string | undefined,
): Leg[] | Promise<Leg[]> {
  const splits = request.methodDetails?.splits ?? []
  // "Compute the primary payment amount as the top-level `amount` minus the sum of all `splits`"
  const primary = BigInt(request.amount) - splits.reduce((sum, split) => sum + BigInt(split.amount), 0n)
  const entries = [
    { recipient: request.recipient, amount: primary, ataCreationRequired: false },
    ...splits.map((split) => ({
      recipient: split.recipient,
      amount: BigInt(split.amount),
      ataCreationRequired: split.ataCreationRequired === true,
    })),
  ]
  const sol = request.currency === 'sol'
  const known = entries.map((entry) =>
    sol ? entry.recipient : knownTokenAddress(entry.recipient, request.currency, tokenProgram!),
  )
  if (known.every((destination) => destination !== undefined))
    return entries.map((entry, i) => ({ ...entry, destination: known[i]! }))
  return Promise.all(
    entries.map(
      async (entry): Promise<Leg> => ({
        ...entry,
        destination: sol
          ? entry.recipient
          : await associatedTokenAddress(entry.recipient, request.currency, tokenProgram!),
      }),
    ),
  )
}

/** Limits on what a payment transaction may ask of the server (compute, priority fee). */
export type Limits = { maxComputeUnitLimit: number; maxComputeUnitPrice: bigint }

/**
 * What the inspection found: the payer (transfer authority), the transaction's first signature, and
 * the token accounts it pays without creating them (they must already exist).
 */
export type Inspection = {
  authority: string
  feePayer: string
  signature: string | null
  uncreatedDestinations: string[]
}

/**
 * Checks every instruction of a payment transaction against the challenge before anything is signed:
 * only compute-budget, memo, the allowed ATA creations and exactly one transfer per leg (amount, mint,
 * decimals, destination ATA, token program), one transfer authority, and, when the server pays fees,
 * a fee payer that appears in no instruction except as the payer of an authorized split ATA.
 *
 * @example
 * ```ts
 * const { authority } = await inspectPayment(decodeTransaction(bytes), request, { tokenProgram, sponsor, limits })
 * ```
 * @see draft-solana-charge-00 §"Pull Mode Verification", §"Split Recipient ATA Creation", §"Transaction Payload Security"
 */
export async function inspectPayment(
  decoded: Decoded,
  request: SolanaChargeRequest,
  options: {
    tokenProgram: string | undefined
    sponsor: string | undefined
    limits: Limits
    /**
     * Pull (true): any instruction outside the allowlist fails. Push (false): the client already paid
     * its own fees, so other instructions are skipped and only the legs must be found.
     */
    strict?: boolean
  },
): Promise<Inspection> {
  const strict = options.strict !== false
  let firstMiss: [string, string] | undefined
  // In push mode a non-matching instruction is skipped, remembering why for the final problem.
  const soft = (detail: string, reason: string): true => {
    if (strict) fail(detail, reason)
    firstMiss ??= [detail, reason]
    return true
  }
  const { accounts, instructions } = decoded
  const feePayer = accounts[0]!
  const sol = request.currency === 'sol'
  const details = request.methodDetails ?? {}
  const splits = details.splits ?? []
  const sponsored = options.sponsor !== undefined
  // "When `feePayer` is `true`, the transaction MUST set the server's `feePayerKey` as fee payer"
  if (sponsored && feePayer !== options.sponsor)
    fail('The transaction does not name the server fee payer.', 'fee-payer-mismatch')
  if (!sponsored && details.feePayer === true)
    fail('The challenge is fee-sponsored but this server pays no fees.', 'fee-payer-mismatch')
  if (strict && decoded.numSigners > 2) fail('The transaction asks for extra signers.', 'unexpected-signer')
  const expected = expectedLegs(request, options.tokenProgram)
  const legs = Array.isArray(expected) ? expected : await expected
  const matched = new Array<boolean>(legs.length).fill(false)
  const authorities = new Set<string>()
  const created = new Set<string>()
  let memos = 0
  let computeLimit: number | undefined
  let computePrice = 0n
  const feePayerIndex = 0
  const isSigner = (index: number) => index < decoded.numSigners

  for (const instruction of instructions) {
    const { program, data } = instruction
    const keys = instruction.accounts.map((index) => accounts[index]!)
    const usesFeePayer = (allowedAt?: number) =>
      instruction.accounts.some((index, at) => index === feePayerIndex && at !== allowedAt)
    if (program === programs.computeBudget) {
      if (keys.length > 0) fail('A compute-budget instruction takes no accounts.', 'unexpected-instruction')
      if (data[0] === 2 && data.length === 5) computeLimit = readU32(data, 1)
      else if (data[0] === 3 && data.length === 9) computePrice = readU64(data, 1)
      else fail('Only compute-unit limit and price instructions are accepted.', 'unexpected-instruction')
      continue
    }
    if (isMemoProgram(program)) {
      if (keys.length > 0) fail('Memo instructions may not name signers.', 'unexpected-instruction')
      memos++
      continue
    }
    if (sponsored && usesFeePayer(program === programs.associatedToken ? 0 : undefined))
      fail('An instruction uses the server fee payer account.', 'fee-payer-at-risk')
    if (program === programs.associatedToken) {
      // "The instruction MUST be the Associated Token Program's idempotent create instruction."
      if (sol || data.length !== 1 || data[0] !== 1 || keys.length !== 6) {
        soft('Only idempotent ATA creation for a payment mint is accepted.', 'unexpected-instruction')
        continue
      }
      const [payer, ata, owner, mint, system, tokenProgram] = keys as [
        string,
        string,
        string,
        string,
        string,
        string,
      ]
      // "The instruction payer MUST be the transaction fee payer."
      if (payer !== feePayer) fail('The ATA creation payer is not the fee payer.', 'unexpected-instruction')
      if (mint !== request.currency || tokenProgram !== options.tokenProgram || system !== programs.system)
        fail('The ATA creation names another mint or token program.', 'unexpected-instruction')
      if (ata !== (await associatedTokenAddress(owner, mint, tokenProgram)))
        fail('The ATA creation address is not the canonical ATA.', 'unexpected-instruction')
      // Sponsored: only splits marked ataCreationRequired; otherwise any split recipient, never the
      // top-level recipient ("Clients MUST NOT include ATA creation instructions for the top-level
      // `recipient` or any other owner.").
      const allowed = splits.some(
        (split) => split.recipient === owner && (!sponsored || split.ataCreationRequired === true),
      )
      if (!allowed && soft('The ATA creation is not authorized by the challenge.', 'unexpected-instruction'))
        continue
      // "The client MUST include an ATA creation instruction for that split recipient before the split
      // transfer."
      if (legs.some((leg, i) => matched[i] && leg.recipient === owner))
        soft('The ATA creation comes after the transfer it sets up.', 'unexpected-instruction')
      created.add(owner)
      continue
    }
    if (program === programs.system && sol) {
      // System transfer: u32 2, u64 lamports; accounts source (signer), destination.
      if (data.length !== 12 || readU32(data, 0) !== 2 || keys.length !== 2) {
        soft('Only System transfers are accepted.', 'unexpected-instruction')
        continue
      }
      const lamports = readU64(data, 4)
      const leg = legs.findIndex((l, i) => !matched[i] && l.destination === keys[1] && l.amount === lamports)
      if (leg < 0 && soft(mismatch(legs, keys[1]!, lamports), mismatchReason(legs, keys[1]!))) continue
      if (!isSigner(instruction.accounts[0]!))
        fail('The transfer source does not sign.', 'invalid-transaction')
      matched[leg] = true
      authorities.add(keys[0]!)
      continue
    }
    if (program === programs.token || program === programs.token2022) {
      if (sol && soft('A token transfer cannot pay a SOL charge.', 'currency-mismatch')) continue
      // TransferChecked: u8 12, u64 amount, u8 decimals; source, mint, destination, authority.
      if (data.length !== 10 || data[0] !== 12 || keys.length !== 4) {
        soft('Only single-signer TransferChecked instructions are accepted.', 'unexpected-instruction')
        continue
      }
      if (
        program !== options.tokenProgram &&
        soft('The transfer uses another token program.', 'token-program-mismatch')
      )
        continue
      if (keys[1] !== request.currency && soft('The transfer moves another mint.', 'currency-mismatch'))
        continue
      if (data[9] !== details.decimals && soft('The transfer names other decimals.', 'decimals-mismatch'))
        continue
      const amount = readU64(data, 1)
      const leg = legs.findIndex((l, i) => !matched[i] && l.destination === keys[2] && l.amount === amount)
      if (leg < 0 && soft(mismatch(legs, keys[2]!, amount), mismatchReason(legs, keys[2]!))) continue
      if (!isSigner(instruction.accounts[3]!))
        fail('The transfer authority does not sign.', 'invalid-transaction')
      matched[leg] = true
      authorities.add(keys[3]!)
      continue
    }
    soft('The transaction contains an instruction outside the payment allowlist.', 'unexpected-instruction')
  }
  const missing = legs.findIndex((_, i) => !matched[i])
  if (missing >= 0 && firstMiss) fail(...firstMiss)
  if (missing >= 0)
    fail(
      missing === 0 ? 'No transfer pays the recipient.' : `No transfer pays split ${missing}.`,
      'missing-transfer',
    )
  for (const split of splits)
    if (split.ataCreationRequired === true && !created.has(split.recipient))
      fail('A split that requires ATA creation has none.', 'missing-ata-creation')
  // "When present, clients SHOULD include this value as a Memo Program instruction" — this server
  // requires it (the externalId binding); it admits at most one memo per leg plus that one.
  if (strict && memos > legs.length + 1)
    fail('The transaction carries too many memos.', 'unexpected-instruction')
  if (strict && authorities.size !== 1) fail('All transfers must share one authority.', 'unexpected-signer')
  const authority = [...authorities][0]!
  if (sponsored && authority === feePayer)
    fail('The server fee payer cannot fund the payment.', 'fee-payer-at-risk')
  if (computeLimit !== undefined && computeLimit > options.limits.maxComputeUnitLimit)
    fail('The compute-unit limit exceeds the server policy.', 'compute-budget')
  // The fee payer pays the priority fee on the limit the runtime applies, which without a
  // SetComputeUnitLimit is its default (counted here as the older, larger rule: 200 000 CU per
  // instruction, 3 000 per compute-budget one, at most 1 400 000), so omitting the limit cannot buy more
  // than the policy allows. "Clients SHOULD set a compute unit limit and priority fee."
  if (sponsored && computePrice > 0n && computeLimit === undefined) {
    const budget = instructions.filter((instruction) => instruction.program === programs.computeBudget).length
    const implied = Math.min((instructions.length - budget) * 200_000 + budget * 3_000, 1_400_000)
    if (implied > options.limits.maxComputeUnitLimit)
      fail(
        'The priority fee applies to the default compute-unit limit, which exceeds the server policy; set a compute-unit limit.',
        'compute-budget',
      )
  }
  if (sponsored && computePrice > options.limits.maxComputeUnitPrice)
    fail('The priority fee exceeds the server policy.', 'compute-budget')
  // Every signature but the sponsor's must be present; the sponsor's slot must be empty or ours.
  for (const [signer, value] of decoded.signatures) {
    if (value === null && !(sponsored && signer === feePayer))
      fail('The transaction is not fully signed.', 'invalid-transaction')
  }
  const uncreatedDestinations = sol
    ? []
    : legs.filter((leg) => !created.has(leg.recipient)).map((leg) => leg.destination)
  return { authority, feePayer, signature: decoded.signatures[0]?.[1] ?? null, uncreatedDestinations }
}

/** Checks the memo binding: an `externalId` must ride in a memo with exactly its text. */
export function assertMemo(memos: readonly string[], request: SolanaChargeRequest): void {
  if (request.externalId !== undefined && !memos.includes(request.externalId))
    fail('The transaction lacks the externalId memo.', 'missing-memo')
}

/** The UTF-8 texts of a decoded transaction's memo instructions. */
export function memoTexts(decoded: Decoded): string[] {
  return decoded.instructions.filter((i) => isMemoProgram(i.program)).map((i) => utf8.decode(i.data))
}

const utf8 = new TextDecoder('utf-8', { fatal: false })

function mismatchReason(legs: readonly Leg[], destination: string): string {
  return legs.some((leg) => leg.destination === destination) ? 'amount-mismatch' : 'recipient-mismatch'
}

function mismatch(legs: readonly Leg[], destination: string, amount: bigint): string {
  const leg = legs.find((l) => l.destination === destination)
  return leg
    ? `The transfer pays ${amount}, the challenge asks ${leg.amount}.`
    : 'The transfer pays an account that is not a recipient of the challenge.'
}
