// x402 on Solana in the playground, on the devnet's LiteSVM node with an SPL token and an in-process
// x402 facilitator (`@x402/core` + `@x402/svm`, which co-signs as fee payer and broadcasts). `@x402/svm`
// knows only the public clusters' CAIP-2 ids, so the local node stands in for Solana devnet (its id, our
// RPC), as in @mppkit/x402-compat's own tests:
// - /api/demo/x402-solana/service: an x402 service, an `@x402/hono` v2 route selling for x402 `exact`
//   on Solana (paid by the mppkit client in the page through @mppkit/x402-compat's client plug);
// - /api/demo/x402-solana/dual: an mppkit route made dual-stack by @mppkit/x402-compat's server `x402()`
//   with its Solana method `svm` (paid by an `@x402/fetch` client in the page with `@x402/svm`).
import { Server } from '@mppkit/core/server'
import type { DevnetInfo } from '@mppkit/devnet'
import { svm, x402 } from '@mppkit/x402-compat/server'
import {
  createKeyPairSignerFromBytes,
  createKeyPairSignerFromPrivateKeyBytes,
  generateKeyPairSigner,
  getAddressEncoder,
  type KeyPairSigner,
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
import { x402Facilitator } from '@x402/core/facilitator'
import { x402ResourceServer } from '@x402/core/server'
import { paymentMiddleware } from '@x402/hono'
import { SOLANA_DEVNET_CAIP2, toFacilitatorSvmSigner } from '@x402/svm'
import { registerExactSvmScheme } from '@x402/svm/exact/facilitator'
import { ExactSvmScheme } from '@x402/svm/exact/server'
import { Hono } from 'hono'
import { jsonResponse, type PlaygroundRail } from './rail.js'
import { call, type EmbeddedSolana, proxyRpc, send } from './solana.js'
import { countingFacilitator } from './x402.js'

/** Price of each x402 Solana demo route: 0.002 of the 6-decimal SPL token. */
export const x402SolanaPrice = '2000'

/** A page payer: its address and its 64-byte devnet secret key (seed, then public key). */
type PagePayer = { address: string; secretKey: number[] }

/** What the page needs: the network id, the RPC (through the proxy), the token, the payers' devnet keys. */
export type X402SolanaPageConfig = {
  network: string
  rpcUrl: string
  token: { address: string; decimals: number; symbol: string }
  payee: string
  facilitator: string
  servicePayer: PagePayer
  clientPayer: PagePayer
  price: string
  routes: { service: string; dual: string }
}

export type X402SolanaDemo = {
  config: X402SolanaPageConfig
  routes: Map<string, (request: Request) => Promise<Response>>
  /** Token balances (base units) and the facilitator's settlement count. */
  balances(): Promise<Record<string, string | number>>
  record(signature: string): Promise<unknown>
}

const servicePath = '/api/demo/x402-solana/service'
const dualPath = '/api/demo/x402-solana/dual'
const decimals = 6

/** A page payer whose secret key can be handed to the page (a devnet key). */
async function pagePayer(): Promise<{ signer: KeyPairSigner; payer: PagePayer }> {
  const seed = globalThis.crypto.getRandomValues(new Uint8Array(32))
  const signer = await createKeyPairSignerFromPrivateKeyBytes(seed)
  return {
    signer,
    payer: { address: signer.address, secretKey: [...seed, ...getAddressEncoder().encode(signer.address)] },
  }
}

/**
 * Sets the demo up on the devnet node: a 6-decimal mint (the devnet's funded key is its authority), a
 * payee with its token account, a facilitator fee payer with SOL, and two page payers holding 1 000
 * tokens each (and no SOL: the facilitator pays the fees); then builds the two routes.
 */
export async function createX402SolanaDemo(options: {
  info: EmbeddedSolana
  secrets: string[]
}): Promise<X402SolanaDemo> {
  const { rpcUrl } = options.info
  const authority = await createKeyPairSignerFromBytes(new Uint8Array(options.info.payer.secretKey))
  const payee = await generateKeyPairSigner()
  const feePayer = await generateKeyPairSigner()
  const service = await pagePayer()
  const client = await pagePayer()
  const mint = await generateKeyPairSigner()
  const space = getMintSize()
  const rent = await call<number>(rpcUrl, 'getMinimumBalanceForRentExemption', [space])
  const ataOf = async (owner: string) =>
    (
      await findAssociatedTokenPda({
        owner: owner as never,
        mint: mint.address,
        tokenProgram: TOKEN_PROGRAM_ADDRESS,
      })
    )[0]
  const [payeeAta, serviceAta, clientAta] = await Promise.all([
    ataOf(payee.address),
    ataOf(service.signer.address),
    ataOf(client.signer.address),
  ])
  await call(rpcUrl, 'requestAirdrop', [feePayer.address, 10_000_000_000])
  await send(rpcUrl, authority, [
    getCreateAccountInstruction({
      payer: authority,
      newAccount: mint,
      lamports: BigInt(rent),
      space,
      programAddress: TOKEN_PROGRAM_ADDRESS,
    }),
    getInitializeMint2Instruction({ mint: mint.address, decimals, mintAuthority: authority.address }),
    ...(
      [
        [payee.address, payeeAta],
        [service.signer.address, serviceAta],
        [client.signer.address, clientAta],
      ] as const
    ).map(([owner, ata]) =>
      getCreateAssociatedTokenIdempotentInstruction({ payer: authority, ata, owner, mint: mint.address }),
    ),
    ...[serviceAta, clientAta].map((token) =>
      getMintToCheckedInstruction({
        mint: mint.address,
        token,
        mintAuthority: authority,
        amount: 1_000_000_000n,
        decimals,
      }),
    ),
  ])

  // The facilitator runs in this process; settlements are counted so the page shows each one.
  const network = SOLANA_DEVNET_CAIP2 as `solana:${string}`
  const facilitator = new x402Facilitator()
  registerExactSvmScheme(facilitator, {
    signer: toFacilitatorSvmSigner(feePayer as never, { defaultRpcUrl: rpcUrl }),
    networks: network,
  })
  const { client: facilitatorClient, settlements } = countingFacilitator(facilitator)
  const token = { address: String(mint.address), decimals, symbol: 'xUSD' }

  // (a) An x402 service: @x402/hono v2 middleware in front of a Hono route.
  const resourceServer = new x402ResourceServer(facilitatorClient).register(network, new ExactSvmScheme())
  const app = new Hono()
  app.use(
    paymentMiddleware(
      {
        [`GET ${servicePath}`]: {
          accepts: {
            scheme: 'exact',
            network,
            payTo: payee.address,
            price: { amount: x402SolanaPrice, asset: token.address },
            maxTimeoutSeconds: 120,
          },
          description: 'a tide table from an x402 service on Solana',
        },
      },
      resourceServer,
    ),
  )
  app.get(servicePath, (c) => c.json({ tides: 'high 06:12, low 12:31', servedBy: '@x402/hono' }))

  // (b) An mppkit route, dual-stack: MPP's WWW-Authenticate and x402's PAYMENT-REQUIRED for one price.
  const server = Server.create({
    realm: 'playground.x402-solana',
    secrets: options.secrets,
    methods: [
      svm({
        network,
        currency: token.address,
        decimals,
        recipient: payee.address,
        feePayer: feePayer.address,
        facilitator: facilitatorClient,
        // A settlement whose answer is lost is looked up on chain before the payer is answered.
        rpcUrl,
      }),
    ],
  })
  const dual = x402(server, { maxTimeoutSeconds: 120 }).protect(
    {
      offers: [
        {
          method: 'solana',
          request: { amount: x402SolanaPrice },
          description: 'a limerick from an mppkit route',
        },
      ],
    },
    (_request, payment) =>
      Response.json({
        limerick:
          'a page asked to pay / a transfer went on its way / the 402 / turned two hundred, on cue / and the tokens arrived the same day',
        servedBy: '@mppkit/x402-compat',
        reference: payment.receipt.reference,
      }),
  )

  const routes = new Map<string, (request: Request) => Promise<Response>>([
    [servicePath, (request) => app.fetch(request) as Promise<Response>],
    [dualPath, dual],
  ])
  const tokens = async (account: string) =>
    (await call<{ value: { amount: string } }>(rpcUrl, 'getTokenAccountBalance', [account])).value.amount
  return {
    config: {
      network,
      rpcUrl: '/api/x402-solana/rpc',
      token,
      payee: payee.address,
      facilitator: feePayer.address,
      servicePayer: service.payer,
      clientPayer: client.payer,
      price: x402SolanaPrice,
      routes: { service: servicePath, dual: dualPath },
    },
    routes,
    async balances() {
      const [payeeBalance, servicePayerBalance, clientPayerBalance] = await Promise.all([
        tokens(payeeAta),
        tokens(serviceAta),
        tokens(clientAta),
      ])
      return {
        payee: payeeBalance,
        servicePayer: servicePayerBalance,
        clientPayer: clientPayerBalance,
        settlements: settlements(),
      }
    },
    record: (signature) =>
      call(rpcUrl, 'getTransaction', [
        signature,
        { encoding: 'jsonParsed', commitment: 'confirmed', maxSupportedTransactionVersion: 0 },
      ]),
  }
}

/**
 * The x402-on-Solana rail of the playground, on an embedded devnet Solana node (undefined without
 * one): set up on first use; its routes are the two demo routes, /api/x402-solana/rpc (the page's RPC,
 * the same calls as the Solana view's), /api/x402-solana/balances and /api/x402-solana/record/<signature>.
 */
export function x402SolanaRail(devnet: DevnetInfo, secrets: string[]): PlaygroundRail | undefined {
  const info = devnet.solana
  if (!info || !('lamportsPerSignature' in info)) return undefined
  let demo: Promise<X402SolanaDemo> | undefined
  const ready = () => {
    demo ??= createX402SolanaDemo({ info, secrets }).catch((error) => {
      demo = undefined
      throw error
    })
    return demo
  }
  return {
    name: 'x402Solana',
    config: async () => (await ready()).config,
    async handle(request, path) {
      if (!path.startsWith('/api/demo/x402-solana/') && !path.startsWith('/api/x402-solana/'))
        return undefined
      if (path === '/api/x402-solana/rpc' && request.method === 'POST') return proxyRpc(info.rpcUrl, request)
      const x = await ready()
      if (path === '/api/x402-solana/balances') return jsonResponse(await x.balances())
      const record = /^\/api\/x402-solana\/record\/([1-9A-HJ-NP-Za-km-z]{64,88})$/.exec(path)
      if (record) return jsonResponse(await x.record(record[1]!))
      return x.routes.get(path)?.(request)
    },
  }
}
