import { type Address, type Client, parseAbi } from 'viem'
import { readContract } from 'viem/actions'

/**
 * The part of the v1 escrow ABI this package calls (draft-tempo-session-00 §"Contract Functions"; the
 * deployed shape mppx's legacy session uses: `getChannel` returns the struct in storage order).
 */
export const escrowAbi = parseAbi([
  'struct Channel { bool finalized; uint64 closeRequestedAt; address payer; address payee; address token; address authorizedSigner; uint128 deposit; uint128 settled; }',
  'function open(address payee, address token, uint128 deposit, bytes32 salt, address authorizedSigner) returns (bytes32)',
  'function settle(bytes32 channelId, uint128 cumulativeAmount, bytes signature)',
  'function topUp(bytes32 channelId, uint256 additionalDeposit)',
  'function close(bytes32 channelId, uint128 cumulativeAmount, bytes signature)',
  'function requestClose(bytes32 channelId)',
  'function withdraw(bytes32 channelId)',
  'function getChannel(bytes32 channelId) view returns (Channel)',
  // The payer's forced close: "Requires `block.timestamp >= channel.closeRequestedAt + CLOSE_GRACE_PERIOD`".
  'function CLOSE_GRACE_PERIOD() view returns (uint64)',
  'event ChannelClosed(bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 settledToPayee, uint256 refundedToPayer)',
])

/**
 * The escrow's forced-close grace period in seconds: its `CLOSE_GRACE_PERIOD()`, or the spec's 15 minutes
 * ("2. Wait 15 min grace period", draft-tempo-session-00) for an escrow that does not expose it.
 *
 * @example
 * ```ts
 * const withdrawableAt = closeRequestedAt + (await closeGracePeriod(client, escrow))
 * ```
 */
export function closeGracePeriod(client: Client, escrow: Address): Promise<bigint> {
  return readContract(client, { address: escrow, abi: escrowAbi, functionName: 'CLOSE_GRACE_PERIOD' }).catch(
    () => 15n * 60n,
  )
}
