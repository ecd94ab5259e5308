import { VerificationFailedError } from '@mppkit/core'
import { programs } from './programs.js'
import type { Rpc } from './rpc.js'

/** What a mint account says about payments in it. */
export type MintFacts = { tokenProgram: string; decimals: number }

// Token-2022 extension types (spl-token-2022 `ExtensionType`) that make a transferChecked amount differ
// from what the recipient receives, need extra accounts, or can block the transfer.
const refused: Record<number, string> = {
  1: 'a transfer fee', // TransferFeeConfig (refused when a fee is set, see below)
  9: 'non-transferable tokens', // NonTransferable
  14: 'a transfer hook', // TransferHook (needs extra accounts; refused when a program is set)
  16: 'confidential transfer fees', // ConfidentialTransferFeeConfig
  26: 'a pause switch', // Pausable (refused when paused)
}

/**
 * Reads a mint account and checks it can be paid exactly: owned by the Token or Token-2022 program,
 * the expected decimals, and no Token-2022 extension under which the amount received could differ from
 * the amount sent (a non-zero transfer fee), or that needs accounts the payment may not carry (transfer
 * hook). "refuse what cannot be verified exactly".
 *
 * @example
 * ```ts
 * const facts = await readMint(rpc, mint)
 * ```
 * @see draft-solana-charge-00 §"Method Details", `tokenProgram`
 */
export async function readMint(rpc: Rpc, mint: string): Promise<MintFacts> {
  const answer = await rpc<{ value: { owner: string; data: [string, string] } | null }>('getAccountInfo', [
    mint,
    { encoding: 'base64', commitment: 'confirmed' },
  ])
  const account = answer?.value
  if (!account)
    throw new VerificationFailedError({ detail: 'The mint account does not exist.', reason: 'unknown-mint' })
  return mintFacts(account.owner, new Uint8Array(Buffer.from(account.data[0], 'base64')))
}

/** The facts of raw mint account data (see {@link readMint}). */
export function mintFacts(owner: string, data: Uint8Array): MintFacts {
  const refuse = (detail: string, reason = 'unsupported-mint'): never => {
    throw new VerificationFailedError({ detail, reason })
  }
  if (owner !== programs.token && owner !== programs.token2022)
    refuse('The currency is not a mint of the Token or Token-2022 program.', 'unknown-mint')
  // Mint layout: … decimals at 44, is_initialized at 45 (82 bytes base).
  if (data.length < 82 || data[45] !== 1) refuse('The currency is not an initialized mint.', 'unknown-mint')
  const decimals = data[44]!
  if (owner === programs.token2022 && data.length > 82) {
    // Extensions: account type byte at 165, then TLV entries (u16 type, u16 length, value).
    if (data[165] !== 1) refuse('The currency is not a mint.', 'unknown-mint')
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
    let offset = 166
    while (offset + 4 <= data.length) {
      const type = view.getUint16(offset, true)
      const length = view.getUint16(offset + 2, true)
      const value = data.subarray(offset + 4, offset + 4 + length)
      offset += 4 + length
      if (type === 0) break
      const name = refused[type]
      if (!name) continue
      if (type === 1) {
        // TransferFeeConfig: older fee bps at 88, newer fee bps at 106 (authorities 64, withheld 8,
        // each fee: epoch 8, maximum 8, basis points 2).
        const fee = new DataView(value.buffer, value.byteOffset, value.byteLength)
        if (value.length >= 108 && fee.getUint16(88, true) === 0 && fee.getUint16(106, true) === 0) continue
      }
      if (type === 14 && value.length >= 64 && value.subarray(32, 64).every((byte) => byte === 0)) continue
      if (type === 26 && value.length >= 33 && value[32] === 0) continue
      refuse(`The mint has ${name}; its transfers cannot be verified exactly.`)
    }
  }
  return { tokenProgram: owner, decimals }
}
