import { ConfigurationError, PaymentFailedError } from '@mppkit/core/client'
import { type Address, createPublicClient, type Hex, numberToHex, pad, toEventSelector } from 'viem'
import { getBlockNumber, getChainId, readContract } from 'viem/actions'
import { closeGracePeriod, escrowAbi } from '../internal/escrow.js'
import { checkAddress, checkChainId, checkHttpUrl, checkPositiveInteger } from '../internal/options.js'
import { neverSent, tempoChain, transport } from '../internal/rpc.js'
import { rpcErrorSummary } from '../internal/rpcErrors.js'

/** Options of {@link findOpenChannels}. */
export type FindChannelsOptions = {
  /** The payer whose channels are looked for (its address: nothing is signed). */
  payer: Address
  rpcUrl: string
  /** The chain (default: the node's `eth_chainId`). */
  chainId?: number
  /** The escrow contract to search. */
  escrow: Address
  /** First block searched (default 0: the whole chain). */
  fromBlock?: bigint | undefined
  /** Last block searched (default: the latest). */
  toBlock?: bigint | undefined
  /**
   * Blocks per `eth_getLogs` request (default 100 000). A request the node refuses (many public nodes cap
   * the range or the number of logs) is retried over half as many blocks, down to 10.
   */
  blockRange?: number
  /** Per RPC request (ms). */
  timeout?: number
}

/** A channel of the payer that is not finalized: its deposit, less what the payee settles, is still held. */
export type OpenChannel = {
  channelId: Hex
  escrow: Address
  chainId: number
  payee: Address
  token: Address
  authorizedSigner: Address
  deposit: bigint
  /** Settled to the payee so far. The payee may still settle vouchers it holds (before a withdrawal). */
  settled: bigint
  /** When the payer requested a forced close (chain time), if it did. */
  closeRequestedAt?: Date
  /** From when `withdraw` succeeds (chain time), once a forced close is requested. */
  withdrawableAt?: Date
  /** The block of the channel's `ChannelOpened` event. */
  openedInBlock: bigint
}

const defaultBlockRange = 100_000
const minBlockRange = 10
/** Channels read at once after the log search. */
const readsAtOnce = 8

// draft-tempo-session-00 §"Contract Functions": "event ChannelOpened(bytes32 indexed channelId, address
// indexed payer, address indexed payee, address token, address authorizedSigner, uint256 deposit)". The
// reference contract (TempoStreamChannel, the devnet's escrow and mppx 0.11.0's ABI) also logs the `salt`
// before the deposit, which changes the event's topic: both are searched. Either way the channel id is
// the first indexed topic and the payer the second.
const channelOpenedTopics = [
  toEventSelector('ChannelOpened(bytes32,address,address,address,address,uint256)'),
  toEventSelector('ChannelOpened(bytes32,address,address,address,address,bytes32,uint256)'),
]

/**
 * Finds the payer's channels on an escrow that still hold a deposit: every `ChannelOpened` event naming
 * the payer, each channel then read on chain, the finalized ones left out. A payer that lost track of its
 * channels (a process that stopped, a session client's memory gone) finds what to take back with
 * {@link reclaimChannel}, or sees what it has locked. Reads only; needs no key.
 *
 * The log search runs in windows of `blockRange` blocks from `fromBlock` (default: the whole chain), so on
 * a long chain give the block the payer started paying from. Channels come back in the order they were
 * opened.
 *
 * Throws `ConfigurationError` for malformed options and `PaymentFailedError` when the node cannot be read
 * (its cause is a summary of the RPC error: no URL credentials).
 *
 * @example
 * ```ts
 * for (const channel of await findOpenChannels({ payer: account.address, rpcUrl, escrow }))
 *   await reclaimChannel({ account, rpcUrl, escrow, channelId: channel.channelId })
 * ```
 * @see draft-tempo-session-00 §"Contract Functions" (ChannelOpened, getChannel)
 */
export async function findOpenChannels(options: FindChannelsOptions): Promise<OpenChannel[]> {
  const scope = 'tempo channels'
  if (typeof options !== 'object' || options === null)
    throw new ConfigurationError(`${scope}: options must be an object`)
  checkAddress(scope, 'payer', options.payer)
  checkHttpUrl(scope, 'rpcUrl', options.rpcUrl, true)
  checkChainId(scope, options.chainId)
  checkAddress(scope, 'escrow', options.escrow)
  for (const field of ['fromBlock', 'toBlock'] as const) {
    const value = options[field]
    if (value !== undefined && (typeof value !== 'bigint' || value < 0n))
      throw new ConfigurationError(`${scope}: ${field} must be a block number (a bigint ≥ 0n)`)
  }
  if (options.fromBlock !== undefined && options.toBlock !== undefined && options.fromBlock > options.toBlock)
    throw new ConfigurationError(`${scope}: fromBlock must not be after toBlock`)
  if (options.blockRange !== undefined)
    checkPositiveInteger(scope, 'blockRange', options.blockRange, 'block count')
  const { payer, escrow } = options

  const rpc = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (cause) {
      throw new PaymentFailedError(`${scope}: could not ${what}`, { cause: rpcErrorSummary(cause) })
    }
  }
  const client = (chainId: number) =>
    createPublicClient({
      chain: tempoChain({ chainId, rpcUrl: options.rpcUrl }),
      transport: transport(options.rpcUrl, options.timeout),
    })
  const chainId = options.chainId ?? (await rpc('read the chain id', () => getChainId(client(1))))
  const reader = client(chainId)
  const last = options.toBlock ?? (await rpc('read the latest block number', () => getBlockNumber(reader)))

  // Windows of `range` blocks; a refused window is tried again over half as many, a node that cannot be
  // reached at all fails at once.
  const opened: { channelId: Hex; block: bigint }[] = []
  const seen = new Set<Hex>()
  let range = BigInt(options.blockRange ?? defaultBlockRange)
  const floor = range < BigInt(minBlockRange) ? range : BigInt(minBlockRange)
  for (let from = options.fromBlock ?? 0n; from <= last; ) {
    const to = from + range - 1n < last ? from + range - 1n : last
    let logs: { topics: Hex[]; blockNumber: Hex | null; removed?: boolean }[]
    try {
      logs = (await reader.request({
        method: 'eth_getLogs',
        params: [
          {
            address: escrow,
            topics: [channelOpenedTopics, null, pad(payer.toLowerCase() as Hex)],
            fromBlock: numberToHex(from),
            toBlock: numberToHex(to),
          },
        ],
      })) as unknown as typeof logs
    } catch (cause) {
      const width = to - from + 1n
      if (width > floor && !neverSent(cause)) {
        range = width / 2n > floor ? width / 2n : floor
        continue
      }
      throw new PaymentFailedError(`${scope}: could not read the escrow's logs (blocks ${from}–${to})`, {
        cause: rpcErrorSummary(cause),
      })
    }
    for (const log of logs) {
      const channelId = log.topics?.[1]
      if (!channelId || log.removed || log.blockNumber === null || seen.has(channelId)) continue
      seen.add(channelId)
      opened.push({ channelId, block: BigInt(log.blockNumber) })
    }
    from = to + 1n
  }
  if (opened.length === 0) return []

  let grace: bigint | undefined
  const channels: OpenChannel[] = []
  for (let i = 0; i < opened.length; i += readsAtOnce) {
    const batch = opened.slice(i, i + readsAtOnce)
    const read = await rpc('read the channels on-chain', () =>
      Promise.all(
        batch.map(({ channelId }) =>
          readContract(reader, {
            address: escrow,
            abi: escrowAbi,
            functionName: 'getChannel',
            args: [channelId],
          }),
        ),
      ),
    )
    for (const [j, channel] of read.entries()) {
      // The event names the payer; the channel read must too (an escrow that answers otherwise is not
      // one whose channels this payer can reclaim).
      if (channel.finalized || channel.payer.toLowerCase() !== payer.toLowerCase()) continue
      const { channelId, block } = batch[j]!
      const found: OpenChannel = {
        channelId,
        escrow,
        chainId,
        payee: channel.payee,
        token: channel.token,
        authorizedSigner: channel.authorizedSigner,
        deposit: channel.deposit,
        settled: channel.settled,
        openedInBlock: block,
      }
      if (channel.closeRequestedAt > 0n) {
        grace ??= await closeGracePeriod(reader, escrow)
        found.closeRequestedAt = new Date(Number(channel.closeRequestedAt * 1000n))
        found.withdrawableAt = new Date(Number((channel.closeRequestedAt + grace) * 1000n))
      }
      channels.push(found)
    }
  }
  return channels
}
