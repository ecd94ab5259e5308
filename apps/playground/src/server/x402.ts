// The x402 part of the playground, on anvil's EIP-3009 token with an in-process x402 facilitator
// (`@x402/core` + `@x402/evm`, paying gas from a devnet account):
// - /api/demo/x402/service: an x402 service, an `@x402/hono` v2 route (paid by the mppkit client in
//   the page through @mppkit/x402-compat's client plug);
// - /api/demo/x402/dual: an mppkit route made dual-stack by @mppkit/x402-compat's server `x402()`
//   (paid by an `@x402/fetch` client in the page, or natively by an MPP client).
import { Server } from '@mppkit/core/server'
import type { DevnetInfo, DevnetTempoInfo } from '@mppkit/devnet'
import { charge, x402 } from '@mppkit/x402-compat/server'
import { x402Facilitator } from '@x402/core/facilitator'
import { type FacilitatorClient, x402ResourceServer } from '@x402/core/server'
import { toFacilitatorEvmSigner } from '@x402/evm'
import { registerExactEvmScheme } from '@x402/evm/exact/facilitator'
import { ExactEvmScheme } from '@x402/evm/exact/server'
import { paymentMiddleware } from '@x402/hono'
import { Hono } from 'hono'
import { type Address, createWalletClient, defineChain, erc20Abi, http, publicActions } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { jsonResponse, type PlaygroundRail } from './rail.js'

/** Price of each x402 demo route: 0.002 of the 6-decimal EIP-3009 token. */
export const x402Price = '2000'

/** Devnet accounts of the x402 demos (the devnet must start with at least 8). */
export const x402Roles = { payee: 4, facilitator: 5, servicePayer: 6, clientPayer: 7 } as const

type FullTempo = Extract<DevnetTempoInfo, { escrow: string }>

/** What the page needs: the token, the payers' devnet keys, the routes and the price. */
export type X402PageConfig = {
  chainId: number
  token: { address: Address; name: string; version: string; symbol: string; decimals: number }
  payee: Address
  facilitator: Address
  servicePayer: { address: Address; privateKey: `0x${string}` }
  clientPayer: { address: Address; privateKey: `0x${string}` }
  price: string
  routes: { service: string; dual: string }
}

export type X402Demo = {
  config: X402PageConfig
  routes: Map<string, (request: Request) => Promise<Response>>
  /** Token balances (base units) and the facilitator's settlement count. */
  balances(): Promise<Record<string, string | number>>
}

const servicePath = '/api/demo/x402/service'
const dualPath = '/api/demo/x402/dual'

/** Builds the x402 demos on a devnet with anvil's EIP-3009 token; undefined when too few accounts. */
export function createX402Demo(options: { tempo: FullTempo; secrets: string[] }): X402Demo | undefined {
  const info = options.tempo
  if (info.accounts.length <= x402Roles.clientPayer) return undefined
  const chain = defineChain({
    id: info.chainId,
    name: 'devnet',
    nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [info.rpcUrl] } },
  })
  const wallet = createWalletClient({
    account: privateKeyToAccount(info.accounts[x402Roles.facilitator]!.privateKey),
    chain,
    transport: http(info.rpcUrl, { timeout: 10_000 }),
  }).extend(publicActions)
  const network = `eip155:${info.chainId}` as const
  // The facilitator runs in this process; settlements are counted so the page shows each one.
  const facilitator = new x402Facilitator()
  registerExactEvmScheme(facilitator, { signer: toFacilitatorEvmSigner(wallet as never), networks: network })
  const { client, settlements } = countingFacilitator(facilitator)
  const payee = info.accounts[x402Roles.payee]!.address
  const token = { address: info.eip3009Token, ...info.eip3009 }

  // (a) An x402 service: @x402/hono v2 middleware in front of a Hono route.
  const resourceServer = new x402ResourceServer(client).register(network, new ExactEvmScheme())
  const app = new Hono()
  app.use(
    paymentMiddleware(
      {
        [`GET ${servicePath}`]: {
          accepts: {
            scheme: 'exact',
            network,
            payTo: payee,
            price: {
              amount: x402Price,
              asset: token.address,
              extra: { name: token.name, version: token.version },
            },
            maxTimeoutSeconds: 120,
          },
          description: 'a weather report from an x402 service',
        },
      },
      resourceServer,
    ),
  )
  app.get(servicePath, (c) => c.json({ weather: 'sunny, 21 °C', servedBy: '@x402/hono' }))

  // (b) An mppkit route, dual-stack: MPP's WWW-Authenticate and x402's PAYMENT-REQUIRED for one price.
  const server = Server.create({
    realm: 'playground.x402',
    secrets: options.secrets,
    methods: [
      charge({
        chainId: info.chainId,
        currency: token.address,
        recipient: payee,
        domain: { name: token.name, version: token.version },
        decimals: token.decimals,
        facilitator: client,
        // A chain reader: a settlement whose answer is lost is looked up on chain before the payer is answered.
        client: wallet,
      }),
    ],
  })
  const dual = x402(server, { maxTimeoutSeconds: 120 }).protect(
    {
      offers: [
        { method: 'evm', request: { amount: x402Price }, description: 'a haiku from an mppkit route' },
      ],
    },
    (_request, payment) =>
      Response.json({
        haiku: 'four hundred and two / a price asked, a price paid / the page turns to green',
        servedBy: '@mppkit/x402-compat',
        reference: payment.receipt.reference,
      }),
  )

  const routes = new Map<string, (request: Request) => Promise<Response>>([
    [servicePath, (request) => app.fetch(request) as Promise<Response>],
    [dualPath, dual],
  ])
  const balance = (owner: Address) =>
    wallet.readContract({ address: token.address, abi: erc20Abi, functionName: 'balanceOf', args: [owner] })
  const servicePayer = info.accounts[x402Roles.servicePayer]!
  const clientPayer = info.accounts[x402Roles.clientPayer]!
  return {
    config: {
      chainId: info.chainId,
      token,
      payee,
      facilitator: wallet.account.address,
      servicePayer,
      clientPayer,
      price: x402Price,
      routes: { service: servicePath, dual: dualPath },
    },
    routes,
    async balances() {
      const [payeeBalance, servicePayerBalance, clientPayerBalance] = await Promise.all([
        balance(payee),
        balance(servicePayer.address),
        balance(clientPayer.address),
      ])
      return {
        payee: String(payeeBalance),
        servicePayer: String(servicePayerBalance),
        clientPayer: String(clientPayerBalance),
        settlements: settlements(),
      }
    },
  }
}

/** An in-process facilitator as a FacilitatorClient that counts its successful settlements (shown on the page). */
export function countingFacilitator(facilitator: x402Facilitator) {
  let settled = 0
  const client: FacilitatorClient = {
    verify: (payload, requirements) => facilitator.verify(payload, requirements),
    settle: async (payload, requirements) => {
      const result = await facilitator.settle(payload, requirements)
      if (result.success) settled++
      return result
    },
    getSupported: async () => facilitator.getSupported() as never,
  }
  return { client, settlements: () => settled }
}

/**
 * The x402 rail of the playground, on the devnet's anvil with its EIP-3009 token (undefined without
 * it): the two demo routes and /api/x402/balances.
 */
export function x402Rail(devnet: DevnetInfo, secrets: string[]): PlaygroundRail | undefined {
  const tempo = devnet.tempo
  if (!tempo || !('escrow' in tempo)) return undefined
  const demo = createX402Demo({ tempo, secrets })
  if (!demo) return undefined
  return {
    name: 'x402',
    config: async () => demo.config,
    async handle(request, path) {
      if (path === '/api/x402/balances') return jsonResponse(await demo.balances())
      return demo.routes.get(path)?.(request)
    },
  }
}
