import {
  type Address,
  createPublicClient,
  defineChain,
  encodeFunctionData,
  erc20Abi,
  type Hex,
  http,
  type PublicClient,
  type Transport,
} from 'viem'
import { type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts'
import { signTransaction } from 'viem/actions'
import { tempoLocalnet } from 'viem/chains'
import { createClient, type Client as TempoClient, Transaction } from 'viem/tempo'
import { DevnetError } from '../errors.js'
import { eip3009TokenAbi } from './artifacts.js'
import { tempoVoucherTypes, tip20Tokens } from './constants.js'

/**
 * Default RPC timeout in ms: anvil drops invalid transactions silently, so a call must not wait forever.
 *
 * @example
 * ```ts
 * http(info.rpcUrl, { timeout: tempoRpcTimeoutMs })
 * ```
 */
export const tempoRpcTimeoutMs = 10_000

/**
 * A viem chain for a devnet node: viem's Tempo localnet config (0x76 serializers and formatters) with
 * this node's chain id and URL, paying fees in `feeToken` (PathUSD by default).
 *
 * @example
 * ```ts
 * const chain = tempoDevnetChain({ rpcUrl: info.rpcUrl, chainId: info.chainId })
 * ```
 */
export function tempoDevnetChain(parameters: { rpcUrl: string; chainId: number; feeToken?: Address }) {
  const { rpcUrl, chainId, feeToken = tip20Tokens.pathUsd } = parameters
  return defineChain({
    ...tempoLocalnet,
    id: chainId,
    name: 'Tempo (mppkit devnet)',
    rpcUrls: { default: { http: [rpcUrl] } },
  }).extend({ feeToken })
}

/**
 * Options shared by the client helpers; a {@link TempoDevnetInfo} satisfies it.
 *
 * @example
 * ```ts
 * const options: TempoClientOptions = { rpcUrl: info.rpcUrl, chainId: info.chainId, timeout: 5_000 }
 * ```
 */
export type TempoClientOptions = {
  rpcUrl: string
  chainId: number
  /** Fee token for 0x76 transactions (default PathUSD). */
  feeToken?: Address
  /** Per-request timeout in ms (default 10 s). */
  timeout?: number
}

function transport(options: TempoClientOptions): Transport {
  // No retries: a retried `eth_sendRawTransactionSync` that anvil dropped would only wait longer.
  return http(options.rpcUrl, { timeout: options.timeout ?? tempoRpcTimeoutMs, retryCount: 0 })
}

/**
 * Builds viem clients for a devnet node with `viem/tempo`: a public client and, given a private key, a
 * wallet client (public, wallet and Tempo actions) with short polling and request timeouts.
 *
 * @example
 * ```ts
 * const { walletClient, account } = tempoClients({ ...info, privateKey: info.accounts[0].privateKey })
 * await Actions.token.transferSync(walletClient, { token: info.tokens.pathUsd, to, amount: 1n, gas: tempoGas.transfer })
 * ```
 */
export function tempoClients(options: TempoClientOptions & { privateKey: Hex }): {
  chain: TempoDevnetChain
  account: PrivateKeyAccount
  publicClient: TempoPublicClient
  walletClient: TempoWalletClient
}
export function tempoClients(options: TempoClientOptions & { privateKey?: undefined }): {
  chain: TempoDevnetChain
  account: undefined
  publicClient: TempoPublicClient
  walletClient: undefined
}
export function tempoClients(options: TempoClientOptions & { privateKey?: Hex | undefined }): {
  chain: TempoDevnetChain
  account: PrivateKeyAccount | undefined
  publicClient: TempoPublicClient
  walletClient: TempoWalletClient | undefined
} {
  const chain = tempoDevnetChain(options)
  const publicClient = tempoPublicClient(options)
  if (!options.privateKey) return { chain, account: undefined, publicClient, walletClient: undefined }
  const account = privateKeyToAccount(options.privateKey)
  const walletClient = tempoWalletClient({ ...options, account })
  return { chain, account, publicClient, walletClient }
}

function tempoPublicClient(options: TempoClientOptions): TempoPublicClient {
  return createPublicClient({
    chain: tempoDevnetChain(options),
    transport: transport(options),
    pollingInterval: 50,
  })
}

function tempoWalletClient(options: TempoClientOptions & { account: PrivateKeyAccount }): TempoWalletClient {
  return createClient({
    account: options.account,
    chain: tempoDevnetChain(options),
    transport: transport(options),
    pollingInterval: 50,
  })
}

/**
 * The chain type {@link tempoDevnetChain} returns.
 *
 * @example
 * ```ts
 * const chain: TempoDevnetChain = tempoDevnetChain(info)
 * ```
 */
export type TempoDevnetChain = ReturnType<typeof tempoDevnetChain>

/**
 * The public client type {@link tempoClients} returns (Tempo formatters included).
 *
 * @example
 * ```ts
 * const read = (client: TempoPublicClient) => client.getChainId()
 * ```
 */
export type TempoPublicClient = PublicClient<Transport, TempoDevnetChain>

/**
 * The wallet client type {@link tempoClients} returns (viem/tempo `createClient` with an account).
 *
 * @example
 * ```ts
 * const send = (client: TempoWalletClient) => client.sendTransaction({ to, gas: tempoGas.default })
 * ```
 */
export type TempoWalletClient = TempoClient<Transport, TempoDevnetChain, PrivateKeyAccount>

/**
 * Hands out `{ nonceKey: 0n, nonce }` for consecutive transactions from one account, so several
 * payments from the same sender use the sequential protocol-nonce lane rather than viem's
 * expiring-nonce lane, on which anvil serves only one pending transaction per account (the second
 * `eth_sendRawTransactionSync` hangs).
 *
 * @example
 * ```ts
 * const lane = nonceLane(publicClient, account.address)
 * await Promise.all([1n, 2n].map(async (amount) =>
 *   Actions.token.transferSync(walletClient, { token, to, amount, gas: tempoGas.transfer, ...(await lane.next()) })))
 * ```
 */
export function nonceLane(
  client: Pick<PublicClient, 'getTransactionCount'>,
  address: Address,
): { next(): Promise<{ nonceKey: 0n; nonce: number }>; reset(): void } {
  let base: Promise<number> | undefined
  let offset = 0
  return {
    async next() {
      base ??= client.getTransactionCount({ address, blockTag: 'pending' })
      const slot = offset++
      return { nonceKey: 0n, nonce: (await base) + slot }
    },
    reset() {
      base = undefined
      offset = 0
    },
  }
}

/**
 * A minimal JSON-RPC call with a timeout, for anvil's unlocked dev accounts and cheat methods.
 *
 * @example
 * ```ts
 * const chainId = Number(await tempoRpc<string>(info.rpcUrl, 'eth_chainId', []))
 * ```
 */
export async function tempoRpc<T = unknown>(
  rpcUrl: string,
  method: string,
  params: unknown[],
  timeoutMs = tempoRpcTimeoutMs,
): Promise<T> {
  let response: Response
  try {
    response = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
      signal: AbortSignal.timeout(timeoutMs),
    })
  } catch (error) {
    throw new DevnetError(`${method} to ${rpcUrl} failed`, { code: 'devnet_rpc_failed', cause: error })
  }
  const body = (await response.json().catch(() => undefined)) as
    | { result?: T; error?: { code: number; message: string } }
    | undefined
  if (!body || body.error || !('result' in body)) {
    throw new DevnetError(`${method} failed: ${body?.error?.message ?? `HTTP ${response.status}`}`, {
      code: 'devnet_rpc_failed',
    })
  }
  return body.result as T
}

// Unlocked sends from one devnet account are chained so anvil assigns their nonces in order.
const unlockedQueues = new Map<string, Promise<unknown>>()

/**
 * Sends a transaction from one of anvil's unlocked accounts (`eth_sendTransaction`, no key needed)
 * and waits for a successful receipt; returns the receipt's transaction hash and contract address.
 *
 * @example
 * ```ts
 * const { contractAddress } = await sendUnlockedTransaction(info.rpcUrl, { from: info.deployer, data: bytecode })
 * ```
 */
export function sendUnlockedTransaction(
  rpcUrl: string,
  transaction: { from: Address; to?: Address; data?: Hex; gas?: bigint },
): Promise<{ transactionHash: Hex; contractAddress: Address | null }> {
  const key = `${rpcUrl}|${transaction.from.toLowerCase()}`
  const previous = unlockedQueues.get(key) ?? Promise.resolve()
  const next = previous
    .catch(() => undefined)
    .then(async () => {
      const hash = await tempoRpc<Hex>(rpcUrl, 'eth_sendTransaction', [
        {
          from: transaction.from,
          ...(transaction.to ? { to: transaction.to } : {}),
          ...(transaction.data ? { data: transaction.data } : {}),
          gas: `0x${(transaction.gas ?? 10_000_000n).toString(16)}`,
        },
      ])
      // anvil mines on submission (automine); poll briefly in case interval mining is on.
      const deadline = Date.now() + tempoRpcTimeoutMs
      for (;;) {
        const receipt = await tempoRpc<{ status: Hex; contractAddress: Address | null } | null>(
          rpcUrl,
          'eth_getTransactionReceipt',
          [hash],
        )
        if (receipt) {
          if (receipt.status !== '0x1') {
            throw new DevnetError(`transaction ${hash} reverted`, { code: 'devnet_transaction_reverted' })
          }
          return { transactionHash: hash, contractAddress: receipt.contractAddress }
        }
        if (Date.now() > deadline) {
          throw new DevnetError(`no receipt for ${hash}`, { code: 'devnet_transaction_timeout' })
        }
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    })
  unlockedQueues.set(key, next)
  void next.finally(() => {
    if (unlockedQueues.get(key) === next) unlockedQueues.delete(key)
  })
  return next
}

/**
 * Gives `to` some TIP-20 tokens by a transfer from the devnet's faucet account (an unlocked anvil
 * account that no dev account shares, so it never races your own nonces).
 *
 * @example
 * ```ts
 * await fundTip20({ rpcUrl: info.rpcUrl, from: info.faucet, token: info.tokens.alphaUsd, to, amount: 5_000_000n })
 * ```
 */
export async function fundTip20(parameters: {
  rpcUrl: string
  /** The funding account (`info.faucet`); must be unlocked on the node. */
  from: Address
  token: Address
  to: Address
  amount: bigint
}): Promise<Hex> {
  const { rpcUrl, from, token, to, amount } = parameters
  const data = encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [to, amount] })
  const { transactionHash } = await sendUnlockedTransaction(rpcUrl, { from, to: token, data, gas: 500_000n })
  return transactionHash
}

/**
 * Mints the devnet EIP-3009 token to `to` (the faucet account deployed it and is its minter).
 *
 * @example
 * ```ts
 * await fundEip3009({ rpcUrl: info.rpcUrl, from: info.faucet, token: info.eip3009Token, to, amount: 1_000_000n })
 * ```
 */
export async function fundEip3009(parameters: {
  rpcUrl: string
  from: Address
  token: Address
  to: Address
  amount: bigint
}): Promise<Hex> {
  const { rpcUrl, from, token, to, amount } = parameters
  const data = encodeFunctionData({ abi: eip3009TokenAbi, functionName: 'mint', args: [to, amount] })
  const { transactionHash } = await sendUnlockedTransaction(rpcUrl, { from, to: token, data, gas: 500_000n })
  return transactionHash
}

/**
 * Moves the node's clock forward and mines a block (`evm_increaseTime` + `evm_mine`), e.g. past the
 * escrow's 15-minute close grace period.
 *
 * @example
 * ```ts
 * await advanceTempoTime(info.rpcUrl, 16 * 60)
 * ```
 * @see draft-tempo-session-00 §"Forced Close"
 */
export async function advanceTempoTime(rpcUrl: string, seconds: number): Promise<void> {
  await tempoRpc(rpcUrl, 'evm_increaseTime', [seconds])
  await tempoRpc(rpcUrl, 'evm_mine', [])
}

/**
 * The EIP-712 typed data of a session voucher, ready for viem's `signTypedData` / `verifyTypedData`.
 *
 * @example
 * ```ts
 * const signature = await account.signTypedData(tempoVoucherTypedData({ chainId, escrow, channelId, cumulativeAmount: 100n }))
 * ```
 * @see draft-tempo-session-00 §"Voucher Signing Format"
 */
export function tempoVoucherTypedData(parameters: {
  chainId: number
  escrow: Address
  channelId: Hex
  cumulativeAmount: bigint
}) {
  return {
    // Spec §"Domain Separator": name "Tempo Stream Channel" (v1), version "1".
    domain: {
      name: 'Tempo Stream Channel',
      version: '1',
      chainId: parameters.chainId,
      verifyingContract: parameters.escrow,
    },
    types: tempoVoucherTypes,
    primaryType: 'Voucher' as const,
    message: { channelId: parameters.channelId, cumulativeAmount: parameters.cumulativeAmount },
  }
}

/**
 * Co-signs a sender-signed fee-sponsored Tempo transaction (the 0x78 fee-payer envelope a client
 * produces with `feePayer: true`) as fee payer and returns the broadcastable 0x76 transaction. The
 * sender should have used `nonceKey: 0n` and an explicit nonce (see {@link nonceLane}) on anvil.
 *
 * @example
 * ```ts
 * const request = await payer.walletClient.prepareTransactionRequest({ calls, feePayer: true, nonceKey: 0n, nonce, gas: tempoGas.transfer })
 * const signed = await payer.walletClient.signTransaction(request)
 * const ready = await sponsorTransaction({ walletClient: server.walletClient, serializedTransaction: signed })
 * await server.walletClient.sendRawTransactionSync({ serializedTransaction: ready })
 * ```
 * @see draft-tempo-session-00 §"Fee Payment"
 */
export async function sponsorTransaction(parameters: {
  /** The fee payer's wallet client. */
  walletClient: TempoWalletClient
  serializedTransaction: Hex
  /** Fee token the sponsor pays in (default: the transaction's, else PathUSD). */
  feeToken?: Address
}): Promise<Hex> {
  const { walletClient, serializedTransaction } = parameters
  const transaction = Transaction.deserialize(serializedTransaction) as Record<string, unknown>
  if (!transaction.signature || !transaction.from) {
    throw new DevnetError('the sender must sign before the fee payer co-signs', {
      code: 'devnet_bad_transaction',
    })
  }
  const feeToken = parameters.feeToken ?? (transaction.feeToken as Address | undefined) ?? tip20Tokens.pathUsd
  return signTransaction(walletClient, {
    ...transaction,
    account: walletClient.account,
    feePayer: walletClient.account,
    feeToken,
  } as never) as Promise<Hex>
}
