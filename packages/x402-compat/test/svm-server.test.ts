import { Challenge, MemoryStore, type Store, StoreUnavailableError } from '@mppkit/core'
import { create as createClient, Protocol, receipt } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { RedisStore } from '@mppkit/store-redis'
import { x402Client } from '@x402/core/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import { ExactSvmScheme } from '@x402/svm/exact/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPaymentHeader } from 'x402/client'
import { createMint, mintTo, type SolanaNode, startSolana } from '../../devnet/src/solana/index.js'
import { chargeClient as methodSolanaClient } from '../../method-solana/src/client/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { svm as svmClient, x402 as x402Plug } from '../src/client/index.js'
import type { Facilitator } from '../src/server/index.js'
import { svm, x402 } from '../src/server/index.js'
import { landedTransaction } from '../src/svm/Landed.js'
import * as Wire from '../src/Wire.js'
import { network, svmFacilitator, tokenBalance, world } from './svm-peers.js'

const redisReason = await redisUnavailableReason()
if (redisReason) console.warn(`[skip] x402 svm on Redis: ${redisReason}`)

// x402 clients pay our dual-stack route with x402 `exact` on Solana: `@x402/fetch` (v2, `@x402/svm`'s
// client) and `x402@1.2.0` (v1), settled by the in-process @x402/svm facilitator on the LiteSVM RPC.
let node: SolanaNode
beforeAll(async () => {
  node = await startSolana()
})
afterAll(async () => {
  await node?.stop()
})

const url = 'http://localhost/paid'

async function setup(
  options: {
    facilitator?: (real: Facilitator) => Facilitator
    stores?: [Store, Store]
    timeout?: number
    rpcUrl?: string
    /** The second instance's price (default the same 1000). */
    otherAmount?: string
  } = {},
) {
  const w = await world(node)
  const fac = await svmFacilitator(node)
  const shared = new MemoryStore()
  const stores = options.stores ?? [shared, shared]
  let runs = 0
  // Two servers sharing one Store stand for two processes behind one load balancer.
  const instance = (index: 0 | 1) => {
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-svm-test-secret-0123456789abcdef'],
      store: stores[index],
      methods: [
        svm({
          network,
          currency: w.mint,
          decimals: w.decimals,
          recipient: w.recipient.address,
          feePayer: fac.feePayer,
          facilitator: options.facilitator ? options.facilitator(fac.client) : fac.client,
          ...(options.timeout ? { timeout: options.timeout } : {}),
          ...(options.rpcUrl ? { rpcUrl: options.rpcUrl } : {}),
        }),
      ],
    })
    return x402(server, { maxTimeoutSeconds: 120, v1: true }).protect(
      {
        offers: [
          { method: 'solana', request: { amount: index === 1 ? (options.otherAmount ?? '1000') : '1000' } },
        ],
      },
      () => {
        runs++
        return new Response('paid content')
      },
    )
  }
  const handler = instance(0)
  return { w, fac, handler, other: instance(1), runs: () => runs }
}

/** The `@x402/fetch` v2 client of `signer`, allowed to pay `mint`, recording what it sends. */
function x402Fetch(handler: (request: Request) => Promise<Response>, signer: never, mint: string) {
  const client = x402Client.fromConfig({
    schemes: [{ network, client: new ExactSvmScheme(signer, { rpcUrl: node.info.rpcUrl }) }],
    spendControls: { allowedAssets: [{ network, asset: mint, maxAmountPerPayment: '1000000' }] },
  })
  const sent: string[] = []
  const fetch = wrapFetchWithPayment(async (input, init) => {
    const request = new Request(input, init)
    const header = request.headers.get(Wire.headers.paymentSignature)
    if (header) sent.push(header)
    return handler(request)
  }, client)
  return { fetch, sent }
}

async function requirementOf(handler: (request: Request) => Promise<Response>) {
  const response = await handler(new Request(url))
  return (
    Wire.decode(response.headers.get(Wire.headers.paymentRequired)!).accepts as Record<string, any>[]
  )[0]!
}

/** A v2 PAYMENT-SIGNATURE made by @x402/svm's own client for `signed`, presented as accepting `accepted`. */
async function signed(
  signer: never,
  accepted: Record<string, any>,
  signedFor: Record<string, any> = accepted,
): Promise<string> {
  const scheme = new ExactSvmScheme(signer, { rpcUrl: node.info.rpcUrl })
  const { payload } = await scheme.createPaymentPayload(2, signedFor as never)
  return Wire.encode({ x402Version: 2, resource: { url }, accepted, payload })
}

const paying = (handler: (request: Request) => Promise<Response>, headers: Record<string, string>) =>
  handler(new Request(url, { headers }))

/** A facilitator that settles for real (broadcast and confirmed), then drops the connection before answering. */
const losingAnswers = (real: Facilitator): Facilitator => ({
  verify: (payload, requirements) => real.verify(payload, requirements),
  settle: async (payload, requirements) => {
    await real.settle(payload, requirements).catch(() => undefined)
    throw new TypeError('fetch failed')
  },
})

async function problemOf(response: Response) {
  expect(response.headers.get('content-type')).toMatch(/application\/problem\+json/)
  return (await response.json()) as { type: string; detail?: string; status: number }
}

describe('x402 (server) takes exact on Solana beside MPP', () => {
  it('answers a 402 with WWW-Authenticate: Payment (solana) and PAYMENT-REQUIRED naming the facilitator as fee payer', async () => {
    const { w, fac, handler } = await setup()
    const response = await handler(new Request(url))
    expect(response.status).toBe(402)
    const challenges = Challenge.parseAll(response.headers.get('www-authenticate')!)
    expect(challenges.map((challenge) => challenge.method)).toEqual(['solana'])
    expect(challenges[0]!.request).toMatchObject({
      amount: '1000',
      currency: w.mint,
      recipient: w.recipient.address,
      methodDetails: { network: 'devnet', decimals: 6, feePayer: true, feePayerKey: fac.feePayer },
    })
    const required = Wire.decode(response.headers.get(Wire.headers.paymentRequired)!)
    expect(required.accepts).toEqual([
      {
        scheme: 'exact',
        network,
        asset: w.mint,
        amount: '1000',
        payTo: w.recipient.address,
        maxTimeoutSeconds: 120,
        extra: { feePayer: fac.feePayer },
      },
    ])
    // v1 clients read the body.
    const body = (await response.json()) as { x402Version: number; accepts: { network: string }[] }
    expect(body.x402Version).toBe(1)
    expect(body.accepts[0]!.network).toBe('solana-devnet')
  })

  it('@x402/fetch (v2) pays: settled once through the facilitator, Payment-Receipt and PAYMENT-RESPONSE', async () => {
    const { w, fac, handler, runs } = await setup()
    const { fetch, sent } = x402Fetch(handler, w.payer as never, w.mint)
    const response = await fetch(url)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('paid content')
    expect(runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
    const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
    expect(settled).toMatchObject({ success: true, network, payer: w.payer.address })
    expect(node.ledger.history.get(settled.transaction as string)?.err).toBeNull()
    expect(response.headers.get('payment-receipt')).toBeTruthy()
    expect(sent).toHaveLength(1)
  })

  it('a replayed PAYMENT-SIGNATURE is refused, on this instance and on another sharing the Store', async () => {
    const { w, fac, handler, other, runs } = await setup()
    const { fetch, sent } = x402Fetch(handler, w.payer as never, w.mint)
    expect((await fetch(url)).status).toBe(200)
    for (const target of [handler, other]) {
      const replay = await paying(target, { [Wire.headers.paymentSignature]: sent[0]! })
      expect(replay.status).toBe(402)
      expect(replay.headers.get(Wire.headers.paymentRequired)).toBeTruthy()
    }
    expect(runs()).toBe(1)
    // Refused by the Store claim, before the facilitator.
    expect(fac.counts.settle).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })

  it('an Idempotency-Key retry on another instance sharing the Store gets the same PAYMENT-RESPONSE, settled once', async () => {
    const { w, fac, handler, other, runs } = await setup()
    const { fetch, sent } = x402Fetch(handler, w.payer as never, w.mint)
    const first = await fetch(url, { headers: { 'idempotency-key': 'order-svm' } })
    expect(first.status).toBe(200)
    const retry = await paying(other, {
      [Wire.headers.paymentSignature]: sent[0]!,
      'idempotency-key': 'order-svm',
    })
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('paid content')
    const settled = first.headers.get(Wire.headers.paymentResponse)
    expect(Wire.decode(settled!)).toMatchObject({ success: true, network, payer: w.payer.address })
    expect(retry.headers.get(Wire.headers.paymentResponse)).toBe(settled)
    expect(runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })

  it('refuses tampered amount, recipient and mint (the facilitator reason in the problem detail)', async () => {
    const { w, fac, handler, runs } = await setup()
    const requirement = await requirementOf(handler)
    const stranger = await world(node)
    const { mint: otherMint } = await createMint(node, { decimals: 6 })
    await mintTo(node, { mint: otherMint, owner: w.payer.address, amount: 1_000_000n })
    await mintTo(node, { mint: otherMint, owner: w.recipient.address, amount: 0n })
    const cases: [string, Record<string, any>, RegExp][] = [
      ['amount', { ...requirement, amount: '999' }, /amount/i],
      ['recipient', { ...requirement, payTo: stranger.recipient.address }, /recipient/i],
      ['mint', { ...requirement, asset: String(otherMint) }, /mint/i],
    ]
    for (const [name, signedFor, reason] of cases) {
      const header = await signed(w.payer as never, requirement, signedFor)
      const response = await paying(handler, { [Wire.headers.paymentSignature]: header })
      expect(response.status, name).toBe(402)
      expect((await problemOf(response)).detail, name).toMatch(reason)
    }
    // A changed `accepted` is not what the route offers.
    const changed = await signed(
      w.payer as never,
      { ...requirement, amount: '1' },
      { ...requirement, amount: '1' },
    )
    const response = await paying(handler, { [Wire.headers.paymentSignature]: changed })
    expect(response.status).toBe(402)
    expect((await problemOf(response)).detail).toMatch(/not offered/)
    expect(runs()).toBe(0)
    expect(fac.counts.settled).toBe(0)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(0n)
  })

  it('a settlement answer naming another network or payer, or no signature, is refused: nothing served', async () => {
    const stranger = await world(node)
    const lies: [string, (answer: Record<string, unknown>) => Record<string, unknown>][] = [
      ['network', (answer) => ({ ...answer, network: 'solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp' })],
      ['payer', (answer) => ({ ...answer, payer: stranger.payer.address })],
      ['transaction', (answer) => ({ ...answer, transaction: '' })],
    ]
    for (const [name, lie] of lies) {
      const { w, handler, runs } = await setup({
        // Settles nothing: answers verify honestly, then "success" with the lie.
        facilitator: (real) => ({
          verify: (payload, requirements) => real.verify(payload, requirements),
          settle: async (_payload, requirements) =>
            lie({
              success: true,
              transaction: '5'.repeat(88),
              network: requirements.network,
              payer: String(w.payer.address),
            }) as never,
        }),
      })
      const header = await signed(w.payer as never, await requirementOf(handler))
      const response = await paying(handler, { [Wire.headers.paymentSignature]: header })
      expect(response.status, name).toBe(402)
      expect((await problemOf(response)).detail, name).toMatch(/facilitator's settlement answer/)
      expect(runs(), name).toBe(0)
    }
  })

  it('50 concurrent copies of one PAYMENT-SIGNATURE over two instances: one settlement, one 200', async () => {
    const { w, fac, handler, other, runs } = await setup()
    const header = await signed(w.payer as never, await requirementOf(handler))
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, index) =>
        paying(index % 2 === 0 ? handler : other, { [Wire.headers.paymentSignature]: header }),
      ),
    )
    const statuses = responses.map((response) => response.status)
    expect(statuses.filter((status) => status === 200)).toHaveLength(1)
    expect(statuses.filter((status) => status >= 500)).toEqual([])
    expect(runs()).toBe(1)
    // The Store claim stops the copies before the facilitator: it is asked to settle once.
    expect(fac.counts.settle).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })

  it.skipIf(!!redisReason)(
    '50 concurrent copies over two instances, each with its own Redis connection: one settlement',
    async () => {
      const keyPrefix = `x402svm-test:${Date.now()}:${Math.random().toString(36).slice(2)}:`
      const stores: [RedisStore, RedisStore] = [
        new RedisStore({ url: redisUrl, keyPrefix }),
        new RedisStore({ url: redisUrl, keyPrefix }),
      ]
      try {
        const { w, fac, handler, other, runs } = await setup({ stores })
        const header = await signed(w.payer as never, await requirementOf(handler))
        const responses = await Promise.all(
          Array.from({ length: 50 }, (_, index) =>
            paying(index % 2 === 0 ? handler : other, { [Wire.headers.paymentSignature]: header }),
          ),
        )
        const statuses = responses.map((response) => response.status)
        expect(statuses.filter((status) => status === 200)).toHaveLength(1)
        expect(statuses.filter((status) => status >= 500)).toEqual([])
        expect(runs()).toBe(1)
        expect(fac.counts.settle).toBe(1)
        expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
      } finally {
        for (const store of stores) store.client.disconnect()
      }
    },
  )

  it('an expired transaction (its blockhash too old) is refused and settles nothing', async () => {
    const { w, fac, handler, runs } = await setup()
    const header = await signed(w.payer as never, await requirementOf(handler))
    // Blockhashes expire after 150 slots.
    node.advanceSlots(160)
    const response = await paying(handler, { [Wire.headers.paymentSignature]: header })
    expect(response.status).toBe(402)
    expect((await problemOf(response)).detail).toMatch(/facilitator refused/)
    expect(runs()).toBe(0)
    expect(fac.counts.settled).toBe(0)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(0n)
  })

  it('facilitator down or slow: 503 with Retry-After, nothing consumed (the same payment then succeeds)', async () => {
    let mode: 'down' | 'slow' | 'up' = 'down'
    const { w, fac, handler, runs } = await setup({
      timeout: 300,
      facilitator: (real) => ({
        verify: async (payload, requirements) => {
          if (mode === 'down') throw new TypeError('fetch failed')
          if (mode === 'slow') await new Promise((resolve) => setTimeout(resolve, 1_000))
          return real.verify(payload, requirements)
        },
        settle: (payload, requirements) => real.settle(payload, requirements),
      }),
    })
    const header = await signed(w.payer as never, await requirementOf(handler))
    for (const state of ['down', 'slow'] as const) {
      mode = state
      const response = await paying(handler, { [Wire.headers.paymentSignature]: header })
      expect(response.status, state).toBe(503)
      expect(response.headers.get('retry-after'), state).toBe('1')
      expect(JSON.stringify(await problemOf(response))).not.toContain(header.slice(0, 40))
    }
    mode = 'up'
    const response = await paying(handler, { [Wire.headers.paymentSignature]: header })
    expect(response.status).toBe(200)
    expect(runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
  })

  it('a settlement whose answer is lost after the transaction landed is found on chain (rpcUrl): served once, then refused', async () => {
    const { w, fac, handler, runs } = await setup({
      rpcUrl: node.info.rpcUrl,
      facilitator: losingAnswers,
    })
    const header = await signed(w.payer as never, await requirementOf(handler))
    const response = await paying(handler, { [Wire.headers.paymentSignature]: header })
    expect(response.status, await response.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
    // The reference is the landed transaction's signature.
    const reference = receipt(response)!.reference
    expect(node.ledger.history.get(reference)?.err).toBeNull()
    // Found by its message; not once its block is older than the lookup's window (5 minutes).
    const transaction = (Wire.decode(header) as { payload: { transaction: string } }).payload.transaction
    expect(await landedTransaction(node.info.rpcUrl, transaction, 5_000)).toBe(reference)
    const later = () => Date.now() + 301_000
    expect(await landedTransaction(node.info.rpcUrl, transaction, 5_000, 300, later)).toBeUndefined()
    const again = await paying(handler, { [Wire.headers.paymentSignature]: header })
    expect(again.status).toBe(402)
    expect(runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })

  it('a claim left by an attempt that stopped (answer lost, lookup and release failed) is taken over once stale: the retry is served once', async () => {
    // The Store fails twice, as a process stopping would: the lookup's read of the verification note, and
    // the release of the claim. The claim stays `settling`.
    const store = new MemoryStore()
    let failNoteRead = true
    let failRelease = true
    const get = store.get.bind(store)
    store.get = async (key) => {
      if (key.includes('svm:verified:') && failNoteRead) {
        failNoteRead = false
        throw new StoreUnavailableError({ detail: 'store down', retryAfter: 1 })
      }
      return get(key)
    }
    const compareAndSet = store.compareAndSet.bind(store)
    store.compareAndSet = async (key, expected, next, ttlMs) => {
      if (next === 'released' && failRelease) {
        failRelease = false
        throw new StoreUnavailableError({ detail: 'store down', retryAfter: 1 })
      }
      return compareAndSet(key, expected, next, ttlMs)
    }
    const { w, handler, runs } = await setup({
      rpcUrl: node.info.rpcUrl,
      stores: [store, store],
      timeout: 300,
      facilitator: losingAnswers,
    })
    const header = await signed(w.payer as never, await requirementOf(handler))
    const send = () => paying(handler, { [Wire.headers.paymentSignature]: header })
    expect((await send()).status).toBe(503)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
    // At once: the claim is fresh, so the retry is refused (the first attempt might still be running).
    expect((await send()).status).toBe(402)
    expect(runs()).toBe(0)
    // Once stale (4 × timeout + 1 s): taken over; the landed payment is found and served, once.
    await new Promise((resolve) => setTimeout(resolve, 2_500))
    const served = await send()
    expect(served.status, await served.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    expect((await send()).status).toBe(402)
    expect(runs()).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })

  it('the lookup serves only a transaction the facilitator verified for this requirement: a landed payment of another price is refused', async () => {
    const { w, fac, handler, other, runs } = await setup({
      rpcUrl: node.info.rpcUrl,
      stores: [new MemoryStore(), new MemoryStore()],
      otherAmount: '2000',
    })
    const header = await signed(w.payer as never, await requirementOf(handler))
    expect((await paying(handler, { [Wire.headers.paymentSignature]: header })).status).toBe(200)
    // The landed 1000 transaction, presented as paying the 2000 route: the facilitator refuses it (wrong
    // amount), and the chain holding it, successful, must not make the lookup serve it.
    const landed = Wire.decode(header) as { payload: Record<string, unknown> }
    const crafted = Wire.encode({
      x402Version: 2,
      resource: { url },
      accepted: await requirementOf(other),
      payload: landed.payload,
    })
    const response = await paying(other, { [Wire.headers.paymentSignature]: crafted })
    expect(response.status).toBe(402)
    expect(runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })

  it('a settlement that fails before anything landed is not served by the lookup (another landed payment of the payer does not match)', async () => {
    let failing = false
    const { w, fac, handler, runs } = await setup({
      rpcUrl: node.info.rpcUrl,
      facilitator: (real) => ({
        verify: (payload, requirements) => real.verify(payload, requirements),
        settle: async (payload, requirements) => {
          if (failing) throw new TypeError('fetch failed')
          return real.settle(payload, requirements)
        },
      }),
    })
    // A first payment lands: the payer's latest transaction is a successful payment of the same amount.
    const first = await signed(w.payer as never, await requirementOf(handler))
    expect((await paying(handler, { [Wire.headers.paymentSignature]: first })).status).toBe(200)
    failing = true
    const second = await signed(w.payer as never, await requirementOf(handler))
    const response = await paying(handler, { [Wire.headers.paymentSignature]: second })
    expect(response.status).toBe(503)
    expect(runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })

  it('malformed PAYMENT-SIGNATURE and X-PAYMENT values are problems, never a 500', async () => {
    const { handler, runs } = await setup()
    const requirement = await requirementOf(handler)
    const values = [
      'not base64!',
      btoa('not json'),
      Wire.encode([1, 2]),
      Wire.encode({ x402Version: 2, accepted: requirement }),
      Wire.encode({ x402Version: 2, accepted: requirement, payload: { transaction: 'AAAA' } }),
      Wire.encode({ x402Version: 2, accepted: requirement, payload: { transaction: '!!!' } }),
      Wire.encode({
        x402Version: 2,
        accepted: requirement,
        payload: { transaction: btoa('x'.repeat(2000)) },
      }),
      Wire.encode({
        x402Version: 1,
        scheme: 'exact',
        network: 'solana-devnet',
        payload: { transaction: 'AQID' },
      }),
    ]
    for (const name of [Wire.headers.paymentSignature, Wire.headers.v1Payment])
      for (const value of values) {
        const response = await paying(handler, { [name]: value })
        expect(response.status, `${name}: ${value.slice(0, 30)}`).toBeGreaterThanOrEqual(400)
        expect(response.status, `${name}: ${value.slice(0, 30)}`).toBeLessThan(500)
        await problemOf(response)
      }
    expect(runs()).toBe(0)
  })

  it('our client pays the route natively (Authorization: Payment) and through x402 (PAYMENT-SIGNATURE)', async () => {
    const { w, fac, handler, runs } = await setup()
    const sent: string[] = []
    const fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      if (request.headers.get('authorization')) sent.push('mpp')
      if (request.headers.get(Wire.headers.paymentSignature)) sent.push('x402')
      return handler(request)
    }) as typeof globalThis.fetch
    const method = svmClient({ signer: w.payer, rpcUrl: node.info.rpcUrl, feePayers: [fac.feePayer] })
    const native = createClient({ methods: [method], fetch })
    const viaX402 = createClient({
      methods: [method],
      protocols: [x402Plug({ svm: { rpcUrl: node.info.rpcUrl } })],
      fetch,
    })
    for (const client of [native, viaX402]) {
      const response = await client.fetch(url)
      expect(response.status).toBe(200)
      expect(receipt(response)).toMatchObject({ status: 'success', method: 'solana' })
    }
    expect(sent).toEqual(['mpp', 'x402'])
    expect(runs()).toBe(2)
    expect(fac.counts.settled).toBe(2)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(2000n)
  })

  it("@mppkit/method-solana's client (pull mode, same kit signer) pays the route natively through the facilitator", async () => {
    const { w, fac, handler, runs } = await setup()
    const client = createClient({
      methods: [methodSolanaClient({ signer: w.payer, rpcUrl: node.info.rpcUrl, network: 'devnet' })],
      protocols: [Protocol.mpp],
      fetch: (async (input: RequestInfo | URL, init?: RequestInit) =>
        handler(new Request(input, init))) as typeof globalThis.fetch,
    })
    const response = await client.fetch(url)
    if (response.status !== 200) expect(await response.text()).toBe('a 200')
    expect(runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })

  it('x402@1.2.0 (v1) pays with X-PAYMENT on solana-devnet', async () => {
    const { w, fac, handler, runs } = await setup()
    const unpaid = await handler(new Request(url))
    const body = (await unpaid.json()) as { accepts: Record<string, any>[] }
    const requirement = body.accepts.find((entry) => entry.network === 'solana-devnet')!
    let header: string
    try {
      header = await createPaymentHeader(w.payer as never, 1, requirement as never, {
        svmConfig: { rpcUrl: node.info.rpcUrl },
      })
    } catch (error) {
      console.warn(`[skip] x402@1.2.0 could not build an SVM payment here: ${(error as Error).message}`)
      return
    }
    const response = await paying(handler, { [Wire.headers.v1Payment]: header })
    if (response.status !== 200) expect(await response.text()).toBe('a 200')
    expect(runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    const settled = Wire.decode(response.headers.get(Wire.headers.v1PaymentResponse)!)
    expect(settled).toMatchObject({ success: true, network: 'solana-devnet' })
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })
})
