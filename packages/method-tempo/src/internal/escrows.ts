import type { Address } from 'viem'

/**
 * The v1 session escrow contracts known per Tempo chain id: a session client without `escrows`
 * deposits only into these on a chain listed here (on any other chain, e.g. a local devnet, into an
 * escrow address that holds contract code). Frozen: pass `escrows` to deposit elsewhere.
 *
 * @example
 * ```ts
 * import { knownEscrows, tempo } from '@mppkit/method-tempo/client'
 * // Moderato's known escrows and one more (`escrows` replaces the table).
 * const sessions = tempo.session({ account, rpcUrl, escrows: [...(knownEscrows[42431] ?? []), escrow] })
 * ```
 * @see draft-tempo-session-00 §"Deployed Contracts"
 */
export const knownEscrows: Readonly<Record<number, readonly Address[]>> = Object.freeze({
  // Tempo mainnet.
  4217: Object.freeze([
    // The default escrow of mppx 0.11.0 for chain 4217 (`escrowContract` in mppx's tempo/internal/defaults).
    '0x33b901018174DDabE4841042ab76ba85D4e24f25',
  ] as const),
  // Tempo testnet (Moderato).
  42431: Object.freeze([
    // The default escrow of mppx 0.11.0 for chain 42431 (`escrowContract` in mppx's tempo/internal/defaults).
    '0xe1c4d3dce17bc111181ddf716f75bae49e61a336',
    // draft-tempo-session-00 §"Deployed Contracts": "Moderato (Testnet) | 42431 | 0x9d136eEa…6CFa70".
    '0x9d136eEa063eDE5418A6BC7bEafF009bBb6CFa70',
  ] as const),
})

/**
 * Whether `escrow` is one of the {@link knownEscrows} of `chainId`; `undefined` when the chain has no
 * entry (the caller falls back to its own check).
 *
 * @example
 * ```ts
 * isKnownEscrow(4217, '0x33b901018174ddabe4841042ab76ba85d4e24f25') // true
 * ```
 */
export function isKnownEscrow(chainId: number, escrow: string): boolean | undefined {
  const known = knownEscrows[chainId]
  if (!known) return undefined
  const lower = escrow.toLowerCase()
  return known.some((address) => address.toLowerCase() === lower)
}
