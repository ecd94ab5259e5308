import { describeError } from '@mppkit/core/cli'
import { ServiceUnavailableError } from '@mppkit/core/client'
import {
  type Account,
  type Address,
  bytesToBigInt,
  type Chain,
  createPublicClient,
  defineChain,
  type Hex,
  HttpRequestError,
  http,
  type PublicClient,
  RpcRequestError,
  TimeoutError,
  type Transport,
} from 'viem'
import { tempoLocalnet } from 'viem/chains'
import { createClient, type Client as TempoClient } from 'viem/tempo'
import { redactRpcText, rpcErrorSummary } from './rpcErrors.js'

/** Default Tempo mainnet chain id, per the spec's default. */
export const defaultChainId = 4217

/** A viem chain with Tempo's 0x76 serializers for any chain id and RPC URL. */
export function tempoChain(parameters: { chainId: number; rpcUrl: string; feeToken?: Address | undefined }) {
  return defineChain({
    ...tempoLocalnet,
    id: parameters.chainId,
    name: `Tempo (${parameters.chainId})`,
    rpcUrls: { default: { http: [parameters.rpcUrl] } },
  }).extend({ feeToken: parameters.feeToken ?? '0x20c0000000000000000000000000000000000000' })
}

/** Connection options shared by the server and client sides. */
export type Connection = {
  /** JSON-RPC URL of a Tempo node. */
  rpcUrl?: string
  /** Or a ready viem client (its chain must carry Tempo's serializers, e.g. `viem/chains` `tempo`). */
  client?: PublicClient<Transport, Chain>
  /** Chain id (default: the client's chain, else 4217). */
  chainId?: number
  /** Per-request timeout in ms (default 10 000). */
  timeout?: number
}

export function transport(rpcUrl: string, timeout: number | undefined): Transport {
  // No retries: a transaction the node dropped would only make a retried send wait longer.
  return http(rpcUrl, { timeout: timeout ?? 10_000, retryCount: 0 })
}

export function publicClientFor(connection: Connection, rpcUrl: string, chainId: number): PublicClient {
  if (connection.client) return connection.client as PublicClient
  return createPublicClient({
    chain: tempoChain({ chainId, rpcUrl }),
    transport: transport(rpcUrl, connection.timeout),
    pollingInterval: 50,
  }) as PublicClient
}

export function walletClientFor(parameters: {
  rpcUrl: string
  chainId: number
  account: Account
  timeout?: number | undefined
  feeToken?: Address | undefined
}): TempoWalletClient {
  return createClient({
    account: parameters.account,
    chain: tempoChain(parameters),
    transport: transport(parameters.rpcUrl, parameters.timeout),
    pollingInterval: 50,
  }) as unknown as TempoWalletClient
}

/** A viem/tempo wallet client. */
export type TempoWalletClient = TempoClient<Transport, Chain, Account>

/**
 * Signs one Tempo transaction of `calls` from the wallet's account on the protocol lane (nonce key 0, its
 * next nonce including pending ones): the session client's open and top-up, the payer's forced close.
 * `sponsored`: "Clients MUST sign with `fee_payer_signature` set to `0x00` and `fee_token` empty".
 *
 * @example
 * ```ts
 * const { transaction, nonce } = await signCalls(wallet, [{ to: escrow, data }], 300_000n)
 * ```
 */
export async function signCalls(
  wallet: TempoWalletClient,
  calls: { to: Address; data: Hex }[],
  gas: bigint,
  sponsored = false,
): Promise<{ transaction: Hex; nonce: number }> {
  const nonce = await wallet.getTransactionCount({ address: wallet.account.address, blockTag: 'pending' })
  const prepared = await wallet.prepareTransactionRequest({
    calls,
    gas,
    nonceKey: 0n,
    nonce,
    ...(sponsored ? { feePayer: true } : {}),
  } as never)
  return { transaction: (await wallet.signTransaction(prepared as never)) as Hex, nonce }
}

/**
 * True when an error means "the node could not be reached or did not answer", as opposed to a
 * definite answer (revert, not found, invalid).
 */
export function isUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof HttpRequestError || e instanceof TimeoutError) return true
    if (
      e instanceof RpcRequestError &&
      (e.code === -32603 || e.code === -32000) &&
      /timeout|unavailable/i.test(e.message)
    )
      return true
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN|UND_ERR/.test(code))
      return true
    if (e instanceof TypeError && /fetch failed/i.test(e.message)) return true
  }
  return false
}

/**
 * True when a failed request never reached the node: the connection was refused, or the host did not
 * resolve or never accepted a connection. Whatever it asked for (a broadcast) cannot have happened. Any
 * other outage (a reset or closed connection, a timeout, a node that accepted the request and gave up
 * waiting) may have come after the node took the request.
 */
export function neverSent(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|UND_ERR_CONNECT_TIMEOUT)$/.test(code))
      return true
  }
  return false
}

/** The origin of the RPC URL an error names (never its path or query, where API keys live). */
function rpcOrigin(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const url = (e as { url?: unknown }).url
    if (typeof url === 'string')
      try {
        return new URL(url).origin
      } catch {}
  }
  return undefined
}

/**
 * Maps an RPC outage to a 503 with Retry-After; other errors pass through. Its message, for logs, leads
 * with the cause (`Tempo RPC unreachable at http://127.0.0.1:8545: ECONNREFUSED 127.0.0.1:8545`); the
 * problem `detail` the payer sees stays generic.
 */
export function unavailable(error: unknown, retryAfter = 2): ServiceUnavailableError {
  const problem = new ServiceUnavailableError({
    detail: 'The Tempo RPC node is unavailable; retry the same credential later.',
    reason: 'rpc-unavailable',
    retryAfter,
    // Never the viem error itself: it keeps the RPC URL with any `user:password@` and the request body.
    cause: rpcErrorSummary(error),
  })
  const origin = rpcOrigin(error)
  problem.message = `Tempo RPC unreachable${origin ? ` at ${origin}` : ''}: ${redactRpcText(describeError(error))}`
  return problem
}

/**
 * A fresh 2D nonce key: 192 random bits, so keys never collide in practice and stay clear of the
 * protocol lane (0) and the expiring lane (2^256 − 1).
 */
export function randomNonceKey(): bigint {
  const key = bytesToBigInt(globalThis.crypto.getRandomValues(new Uint8Array(24)))
  return key === 0n ? 1n : key
}
