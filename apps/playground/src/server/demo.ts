// The paid demo API the page pays: one route per rail and intent, each a plain mppkit server.
import { MemoryStore } from '@mppkit/core'
import { Server } from '@mppkit/core/server'
import type { DevnetStripeInfo, DevnetTempoInfo } from '@mppkit/devnet'
import { stripe } from '@mppkit/method-stripe/server'
import { tempo } from '@mppkit/method-tempo/server'
import type Stripe from 'stripe'
import { privateKeyToAccount } from 'viem/accounts'

/** Prices, in base units: 0.001 PathUSD per charge, 0.0001 per streamed chunk, $0.50 per Stripe charge. */
export const prices = { tempoCharge: '1000', tempoChunk: '100', stripeCharge: '50' } as const

export type TempoRoles = { payee: number; chargePayer: number; sessionPayer: number }
/** Which devnet account plays which part (the page pays from the payers, with their devnet keys). */
export const tempoRoles: TempoRoles = { payee: 0, chargePayer: 1, sessionPayer: 2 }

export type Demo = { route(pathname: string): ((request: Request) => Promise<Response>) | undefined }

type FullTempo = Extract<DevnetTempoInfo, { escrow: string }>
type EmbeddedStripe = Extract<DevnetStripeInfo, { networkId: string }>

const words =
  'Every chunk of this stream is paid for with a signed voucher before it is sent, and the deposit is topped up when it runs out.'.split(
    ' ',
  )

async function* slowly(chunks: readonly string[], delayMs: number) {
  for (const chunk of chunks) {
    await new Promise((resolve) => setTimeout(resolve, delayMs))
    yield chunk
  }
}

export function createDemo(options: {
  tempo?: FullTempo | undefined
  stripe?: { info: EmbeddedStripe; client: Stripe } | undefined
  secret: string
  chunkDelayMs?: number
}): Demo {
  const routes = new Map<string, (request: Request) => Promise<Response>>()
  const secrets = [options.secret]
  if (options.tempo) {
    const info = options.tempo
    const payee = info.accounts[tempoRoles.payee]!
    const common = { rpcUrl: info.rpcUrl, chainId: info.chainId, currency: info.tokens.pathUsd }
    const charge = Server.create({
      realm: 'playground.tempo',
      secrets,
      methods: [tempo({ ...common, recipient: payee.address })],
    })
    routes.set(
      '/api/demo/tempo/charge',
      charge.protect(
        {
          offers: [{ method: 'tempo', request: { amount: prices.tempoCharge }, description: 'one quote' }],
        },
        () => Response.json({ quote: 'Simplicity is prerequisite for reliability.', paidWith: 'tempo' }),
      ),
    )
    const session = Server.create({
      realm: 'playground.tempo',
      secrets,
      store: new MemoryStore(),
      methods: [
        tempo.session({
          ...common,
          account: privateKeyToAccount(payee.privateKey),
          escrow: info.escrow,
          unitsPerRequest: 0,
        }),
      ],
    })
    const delay = options.chunkDelayMs ?? 120
    routes.set(
      '/api/demo/tempo/session',
      session.protect(
        {
          offers: [
            { method: 'tempo', intent: 'session', request: { amount: prices.tempoChunk, unitType: 'chunk' } },
          ],
        },
        (_request, payment) => (payment.context as Meter).sse(slowly(words, delay)),
      ),
    )
  }
  if (options.stripe) {
    const { info, client } = options.stripe
    const server = Server.create({
      realm: 'playground.stripe',
      secrets,
      methods: [stripe({ client, networkId: info.networkId, currency: 'usd' })],
    })
    routes.set(
      '/api/demo/stripe/charge',
      server.protect(
        {
          offers: [{ method: 'stripe', request: { amount: prices.stripeCharge }, description: 'one report' }],
        },
        (_request, payment) =>
          Response.json({ report: 'Q3 revenue up 12%', paymentIntent: payment.receipt.reference }),
      ),
    )
  }
  return { route: (pathname) => routes.get(pathname) }
}

type Meter = { sse(chunks: AsyncIterable<string>): Response }
