import { createHash, randomBytes } from 'node:crypto'
import { Challenge, Credential, MemoryStore, type Store } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import {
  type AuthenticatedLnd,
  createHodlInvoice,
  createInvoice,
  getChannelBalance,
  getInvoice,
  pay,
  settleHodlInvoice,
} from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { lndWallet, sessionClient } from '../src/client/index.js'
import { chargeServer, type SessionOptions, sessionServer } from '../src/server/index.js'
import { lndFor, nodeProxy, waitUntilReachable } from './helpers.js'

// The server's calls to its node are bounded in time, against the LND simulator through the unmodified
// `lightning` client: a node that stops answering (a TCP proxy that swallows everything from then on:
// nothing fails, calls just get no answer) gets a 503 within the bound; a refund that a payer holds
// (a hold invoice as its return invoice) leaves the close answered as "outcome unknown" within the
// bound, and is recorded once the node reports it, never paid twice.

const realm = 'lightning.test'
const secret = 'lightning-timeouts-test-secret-0123456789'
const url = 'https://lightning.test/resource'

let network: Lightning
const proxies: Array<Awaited<ReturnType<typeof nodeProxy>>> = []
beforeAll(async () => {
  network = await startLightning()
})
afterAll(async () => {
  await network?.stop()
  // After the nodes: the stalled calls end when their connections drop.
  for (const proxy of proxies) await proxy.close()
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** What `answer` gives, or `'no answer'` after `ms`: a missing bound fails the test instead of hanging it. */
const answered = <T>(answer: Promise<T>, ms = 5_000) =>
  Promise.race([answer, sleep(ms).then(() => 'no answer' as const)])

/** The payee node behind a proxy, reached once (its gRPC connection is up), to stall later. */
async function stallableNode() {
  const proxy = await nodeProxy(network.info.nodes.payee.socket)
  proxies.push(proxy)
  const lnd = lndFor(network.info.nodes.payee, proxy.socket)
  await waitUntilReachable(lnd)
  return { proxy, lnd }
}

/** A 503 + Retry-After answered within `boundMs` of `startedAt`, naming the node. */
async function expectNodeUnavailable(response: Response | 'no answer', startedAt: number, boundMs: number) {
  expect(response).not.toBe('no answer')
  const r = response as Response
  expect(Date.now() - startedAt).toBeLessThan(boundMs + 1_500)
  expect(r.status).toBe(503)
  expect(r.headers.get('retry-after')).toMatch(/^\d+$/)
  expect(await r.json()).toMatchObject({
    type: 'https://paymentauth.org/problems/service-unavailable',
    reason: 'node-unavailable',
  })
}

const submit = (
  handler: (r: Request) => Promise<Response>,
  challenge: Challenge.Challenge,
  payload: unknown,
) =>
  handler(
    new Request(url, { headers: { authorization: Credential.format({ challenge, payload } as never) } }),
  )

const challengeOf = (response: Response) => {
  expect(response.status).toBe(402)
  return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
}

const payerLnd = () => lndFor(network.info.nodes.payer)
/** Pays `invoice` from the payer node; its preimage. */
const payInvoice = async (invoice: string) => (await pay({ lnd: payerLnd(), request: invoice })).secret

describe('a node that stops answering', () => {
  it('charge: a 402 and a credential check are answered 503 + Retry-After within nodeTimeoutMs', async () => {
    const { proxy, lnd } = await stallableNode()
    const server = createServer({
      realm,
      secrets: [secret],
      methods: [chargeServer({ lnd, nodeTimeoutMs: 1_000 })],
    })
    let runs = 0
    const handler = server.protect({ offers: [{ method: 'lightning', request: { amount: '100' } }] }, () => {
      runs++
      return Response.json({ ok: true })
    })
    const challenge = challengeOf(await handler(new Request(url)))
    const preimage = await payInvoice(
      (challenge.request as { methodDetails: { invoice: string } }).methodDetails.invoice,
    )
    proxy.stall()
    let startedAt = Date.now()
    await expectNodeUnavailable(await answered(submit(handler, challenge, { preimage })), startedAt, 1_000)
    startedAt = Date.now()
    await expectNodeUnavailable(await answered(handler(new Request(url))), startedAt, 1_000)
    expect(runs).toBe(0)
    await server.close()
  })

  it('session: a 402 and an open credential check are answered 503 + Retry-After within nodeTimeoutMs', async () => {
    const { proxy, lnd } = await stallableNode()
    const server = createServer({
      realm,
      secrets: [secret],
      methods: [sessionServer({ lnd, depositSats: 10, nodeTimeoutMs: 1_000 })],
    })
    const handler = server.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
      () => Response.json({ ok: true }),
    )
    const challenge = challengeOf(await handler(new Request(url)))
    const preimage = await payInvoice((challenge.request as { depositInvoice: string }).depositInvoice)
    const returnInvoice = (await createInvoice({ lnd: payerLnd() })).request
    proxy.stall()
    let startedAt = Date.now()
    await expectNodeUnavailable(
      await answered(submit(handler, challenge, { action: 'open', preimage, returnInvoice })),
      startedAt,
      1_000,
    )
    startedAt = Date.now()
    await expectNodeUnavailable(await answered(handler(new Request(url))), startedAt, 1_000)
    await server.close()
  })
})

describe('a refund the payer holds', () => {
  it('answers the close 503 refund-in-flight within refundTimeoutMs; the sweep records it once the node has paid it, never paying twice', async () => {
    const store = new MemoryStore()
    const failures: unknown[] = []
    let offset = 0
    const server = createServer({
      realm,
      secrets: [secret],
      store,
      now: () => Date.now() + offset,
      onError: () => {},
      methods: [
        sessionServer({
          lnd: lndFor(network.info.nodes.payee),
          depositSats: 10,
          refundTimeoutMs: 500,
          idleTimeoutSeconds: 60,
          idleCheckIntervalMs: 50,
          onRefundFailure: (failure) => failures.push(failure),
        } satisfies SessionOptions),
      ],
    })
    const handler = server.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
      () => Response.json({ ok: true }),
    )
    // The return invoice is a hold invoice of the payer: the refund stays in flight until it settles it.
    const payer = payerLnd()
    const holdSecret = randomBytes(32).toString('hex')
    const id = createHash('sha256').update(Buffer.from(holdSecret, 'hex')).digest('hex')
    const wallet = lndWallet(payer)
    const receive = async () => ({
      invoice: (
        await createHodlInvoice({
          lnd: payer,
          id,
          expires_at: new Date(Date.now() + 86_400_000).toISOString(),
        })
      ).request,
    })
    const fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof globalThis.fetch
    const sessions = sessionClient({
      lnd: payer,
      network: 'regtest',
      fetch,
      wallet: { pay: wallet.pay, receive },
    })
    const client = createClient({ methods: [sessions], fetch })
    const balance = async () => (await getChannelBalance({ lnd: payer })).channel_balance
    const before = await balance()
    expect((await client.fetch(url)).status).toBe(200)
    const { sessionId } = [...sessions.sessions.values()][0]!

    const startedAt = Date.now()
    const closed = await answered(sessions.close(url))
    expect(closed).not.toBe('no answer')
    expect(Date.now() - startedAt).toBeLessThan(500 + 2_000)
    const response = closed as Response
    expect(response.status).toBe(503)
    expect(await response.json()).toMatchObject({ reason: 'refund-in-flight' })
    // The payment went on at the node: held by the payer, not given up.
    expect((await getInvoice({ lnd: payer, id })).is_held).toBe(true)
    const record = async () =>
      JSON.parse((await store.get(`mppkit:m:lightning/session:session:${sessionId}`))!) as Record<
        string,
        unknown
      >
    expect(await record()).toMatchObject({ status: 'closed', refundStatus: 'attempting', refundSats: '9' })
    // Past refundRecoverySeconds while it is still held: the sweep sees it in flight and leaves it.
    offset = 601_000
    await sleep(300)
    expect(await record()).toMatchObject({ refundStatus: 'attempting' })
    await settleHodlInvoice({ lnd: payer, secret: holdSecret })
    await expect.poll(async () => (await record()).refundStatus, { timeout: 5_000 }).toBe('succeeded')
    await sleep(300)
    // One refund of 9 sat (10 deposited, 1 spent), received once by the return invoice.
    expect(await balance()).toBe(before - 1)
    expect((await getInvoice({ lnd: payer, id })).received).toBe(9)
    expect(failures).toEqual([])
    await server.close()
  })
})

describe('sessionServer lifecycle', () => {
  it('forgets a server when it closes: sweepIdle no longer sweeps its store', async () => {
    let closed = false
    const touched: string[] = []
    class Watched extends MemoryStore {
      override async get(key: string) {
        if (closed) touched.push(key)
        return super.get(key)
      }
      override async putIfAbsent(key: string, value: string, ttlMs: number) {
        if (closed) touched.push(key)
        return super.putIfAbsent(key, value, ttlMs)
      }
    }
    const method = sessionServer({ lnd: lndFor(network.info.nodes.payee) as AuthenticatedLnd })
    const server = createServer({
      realm,
      secrets: [secret],
      store: new Watched() as Store,
      methods: [method],
    })
    // Set up with the server (its state made), then closed.
    server.protect({ offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] }, () =>
      Response.json({}),
    )
    await server.close()
    closed = true
    await method.sweepIdle()
    expect(touched).toEqual([])
  })
})
