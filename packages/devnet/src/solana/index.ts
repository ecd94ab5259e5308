import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { KeyPairSigner } from '@solana/kit'
import { DevnetError } from '../errors.js'
import { airdrop as airdropHelper, type SolanaNodeHandle } from './helpers.js'
import { stringify } from './json.js'
import { createKeypair, type SolanaKeypair } from './keys.js'
import { Ledger, SolanaRpcError } from './Ledger.js'
import { programs } from './programs.js'
import { createHandlers } from './rpc.js'
import { attachSubscriptions } from './subscriptions.js'

export type { TokenProgramName } from './helpers.js'
export {
  airdrop,
  createFundedAccount,
  createMint,
  findAssociatedTokenAddress,
  mintTo,
  submit,
  systemTransfer,
} from './helpers.js'
export type { SolanaKeypair } from './keys.js'
export type { RecordedTransaction } from './Ledger.js'
export { type Commitment, Ledger, SolanaRpcError } from './Ledger.js'
export { programs as solanaPrograms } from './programs.js'

/** Options of {@link startSolana}. */
export type StartSolanaOptions = {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string
  /** Port; default 0 (the OS picks a free one). */
  port?: number
  /** Lamports the payer starts with. Default 1,000,000 SOL. */
  payerLamports?: bigint
  /** A 64-byte secret key for the payer (solana-keygen format); default a fresh random keypair. */
  payerSecretKey?: Uint8Array | readonly number[]
  /**
   * Commitment levels over slots: a transaction is `processed` in its slot, `confirmed` after
   * `confirmed` more slots and `finalized` after `finalized` more (a validator needs about 1 and 32).
   * Default `{ confirmed: 0, finalized: 0 }`: final at once.
   */
  commitment?: { confirmed?: number; finalized?: number }
  /** Produce a slot every `slotTimeMs` ms even without transactions (default: only when one lands). */
  slotTimeMs?: number
}

/** The JSON-serializable description of a running Solana node. */
export type SolanaNodeInfo = {
  /** HTTP JSON-RPC endpoint for `createSolanaRpc`. */
  rpcUrl: string
  /** PubSub websocket endpoint for `createSolanaRpcSubscriptions` (same port). */
  wsUrl: string
  /** A funded keypair: fee payer and mint authority of the helpers. */
  payer: SolanaKeypair
  /** Lamports per signature charged as the base fee. */
  lamportsPerSignature: number
  /** Program ids available on the node. */
  programs: {
    system: string
    token: string
    token2022: string
    associatedToken: string
    memo: string
    memoV1: string
    memoV4: string
    computeBudget: string
  }
}

/** A running Solana node: its description, its ledger, and `stop()`. */
export type SolanaNode = SolanaNodeHandle & {
  info: SolanaNodeInfo
  /** Moves the node forward `count` slots (each with a new blockhash; old ones expire after 150). */
  advanceSlots(count?: number): void
  /** Stops the HTTP and websocket servers. */
  stop(): Promise<void>
}

const maxBodyBytes = 8 * 1024 * 1024

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    request.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBodyBytes) {
        reject(new SolanaRpcError(-32600, 'request too large'))
        request.destroy()
        return
      }
      chunks.push(chunk)
    })
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    request.on('error', reject)
  })
}

/**
 * Starts a local Solana node: a JSON-RPC 2.0 server (and PubSub websocket) over one LiteSVM
 * instance with the real SPL Token, Token-2022, Associated Token Account and Memo programs, so
 * unmodified `@solana/kit` clients (`createSolanaRpc`, `createSolanaRpcSubscriptions`,
 * `sendAndConfirmTransactionFactory`) work against it. By default every transaction is final in
 * its own slot; `commitment` and `slotTimeMs` make it go processed → confirmed → finalized over slots.
 *
 * @example
 * ```ts
 * const node = await startSolana()
 * const rpc = createSolanaRpc(node.info.rpcUrl)
 * const { value } = await rpc.getBalance(address(node.info.payer.address)).send()
 * await node.stop()
 * ```
 */
export async function startSolana(options: StartSolanaOptions = {}): Promise<SolanaNode> {
  const ledger = new Ledger()
  const { keypair: payerKeypair, signer: payer } = await createKeypair(options.payerSecretKey)
  const { signer: faucet } = await createKeypair()
  // Genesis funding: the payer and the faucet get their lamports without a transaction, as a
  // test validator's genesis accounts do.
  ledger.setLamports(payer.address, options.payerLamports ?? 1_000_000_000_000_000n)
  ledger.setLamports(faucet.address, 10_000_000_000_000_000_000n)
  ledger.identity = faucet.address
  const confirmed = BigInt(options.commitment?.confirmed ?? 0)
  const finalized = BigInt(options.commitment?.finalized ?? Number(confirmed))
  if (confirmed < 0n || finalized < confirmed)
    throw new DevnetError('commitment depths must satisfy 0 <= confirmed <= finalized', {
      code: 'solana_invalid_commitment',
    })
  ledger.commitmentDepth.confirmed = confirmed
  ledger.commitmentDepth.finalized = finalized
  const handle: SolanaNodeHandle = { ledger, payer, faucet }
  const handlers = createHandlers(ledger, (recipient, lamports) =>
    airdropHelper(handle, { address: recipient, lamports }),
  )

  async function answer(call: unknown): Promise<unknown> {
    const request = call as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown }
    const id =
      request !== null && typeof request === 'object' && 'id' in request ? (request.id ?? null) : null
    if (
      request === null ||
      typeof request !== 'object' ||
      request.jsonrpc !== '2.0' ||
      typeof request.method !== 'string'
    )
      return { jsonrpc: '2.0', id, error: { code: -32600, message: 'Invalid request' } }
    // Own methods only: `constructor` or `__proto__` are not RPC methods.
    const handler = Object.hasOwn(handlers, request.method) ? handlers[request.method] : undefined
    if (!handler) return { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } }
    const params = Array.isArray(request.params) ? request.params : []
    try {
      return { jsonrpc: '2.0', id, result: await handler(params) }
    } catch (error) {
      if (error instanceof SolanaRpcError)
        return {
          jsonrpc: '2.0',
          id,
          error: { code: error.rpcCode, message: error.message, data: error.data },
        }
      if (DevnetError.is(error) && error.code === 'solana_malformed_transaction')
        return {
          jsonrpc: '2.0',
          id,
          error: { code: -32602, message: `invalid transaction: ${error.message}` },
        }
      return { jsonrpc: '2.0', id, error: { code: -32603, message: 'Internal error' } }
    }
  }

  async function onRequest(request: IncomingMessage, response: ServerResponse) {
    const reply = (status: number, body: string, type = 'application/json') => {
      // A Content-Length, as Agave's RPC sends: one write, and no chunked framing for clients to undo.
      response.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
      response.end(body)
    }
    if (request.method === 'GET' && request.url === '/health') return reply(200, 'ok', 'text/plain')
    if (request.method !== 'POST')
      return reply(405, 'Used HTTP Method is not allowed. POST or OPTIONS is required', 'text/plain')
    let payload: unknown
    try {
      payload = JSON.parse(await readBody(request))
    } catch {
      return reply(
        200,
        stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }),
      )
    }
    if (Array.isArray(payload)) return reply(200, stringify(await Promise.all(payload.map(answer))))
    return reply(200, stringify(await answer(payload)))
  }

  const server = createServer((request, response) => {
    onRequest(request, response).catch(() => {
      if (!response.headersSent) response.writeHead(500)
      response.end()
    })
  })
  const pubsub = attachSubscriptions(server, ledger)
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new DevnetError('the Solana node could not listen', { code: 'devnet_start_failed', cause: error }),
      ),
    )
    server.listen(options.port ?? 0, host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const info: SolanaNodeInfo = {
    rpcUrl: `http://${host}:${port}`,
    wsUrl: `ws://${host}:${port}`,
    payer: payerKeypair,
    lamportsPerSignature: Number(ledger.lamportsPerSignature),
    programs: {
      system: programs.system,
      token: programs.token,
      token2022: programs.token2022,
      associatedToken: programs.associatedToken,
      memo: programs.memoV2,
      memoV1: programs.memoV1,
      memoV4: programs.memoV4,
      computeBudget: programs.computeBudget,
    },
  }
  const clock =
    options.slotTimeMs !== undefined && options.slotTimeMs > 0
      ? setInterval(() => ledger.advanceSlots(1), options.slotTimeMs)
      : undefined
  clock?.unref()
  let stopped: Promise<void> | undefined
  return {
    ...handle,
    info,
    advanceSlots: (count = 1) => ledger.advanceSlots(count),
    stop: () => {
      stopped ??= (async () => {
        if (clock) clearInterval(clock)
        await pubsub.close()
        await new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
      })()
      return stopped
    },
  }
}

export type { KeyPairSigner, SolanaNodeHandle }
