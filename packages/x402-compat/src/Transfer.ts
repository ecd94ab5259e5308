import { type Address, type Hex, parseEventLogs } from 'viem'
import { sameAddress } from './Authorization.js'

/** The ERC-20 `Transfer` event ABI. */
export const transferEvent = [
  {
    type: 'event',
    name: 'Transfer',
    inputs: [
      { name: 'from', type: 'address', indexed: true },
      { name: 'to', type: 'address', indexed: true },
      { name: 'value', type: 'uint256', indexed: false },
    ],
  },
] as const

/** One expected ERC-20 transfer. */
export type Expected = { token: string; to: string; value: bigint; from?: string | undefined }

/**
 * Whether a receipt's logs hold every expected ERC-20 `Transfer` (topic
 * `0xddf252ad…`), each matched by a distinct log: token contract, recipient and value compared exactly,
 * addresses as 20 bytes.
 *
 * @example
 * ```ts
 * hasTransfers(receipt.logs, [{ token: usdc, to: recipient, value: 1000n }]) // true
 * ```
 * @see draft-evm-charge-00 §"Hash Verification" step 4
 */
export function hasTransfers(
  logs: readonly { address: Address; topics: readonly Hex[]; data: Hex }[],
  expected: readonly Expected[],
): boolean {
  let parsed: { address: Address; args: { from: Address; to: Address; value: bigint } }[]
  try {
    parsed = parseEventLogs({ abi: transferEvent, logs: logs as never, strict: true }) as never
  } catch {
    return false
  }
  const used = new Set<number>()
  return expected.every((want) => {
    const index = parsed.findIndex(
      (log, i) =>
        !used.has(i) &&
        sameAddress(log.address, want.token) &&
        sameAddress(log.args.to, want.to) &&
        log.args.value === want.value &&
        (want.from === undefined || sameAddress(log.args.from, want.from)),
    )
    if (index < 0) return false
    used.add(index)
    return true
  })
}
