// Lightning in the playground: the paid demo API on the devnet's payee node (a charge and an SSE
// session billed per chunk), and the agent that pays it from the payer node. LND speaks gRPC, so the
// page cannot pay itself: the playground's server holds the payer node's macaroon, runs
// @mppkit/method-lightning's client as any user would, and streams each step to the page as NDJSON
// (the 402, the invoice as the node decodes it, the payment, the credential with the preimage masked,
// the paid response, the receipt, the balances of both nodes). No macaroon or preimage reaches the page.
import { Credential, MemoryStore, Receipt } from '@mppkit/core'
import { Client, mayHaveSettled, PolicyError } from '@mppkit/core/client'
import { Server } from '@mppkit/core/server'
import type { DevnetLightningInfo } from '@mppkit/devnet'
import { lightning as lightningClient, lndWallet, type Wallet } from '@mppkit/method-lightning/client'
import { lightning, type SessionMeter } from '@mppkit/method-lightning/server'
import {
  type AuthenticatedLnd,
  authenticatedLndGrpc,
  decodePaymentRequest,
  getChannelBalance,
  getInvoice,
} from 'lightning'
import { redact } from '../../../../packages/core/src/internal/inspect.js'

/** Prices in satoshis: 100 sat per charge, 1 sat per streamed chunk on a 10 sat deposit. */
export const lightningPrices = { charge: '100', chunk: '1', deposit: 10 } as const

/**
 * The payer's routing fee limit per payment (the client's `maxFeeSats`): booked against the spend policy's
 * budget with each payment before paying, then shrunk to the fee paid; the page names it.
 */
export const lightningMaxFeeSats = 10

const chargePath = '/api/demo/lightning/charge'
const sessionPath = '/api/demo/lightning/session'

/** One line of the NDJSON trace the page renders. */
export type Step = { type: string; [key: string]: unknown }

export type LightningPlayground = {
  config: {
    prices: typeof lightningPrices
    maxFeeSats: number
    network: 'regtest'
    payer: string
    payee: string
  }
  balances(): Promise<{ payer: number; payee: number }>
  route(path: string): ((request: Request) => Promise<Response>) | undefined
  close(): void
}

type EmbeddedLightning = Extract<DevnetLightningInfo, { source: 'embedded' | 'containers' }>

const words =
  'Lightning sessions bill every chunk of this stream against a prepaid deposit and top it up when it runs dry while the connection stays open'.split(
    ' ',
  )

async function* slowly(chunks: readonly string[], delayMs: number) {
  for (const chunk of chunks) {
    await new Promise((resolve) => setTimeout(resolve, delayMs))
    yield chunk
  }
}

const problem = (status: number, title: string) =>
  new Response(JSON.stringify({ type: 'about:blank', title, status }), {
    status,
    headers: { 'content-type': 'application/problem+json' },
  })

/** A credential header, decoded, with its secrets (the preimage) masked. */
function maskedCredential(authorization: string) {
  const credential = Credential.parse(authorization)
  const { id, method, intent, realm } = credential.challenge
  return { challenge: { id, method, intent, realm }, payload: redact(credential.payload) }
}

/**
 * A streamed NDJSON response: `run` writes steps; an error becomes a last `refused` or `failed` step, with
 * `mayHaveSettled` (the payment's outcome is unknown: it stays booked) and what the agent's ledger holds
 * as spent (`spent()`, when given).
 */
function trace(
  run: (emit: (step: Step) => void) => Promise<void>,
  spent?: () => bigint | undefined,
): Response {
  const encoder = new TextEncoder()
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      const emit = (step: Step) =>
        controller.enqueue(
          encoder.encode(
            `${JSON.stringify(step, (_key, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`,
          ),
        )
      try {
        await run(emit)
      } catch (error) {
        const refused = error instanceof PolicyError
        // The message only: the client's errors never carry a preimage or an invoice.
        const spentNow = spent?.()
        emit({
          type: refused ? 'refused' : 'failed',
          message: error instanceof Error ? error.message : String(error),
          ...(mayHaveSettled(error) ? { mayHaveSettled: true } : {}),
          ...(spentNow === undefined ? {} : { spent: spentNow }),
        })
      }
      controller.close()
    },
  })
  return new Response(body, {
    headers: { 'content-type': 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store' },
  })
}

/**
 * The Lightning part of the playground, or undefined when the devnet has no payer node (an external
 * LND without one).
 */
export function lightningPlayground(
  info: DevnetLightningInfo | undefined,
  options: { secret: string; chunkDelayMs?: number },
): LightningPlayground | undefined {
  if (!info || !('payer' in info.nodes) || !info.nodes.payer) return undefined
  const nodes = (info as EmbeddedLightning).nodes
  const payee = authenticatedLndGrpc(nodes.payee).lnd
  // The payer's admin macaroon stays here: the page only asks this server to pay.
  const payer = authenticatedLndGrpc(nodes.payer).lnd
  const secrets = [options.secret]
  const delay = options.chunkDelayMs ?? 120

  const chargeServer = Server.create({
    realm: 'playground.lightning',
    secrets,
    methods: [lightning({ lnd: payee })],
  })
  const charge = chargeServer.protect(
    {
      offers: [
        { method: 'lightning', request: { amount: lightningPrices.charge, description: 'one fortune' } },
      ],
    },
    () => Response.json({ fortune: 'A 402 today keeps the chargebacks away.', paidWith: 'lightning' }),
  )
  const sessionServer = Server.create({
    realm: 'playground.lightning',
    secrets,
    store: new MemoryStore(),
    methods: [
      lightning.session({ lnd: payee, depositSats: lightningPrices.deposit, idleTimeoutSeconds: 300 }),
    ],
  })
  const session = sessionServer.protect(
    {
      offers: [
        {
          method: 'lightning',
          intent: 'session',
          request: { amount: lightningPrices.chunk, unitType: 'chunk' },
        },
      ],
    },
    (_request, payment) => (payment.context as SessionMeter).sse(slowly(words, delay)),
  )

  const channelSats = async (lnd: AuthenticatedLnd) => (await getChannelBalance({ lnd })).channel_balance
  const balances = async () => {
    const [payerSats, payeeSats] = await Promise.all([channelSats(payer), channelSats(payee)])
    return { payer: payerSats, payee: payeeSats }
  }

  /** The payer's wallet, recording what it pays: the invoice as the node decodes it, the payment. */
  const recordingWallet = (emit: (step: Step) => void): Wallet => {
    const inner = lndWallet(payer)
    return {
      async pay(invoice, payOptions) {
        const decoded = await decodePaymentRequest({ lnd: payer, request: invoice })
        emit({
          type: 'invoice',
          invoice: `${invoice.slice(0, 24)}…${invoice.slice(-8)}`,
          decoded: {
            destination: decoded.destination,
            tokens: decoded.tokens,
            id: decoded.id,
            description: decoded.description,
            expires_at: decoded.expires_at,
          },
        })
        const started = performance.now()
        const paid = await inner.pay(invoice, payOptions)
        const ms = Math.round(performance.now() - started)
        // The payee node's record of the invoice: settled, and what it received.
        const record = await getInvoice({ lnd: payee, id: decoded.id })
        emit({
          type: 'payment',
          ms,
          paymentHash: decoded.id,
          preimage: `<redacted ${paid.preimage.length} chars>`,
          payeeRecord: {
            id: record.id,
            is_confirmed: record.is_confirmed,
            received: record.received,
            confirmed_at: record.confirmed_at,
          },
        })
        return paid
      },
      async receive(receiveOptions) {
        const created = await inner.receive(receiveOptions)
        emit({ type: 'return-invoice', invoice: `${created.invoice.slice(0, 24)}…` })
        return created
      },
    }
  }

  /** A fetch that reports each exchange with the paid API (credentials decoded and masked). */
  const recordingFetch =
    (emit: (step: Step) => void): typeof fetch =>
    async (input, init) => {
      const request = new Request(input, init)
      const authorization = request.headers.get('authorization')
      const response = await fetch(request)
      const challenge = response.headers.get('www-authenticate')
      emit({
        type: 'exchange',
        method: request.method,
        path: new URL(request.url).pathname,
        status: response.status,
        ...(authorization ? { credential: maskedCredential(authorization) } : {}),
        ...(challenge ? { wwwAuthenticate: challenge } : {}),
        ...(response.status >= 400 && response.status !== 402 ? { body: await response.clone().text() } : {}),
      })
      return response
    }

  type Policy = { maxAmount?: string; budget?: string; maxDeposit?: string }
  const sats = (text: string | undefined) => {
    if (text === undefined) return undefined
    if (!/^\d{1,12}$/.test(text)) throw new TypeError('amounts are whole satoshis')
    return BigInt(text)
  }
  const readPolicy = async (request: Request) => {
    const body = (await request.json().catch(() => ({}))) as Policy & { agent?: string }
    const maxAmount = sats(body.maxAmount)
    const budget = sats(body.budget)
    const maxDeposit = sats(body.maxDeposit)
    return {
      agent: typeof body.agent === 'string' ? body.agent : undefined,
      policy: {
        currencies: ['sat'],
        ...(maxAmount === undefined ? {} : { maxAmount: { sat: maxAmount } }),
        ...(budget === undefined ? {} : { budget: { sat: budget } }),
        ...(maxDeposit === undefined ? {} : { maxDeposit: { sat: maxDeposit } }),
      },
    }
  }

  // One charge agent per page (keyed by the page's id), so that its budget spans payments.
  const chargeAgents = new Map<string, { client: Client.Client; emit: { current: (step: Step) => void } }>()
  const payCharge = async (request: Request) => {
    const origin = new URL(request.url).origin
    const { agent, policy } = await readPolicy(request).catch(() => ({ agent: undefined, policy: undefined }))
    if (!policy) return problem(400, 'the policy amounts are whole satoshis')
    const key = agent ?? crypto.randomUUID()
    return trace(
      async (emit) => {
        let entry = chargeAgents.get(key)
        // A new policy comes with a new agent id (the page's Apply policy).
        if (!entry) {
          const sink = { current: emit }
          const client = Client.create({
            methods: [
              lightningClient({
                wallet: recordingWallet((step) => sink.current(step)),
                network: 'regtest',
                maxFeeSats: lightningMaxFeeSats,
              }),
            ],
            policy,
            fetch: recordingFetch((step) => sink.current(step)),
          })
          entry = { client, emit: sink }
          if (chargeAgents.size > 100) chargeAgents.clear()
          chargeAgents.set(key, entry)
        }
        entry!.emit.current = emit
        emit({ type: 'balances', when: 'before', ...(await balances()) })
        const started = performance.now()
        const response = await entry!.client.fetch(`${origin}${chargePath}`)
        const ms = Math.round(performance.now() - started)
        emit({
          type: 'response',
          status: response.status,
          ms,
          body: await response.text(),
          receipt: readReceipt(response),
          spent: entry!.client.ledger.spent('sat'),
        })
        emit({ type: 'balances', when: 'after', ...(await balances()) })
      },
      () => chargeAgents.get(key)?.client.ledger.spent('sat'),
    )
  }

  // Session agents: one open session per page, kept between the stream and the close.
  const sessionAgents = new Map<
    string,
    {
      sessions: ReturnType<typeof lightningClient.session>
      client: Client.Client
      sink: { current: (step: Step) => void }
    }
  >()
  const stream = async (request: Request) => {
    const origin = new URL(request.url).origin
    const url = `${origin}${sessionPath}`
    const parsed = await readPolicy(request).catch(() => undefined)
    if (!parsed) return problem(400, 'the policy amounts are whole satoshis')
    return trace(async (emit) => {
      const key = parsed.agent ?? crypto.randomUUID()
      let entry = sessionAgents.get(key)
      if (!entry) {
        const sink = { current: emit }
        const record = (step: Step) => sink.current(step)
        const sessions = lightningClient.session({
          wallet: recordingWallet(record),
          network: 'regtest',
          maxFeeSats: lightningMaxFeeSats,
          fetch: recordingFetch(record),
        })
        const client = Client.create({
          methods: [sessions],
          policy: parsed.policy,
          fetch: recordingFetch(record),
        })
        entry = { sessions, client, sink }
        if (sessionAgents.size > 100) sessionAgents.clear()
        sessionAgents.set(key, entry)
      }
      entry.sink.current = emit
      const { sessions, client } = entry
      emit({ type: 'balances', when: 'before', ...(await balances()) })
      const response = await client.fetch(url)
      const meter = () => {
        const state = [...sessions.sessions.values()][0]
        return state ? { sessionId: state.sessionId, deposit: state.deposit, spent: state.spent } : undefined
      }
      emit({ type: 'open', status: response.status, receipt: readReceipt(response), meter: meter() })
      if (!response.ok) {
        emit({ type: 'failed', message: `${response.status}: ${await response.text()}` })
        return
      }
      let chunks = 0
      let topUps = 0
      for await (const chunk of sessions.stream(response, url, (event, data) => {
        if (event === 'payment-need-topup') {
          topUps++
          emit({ type: 'need-topup', data, meter: meter() })
        } else if (event === 'payment-receipt') emit({ type: 'stream-receipt', receipt: data })
        else emit({ type: 'event', event, data })
      })) {
        chunks++
        emit({ type: 'chunk', text: chunk, meter: meter() })
      }
      emit({ type: 'streamed', chunks, topUps, meter: meter() })
      emit({ type: 'balances', when: 'after', ...(await balances()) })
    })
  }

  const close = async (request: Request) => {
    const origin = new URL(request.url).origin
    const { agent } = await readPolicy(request).catch(() => ({ agent: undefined }))
    const entry = agent ? sessionAgents.get(agent) : undefined
    if (!entry) return problem(404, 'no open Lightning session for this page')
    return trace(async (emit) => {
      entry.sink.current = emit
      const state = [...entry.sessions.sessions.values()][0]
      const response = await entry.sessions.close(`${origin}${sessionPath}`)
      const body = await response.text()
      emit({
        type: 'closed',
        status: response.status,
        body: safeJson(body),
        receipt: readReceipt(response),
        meter: state ? { deposit: state.deposit, spent: state.spent } : undefined,
      })
      sessionAgents.delete(agent!)
      emit({ type: 'balances', when: 'after', ...(await balances()) })
    })
  }

  const routes = new Map<string, (request: Request) => Promise<Response>>([
    [chargePath, charge],
    [sessionPath, session],
    ['/api/lightning/charge', (request) => (request.method === 'POST' ? payCharge(request) : notPost())],
    ['/api/lightning/session/stream', (request) => (request.method === 'POST' ? stream(request) : notPost())],
    ['/api/lightning/session/close', (request) => (request.method === 'POST' ? close(request) : notPost())],
  ])
  return {
    config: {
      prices: lightningPrices,
      maxFeeSats: lightningMaxFeeSats,
      network: 'regtest',
      payer: nodes.payer.publicKey,
      payee: nodes.payee.publicKey,
    },
    balances,
    route: (path) => routes.get(path),
    close: () => {
      void sessionServer.close()
      void chargeServer.close()
    },
  }
}

const notPost = async () => problem(405, 'use POST')

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** The decoded `Payment-Receipt` of a response, if any. */
function readReceipt(response: Response): unknown {
  const header = response.headers.get('payment-receipt')
  if (!header) return undefined
  try {
    return Receipt.parse(header)
  } catch {
    return { undecodable: true }
  }
}
