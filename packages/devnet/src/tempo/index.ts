import type { ChildProcess } from 'node:child_process'
import {
  type Address,
  decodeFunctionResult,
  encodeDeployData,
  encodeFunctionData,
  erc20Abi,
  type Hex,
} from 'viem'
import { DevnetError } from '../errors.js'
import { killProcess, resolveAnvilBinary, spawnAnvil } from './anvil.js'
import {
  eip2612TokenAbi,
  eip2612TokenBytecode,
  eip3009TokenAbi,
  eip3009TokenBytecode,
  streamChannelEscrowBytecode,
  x402ExactPermit2ProxyAbi,
  x402ExactPermit2ProxyBytecode,
} from './artifacts.js'
import { sendUnlockedTransaction, tempoRpc } from './clients.js'
import { permit2Address, tip20Symbols, tip20Tokens, x402ExactPermit2ProxyAddress } from './constants.js'

export { resolveAnvilBinary, tempoUnavailableReason } from './anvil.js'
export {
  eip2612TokenAbi,
  eip2612TokenBytecode,
  eip3009TokenAbi,
  eip3009TokenBytecode,
  solcVersion,
  streamChannelEscrowAbi,
  streamChannelEscrowBytecode,
  x402ExactPermit2ProxyAbi,
  x402ExactPermit2ProxyBytecode,
} from './artifacts.js'
export {
  advanceTempoTime,
  fundEip3009,
  fundTip20,
  nonceLane,
  sendUnlockedTransaction,
  sponsorTransaction,
  type TempoClientOptions,
  type TempoDevnetChain,
  type TempoPublicClient,
  type TempoWalletClient,
  tempoClients,
  tempoDevnetChain,
  tempoRpc,
  tempoRpcTimeoutMs,
  tempoVoucherTypedData,
} from './clients.js'
export {
  permit2Address,
  receiveWithAuthorizationTypes,
  tempoGas,
  tempoVoucherTypes,
  tip20Symbols,
  tip20Tokens,
  transferWithAuthorizationTypes,
  x402ExactPermit2ProxyAddress,
} from './constants.js'

/**
 * A funded dev account of the node (anvil's well-known test mnemonic: never use it for real funds).
 *
 * @example
 * ```ts
 * const [payer]: TempoDevAccount[] = tempo.info.accounts
 * ```
 */
export type TempoDevAccount = { address: Address; privateKey: Hex }

/**
 * Everything a test, example or the playground needs to talk to a Tempo devnet node. Plain JSON (no
 * bigint), so it can be written to a file or passed to another process.
 *
 * @example
 * ```ts
 * writeFileSync('devnet.json', JSON.stringify(tempo.info satisfies TempoDevnetInfo))
 * ```
 */
export type TempoDevnetInfo = {
  rpcUrl: string
  chainId: number
  /** Funded dev accounts: each holds native balance and every TIP-20 and the EIP-3009 token. */
  accounts: TempoDevAccount[]
  /** The predeployed TIP-20 stablecoins (6 decimals). */
  tokens: { pathUsd: Address; alphaUsd: Address; betaUsd: Address; thetaUsd: Address }
  /** The v1 session escrow (`StreamChannelEscrow`, contracts/StreamChannelEscrow.sol). */
  escrow: Address
  /** The EIP-3009 token (`Eip3009Token`, contracts/Eip3009Token.sol). */
  eip3009Token: Address
  /** EIP-712 domain name/version and ERC-20 metadata of {@link TempoDevnetInfo.eip3009Token}. */
  eip3009: { name: string; version: string; symbol: string; decimals: number }
  /**
   * A second token with EIP-2612 `permit` as well as EIP-3009 (`Eip2612Token`,
   * contracts/Eip2612Token.sol), for x402's `eip2612GasSponsoring`; {@link TempoDevnetInfo.eip3009Token}
   * has no `permit`.
   */
  eip2612Token: Address
  /** EIP-712 domain name/version (of `permit` and EIP-3009 alike) and ERC-20 metadata of {@link TempoDevnetInfo.eip2612Token}. */
  eip2612: { name: string; version: string; symbol: string; decimals: number }
  /**
   * x402's `exact` Permit2 proxy (contracts/X402ExactPermit2Proxy.sol), at x402's fixed address
   * ({@link x402ExactPermit2ProxyAddress}) so x402 peers paying with `assetTransferMethod: "permit2"`
   * settle on the node's predeployed Permit2.
   */
  x402Permit2Proxy: Address
  /**
   * An unlocked account outside `accounts` that deployed the contracts, mints the EIP-3009 token and
   * funds addresses ({@link fundTip20}); using it for your own payments would race its nonces.
   */
  faucet: Address
}

/**
 * Options of {@link startTempo}.
 *
 * @example
 * ```ts
 * const options: StartTempoOptions = { accounts: 4, eip3009: { name: 'USD Coin', version: '2' } }
 * ```
 */
export type StartTempoOptions = {
  /** Number of funded dev accounts in `info.accounts` (default 10). */
  accounts?: number
  /** Chain id (default: anvil's, 31337). */
  chainId?: number
  /** Seconds per block; omitted = mine on every transaction (fastest for tests). */
  blockTime?: number
  /** Give up (and kill anvil) if the node is not ready and deployed within this many ms (default 15 000). */
  startTimeout?: number
  /** Path to an anvil binary (default: `@foundry-rs/anvil`, or `MPPKIT_ANVIL_BINARY`). */
  binary?: string
  /** Interface to bind (default 127.0.0.1). */
  host?: string
  /** The EIP-3009 token's metadata and the balance minted to each dev account. */
  eip3009?: { name?: string; version?: string; symbol?: string; decimals?: number; amountPerAccount?: bigint }
  /**
   * The EIP-2612 token's metadata (default `Devnet Dollar`, `DUSD`, version `1`, 6 decimals) and the
   * balance minted to each dev account (default 1,000,000 tokens).
   */
  eip2612?: { name?: string; version?: string; symbol?: string; decimals?: number; amountPerAccount?: bigint }
}

/**
 * A running Tempo devnet node.
 *
 * @example
 * ```ts
 * const tempo: TempoDevnet = await startTempo()
 * await tempo.stop()
 * ```
 */
export type TempoDevnet = {
  info: TempoDevnetInfo
  /** PID of the anvil process. */
  pid: number
  /** Milliseconds from the call to `startTempo` until the node was listening, ready and deployed. */
  timings: { listeningMs: number; readyMs: number; totalMs: number }
  /** Kills anvil by PID and resolves when it has exited. Safe to call more than once. */
  stop(): Promise<void>
}

// Children still running; killed synchronously if this process exits without calling stop().
const running = new Set<ChildProcess>()
let exitHookInstalled = false
function trackChild(child: ChildProcess): void {
  running.add(child)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once('exit', () => {
      for (const entry of running) killProcess(entry)
    })
  }
}

/**
 * Starts a local Tempo node (`anvil --network tempo` on an OS-assigned port), waits until it answers
 * `eth_chainId`, checks the four TIP-20 predeploys and deploys the v1 session escrow, an EIP-3009 token,
 * an EIP-2612 (and EIP-3009) token and x402's Permit2 proxy from committed, solc-compiled artifacts. Takes
 * well under a second.
 *
 * @example
 * ```ts
 * const tempo = await startTempo()
 * try {
 *   console.log(tempo.info.rpcUrl, tempo.info.escrow)
 * } finally {
 *   await tempo.stop()
 * }
 * ```
 * @see draft-tempo-session-00 §"Channel Escrow Contract"
 */
export async function startTempo(options: StartTempoOptions = {}): Promise<TempoDevnet> {
  const started = performance.now()
  const accountCount = options.accounts ?? 10
  if (!Number.isInteger(accountCount) || accountCount < 1 || accountCount > 200) {
    throw new DevnetError('accounts must be an integer between 1 and 200', { code: 'devnet_bad_option' })
  }
  const timeoutMs = options.startTimeout ?? 15_000
  const deadline = started + timeoutMs
  const host = options.host ?? '127.0.0.1'
  const args = ['--network', 'tempo', '--accounts', String(accountCount + 1)]
  if (options.chainId !== undefined) args.push('--chain-id', String(options.chainId))
  if (options.blockTime !== undefined) args.push('--block-time', String(options.blockTime))

  const anvil = await spawnAnvil({ binary: options.binary ?? resolveAnvilBinary(), args, host, timeoutMs })
  trackChild(anvil.child)
  let stopped: Promise<void> | undefined
  const stop = () => {
    stopped ??= (async () => {
      killProcess(anvil.child)
      await anvil.exited
      running.delete(anvil.child)
    })()
    return stopped
  }
  try {
    const listeningMs = performance.now() - started
    if (anvil.accounts.length !== accountCount + 1) {
      throw new DevnetError(`anvil printed ${anvil.accounts.length} accounts, expected ${accountCount + 1}`, {
        code: 'devnet_start_failed',
      })
    }
    const accounts = anvil.accounts.slice(0, accountCount)
    const faucet = anvil.accounts[accountCount]!.address

    // Readiness probe: the banner is printed before the RPC server necessarily answers.
    let chainId: number | undefined
    while (chainId === undefined) {
      try {
        chainId = Number(await tempoRpc<Hex>(anvil.rpcUrl, 'eth_chainId', [], 1_000))
      } catch (error) {
        if (performance.now() > deadline) {
          throw new DevnetError(`anvil did not answer eth_chainId within ${timeoutMs} ms`, {
            code: 'devnet_start_timeout',
            cause: error,
          })
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    const readyMs = performance.now() - started

    const eip3009 = {
      name: options.eip3009?.name ?? 'USD Coin',
      version: options.eip3009?.version ?? '2',
      symbol: options.eip3009?.symbol ?? 'USDC',
      decimals: options.eip3009?.decimals ?? 6,
    }
    const amountPerAccount = options.eip3009?.amountPerAccount ?? 1_000_000n * 10n ** BigInt(eip3009.decimals)
    const eip2612 = eip2612Metadata(options.eip2612)
    const holders = accounts.map((account) => account.address)
    const [, escrow, eip3009Token, eip2612Token] = await withDeadline(
      Promise.all([
        verifyTip20Tokens(anvil.rpcUrl),
        deploy(anvil.rpcUrl, faucet, streamChannelEscrowBytecode),
        deploy(
          anvil.rpcUrl,
          faucet,
          encodeDeployData({
            abi: eip3009TokenAbi,
            bytecode: eip3009TokenBytecode,
            args: [
              eip3009.name,
              eip3009.symbol,
              eip3009.version,
              eip3009.decimals,
              holders,
              amountPerAccount,
            ],
          }),
        ),
        deploy(
          anvil.rpcUrl,
          faucet,
          eip2612TokenDeployData(eip2612, holders, options.eip2612?.amountPerAccount),
        ),
        placeX402Permit2Proxy(anvil.rpcUrl, faucet),
      ]),
      deadline,
      timeoutMs,
    )
    const info: TempoDevnetInfo = {
      rpcUrl: anvil.rpcUrl,
      chainId,
      accounts,
      tokens: { ...tip20Tokens },
      escrow,
      eip3009Token,
      eip3009,
      eip2612Token,
      eip2612,
      x402Permit2Proxy: x402ExactPermit2ProxyAddress,
      faucet,
    }
    return {
      info,
      pid: anvil.pid,
      timings: { listeningMs, readyMs, totalMs: performance.now() - started },
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

async function deploy(rpcUrl: string, from: Address, data: Hex): Promise<Address> {
  const { contractAddress } = await sendUnlockedTransaction(rpcUrl, { from, data, gas: 15_000_000n })
  if (!contractAddress)
    throw new DevnetError('deployment returned no address', { code: 'devnet_start_failed' })
  return contractAddress
}

/**
 * The metadata of the devnet's EIP-2612 token, defaults filled in (`Devnet Dollar`, `DUSD`, version `1`,
 * 6 decimals): another name and version than the EIP-3009 token's, so a signature made for the wrong
 * token's domain is refused.
 *
 * @example
 * ```ts
 * eip2612Metadata({ decimals: 18 }) // { name: 'Devnet Dollar', version: '1', symbol: 'DUSD', decimals: 18 }
 * ```
 */
export function eip2612Metadata(options: StartTempoOptions['eip2612'] = {}): TempoDevnetInfo['eip2612'] {
  return {
    name: options.name ?? 'Devnet Dollar',
    version: options.version ?? '1',
    symbol: options.symbol ?? 'DUSD',
    decimals: options.decimals ?? 6,
  }
}

/**
 * The creation data of `Eip2612Token` (contracts/Eip2612Token.sol) minting `amountEach` (default
 * 1,000,000 tokens) to each of `holders`; `startTempo` deploys it from the faucet account.
 *
 * @example
 * ```ts
 * const data = eip2612TokenDeployData(eip2612Metadata(), [payer.address])
 * ```
 */
export function eip2612TokenDeployData(
  metadata: TempoDevnetInfo['eip2612'],
  holders: readonly Address[],
  amountEach: bigint = 1_000_000n * 10n ** BigInt(metadata.decimals),
): Hex {
  return encodeDeployData({
    abi: eip2612TokenAbi,
    bytecode: eip2612TokenBytecode,
    args: [metadata.name, metadata.symbol, metadata.version, metadata.decimals, [...holders], amountEach],
  })
}

/**
 * Deploys `X402ExactPermit2Proxy` (bound to the predeployed Permit2) from an unlocked account and copies
 * its runtime code, which carries the immutable Permit2 address, to x402's fixed proxy address
 * ({@link x402ExactPermit2ProxyAddress}) with `anvil_setCode`: x402 clients sign for that spender and x402
 * facilitators call it there. Its storage starts empty, as the contract expects. `startTempo` does this.
 *
 * @example
 * ```ts
 * await placeX402Permit2Proxy(info.rpcUrl, info.faucet)
 * ```
 */
export async function placeX402Permit2Proxy(rpcUrl: string, from: Address): Promise<void> {
  const deployed = await deploy(
    rpcUrl,
    from,
    encodeDeployData({
      abi: x402ExactPermit2ProxyAbi,
      bytecode: x402ExactPermit2ProxyBytecode,
      args: [permit2Address],
    }),
  )
  const code = await tempoRpc<Hex>(rpcUrl, 'eth_getCode', [deployed, 'latest'])
  await tempoRpc(rpcUrl, 'anvil_setCode', [x402ExactPermit2ProxyAddress, code])
}

/** Reads `symbol()` of each TIP-20 predeploy: proves the node runs the Tempo network. */
async function verifyTip20Tokens(rpcUrl: string): Promise<void> {
  const data = encodeFunctionData({ abi: erc20Abi, functionName: 'symbol' })
  await Promise.all(
    (Object.keys(tip20Tokens) as (keyof typeof tip20Tokens)[]).map(async (key) => {
      const result = await tempoRpc<Hex>(rpcUrl, 'eth_call', [{ to: tip20Tokens[key], data }, 'latest'])
      const symbol = decodeFunctionResult({ abi: erc20Abi, functionName: 'symbol', data: result })
      if (symbol !== tip20Symbols[key]) {
        throw new DevnetError(
          `TIP-20 at ${tip20Tokens[key]} reports ${symbol}, expected ${tip20Symbols[key]}`,
          {
            code: 'devnet_start_failed',
          },
        )
      }
    }),
  )
}

async function withDeadline<T>(promise: Promise<T>, deadline: number, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new DevnetError(`Tempo devnet not ready within ${timeoutMs} ms`, { code: 'devnet_start_timeout' }),
        ),
      Math.max(0, deadline - performance.now()),
    )
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
