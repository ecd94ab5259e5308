// Decodes what a person wants to see of a Solana payment: the instructions of a wire transaction (the
// programs a charge uses), and a short summary of the devnet's record of a landed transaction.
import { decodeTransaction } from '../../../../packages/method-solana/src/internal/inspect.js'
import { programs } from '../../../../packages/method-solana/src/internal/programs.js'

const names: Record<string, string> = {
  [programs.system]: 'System',
  [programs.token]: 'SPL Token',
  [programs.token2022]: 'Token-2022',
  [programs.associatedToken]: 'Associated Token Account',
  [programs.computeBudget]: 'Compute Budget',
  [programs.memo]: 'Memo',
  [programs.memoV1]: 'Memo (v1)',
  [programs.memoV4]: 'Memo (v4)',
}

const u32 = (data: Uint8Array, at: number) => new DataView(data.buffer, data.byteOffset).getUint32(at, true)
const u64 = (data: Uint8Array, at: number) =>
  new DataView(data.buffer, data.byteOffset).getBigUint64(at, true).toString()

/** One instruction, decoded for the programs a charge uses (others: program id and data length). */
export function describeInstruction(program: string, accounts: readonly string[], data: Uint8Array) {
  const base = { program: names[program] ?? program }
  if (program === programs.computeBudget && data[0] === 2 && data.length >= 5)
    return { ...base, instruction: 'SetComputeUnitLimit', units: u32(data, 1) }
  if (program === programs.computeBudget && data[0] === 3 && data.length >= 9)
    return { ...base, instruction: 'SetComputeUnitPrice', microLamports: u64(data, 1) }
  if (program === programs.system && data.length >= 12 && u32(data, 0) === 2)
    return { ...base, instruction: 'Transfer', from: accounts[0], to: accounts[1], lamports: u64(data, 4) }
  if ((program === programs.token || program === programs.token2022) && data[0] === 12 && data.length >= 10)
    return {
      ...base,
      instruction: 'TransferChecked',
      source: accounts[0],
      mint: accounts[1],
      destination: accounts[2],
      authority: accounts[3],
      amount: u64(data, 1),
      decimals: data[9],
    }
  if (program === programs.associatedToken)
    return { ...base, instruction: data[0] === 1 ? 'CreateIdempotent' : 'Create', account: accounts[1] }
  if (names[program]?.startsWith('Memo'))
    return { ...base, instruction: 'Memo', text: new TextDecoder().decode(data) }
  return { ...base, dataBytes: data.length }
}

const mask = (signature: string | null) => (signature ? `${signature.slice(0, 4)}…(masked)` : '(empty)')

/** A base64 wire transaction, decoded: fee payer, blockhash, instructions; signatures masked. */
export function decodeWire(base64: string) {
  const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0))
  const decoded = decodeTransaction(bytes)
  return {
    bytes: bytes.length,
    feePayer: decoded.accounts[0],
    blockhash: decoded.blockhash,
    signatures: decoded.signatures.map(([signer, signature]) => ({ signer, signature: mask(signature) })),
    instructions: decoded.instructions.map((instruction) =>
      describeInstruction(
        instruction.program,
        instruction.accounts.map((index) => decoded.accounts[index]!),
        instruction.data,
      ),
    ),
  }
}

type ParsedInstruction = {
  program?: string
  programId: string
  parsed?: { type?: string; info?: Record<string, unknown> } | string
  data?: string
}
type LandedRecord = {
  slot: number
  blockTime: number | null
  meta: {
    err: unknown
    fee: number
    preBalances: number[]
    postBalances: number[]
    preTokenBalances?: { accountIndex: number; owner?: string; uiTokenAmount: { amount: string } }[]
    postTokenBalances?: { accountIndex: number; owner?: string; uiTokenAmount: { amount: string } }[]
  } | null
  transaction: {
    signatures: string[]
    message: { accountKeys: ({ pubkey: string } | string)[]; instructions: ParsedInstruction[] }
  }
}

/** The devnet's `getTransaction` (jsonParsed) answer, summarized: status, fee, parsed instructions, what moved. */
export function summarizeRecord(record: unknown) {
  if (!record) return { found: false }
  const { slot, blockTime, meta, transaction } = record as LandedRecord
  const keys = transaction.message.accountKeys.map((key) => (typeof key === 'string' ? key : key.pubkey))
  const lamports = meta
    ? keys.flatMap((key, index) => {
        const change = (meta.postBalances[index] ?? 0) - (meta.preBalances[index] ?? 0)
        return change === 0 ? [] : [{ account: key, lamports: change }]
      })
    : []
  const tokens = (meta?.postTokenBalances ?? []).flatMap((post) => {
    const pre = meta?.preTokenBalances?.find((entry) => entry.accountIndex === post.accountIndex)
    const change = BigInt(post.uiTokenAmount.amount) - BigInt(pre?.uiTokenAmount.amount ?? '0')
    return change === 0n
      ? []
      : [{ account: keys[post.accountIndex], owner: post.owner, amount: change.toString() }]
  })
  return {
    signature: transaction.signatures[0],
    slot,
    blockTime,
    status: meta?.err ? `failed: ${JSON.stringify(meta.err)}` : 'success',
    fee: meta?.fee,
    instructions: transaction.message.instructions.map((instruction) =>
      typeof instruction.parsed === 'object'
        ? {
            program: instruction.program ?? instruction.programId,
            type: instruction.parsed.type,
            ...instruction.parsed.info,
          }
        : typeof instruction.parsed === 'string'
          ? { program: instruction.program ?? instruction.programId, memo: instruction.parsed }
          : { program: names[instruction.programId] ?? instruction.programId },
    ),
    lamportChanges: lamports,
    tokenChanges: tokens,
  }
}
