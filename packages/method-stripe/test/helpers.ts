import { Client, type Policy } from '@mppkit/core/client'
import { type Offer, Server } from '@mppkit/core/server'
import Stripe from 'stripe'
import { type StripeDevnet, startStripe } from '../../devnet/src/stripe/index.js'
import { type ChargeClientOptions, issuedTokens, stripe as stripeClient } from '../src/client/index.js'
import { type ChargeOptions, stripe as stripeServer } from '../src/server/index.js'

export const realm = 'stripe.test'
export const secret = 'stripe-test-secret-0123456789abcdefghijkl'
export const url = 'https://stripe.test/paid'

/** A Stripe SDK client on the simulator; no SDK retries unless asked, so outages reach the rail. */
export function sdk(node: StripeDevnet, options: Partial<Stripe.StripeConfig> = {}): Stripe {
  const { host, port, protocol, secretKey } = node.info
  return new Stripe(secretKey, { host, port, protocol, maxNetworkRetries: 0, ...options })
}

export { type StripeDevnet, startStripe }

/**
 * A paid route on a fresh server over the simulator and a client that pays it with issued SPTs.
 * `handler` counts how often the paid resource ran.
 */
export function rig(
  node: StripeDevnet,
  options: {
    server?: Partial<ChargeOptions>
    client?: Partial<ChargeClientOptions>
    paymentMethod?: string
    offer?: Partial<Offer>
    policy?: Policy
    stripe?: Stripe
    /** The server's onError (its log lines are then off). */
    onError?: (error: unknown) => void
  } = {},
) {
  const stripe = options.stripe ?? sdk(node)
  const method = stripeServer({
    client: stripe,
    networkId: node.info.networkId,
    currency: 'usd',
    // Like `sdk()`: no SDK retries unless asked, so outages reach the rail.
    maxNetworkRetries: 0,
    ...options.server,
  })
  const server = Server.create({
    realm,
    secrets: [secret],
    methods: [method],
    ...(options.onError ? { onError: options.onError, logger: false as const } : {}),
  })
  let runs = 0
  const offer: Offer = { method: 'stripe', request: { amount: '1000' }, ...options.offer }
  const handler = server.protect({ offers: [offer] }, (_request, payment) => {
    runs++
    return Response.json({ paid: true, reference: payment.receipt.reference })
  })
  const issued: string[] = []
  const createToken = issuedTokens({
    client: sdk(node),
    paymentMethod: options.paymentMethod ?? 'pm_card_visa',
  })
  const clientMethod = stripeClient({
    createToken: async (request) => {
      const token = await createToken(request)
      issued.push(typeof token === 'string' ? token : token.id)
      return token
    },
    ...options.client,
  })
  const clientWith = (send: (request: Request) => Promise<Response>) =>
    Client.create({
      methods: [clientMethod],
      ...(options.policy ? { policy: options.policy } : {}),
      fetch: ((input: RequestInfo | URL, init?: RequestInit) =>
        send(new Request(input, init))) as typeof fetch,
    })
  const client = clientWith(handler)
  /** A valid credential for a fresh challenge, built without submitting it. */
  const credential = async (): Promise<string> => {
    let authorization = ''
    await clientWith(async (request) => {
      const header = request.headers.get('authorization')
      if (!header) return handler(request)
      authorization = header
      return new Response(null, { status: 204 })
    }).fetch(url)
    if (authorization === '') throw new Error('no credential was built')
    return authorization
  }
  const submit = (authorization: string) => handler(new Request(url, { headers: { authorization } }))
  return { stripe, method, server, handler, client, clientWith, credential, submit, issued, runs: () => runs }
}

/** PaymentIntents whose metadata names the challenge, on the platform account. */
export async function intentsFor(stripe: Stripe, challengeId: string): Promise<Stripe.PaymentIntent[]> {
  const list = await stripe.paymentIntents.list({ limit: 100 })
  return list.data.filter((pi) => pi.metadata.challenge_id === challengeId)
}

/** The problem body of a response. */
export async function problem(response: Response): Promise<Record<string, unknown>> {
  return (await response.clone().json()) as Record<string, unknown>
}
