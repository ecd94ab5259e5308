// The playground's HTTP server (node:http, no framework): the page, its bundle, the paid demo API and
// JSON views of the devnet (config with devnet keys, balances, a rail's record of a payment).
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { brotliCompressSync, gzipSync } from 'node:zlib'
import { toNodeListener } from '@mppkit/core/server'
import { type DevnetInfo, type DevnetTempoInfo, tempoClients } from '@mppkit/devnet'
import Stripe from 'stripe'
import { erc20Abi, type Hex } from 'viem'
import { createDemo, prices, tempoRoles } from './demo.js'
import { html } from './html.js'
import { lightningPlayground } from './lightning.js'
import { mcpPlayground } from './mcp.js'
import type { PlaygroundRail } from './rail.js'
import { solanaRail } from './solana.js'
import { x402Rail } from './x402.js'
import { x402SolanaRail } from './x402-solana.js'

export type PlaygroundOptions = {
  devnet: DevnetInfo
  /** The page: its files by path (page.js, chunks/…; see readPage), or page.js alone. */
  page: string | Readonly<Record<string, string>>
  /** HMAC secret of the demo challenges (default: a random one). */
  secret?: string
  chunkDelayMs?: number
}

export type Playground = { server: http.Server; url: string; close(): Promise<void> }

type FullTempo = Extract<DevnetTempoInfo, { escrow: string }>

/** keccak256('Transfer(address,address,uint256)') */
const transferTopic = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef'

const json = (value: unknown, status = 200) =>
  new Response(
    JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v), 2),
    {
      status,
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
    },
  )

const problem = (status: number, title: string) =>
  new Response(JSON.stringify({ type: 'about:blank', title, status }), {
    status,
    headers: { 'content-type': 'application/problem+json' },
  })

/** The handler of every playground route, as a fetch-style function; `close` stops its timers. */
export function playgroundHandler(
  options: PlaygroundOptions,
): ((request: Request) => Promise<Response>) & { close(): Promise<void> } {
  const tempo =
    options.devnet.tempo && 'escrow' in options.devnet.tempo ? (options.devnet.tempo as FullTempo) : undefined
  const stripeInfo = options.devnet.stripe?.source === 'embedded' ? options.devnet.stripe : undefined
  const stripeClient = stripeInfo
    ? new Stripe(stripeInfo.secretKey, {
        host: stripeInfo.host,
        port: stripeInfo.port,
        protocol: stripeInfo.protocol,
        timeout: 10_000,
      })
    : undefined
  const secret = options.secret ?? crypto.randomUUID() + crypto.randomUUID()
  const lightning = lightningPlayground(options.devnet.lightning, {
    secret,
    ...(options.chunkDelayMs === undefined ? {} : { chunkDelayMs: options.chunkDelayMs }),
  })
  const mcp = mcpPlayground(tempo, { secret })
  // Rails with their own module (setup, routes, config entry).
  const rails = [
    solanaRail(options.devnet, [secret]),
    x402Rail(options.devnet, [secret]),
    x402SolanaRail(options.devnet, [secret]),
    lightning && {
      name: 'lightning',
      config: async () => lightning.config,
      handle: async (request: Request, path: string) => lightning.route(path)?.(request),
    },
    mcp && {
      name: 'mcp',
      config: async () => mcp.config,
      handle: async (request: Request, path: string) => mcp.route(path)?.(request),
    },
  ].filter((rail): rail is PlaygroundRail => rail !== undefined)
  const demo = createDemo({
    tempo,
    stripe: stripeInfo && stripeClient ? { info: stripeInfo, client: stripeClient } : undefined,
    secret,
    ...(options.chunkDelayMs === undefined ? {} : { chunkDelayMs: options.chunkDelayMs }),
  })
  const publicClient = tempo ? tempoClients(tempo).publicClient : undefined
  const tokenBalance = (owner: Hex) =>
    publicClient!.readContract({
      address: tempo!.tokens.pathUsd,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [owner],
    })

  // The page's files, each compressed once per encoding.
  const files: Readonly<Record<string, string>> =
    typeof options.page === 'string' ? { 'page.js': options.page } : options.page
  const encoded = new Map<string, Uint8Array<ArrayBuffer>>()
  const compressed = (file: string, encoding: 'br' | 'gzip') => {
    let body = encoded.get(`${encoding} ${file}`)
    if (!body) {
      const text = files[file]!
      body = new Uint8Array(encoding === 'br' ? brotliCompressSync(text) : gzipSync(text, { level: 9 }))
      encoded.set(`${encoding} ${file}`, body)
    }
    return body
  }

  // Only devnet keys reach the page: the Tempo payers' keys (test funds on a local anvil).
  const config = {
    rails: { tempo: !!tempo, stripe: !!stripeInfo },
    prices,
    tempo: tempo && {
      rpcUrl: tempo.rpcUrl,
      chainId: tempo.chainId,
      currency: tempo.tokens.pathUsd,
      decimals: 6,
      symbol: 'PathUSD',
      escrow: tempo.escrow,
      payee: tempo.accounts[tempoRoles.payee]!.address,
      chargePayer: tempo.accounts[tempoRoles.chargePayer],
      sessionPayer: tempo.accounts[tempoRoles.sessionPayer],
    },
    stripe: stripeInfo && {
      networkId: stripeInfo.networkId,
      cards: {
        pm_card_visa: 'Visa 4242: succeeds',
        pm_card_chargeDeclinedInsufficientFunds: 'Visa 9995: declined (insufficient funds)',
        pm_card_threeDSecure2Required: 'Visa 3220: requires authentication (3-D Secure)',
      },
    },
  }

  const handler = async (request: Request): Promise<Response> => {
    const url = new URL(request.url)
    const path = url.pathname
    try {
      if (path === '/' && request.method === 'GET')
        return new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8' } })
      const file = path.slice(1)
      if (Object.hasOwn(files, file) && request.method === 'GET') {
        // Compressed once, brotli when accepted (Chromium accepts it from http://127.0.0.1, a secure context).
        const accepted = request.headers.get('accept-encoding') ?? ''
        const encoding = /\bbr\b/.test(accepted) ? 'br' : /\bgzip\b/.test(accepted) ? 'gzip' : undefined
        return new Response(encoding ? compressed(file, encoding) : files[file], {
          headers: {
            'content-type': 'text/javascript; charset=utf-8',
            'cache-control': 'no-cache',
            vary: 'accept-encoding',
            ...(encoding ? { 'content-encoding': encoding } : {}),
          },
        })
      }
      if (path === '/favicon.ico') return new Response(null, { status: 204 })
      if (path === '/api/config')
        return json({
          ...config,
          ...Object.fromEntries(
            await Promise.all(rails.map(async (rail) => [rail.name, await rail.config()])),
          ),
        })
      if (path === '/api/balances') {
        const out: Record<string, unknown> = {}
        if (tempo) {
          const [payee, chargePayer, sessionPayer, escrow] = await Promise.all([
            tokenBalance(config.tempo!.payee),
            tokenBalance(config.tempo!.chargePayer!.address),
            tokenBalance(config.tempo!.sessionPayer!.address),
            tokenBalance(tempo.escrow),
          ])
          out.tempo = { payee, chargePayer, sessionPayer, escrow }
        }
        if (stripeClient) {
          const intents = await stripeClient.paymentIntents.list({ limit: 100 })
          const succeeded = intents.data.filter((intent) => intent.status === 'succeeded')
          out.stripe = {
            received: succeeded.reduce((sum, intent) => sum + intent.amount_received, 0),
            succeeded: succeeded.length,
            notSucceeded: intents.data.length - succeeded.length,
          }
        }
        if (lightning) out.lightning = await lightning.balances()
        return json(out)
      }
      const tempoRecord = /^\/api\/record\/tempo\/(0x[0-9a-fA-F]{64})$/.exec(path)
      if (tempoRecord && publicClient) {
        const hash = tempoRecord[1] as Hex
        const [transaction, receipt] = await Promise.all([
          publicClient.getTransaction({ hash }),
          publicClient.getTransactionReceipt({ hash }),
        ])
        return json({
          hash,
          status: receipt.status,
          blockNumber: receipt.blockNumber,
          from: transaction.from,
          to: transaction.to,
          nonce: transaction.nonce,
          gasUsed: receipt.gasUsed,
          // ERC-20/TIP-20 Transfer events, decoded: what moved where.
          transfers: receipt.logs
            .filter((log) => log.topics[0] === transferTopic && log.topics.length === 3)
            .map((log) => ({
              token: log.address,
              from: `0x${log.topics[1]!.slice(26)}`,
              to: `0x${log.topics[2]!.slice(26)}`,
              amount: BigInt(log.data),
            })),
          logs: receipt.logs.length,
        })
      }
      const stripeRecord = /^\/api\/record\/stripe\/(pi_[A-Za-z0-9_]+)$/.exec(path)
      if (stripeRecord && stripeClient) {
        const intent = await stripeClient.paymentIntents.retrieve(stripeRecord[1]!)
        // The record as the devnet keeps it, with its secrets masked as in the credential step.
        const {
          client_secret: _secret,
          shared_payment_granted_token: token,
          ...rest
        } = intent as unknown as Record<string, unknown>
        return json({
          ...rest,
          ...(typeof token === 'string' ? { shared_payment_granted_token: `${token.slice(0, 8)}…` } : {}),
        })
      }
      // The agent platform's side of Stripe: issue an SPT from a saved test card, limited to the
      // challenge. The platform's secret key stays here; the page sends only the test card's id.
      if (path === '/api/stripe/token' && request.method === 'POST' && stripeClient) {
        const body = (await request.json().catch(() => null)) as {
          paymentMethod: unknown
          amount: unknown
          currency: unknown
          networkId: unknown
          expiresAt: unknown
        } | null
        // The page's own request: anything else is a 400, never the devnet's error as a 502.
        if (
          body === null ||
          typeof body !== 'object' ||
          typeof body.paymentMethod !== 'string' ||
          !Number.isSafeInteger(body.amount) ||
          typeof body.currency !== 'string' ||
          typeof body.networkId !== 'string' ||
          !Number.isSafeInteger(body.expiresAt)
        )
          return problem(400, 'expected { paymentMethod, amount, currency, networkId, expiresAt }')
        if (!Object.hasOwn(config.stripe!.cards, body.paymentMethod)) return problem(400, 'unknown test card')
        const token = await stripeClient.rawRequest('POST', '/v1/shared_payment/issued_tokens', {
          payment_method: body.paymentMethod,
          usage_limits: { currency: body.currency, max_amount: body.amount, expires_at: body.expiresAt },
          seller_details: { network_business_profile: body.networkId },
        })
        return json(token)
      }
      const paid = demo.route(path)
      if (paid) return await paid(request)
      for (const rail of rails) {
        const answer = await rail.handle(request, path)
        if (answer) return answer
      }
      return problem(404, 'not found')
    } catch (error) {
      // A devnet call failed: a one-line problem, never a stack trace.
      const message = error instanceof Error ? error.message.split('\n')[0] : 'unexpected error'
      return problem(502, `devnet: ${message}`)
    }
  }
  return Object.assign(handler, {
    close: async () => {
      lightning?.close()
      await mcp?.close()
    },
  })
}

/** Starts the playground's HTTP server on `port` (0: a free one) of 127.0.0.1. */
export async function startPlayground(options: PlaygroundOptions & { port?: number }): Promise<Playground> {
  const handler = playgroundHandler(options)
  const listener = toNodeListener(handler)
  // Only this machine's pages may drive the playground: its agents pay from devnet accounts and reach
  // back to the Host they were called on, and /api/config holds the devnet keys. A Host other than this
  // server's own (DNS rebinding, a forged Host pointing the agents elsewhere) or a request from another
  // origin (a cross-site form POST) is refused before any handler runs.
  let own = new Set<string>()
  const server = http.createServer((req, res) => {
    const origin = req.headers.origin
    if (
      !own.has(req.headers.host ?? '') ||
      (origin !== undefined && !own.has(origin.replace(/^http:\/\//, '')))
    ) {
      res.writeHead(403, { 'content-type': 'application/problem+json' })
      res.end(
        JSON.stringify({
          type: 'about:blank',
          title: 'Forbidden',
          status: 403,
          detail: 'not this playground',
        }),
      )
      return
    }
    listener(req, res)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, '127.0.0.1', resolve)
  })
  const { port } = server.address() as AddressInfo
  own = new Set([`127.0.0.1:${port}`, `localhost:${port}`])
  const url = `http://127.0.0.1:${port}/`
  return {
    server,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
        void handler.close()
      }),
  }
}
