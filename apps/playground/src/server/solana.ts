// The Solana part of the playground: a payee, a page payer (a devnet key handed to the page), a
// 6-decimal SPL token mint, the paid demo routes (SOL and the token), balances, the devnet's record of
// a transaction, and a same-origin proxy to the devnet's JSON-RPC for the page's client.
import { Server } from '@mppkit/core/server'
import type { DevnetInfo, DevnetSolanaInfo } from '@mppkit/devnet'
import { solana } from '@mppkit/method-solana/server'
import {
  appendTransactionMessageInstructions,
  type Blockhash,
  createKeyPairSignerFromBytes,
  createKeyPairSignerFromPrivateKeyBytes,
  createTransactionMessage,
  generateKeyPairSigner,
  getAddressEncoder,
  getBase64EncodedWireTransaction,
  type Instruction,
  pipe,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
  type TransactionSigner,
} from '@solana/kit'
import { getCreateAccountInstruction } from '@solana-program/system'
import {
  findAssociatedTokenPda,
  getCreateAssociatedTokenIdempotentInstruction,
  getInitializeMint2Instruction,
  getMintSize,
  getMintToCheckedInstruction,
  TOKEN_PROGRAM_ADDRESS,
} from '@solana-program/token'
import { jsonResponse, type PlaygroundRail } from './rail.js'

/** Prices in base units: 0.001 SOL (lamports) and 0.01 of the 6-decimal token. */
export const solanaPrices = { sol: '1000000', token: '10000' } as const

/** What the page needs: the devnet RPC (through the proxy), the payer's devnet key, the currencies. */
export type SolanaPageConfig = {
  rpcUrl: string
  network: 'localnet'
  payee: string
  payer: { address: string; secretKey: number[] }
  token: { mint: string; decimals: number; symbol: string }
  prices: typeof solanaPrices
}

export type SolanaDemo = {
  config: SolanaPageConfig
  routes: Map<string, (request: Request) => Promise<Response>>
  balances(): Promise<Record<string, string>>
  record(signature: string): Promise<unknown>
  /** Forwards a JSON-RPC call of the page to the devnet node (only the calls a paying client makes). */
  rpc(request: Request): Promise<Response>
}

/** The JSON-RPC methods the page's client may call through the proxy. */
const pageMethods = new Set([
  'getLatestBlockhash',
  'getAccountInfo',
  'sendTransaction',
  'getSignatureStatuses',
])

export type EmbeddedSolana = Extract<DevnetSolanaInfo, { lamportsPerSignature: number }>

/** One JSON-RPC call to the devnet node (the playground's own setup and reads). */
export async function call<T>(rpcUrl: string, method: string, params: unknown[]): Promise<T> {
  const response = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    signal: AbortSignal.timeout(10_000),
  })
  const answer = (await response.json()) as { result?: T; error?: { message: string } }
  if (answer.error) throw new Error(`solana ${method}: ${answer.error.message}`)
  return answer.result as T
}

/** Signs `instructions` with `feePayer` on a fresh blockhash and sends them (the playground's setup). */
export async function send(rpcUrl: string, feePayer: TransactionSigner, instructions: Instruction[]) {
  const { value } = await call<{ value: { blockhash: string; lastValidBlockHeight: number } }>(
    rpcUrl,
    'getLatestBlockhash',
    [{ commitment: 'confirmed' }],
  )
  const message = pipe(
    createTransactionMessage({ version: 0 }),
    (draft) => setTransactionMessageFeePayerSigner(feePayer, draft),
    (draft) =>
      setTransactionMessageLifetimeUsingBlockhash(
        { blockhash: value.blockhash as Blockhash, lastValidBlockHeight: BigInt(value.lastValidBlockHeight) },
        draft,
      ),
    (draft) => appendTransactionMessageInstructions(instructions, draft),
  )
  const signed = await signTransactionMessageWithSigners(message)
  return call<string>(rpcUrl, 'sendTransaction', [
    getBase64EncodedWireTransaction(signed),
    { encoding: 'base64', preflightCommitment: 'confirmed' },
  ])
}

/**
 * Sets the Solana demo up on the devnet node: funds a payee and a page payer, creates the token mint
 * (the devnet's funded key is its authority), the payee's and payer's token accounts, and mints the
 * payer 1 000 tokens; then builds the paid routes.
 */
export async function createSolanaDemo(options: {
  info: EmbeddedSolana
  secrets: string[]
}): Promise<SolanaDemo> {
  const { rpcUrl } = options.info
  const authority = await createKeyPairSignerFromBytes(new Uint8Array(options.info.payer.secretKey))
  const payee = await generateKeyPairSigner()
  // The page's key: its 64-byte secret (seed then public key) goes to the page, as a devnet key.
  const seed = globalThis.crypto.getRandomValues(new Uint8Array(32))
  const payer = await createKeyPairSignerFromPrivateKeyBytes(seed)
  const secretKey = [...seed, ...getAddressEncoder().encode(payer.address)]
  const mint = await generateKeyPairSigner()
  const decimals = 6
  const space = getMintSize()
  const rent = await call<number>(rpcUrl, 'getMinimumBalanceForRentExemption', [space])
  const [payeeAta] = await findAssociatedTokenPda({
    owner: payee.address,
    mint: mint.address,
    tokenProgram: TOKEN_PROGRAM_ADDRESS,
  })
  const [payerAta] = await findAssociatedTokenPda({
    owner: payer.address,
    mint: mint.address,
    tokenProgram: TOKEN_PROGRAM_ADDRESS,
  })
  await call(rpcUrl, 'requestAirdrop', [payer.address, 10_000_000_000])
  await call(rpcUrl, 'requestAirdrop', [payee.address, 1_000_000_000])
  await send(rpcUrl, authority, [
    getCreateAccountInstruction({
      payer: authority,
      newAccount: mint,
      lamports: BigInt(rent),
      space,
      programAddress: TOKEN_PROGRAM_ADDRESS,
    }),
    getInitializeMint2Instruction({ mint: mint.address, decimals, mintAuthority: authority.address }),
    ...[
      [payee.address, payeeAta],
      [payer.address, payerAta],
    ].map(([owner, ata]) =>
      getCreateAssociatedTokenIdempotentInstruction({
        payer: authority,
        ata: ata!,
        owner: owner!,
        mint: mint.address,
      }),
    ),
    getMintToCheckedInstruction({
      mint: mint.address,
      token: payerAta,
      mintAuthority: authority,
      amount: 1_000_000_000n,
      decimals,
    }),
  ])

  const server = (currency: string, extra: { decimals?: number; tokenProgram?: string }) =>
    Server.create({
      realm: 'playground.solana',
      secrets: options.secrets,
      methods: [solana({ rpcUrl, network: 'localnet', currency, recipient: payee.address, ...extra })],
    })
  const routes = new Map<string, (request: Request) => Promise<Response>>()
  routes.set(
    '/api/demo/solana/sol',
    server('sol', {}).protect(
      { offers: [{ method: 'solana', request: { amount: solanaPrices.sol }, description: 'one quote' }] },
      (_request, payment) =>
        Response.json({ quote: 'SOL/USD 187.20', paidWith: 'solana', signature: payment.receipt.reference }),
    ),
  )
  routes.set(
    '/api/demo/solana/token',
    server(mint.address, { decimals, tokenProgram: TOKEN_PROGRAM_ADDRESS }).protect(
      { offers: [{ method: 'solana', request: { amount: solanaPrices.token }, description: 'one quote' }] },
      (_request, payment) =>
        Response.json({ quote: 'dUSD/USD 1.00', paidWith: 'solana', signature: payment.receipt.reference }),
    ),
  )

  const lamports = async (owner: string) =>
    String((await call<{ value: number }>(rpcUrl, 'getBalance', [owner, { commitment: 'confirmed' }])).value)
  const tokens = async (account: string) =>
    (await call<{ value: { amount: string } }>(rpcUrl, 'getTokenAccountBalance', [account])).value.amount

  return {
    config: {
      rpcUrl: '/api/solana/rpc',
      network: 'localnet',
      payee: payee.address,
      payer: { address: payer.address, secretKey },
      token: { mint: mint.address, decimals, symbol: 'dUSD' },
      prices: solanaPrices,
    },
    routes,
    async balances() {
      const [payerSol, payeeSol, payerToken, payeeToken] = await Promise.all([
        lamports(payer.address),
        lamports(payee.address),
        tokens(payerAta),
        tokens(payeeAta),
      ])
      return { payerSol, payeeSol, payerToken, payeeToken }
    },
    record: (signature) =>
      call(rpcUrl, 'getTransaction', [
        signature,
        { encoding: 'jsonParsed', commitment: 'confirmed', maxSupportedTransactionVersion: 0 },
      ]),
    rpc: (request) => proxyRpc(rpcUrl, request),
  }
}

/** Forwards a page's JSON-RPC call to the devnet node: only the calls a paying client makes. */
export async function proxyRpc(rpcUrl: string, request: Request): Promise<Response> {
  const body = (await request.json().catch(() => undefined)) as { method?: unknown } | undefined
  if (!body || typeof body.method !== 'string' || !pageMethods.has(body.method))
    return Response.json(
      { jsonrpc: '2.0', id: null, error: { code: -32601, message: 'not available to the page' } },
      { status: 400 },
    )
  const answer = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  })
  return new Response(await answer.text(), {
    status: answer.status,
    headers: { 'content-type': 'application/json' },
  })
}

/**
 * The Solana rail of the playground, on an embedded devnet node (undefined without one): the demo is
 * set up on first use; its routes are the paid demo routes, /api/solana/rpc (the page's RPC),
 * /api/solana/balances and /api/record/solana/<signature>.
 */
export function solanaRail(devnet: DevnetInfo, secrets: string[]): PlaygroundRail | undefined {
  const info = devnet.solana
  if (!info || !('lamportsPerSignature' in info)) return undefined
  let demo: Promise<SolanaDemo> | undefined
  const ready = () => {
    demo ??= createSolanaDemo({ info, secrets }).catch((error) => {
      demo = undefined
      throw error
    })
    return demo
  }
  return {
    name: 'solana',
    config: async () => (await ready()).config,
    async handle(request, path) {
      if (
        !path.startsWith('/api/demo/solana/') &&
        !path.startsWith('/api/solana/') &&
        !path.startsWith('/api/record/solana/')
      )
        return undefined
      const solana = await ready()
      if (path === '/api/solana/rpc' && request.method === 'POST') return solana.rpc(request)
      if (path === '/api/solana/balances') return jsonResponse(await solana.balances())
      const record = /^\/api\/record\/solana\/([1-9A-HJ-NP-Za-km-z]{64,88})$/.exec(path)
      if (record) return jsonResponse(await solana.record(record[1]!))
      return solana.routes.get(path)?.(request)
    },
  }
}
