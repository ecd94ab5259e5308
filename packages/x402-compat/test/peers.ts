// Real x402 peers on the devnet: an in-process facilitator (`@x402/core` + `@x402/evm`) that settles
// EIP-3009 authorizations of the devnet's token on anvil, and an `@x402/hono` v2 server.
import { x402Facilitator } from '@x402/core/facilitator'
import type { FacilitatorClient } from '@x402/core/server'
import { x402ResourceServer } from '@x402/core/server'
import { toFacilitatorEvmSigner } from '@x402/evm'
import { registerExactEvmScheme } from '@x402/evm/exact/facilitator'
import { ExactEvmScheme as ExactEvmServerScheme } from '@x402/evm/exact/server'
import { paymentMiddleware } from '@x402/hono'
import { Hono } from 'hono'
import { type Address, createWalletClient, defineChain, erc20Abi, http, publicActions } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import type { TempoDevnetInfo } from '../../devnet/src/tempo/index.js'

export function chainOf(info: TempoDevnetInfo) {
  return defineChain({
    id: info.chainId,
    name: 'devnet',
    nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [info.rpcUrl] } },
  })
}

/** A wallet+public viem client for a dev account. */
export function walletOf(info: TempoDevnetInfo, index: number) {
  return createWalletClient({
    account: privateKeyToAccount(info.accounts[index]!.privateKey),
    chain: chainOf(info),
    transport: http(info.rpcUrl, { timeout: 10_000 }),
  }).extend(publicActions)
}

export async function balanceOf(info: TempoDevnetInfo, owner: Address): Promise<bigint> {
  return walletOf(info, 0).readContract({
    address: info.eip3009Token,
    abi: erc20Abi,
    functionName: 'balanceOf',
    args: [owner],
  })
}

/** An in-process x402 facilitator paying gas from dev account `index`, counting settlements. */
export function facilitator(info: TempoDevnetInfo, index: number) {
  const wallet = walletOf(info, index)
  const facilitator = new x402Facilitator()
  registerExactEvmScheme(facilitator, {
    signer: toFacilitatorEvmSigner(wallet as never),
    networks: `eip155:${info.chainId}`,
  })
  const counts = { verify: 0, settle: 0 }
  const client: FacilitatorClient = {
    verify: async (payload, requirements) => {
      counts.verify++
      return facilitator.verify(payload, requirements)
    },
    settle: async (payload, requirements) => {
      counts.settle++
      return facilitator.settle(payload, requirements)
    },
    getSupported: async () => facilitator.getSupported() as never,
  }
  return { client, counts }
}

/** The x402 requirement's price of the devnet token, with its EIP-712 domain in `extra`. */
export function price(info: TempoDevnetInfo, amount: string) {
  return {
    amount,
    asset: info.eip3009Token,
    extra: { name: info.eip3009.name, version: info.eip3009.version },
  }
}

/** An `@x402/hono` v2 app selling `GET /paid` for `amount` of the devnet token to `payTo`. */
export function honoV2Server(
  info: TempoDevnetInfo,
  options: { facilitator: FacilitatorClient; payTo: Address; amount: string },
) {
  const server = new x402ResourceServer(options.facilitator).register(
    `eip155:${info.chainId}`,
    new ExactEvmServerScheme(),
  )
  let runs = 0
  const app = new Hono()
  app.use(
    paymentMiddleware(
      {
        'GET /paid': {
          accepts: {
            scheme: 'exact',
            network: `eip155:${info.chainId}`,
            payTo: options.payTo,
            price: price(info, options.amount),
            maxTimeoutSeconds: 120,
          },
          description: 'a paid thing',
        },
      },
      server,
    ),
  )
  app.get('/paid', (c) => {
    runs++
    return c.text('paid content')
  })
  return { fetch: (request: Request) => app.fetch(request) as Promise<Response>, runs: () => runs }
}

/** A Fetch handler as a `fetch` (the paying clients call it like the network). */
export function asFetch(handler: (request: Request) => Promise<Response>): typeof fetch {
  return ((input: RequestInfo | URL, init?: RequestInit) => handler(new Request(input, init))) as typeof fetch
}
