import {
  address,
  appendTransactionMessageInstructions,
  type Blockhash,
  createTransactionMessage,
  getBase64EncodedWireTransaction,
  type Instruction,
  type KeyPairSigner,
  partiallySignTransactionMessageWithSigners,
  pipe,
  setTransactionMessageFeePayer,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
} from '@solana/kit'
import { getTransferSolInstruction } from '@solana-program/system'
import { getTransferCheckedInstruction } from '@solana-program/token'
import { findAssociatedTokenAddress, type SolanaNode } from '../../devnet/src/solana/index.js'

/** Builds and signs (partially, when the fee payer is only an address) a transaction of any instructions. */
export async function craft(
  node: SolanaNode,
  feePayer: KeyPairSigner | string,
  instructions: Instruction[],
  blockhash = node.ledger.latestBlockhash().blockhash,
): Promise<string> {
  const message = pipe(
    createTransactionMessage({ version: 0 }),
    (draft) =>
      typeof feePayer === 'string'
        ? setTransactionMessageFeePayer(address(feePayer), draft)
        : setTransactionMessageFeePayerSigner(feePayer, draft),
    (draft) =>
      setTransactionMessageLifetimeUsingBlockhash(
        { blockhash: blockhash as Blockhash, lastValidBlockHeight: 0n },
        draft,
      ),
    (draft) => appendTransactionMessageInstructions(instructions, draft),
  )
  return getBase64EncodedWireTransaction(await partiallySignTransactionMessageWithSigners(message))
}

/** A TransferChecked from `from`'s ATA to `to`'s ATA (defaults: the world's mint, Token program, 6 decimals). */
export async function transferChecked(options: {
  from: KeyPairSigner
  to: string
  mint: string
  amount: bigint
  decimals?: number
  program?: string
  /** ATA derivation program (default `program`). */
  ataProgram?: string
}): Promise<Instruction> {
  const program = options.program ?? 'TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA'
  const ataProgram = options.ataProgram ?? program
  return getTransferCheckedInstruction(
    {
      source: await findAssociatedTokenAddress({
        owner: options.from.address,
        mint: options.mint,
        tokenProgram: ataProgram,
      }),
      mint: address(options.mint),
      destination: await findAssociatedTokenAddress({
        owner: options.to,
        mint: options.mint,
        tokenProgram: ataProgram,
      }),
      authority: options.from,
      amount: options.amount,
      decimals: options.decimals ?? 6,
    },
    { programAddress: address(program) },
  )
}

/** A System transfer. */
export const transferSol = (from: KeyPairSigner, to: string, lamports: bigint): Instruction =>
  getTransferSolInstruction({ source: from, destination: address(to), amount: lamports })
