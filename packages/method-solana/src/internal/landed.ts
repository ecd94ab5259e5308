import { VerificationFailedError } from '@mppkit/core'
import type { SolanaChargeRequest } from '../Methods.js'
import type { Decoded } from './inspect.js'

type TokenBalance = { accountIndex: number; mint: string; uiTokenAmount: { amount: string } }

/** A `getTransaction` answer in `base64` encoding (the fields this package reads). */
export type LandedTransaction = {
  slot: number
  blockTime?: number | null
  transaction: [string, string]
  meta: {
    err: unknown
    preTokenBalances?: TokenBalance[] | null
    postTokenBalances?: TokenBalance[] | null
  } | null
}

/**
 * Checks a landed payment: it succeeded, and for a mint every paid token account grew by at least what
 * its legs pay (token balance changes, so a fee or hook that withheld part of a transfer is caught).
 *
 * @example
 * ```ts
 * assertLanded(await rpc('getTransaction', [signature, { encoding: 'base64' }]), decoded, request)
 * ```
 * @see draft-solana-charge-00 §"Pull Mode Verification" step 7, §"Push Mode Verification" step 4
 */
export function assertLanded(
  landed: LandedTransaction,
  decoded: Decoded,
  request: SolanaChargeRequest,
): void {
  const fail = (detail: string, reason: string): never => {
    throw new VerificationFailedError({ detail, reason })
  }
  if (!landed.meta) fail('The node returned no transaction status.', 'transaction-not-found')
  if (landed.meta!.err !== null && landed.meta!.err !== undefined)
    fail('The transaction failed on chain.', 'transaction-failed')
  if (request.currency === 'sol') return
  const delta = new Map<string, bigint>()
  const add = (list: TokenBalance[] | null | undefined, sign: bigint) => {
    for (const entry of list ?? []) {
      if (entry.mint !== request.currency) continue
      const key = decoded.accounts[entry.accountIndex]
      if (key === undefined) continue
      delta.set(key, (delta.get(key) ?? 0n) + sign * BigInt(entry.uiTokenAmount.amount))
    }
  }
  add(landed.meta!.postTokenBalances, 1n)
  add(landed.meta!.preTokenBalances, -1n)
  const expected = new Map<string, bigint>()
  for (const transfer of tokenTransfers(decoded, request.currency))
    expected.set(transfer.destination, (expected.get(transfer.destination) ?? 0n) + transfer.amount)
  for (const [account, amount] of expected)
    if ((delta.get(account) ?? 0n) < amount)
      fail('A recipient token account received less than the transfer amount.', 'amount-mismatch')
}

function tokenTransfers(decoded: Decoded, mint: string): { destination: string; amount: bigint }[] {
  const out: { destination: string; amount: bigint }[] = []
  for (const instruction of decoded.instructions) {
    const { data } = instruction
    if (data.length !== 10 || data[0] !== 12 || instruction.accounts.length < 4) continue
    if (decoded.accounts[instruction.accounts[1]!] !== mint) continue
    const amount = new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(1, true)
    out.push({ destination: decoded.accounts[instruction.accounts[2]!]!, amount })
  }
  return out
}
