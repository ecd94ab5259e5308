import { ConfigurationError, PaymentFailedError } from '@mppkit/core/client'
import {
  type Address,
  encodeFunctionData,
  type Hex,
  type LocalAccount,
  parseEventLogs,
  zeroAddress,
} from 'viem'
import { getBlock, getChainId, readContract } from 'viem/actions'
import { closeGracePeriod, escrowAbi } from '../internal/escrow.js'
import { checkAddress, checkBytes32, checkChainId, checkHttpUrl, checkSigner } from '../internal/options.js'
import { signCalls, type TempoWalletClient, walletClientFor } from '../internal/rpc.js'
import { rpcErrorSummary } from '../internal/rpcErrors.js'

/** Options of {@link reclaimChannel}. */
export type ReclaimOptions = {
  /** The channel's payer: only it may request a forced close and withdraw. */
  account: LocalAccount
  rpcUrl: string
  /** The chain of the channel (default: the node's `eth_chainId`). */
  chainId?: number
  /** The escrow contract holding the channel. */
  escrow: Address
  channelId: Hex
  /** Per RPC request (ms). */
  timeout?: number
}

/** Where a channel stands after {@link reclaimChannel}. */
export type Reclaim =
  | {
      /** The forced close is requested (by this call, or before it); withdraw once `withdrawableAt` passed. */
      status: 'closing'
      channelId: Hex
      escrow: Address
      chainId: number
      /** Chain time from which `withdraw` succeeds (close requested + the escrow's grace period). */
      withdrawableAt: Date
      /** The `requestClose` transaction this call sent (absent when the close was requested before). */
      transactionHash?: Hex
    }
  | {
      /** This call withdrew the channel: its deposit less what the payee settled came back to the payer. */
      status: 'withdrawn'
      channelId: Hex
      escrow: Address
      chainId: number
      refunded: bigint
      settled: bigint
      transactionHash: Hex
    }
  | {
      /** Finalized before this call (closed by the payee or withdrawn): nothing is left to reclaim. */
      status: 'finalized'
      channelId: Hex
      escrow: Address
      chainId: number
      settled: bigint
    }

/** Gas limits of the two payer calls (a token transfer at most; the fee is charged on gas used). */
const gas = { requestClose: 300_000n, withdraw: 500_000n }

/**
 * Takes a channel's deposit back without the payee: a server that went away, or never closes, leaves
 * the payer's funds in the escrow. Reads the channel on chain, then does the next step of the forced
 * close the spec gives the payer: requests it (`requestClose`) when nothing is requested yet, withdraws
 * (`withdraw`) once the escrow's grace period has passed in chain time, and otherwise sends nothing. Call
 * it again with the same parameters after `withdrawableAt`: each call reads the chain first, so it is safe
 * to repeat (after a lost answer too). Only the payer's own channels are touched: any other is refused
 * before anything is signed. The payee may still settle its latest voucher during the grace period;
 * `refunded` is what the withdrawal returned.
 *
 * Throws `ConfigurationError` for malformed options and `PaymentFailedError` when the chain cannot be
 * read, the channel does not exist or is not the account's, or a transaction is refused or unconfirmed
 * (its cause is a summary of the RPC error: no URL credentials, no signed transaction).
 *
 * @example
 * ```ts
 * const step = await reclaimChannel({ account, rpcUrl, escrow, channelId })
 * if (step.status === 'closing') console.log(`withdraw after ${step.withdrawableAt.toISOString()}`)
 * ```
 * @see draft-tempo-session-00 §"requestClose", §"withdraw"
 */
export async function reclaimChannel(options: ReclaimOptions): Promise<Reclaim> {
  const scope = 'tempo reclaim'
  if (typeof options !== 'object' || options === null)
    throw new ConfigurationError(`${scope}: options must be an object`)
  checkSigner(scope, 'account', options.account, ['signTransaction'], true)
  checkHttpUrl(scope, 'rpcUrl', options.rpcUrl, true)
  checkChainId(scope, options.chainId)
  checkAddress(scope, 'escrow', options.escrow)
  // Required here (checkBytes32 passes an absent value).
  checkBytes32(scope, 'channelId', options.channelId ?? '')
  const { account, escrow, channelId } = options

  const rpc = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (cause) {
      throw new PaymentFailedError(`${scope}: could not ${what}`, { cause: rpcErrorSummary(cause) })
    }
  }
  let chainId = options.chainId
  if (chainId === undefined) {
    const reader = walletClientFor({ rpcUrl: options.rpcUrl, chainId: 1, account, timeout: options.timeout })
    chainId = await rpc('read the chain id', () => getChainId(reader))
  }
  const wallet = walletClientFor({ rpcUrl: options.rpcUrl, chainId, account, timeout: options.timeout })
  const where = { channelId, escrow, chainId }

  const channel = await rpc('read the channel on-chain', () =>
    readContract(wallet, { address: escrow, abi: escrowAbi, functionName: 'getChannel', args: [channelId] }),
  )
  if (channel.payer === zeroAddress)
    throw new PaymentFailedError(`${scope}: escrow ${escrow} holds no channel ${channelId}`)
  // "`requestClose` | Payer only", "`withdraw` | Payer only": refused here rather than reverted on chain.
  if (channel.payer.toLowerCase() !== account.address.toLowerCase())
    throw new PaymentFailedError(
      `${scope}: channel ${channelId} is paid by ${channel.payer}, not by this account; nothing was signed`,
    )
  if (channel.finalized) return { status: 'finalized', ...where, settled: channel.settled }

  const grace = await closeGracePeriod(wallet, escrow)
  const closingAt = (requestedAt: bigint) => new Date(Number((requestedAt + grace) * 1000n))

  if (channel.closeRequestedAt === 0n) {
    const receipt = await send(wallet, scope, escrow, 'requestClose', channelId)
    const after = await rpc('read the channel on-chain', () =>
      readContract(wallet, {
        address: escrow,
        abi: escrowAbi,
        functionName: 'getChannel',
        args: [channelId],
        blockNumber: receipt.blockNumber,
      }),
    )
    return {
      status: 'closing',
      ...where,
      withdrawableAt: closingAt(after.closeRequestedAt),
      transactionHash: receipt.transactionHash,
    }
  }

  // "Requires `block.timestamp >= channel.closeRequestedAt + CLOSE_GRACE_PERIOD`": chain time, not ours.
  const block = await rpc('read the latest block', () => getBlock(wallet, { blockTag: 'latest' }))
  if (block.timestamp < channel.closeRequestedAt + grace)
    return { status: 'closing', ...where, withdrawableAt: closingAt(channel.closeRequestedAt) }
  const receipt = await send(wallet, scope, escrow, 'withdraw', channelId)
  const [closed] = parseEventLogs({ abi: escrowAbi, logs: receipt.logs, eventName: 'ChannelClosed' })
  const settled = closed?.args.settledToPayee ?? channel.settled
  const refunded = closed?.args.refundedToPayer ?? channel.deposit - channel.settled
  return { status: 'withdrawn', ...where, refunded, settled, transactionHash: receipt.transactionHash }
}

/** Signs and sends one payer call to the escrow, waiting for its receipt; a revert is refused. */
async function send(
  wallet: TempoWalletClient,
  scope: string,
  escrow: Address,
  functionName: 'requestClose' | 'withdraw',
  channelId: Hex,
) {
  let handedOver = false
  let receipt: Awaited<ReturnType<TempoWalletClient['sendRawTransactionSync']>>
  try {
    const data = encodeFunctionData({ abi: escrowAbi, functionName, args: [channelId] })
    const { transaction: serializedTransaction } = await signCalls(
      wallet,
      [{ to: escrow, data }],
      gas[functionName],
    )
    handedOver = true
    receipt = await wallet.sendRawTransactionSync({ serializedTransaction })
  } catch (cause) {
    throw new PaymentFailedError(
      handedOver
        ? `${scope}: the ${functionName} transaction was sent, but the node did not confirm it; call again: each call reads the chain first`
        : `${scope}: the ${functionName} transaction could not be sent`,
      { cause: rpcErrorSummary(cause) },
    )
  }
  if (receipt.status !== 'success')
    throw new PaymentFailedError(
      `${scope}: the escrow reverted ${functionName} (transaction ${receipt.transactionHash})`,
    )
  return receipt
}
