import { createHash, randomBytes } from 'node:crypto'
import { Challenge, Credential, MemoryStore, Receipt, type Store, StoreUnavailableError } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import {
  type AuthenticatedLnd,
  createHodlInvoice,
  createInvoice,
  getChannelBalance,
  getInvoice,
  getInvoices,
  pay,
  settleHodlInvoice,
} from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodePaymentRequest, type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { lndWallet, sessionClient } from '../src/client/index.js'
import { type SessionMeter, type SessionOptions, sessionServer } from '../src/server/index.js'
import { lndFor, nodeProxy, waitUntilReachable } from './helpers.js'

const realm = 'lightning.test'
const secret = 'lightning-session-test-secret-0123456789'
const url = 'https://lightning.test/generate'

let network: Lightning
const proxies: Array<Awaited<ReturnType<typeof nodeProxy>>> = []
beforeAll(async () => {
  network = await startLightning()
})
afterAll(async () => {
  await network?.stop()
  // After the nodes: a proxy closed under a finished payment's open stream makes `lightning` throw.
  for (const proxy of proxies) await proxy.close()
})

type Setup = {
  options?: { [key in Exclude<keyof SessionOptions, 'lnd'>]?: SessionOptions[key] | undefined }
  store?: Store
  amount?: string
  stream?: number
  /** The payee node's socket the server uses (e.g. through a proxy the test turns off). */
  socket?: string
  /** The server's node connection (default: the payee's, on `socket`). */
  lnd?: AuthenticatedLnd
  /** What the server's onError receives. */
  errors?: unknown[]
  /** The server's clock. */
  now?: () => number
}

function setup({
  options = {},
  store = new MemoryStore(),
  amount = '1',
  stream,
  socket,
  lnd = lndFor(network.info.nodes.payee, socket),
  errors,
  now,
}: Setup = {}) {
  const method = sessionServer({
    depositSats: 10,
    ...options,
    lnd,
  } as SessionOptions)
  const server = createServer({
    realm,
    secrets: [secret],
    methods: [method],
    store,
    ...(errors ? { onError: (error: unknown) => errors.push(error) } : {}),
    ...(now ? { now } : {}),
  })
  let runs = 0
  const handler = server.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount } }] },
    (_request, payment) => {
      runs++
      const meter = payment.context as SessionMeter
      if (stream !== undefined) return meter.sse(Array.from({ length: stream }, (_, i) => `chunk ${i}`))
      return Response.json({ ok: true })
    },
  )
  const challenge = async () => {
    const response = await handler(new Request(url))
    expect(response.status).toBe(402)
    return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
  }
  const submit = (c: Challenge.Challenge, payload: unknown) =>
    handler(
      new Request(url, { headers: { authorization: Credential.format({ challenge: c, payload } as never) } }),
    )
  return { server, method, handler, challenge, submit, runs: () => runs }
}

const newClient = (handler: (r: Request) => Promise<Response>, extra: Record<string, unknown> = {}) => {
  const fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
    handler(new Request(input, init))) as typeof globalThis.fetch
  const sessions = sessionClient({
    lnd: lndFor(network.info.nodes.payer),
    network: 'regtest',
    fetch,
    ...extra,
  })
  return { sessions, client: createClient({ methods: [sessions], fetch }) }
}

const problemType = async (response: Response) => {
  expect(response.status).toBe(402)
  expect(response.headers.get('www-authenticate')).toMatch(/method="lightning"/)
  return ((await response.json()) as { type: string }).type.replace('https://paymentauth.org/problems/', '')
}

const payerBalance = async () =>
  (await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance

/** Waits until BOLT11 `invoice` has expired: from then on a node refuses to pay it. */
const untilExpired = async (invoice: string) => {
  const { timestamp, expirySeconds } = decodePaymentRequest(invoice)
  const left = (timestamp + expirySeconds) * 1000 - Date.now()
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, left) + 50))
}

describe('sessionServer', () => {
  it('opens, serves bearer requests against the balance, closes once and refunds deposit - spent', async () => {
    const { handler, runs } = setup()
    const { sessions, client } = newClient(handler)
    const before = await payerBalance()
    const opened = await client.fetch(url)
    expect(opened.status).toBe(200)
    const sessionId = Receipt.parse(opened.headers.get('payment-receipt')!).reference
    expect(sessionId).toMatch(/^[0-9a-f]{64}$/)
    for (let i = 0; i < 3; i++) {
      const response = await client.fetch(url)
      expect(response.status).toBe(200)
      expect(Receipt.parse(response.headers.get('payment-receipt')!).reference).toBe(sessionId)
    }
    expect(runs()).toBe(4)
    const closed = await sessions.close(url)
    expect(closed.status).toBe(200)
    expect(await closed.json()).toEqual({ status: 'closed', refundSats: 6, refundStatus: 'succeeded' })
    expect(Receipt.parse(closed.headers.get('payment-receipt')!)).toMatchObject({
      reference: sessionId,
      refundSats: 6,
      refundStatus: 'succeeded',
    })
    // Paid 10, got 6 back: the 4 served requests cost 4 sat.
    expect(await payerBalance()).toBe(before - 4)
    expect(runs()).toBe(4)
  })

  it('advertises the deposit, idle timeout and a fresh deposit invoice per challenge', async () => {
    const { challenge } = setup({ amount: '2', options: { depositSats: undefined, idleTimeoutSeconds: 300 } })
    const [a, b] = [await challenge(), await challenge()]
    expect(a.request).toMatchObject({ amount: '2', currency: 'sat', depositAmount: '40', idleTimeout: '300' })
    expect(a.request.paymentHash).not.toBe(b.request.paymentHash)
  })

  it('issues bearer and close challenges without a deposit invoice, and open/topUp ones with one', async () => {
    const { handler, submit, challenge } = setup({ amount: '5' })
    const { sessions, client } = newClient(handler)
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    const payeeInvoices = async () =>
      (await getInvoices({ lnd: lndFor(network.info.nodes.payee), limit: 1000 })).invoices.length
    const issued = await payeeInvoices()
    // A close presented on the consumed open challenge: refused, with a close challenge ("MUST be absent
    // for bearer and close challenges"), and the node issued no invoice for it.
    const close = { action: 'close', sessionId: state.sessionId, preimage: state.preimage }
    const refused = await submit(state.challenge!, close)
    expect(await problemType(refused)).toBe('lightning/unknown-challenge')
    const fresh = Challenge.parseAll(refused.headers.get('www-authenticate')!)[0]!
    expect(fresh.request).not.toHaveProperty('depositInvoice')
    expect(fresh.request).not.toHaveProperty('depositAmount')
    // "paymentHash: REQUIRED": the session's.
    expect(fresh.request).toMatchObject({ amount: '5', currency: 'sat', paymentHash: state.sessionId })
    expect(await payeeInvoices()).toBe(issued)
    // It cannot open a session (no invoice was paid), nor serve another session.
    const amountless = (await createInvoice({ lnd: lndFor(network.info.nodes.payer) })).request
    const other = randomBytes(32).toString('hex')
    expect(
      await problemType(await submit(fresh, { action: 'open', preimage: other, returnInvoice: amountless })),
    ).toBe('lightning/unknown-challenge')
    expect(
      await problemType(await submit(fresh, { action: 'bearer', sessionId: other, preimage: other })),
    ).toBe('lightning/unknown-challenge')
    // A bearer the balance covers (10 deposited, 5 spent) is served on it.
    const bearer = { action: 'bearer', sessionId: state.sessionId, preimage: state.preimage }
    expect((await submit(fresh, bearer)).status).toBe(200)
    // The balance is spent: the refusal of a bearer now needs a top-up, so its challenge has an invoice.
    const short = await submit(fresh, { ...bearer, note: 'again' })
    expect(await problemType(short)).toBe('lightning/unknown-challenge')
    const topUp = Challenge.parseAll(short.headers.get('www-authenticate')!)[0]!
    expect(topUp.request).toMatchObject({ depositAmount: '10', depositInvoice: expect.any(String) })
    // An unauthenticated request always gets a fresh invoice ("for every unauthenticated request").
    expect((await challenge()).request).toHaveProperty('depositInvoice')
    // The client closes through a close challenge: no invoice is issued for the close.
    const before = await payeeInvoices()
    const closed = await sessions.close(url)
    expect(await closed.json()).toEqual({ status: 'closed', refundSats: 0, refundStatus: 'skipped' })
    expect(await payeeInvoices()).toBe(before)
  })

  it('bills a stream per chunk, asks for a top-up when the balance runs out, and resumes after it', async () => {
    const { handler } = setup({ stream: 25 })
    const { sessions, client } = newClient(handler)
    const events: Array<[string, unknown]> = []
    const response = await client.fetch(url)
    expect(response.status).toBe(200)
    const chunks: string[] = []
    for await (const chunk of sessions.stream(response, url, (name, data) => events.push([name, data])))
      chunks.push(chunk)
    expect(chunks).toEqual(Array.from({ length: 25 }, (_, i) => `chunk ${i}`))
    const needs = events.filter(([name]) => name === 'payment-need-topup')
    expect(needs).toHaveLength(2)
    expect(needs[0]![1]).toMatchObject({ balanceSpent: 10, balanceRequired: 1 })
    expect(events.at(-1)).toEqual([
      'payment-receipt',
      expect.objectContaining({ method: 'lightning', status: 'success', spent: 25, units: 25 }),
    ])
    const closed = await sessions.close(url)
    expect(await closed.json()).toEqual({ status: 'closed', refundSats: 5, refundStatus: 'succeeded' })
  })

  it('ends a held stream with session-timeout when no top-up comes', async () => {
    const { handler } = setup({ stream: 20, options: { topUpTimeoutMs: 300 } })
    const { client } = newClient(handler)
    const text = await (await client.fetch(url)).text()
    expect(text.match(/^data: chunk/gm)).toHaveLength(10)
    expect(text).toContain('event: payment-need-topup')
    expect(text.trimEnd().split('\n\n').at(-1)).toMatch(
      /^event: session-timeout\ndata: \{"sessionId":"[0-9a-f]{64}","balanceSpent":10,"balanceRequired":1\}$/,
    )
  })

  it('closes an idle session from the server with a refund, and never reopens it', async () => {
    const { handler, server, submit, challenge } = setup({
      options: { idleTimeoutSeconds: 1, idleCheckIntervalMs: 100 },
    })
    const { sessions, client } = newClient(handler)
    const before = await payerBalance()
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    // Refunded 9 of the 10 sat deposit, once idle (1 s).
    await expect.poll(payerBalance, { timeout: 5_000, interval: 50 }).toBe(before - 1)
    const bearer = await submit(await challenge(), {
      action: 'bearer',
      sessionId: state.sessionId,
      preimage: state.preimage,
    })
    expect(await problemType(bearer)).toBe('lightning/session-closed')
    expect(await payerBalance()).toBe(before - 1)
    await server.close()
  })

  it('closing the server waits for the idle sweep in flight, which frees its lease for the other processes', async () => {
    let sweeping!: () => void
    const inSweep = new Promise<void>((resolve) => {
      sweeping = resolve
    })
    const lockKeys = new Set<string>()
    // A Store slow to read the index, so that the server closes while a sweep holds the lease.
    class SlowIndexStore extends MemoryStore {
      override async get(key: string) {
        if (key.includes('idle:slot:')) {
          sweeping()
          await new Promise((resolve) => setTimeout(resolve, 300))
        }
        return super.get(key)
      }
      override async putIfAbsent(key: string, value: string, ttlMs: number) {
        if (key.includes('idle:lock')) lockKeys.add(key)
        return super.putIfAbsent(key, value, ttlMs)
      }
    }
    const store = new SlowIndexStore()
    const { handler, server } = setup({ store, options: { idleTimeoutSeconds: 60, idleCheckIntervalMs: 50 } })
    const { client } = newClient(handler)
    expect((await client.fetch(url)).status).toBe(200)
    await inSweep
    await server.close()
    // Released by the time close resolves (a process exits right after): not held until the lease expires.
    expect(lockKeys.size).toBe(1)
    expect(await store.get([...lockKeys][0]!)).toBe('free')
  })

  it('reports a failed refund to the server onError by default, without preimage or invoice', async () => {
    const errors: unknown[] = []
    const { handler, server } = setup({ errors })
    const wallet = lndWallet(lndFor(network.info.nodes.payer))
    let returnInvoice = ''
    const { sessions, client } = newClient(handler, {
      wallet: {
        pay: wallet.pay,
        receive: async () => {
          const received = await wallet.receive({ expirySeconds: 2 })
          returnInvoice = received.invoice
          return received
        },
      },
    })
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    await untilExpired(returnInvoice)
    expect(await (await sessions.close(url)).json()).toMatchObject({ refundStatus: 'failed', refundSats: 9 })
    expect(errors).toHaveLength(1)
    const logged = `${(errors[0] as Error).message} ${JSON.stringify(errors[0])}`
    expect(logged).toContain(state.sessionId)
    expect(logged).toContain('9 sat')
    expect(logged).not.toContain(state.preimage)
    expect(logged).not.toContain(returnInvoice)
    await server.close()
  })

  it('answers a top-up while LND is down with 503 + Retry-After, consumes nothing, and credits a retry once', async () => {
    const proxy = await nodeProxy(network.info.nodes.payee.socket)
    proxies.push(proxy)
    const { handler, challenge, submit } = setup({ socket: proxy.socket })
    const { sessions, client } = newClient(handler)
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    const c = await challenge()
    const { preimage: topUpPreimage } = await lndWallet(lndFor(network.info.nodes.payer)).pay(
      c.request.depositInvoice as string,
      { maxFeeSats: 10 },
    )
    const topUp = { action: 'topUp', sessionId: state.sessionId, topUpPreimage }
    proxy.down()
    let down: Response
    try {
      down = await submit(c, topUp)
    } finally {
      proxy.up()
    }
    expect(down.status).toBe(503)
    expect(down.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(down.headers.get('payment-receipt')).toBeNull()
    expect(JSON.stringify(await down.json())).not.toContain(topUpPreimage)
    await waitUntilReachable(lndFor(network.info.nodes.payee, proxy.socket))
    const up = await submit(c, topUp)
    expect(up.status).toBe(200)
    expect(await up.json()).toEqual({ status: 'ok' })
    // 10 + 10 deposited, 1 spent: credited once, whatever the retries.
    expect(await (await submit(c, topUp)).json()).toEqual({ status: 'ok' })
    expect(await (await sessions.close(url)).json()).toEqual({
      status: 'closed',
      refundSats: 19,
      refundStatus: 'succeeded',
    })
  })

  it('the client: a wallet that cannot create the return invoice pays no deposit', async () => {
    const { handler } = setup()
    const wallet = lndWallet(lndFor(network.info.nodes.payer))
    const payOnly = {
      pay: wallet.pay,
      receive: async () => {
        throw new Error('permission denied (invoices:write)')
      },
    }
    const fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof globalThis.fetch
    const sessions = sessionClient({ wallet: payOnly, network: 'regtest', fetch })
    const client = createClient({ methods: [sessions], fetch })
    const before = await payerBalance()
    for (let i = 0; i < 2; i++) await expect(client.fetch(url)).rejects.toThrow(/permission denied/)
    expect(await payerBalance()).toBe(before)
    expect(sessions.sessions.size).toBe(0)
  })

  it('the client: a paid top-up answered 503 is sent again, never paid twice, also on the next top-up', async () => {
    const { handler } = setup()
    // The server is unavailable for top-up credentials `failures` times (before they reach it).
    let failures = 0
    const gated = async (request: Request) => {
      const authorization = request.headers.get('authorization')
      const action = authorization
        ? (Credential.parse(authorization).payload as { action?: string }).action
        : undefined
      if (action === 'topUp' && failures > 0) {
        failures--
        return new Response(JSON.stringify({ type: 'about:blank', status: 503 }), {
          status: 503,
          headers: { 'retry-after': '0', 'content-type': 'application/problem+json' },
        })
      }
      return handler(request)
    }
    const { sessions, client } = newClient(gated)
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    const before = await payerBalance()
    // Unavailable twice, then through: one invoice paid, credited once.
    failures = 2
    expect((await sessions.topUp(url)).status).toBe(200)
    expect(state.deposit).toBe(20n)
    expect(before - (await payerBalance())).toBe(10)
    // Unavailable on every attempt: the top-up stays pending; the next top-up sends it, paying nothing.
    failures = 3
    expect((await sessions.topUp(url)).status).toBe(503)
    expect(state.pendingTopUp?.sats).toBe(10n)
    expect(before - (await payerBalance())).toBe(20)
    expect((await sessions.topUp(url)).status).toBe(200)
    expect(state.pendingTopUp).toBeUndefined()
    expect(state.deposit).toBe(30n)
    expect(before - (await payerBalance())).toBe(20)
  })

  describe('a close whose process stopped part-way is finished by the idle sweep, refunding once', () => {
    /**
     * A MemoryStore on which the process "stops" at one write: the first session record written with
     * refund status `status` throws, either before it lands (`before`) or after (`after`: applied,
     * answer lost). What the stopped process would have done next never happens; the Store keeps what it
     * wrote so far.
     */
    const stoppingStore = (status: 'attempting' | 'succeeded', when: 'before' | 'after') => {
      const stopsAt = (key: string, next: string) => key.includes('session:') && next.includes(`"${status}"`)
      const store = new MemoryStore() as MemoryStore & { written: Set<string> }
      store.written = new Set()
      let armed = true
      const stop = () => {
        armed = false
        throw new StoreUnavailableError({ detail: 'the process stopped', retryAfter: 1 })
      }
      const compareAndSet = store.compareAndSet.bind(store)
      store.compareAndSet = async (key, expected, next, ttlMs) => {
        store.written.add(key)
        if (!armed || !stopsAt(key, next)) return compareAndSet(key, expected, next, ttlMs)
        if (when === 'after') await compareAndSet(key, expected, next, ttlMs)
        return stop()
      }
      const set = store.set.bind(store)
      store.set = async (key, value, ttlMs) => {
        store.written.add(key)
        if (!armed || !stopsAt(key, value)) return set(key, value, ttlMs)
        if (when === 'after') await set(key, value, ttlMs)
        return stop()
      }
      return store
    }
    const recovering = { idleTimeoutSeconds: 60, idleCheckIntervalMs: 50 }
    // The server's clock: moved past `refundRecoverySeconds` (600 by default) once the stopped state is checked.
    let offset = 0
    const now = () => Date.now() + offset

    /** Opens a session (10 sat deposit, 1 spent), closes it on `store` and returns what is needed after. */
    const openAndClose = async (store: Store, failures: unknown[]) => {
      offset = 0
      const { handler, server } = setup({
        store,
        options: { ...recovering, onRefundFailure: (f) => failures.push(f) },
        errors: [],
        now,
      })
      const { sessions, client } = newClient(handler)
      const before = await payerBalance()
      expect((await client.fetch(url)).status).toBe(200)
      const state = [...sessions.sessions.values()][0]!
      const closed = await sessions.close(url)
      return { server, before, closed, sessionId: state.sessionId }
    }

    const record = async (store: Store & { written: Set<string> }, sessionId: string) => {
      for (const key of store.written)
        if (key.endsWith(`session:${sessionId}`)) return JSON.parse((await store.get(key))!)
      return undefined
    }

    const waitFor = async (condition: () => Promise<boolean>, ms = 5_000) => {
      const deadline = Date.now() + ms
      while (!(await condition())) {
        if (Date.now() > deadline) throw new Error('timed out')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }

    it('stopped after closing, before the refund was claimed: swept, claimed and paid once', async () => {
      const store = stoppingStore('attempting', 'before')
      const failures: unknown[] = []
      const { server, before, closed, sessionId } = await openAndClose(store, failures)
      expect(closed.status).toBe(503)
      // Closed, refund pending: nothing refunded yet.
      expect(await record(store, sessionId)).toMatchObject({ status: 'closed', refundStatus: 'pending' })
      expect(await payerBalance()).toBe(before - 10)
      offset = 601_000
      await waitFor(async () => (await record(store, sessionId))?.refundStatus === 'succeeded')
      expect(await record(store, sessionId)).toMatchObject({ refundSats: '9', refundStatus: 'succeeded' })
      expect(await payerBalance()).toBe(before - 1)
      // And never again.
      await new Promise((resolve) => setTimeout(resolve, 400))
      expect(await payerBalance()).toBe(before - 1)
      expect(failures).toEqual([])
      await server.close()
    })

    it('stopped right after claiming it, before paying: the node never saw a payment, so it is paid now, once', async () => {
      const store = stoppingStore('attempting', 'after')
      const failures: unknown[] = []
      const { server, before, closed, sessionId } = await openAndClose(store, failures)
      expect(closed.status).toBe(503)
      expect(await record(store, sessionId)).toMatchObject({ refundStatus: 'attempting', refundSats: '9' })
      expect(await payerBalance()).toBe(before - 10)
      offset = 601_000
      await waitFor(async () => (await record(store, sessionId))?.refundStatus === 'succeeded')
      expect(await payerBalance()).toBe(before - 1)
      await new Promise((resolve) => setTimeout(resolve, 400))
      expect(await payerBalance()).toBe(before - 1)
      expect(failures).toEqual([])
      await server.close()
    })

    it('stopped after paying, before recording it: the node shows the payment, so nothing is paid again', async () => {
      const store = stoppingStore('succeeded', 'before')
      const failures: unknown[] = []
      const { server, before, closed, sessionId } = await openAndClose(store, failures)
      expect(closed.status).toBe(503)
      // The refund left (the payer has it) but the record still says attempting.
      expect(await payerBalance()).toBe(before - 1)
      expect(await record(store, sessionId)).toMatchObject({ refundStatus: 'attempting', refundSats: '9' })
      offset = 601_000
      await waitFor(async () => (await record(store, sessionId))?.refundStatus === 'succeeded')
      await new Promise((resolve) => setTimeout(resolve, 400))
      expect(await payerBalance()).toBe(before - 1)
      expect(failures).toEqual([])
      await server.close()
    })

    it('stopped after paying with a routing fee, before recording it: the refund less its fee budget is what the node shows, so succeeded', async () => {
      const saved = network
      network = await startLightning({ routingFee: { baseMsat: 2_000, ratePpm: 0 } })
      try {
        const store = stoppingStore('succeeded', 'before')
        const failures: unknown[] = []
        const { server, before, closed, sessionId } = await openAndClose(store, failures)
        expect(closed.status).toBe(503)
        expect(await record(store, sessionId)).toMatchObject({ refundStatus: 'attempting', refundSats: '9' })
        offset = 601_000
        await waitFor(async () => (await record(store, sessionId))?.refundStatus !== 'attempting')
        // The route costs 2 sat: no route without fees, none within 1 sat; 7 sat with a 2 sat fee limit.
        expect(await record(store, sessionId)).toMatchObject({
          refundStatus: 'succeeded',
          refundSats: '7',
          refundFeeSats: '2',
        })
        expect(failures).toEqual([])
        // The payer paid a 10 sat deposit (plus its own 2 sat fee) and got 7 back: one refund only.
        expect(await payerBalance()).toBe(before - 5)
        await server.close()
      } finally {
        await network.stop()
        network = saved
      }
    })

    it('a session the idle sweep finds idle, but a client closes first and stops part-way, stays findable and is refunded once', async () => {
      const store = stoppingStore('attempting', 'before')
      // The client's close runs right after the sweep has read the session as open and seen it idle.
      let race: (() => Promise<void>) | undefined
      const get = store.get.bind(store)
      store.get = async (key) => {
        const value = await get(key)
        if (key.includes('active:') && value === undefined && race) {
          const run = race
          race = undefined
          await run()
        }
        return value
      }
      offset = 0
      const failures: unknown[] = []
      const { handler, server } = setup({
        store,
        options: { idleTimeoutSeconds: 1, idleCheckIntervalMs: 50, onRefundFailure: (f) => failures.push(f) },
        errors: [],
        now,
      })
      const { sessions, client } = newClient(handler)
      const before = await payerBalance()
      expect((await client.fetch(url)).status).toBe(200)
      const { sessionId } = [...sessions.sessions.values()][0]!
      let clientClose: number | undefined
      race = async () => {
        clientClose = (await sessions.close(url)).status
      }
      await waitFor(async () => clientClose !== undefined)
      expect(clientClose).toBe(503)
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(await record(store, sessionId)).toMatchObject({ refundStatus: 'pending' })
      expect(await payerBalance()).toBe(before - 10)
      offset = 601_000
      await waitFor(async () => (await record(store, sessionId))?.refundStatus === 'succeeded')
      expect(await payerBalance()).toBe(before - 1)
      expect(failures).toEqual([])
      await server.close()
    })

    it('a claimed refund whose return invoice was paid another amount (a top-up given back) is recorded failed and reported, not succeeded', async () => {
      const store = stoppingStore('attempting', 'after')
      const failures: unknown[] = []
      const { server, before, closed, sessionId } = await openAndClose(store, failures)
      expect(closed.status).toBe(503)
      const { returnInvoice } = await record(store, sessionId)
      // The server gives a 3 sat top-up back to the return invoice before the refund went out.
      await pay({ lnd: lndFor(network.info.nodes.payee), request: returnInvoice, tokens: 3 })
      expect(await payerBalance()).toBe(before - 7)
      offset = 601_000
      await waitFor(async () => (await record(store, sessionId))?.refundStatus === 'failed')
      expect(failures).toEqual([{ sessionId, refundSats: 9, error: 'ReturnInvoicePaidAnotherAmount' }])
      expect(await payerBalance()).toBe(before - 7)
      await server.close()
    })

    it('a recent close is left to the process closing it (refundRecoverySeconds)', async () => {
      const store = stoppingStore('attempting', 'before')
      const { server, before, closed, sessionId } = await openAndClose(store, [])
      expect(closed.status).toBe(503)
      offset = 590_000
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(await record(store, sessionId)).toMatchObject({ refundStatus: 'pending' })
      expect(await payerBalance()).toBe(before - 10)
      await server.close()
    })
  })

  it('a refund whose outcome is unknown (the node connection dropped while it was in flight) is not reported failed: the sweep records what the node did, once', async () => {
    const proxy = await nodeProxy(network.info.nodes.payee.socket)
    proxies.push(proxy)
    const store = new MemoryStore()
    const failures: unknown[] = []
    let offset = 0
    const serverLnd = lndFor(network.info.nodes.payee, proxy.socket)
    const { handler, server } = setup({
      store,
      lnd: serverLnd,
      options: { idleTimeoutSeconds: 60, idleCheckIntervalMs: 50, onRefundFailure: (f) => failures.push(f) },
      errors: [],
      now: () => Date.now() + offset,
    })
    // The return invoice is a hold invoice of the payer: the refund stays in flight until it settles it.
    const payerLnd = lndFor(network.info.nodes.payer)
    const secret = randomBytes(32).toString('hex')
    const id = createHash('sha256').update(Buffer.from(secret, 'hex')).digest('hex')
    const wallet = lndWallet(payerLnd)
    const receive = async () => ({
      invoice: (
        await createHodlInvoice({
          lnd: payerLnd,
          id,
          expires_at: new Date(Date.now() + 86_400_000).toISOString(),
        })
      ).request,
    })
    // The last credential the client sent: the close's, once it has closed.
    let sent = ''
    const { sessions, client } = newClient(
      (request) => {
        sent = request.headers.get('authorization') ?? sent
        return handler(request)
      },
      { wallet: { pay: wallet.pay, receive } },
    )
    const before = await payerBalance()
    expect((await client.fetch(url)).status).toBe(200)
    const { sessionId } = [...sessions.sessions.values()][0]!
    const closing = sessions.close(url)
    await expect
      .poll(async () => (await getInvoice({ lnd: payerLnd, id })).is_held, { timeout: 5_000 })
      .toBe(true)
    proxy.down()
    const closed = await closing
    // The refund goes through after all.
    await settleHodlInvoice({ lnd: payerLnd, secret })
    expect(await payerBalance()).toBe(before - 1)
    // Not answered nor reported as failed: an operator told so would refund a second time.
    expect(closed.status).toBe(503)
    expect(failures).toEqual([])
    // Value may have moved: no receipt, and no Retry-After inviting the same close again (the close's
    // challenge stays consumed: "Retrying a credential after a network failure MUST NOT result in
    // double-crediting or double-refunding").
    expect(closed.headers.get('payment-receipt')).toBeNull()
    expect(closed.headers.get('retry-after')).toBeNull()
    const close = Credential.parse(sent)
    expect(close.payload).toMatchObject({ action: 'close', sessionId })
    const record = async () =>
      JSON.parse((await store.get(`mppkit:m:lightning/session:session:${sessionId}`))!) as Record<
        string,
        unknown
      >
    expect(await record()).toMatchObject({ status: 'closed', refundStatus: 'attempting', refundSats: '9' })
    // The idle sweep asks the node once the close is old enough: paid, so recorded succeeded, never paid again.
    proxy.up()
    // The server's own connection (its refusal's fresh challenge carries a new invoice).
    await waitUntilReachable(serverLnd)
    // The same close credential presented again (node back): refused as used, and nothing paid again
    // (the balance is checked once the sweep has recorded the refund).
    expect(await problemType(await handler(new Request(url, { headers: { authorization: sent } })))).toBe(
      'lightning/unknown-challenge',
    )
    expect(await record()).toMatchObject({ status: 'closed', refundStatus: 'attempting', refundSats: '9' })
    offset = 601_000
    await expect.poll(async () => (await record()).refundStatus, { timeout: 5_000 }).toBe('succeeded')
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await payerBalance()).toBe(before - 1)
    expect(failures).toEqual([])
    await server.close()
  })

  it('keeps a session active longer than the retention: its keys are refreshed, and its close refunds it', async () => {
    const store = new MemoryStore()
    const { handler, server } = setup({
      store,
      options: { retentionSeconds: 1, idleTimeoutSeconds: 60, idleCheckIntervalMs: 50 },
    })
    const { sessions, client } = newClient(handler)
    const before = await payerBalance()
    expect((await client.fetch(url)).status).toBe(200)
    const { sessionId } = [...sessions.sessions.values()][0]!
    // Active for three times the retention.
    for (let i = 0; i < 6; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect((await client.fetch(url)).status).toBe(200)
    }
    // The record, the balance and the idle sweep's index entry all outlived the retention.
    const key = (name: string) => `mppkit:m:lightning/session:${name}`
    expect(await store.get(key(`session:${sessionId}`))).toBeDefined()
    expect(await store.get(key(`deposit:${sessionId}`))).toBe('10')
    const slot = await store.get(key(`idle:at:${sessionId}`))
    expect(await store.get(key(`idle:slot:${slot}`))).toBe(sessionId)
    const closed = await sessions.close(url)
    expect(await closed.json()).toEqual({ status: 'closed', refundSats: 3, refundStatus: 'succeeded' })
    expect(before - (await payerBalance())).toBe(7)
    await server.close()
  })

  it('never pays a refund without a fee limit: a maxRefundFeeSats that gives no whole number of satoshis is refused', async () => {
    const errors: unknown[] = []
    // `lightning`'s pay without `max_fee` lets LND spend up to Number.MAX_SAFE_INTEGER sat on fees.
    const { handler } = setup({ options: { maxRefundFeeSats: (() => undefined) as never }, errors })
    const { sessions, client } = newClient(handler)
    const before = await payerBalance()
    expect((await client.fetch(url)).status).toBe(200)
    const closed = await sessions.close(url)
    expect(closed.status).toBe(503)
    expect(await payerBalance()).toBe(before - 10)
    expect(String(errors.at(-1))).toMatch(/maxRefundFeeSats must give a whole number of satoshis/)
  })

  it('keeps a session closed when its return invoice cannot be paid, and logs without secrets', async () => {
    const failures: unknown[] = []
    const { handler, submit, challenge } = setup({ options: { onRefundFailure: (f) => failures.push(f) } })
    const wallet = lndWallet(lndFor(network.info.nodes.payer))
    // A return invoice that expires soon after the open (within 1 to 2 s: BOLT11 counts whole seconds).
    let returnInvoice = ''
    const { sessions, client } = newClient(handler, {
      wallet: {
        pay: wallet.pay,
        receive: async () => {
          const received = await wallet.receive({ expirySeconds: 2 })
          returnInvoice = received.invoice
          return received
        },
      },
    })
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    await untilExpired(returnInvoice)
    const closed = await sessions.close(url)
    expect(await closed.json()).toEqual({ status: 'closed', refundSats: 9, refundStatus: 'failed' })
    expect(failures).toEqual([{ sessionId: state.sessionId, refundSats: 9, error: expect.any(String) }])
    expect(JSON.stringify(failures)).not.toContain(state.preimage)
    const again = await submit(await challenge(), {
      action: 'close',
      sessionId: state.sessionId,
      preimage: state.preimage,
    })
    expect(await problemType(again)).toBe('lightning/session-closed')
  })

  it('answers a consumed close or topUp presented again with the original response, acting once', async () => {
    const { handler, challenge, submit } = setup()
    const { sessions, client } = newClient(handler)
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    // A top-up credential, sent twice.
    const c = await challenge()
    const payer = lndFor(network.info.nodes.payer)
    const { preimage: topUpPreimage } = await lndWallet(payer).pay(c.request.depositInvoice as string, {
      maxFeeSats: 10,
    })
    const topUp = { action: 'topUp', sessionId: state.sessionId, topUpPreimage }
    const first = await submit(c, topUp)
    const second = await submit(c, topUp)
    expect([first.status, second.status]).toEqual([200, 200])
    expect([await first.json(), await second.json()]).toEqual([{ status: 'ok' }, { status: 'ok' }])
    // Close twice with one credential: one refund (10 + 10 - 1 spent).
    const before = await payerBalance()
    const close = await challenge()
    const payload = { action: 'close', sessionId: state.sessionId, preimage: state.preimage }
    const [a, b] = [await submit(close, payload), await submit(close, payload)]
    expect(await a.json()).toEqual({ status: 'closed', refundSats: 19, refundStatus: 'succeeded' })
    expect(await b.json()).toEqual({ status: 'closed', refundSats: 19, refundStatus: 'succeeded' })
    expect(await payerBalance()).toBe(before + 19)
  })

  it('answers bad credentials with the spec problems and a fresh challenge, never a 500', async () => {
    const { handler, challenge, submit, runs } = setup()
    const { sessions, client } = newClient(handler)
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    const other = randomBytes(32).toString('hex')
    expect(
      await problemType(
        await submit(await challenge(), { action: 'bearer', sessionId: state.sessionId, preimage: other }),
      ),
    ).toBe('lightning/invalid-preimage')
    expect(
      await problemType(
        await submit(await challenge(), { action: 'bearer', sessionId: other, preimage: other }),
      ),
    ).toBe('lightning/session-not-found')
    expect(
      await problemType(
        await submit(await challenge(), { action: 'bearer', sessionId: 'xyz', preimage: other }),
      ),
    ).toBe('lightning/malformed-credential')
    expect(await problemType(await submit(await challenge(), { action: 'refund' }))).toBe(
      'lightning/malformed-credential',
    )
    // Preimages of the wrong length, case or encoding.
    for (const preimage of [
      state.preimage.slice(2),
      `${state.preimage}00`,
      state.preimage.toUpperCase(),
      Buffer.from(state.preimage, 'hex').toString('base64'),
    ])
      expect(
        await problemType(
          await submit(await challenge(), { action: 'bearer', sessionId: state.sessionId, preimage }),
        ),
      ).toBe('lightning/malformed-credential')
    expect(
      await problemType(
        await submit(await challenge(), { action: 'topUp', sessionId: state.sessionId, topUpPreimage: 7 }),
      ),
    ).toBe('lightning/malformed-credential')
    // An open whose return invoice carries an amount, and one whose preimage is not the deposit's.
    const c = await challenge()
    const payer = lndFor(network.info.nodes.payer)
    const { preimage } = await lndWallet(payer).pay(c.request.depositInvoice as string, { maxFeeSats: 10 })
    const withAmount = (await createInvoice({ lnd: payer, tokens: 5 })).request
    expect(await problemType(await submit(c, { action: 'open', preimage, returnInvoice: withAmount }))).toBe(
      'lightning/invalid-return-invoice',
    )
    // Return invoices that are not BOLT11: bech32-looking garbage, a wrong checksum.
    const amountless = (await createInvoice({ lnd: payer })).request
    for (const returnInvoice of [
      `lnbcrt1${'q'.repeat(60)}`,
      `${amountless.slice(0, -6)}${amountless.slice(-6) === 'qqqqqq' ? 'pppppp' : 'qqqqqq'}`,
    ])
      expect(await problemType(await submit(c, { action: 'open', preimage, returnInvoice }))).toBe(
        'lightning/invalid-return-invoice',
      )
    expect(
      await problemType(await submit(c, { action: 'open', preimage, returnInvoice: 'not an invoice' })),
    ).toBe('lightning/malformed-credential')
    expect(
      await problemType(await submit(c, { action: 'open', preimage: other, returnInvoice: amountless })),
    ).toBe('lightning/invalid-preimage')
    // A topUp whose preimage is an old deposit's.
    expect(
      await problemType(
        await submit(await challenge(), {
          action: 'topUp',
          sessionId: state.sessionId,
          topUpPreimage: state.preimage,
        }),
      ),
    ).toBe('lightning/invalid-preimage')
    expect(runs()).toBe(1)
  })

  it('keeps the sessions of each server it is given to in that server store', async () => {
    const method = sessionServer({ lnd: lndFor(network.info.nodes.payee), depositSats: 10 })
    const route = { offers: [{ method: 'lightning', intent: 'session' as const, request: { amount: '1' } }] }
    const [a, b] = [new MemoryStore(), new MemoryStore()].map((store) =>
      createServer({ realm, secrets: [secret], methods: [method], store }).protect(route, () =>
        Response.json({ ok: true }),
      ),
    )
    const { sessions, client } = newClient(a!)
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    const challenge = Challenge.parseAll((await b!(new Request(url))).headers.get('www-authenticate')!)[0]!
    const bearer = await b!(
      new Request(url, {
        headers: {
          authorization: Credential.format({
            challenge,
            payload: { action: 'bearer', sessionId: state.sessionId, preimage: state.preimage },
          }),
        },
      }),
    )
    expect(await problemType(bearer)).toBe('lightning/session-not-found')
  })

  it('checks the deposit limit for a session on a second server, before paying', async () => {
    const a = setup().handler
    const other = createServer({
      realm: 'other.test',
      secrets: [secret],
      methods: [sessionServer({ lnd: lndFor(network.info.nodes.payee), depositSats: 20 })],
    }).protect({ offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] }, () =>
      Response.json({ ok: true }),
    )
    const route = ((input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      return new URL(request.url).host === 'other.test' ? other(request) : a(request)
    }) as typeof globalThis.fetch
    const sessions = sessionClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      fetch: route,
    })
    const client = createClient({ methods: [sessions], fetch: route, policy: { maxDeposit: { sat: 15n } } })
    expect((await client.fetch(url)).status).toBe(200)
    const before = await payerBalance()
    await expect(client.fetch('https://other.test/generate')).rejects.toThrow(/deposit/)
    expect(await payerBalance()).toBe(before)
    expect(sessions.sessions.size).toBe(1)
  })
  /** A MemoryStore whose next balance credit (an open's or a top-up's) fails, as a Store outage would. */
  const failingCreditStore = () => {
    const store = new MemoryStore() as MemoryStore & { failNextCredit: () => void }
    let armed = false
    const credits = (key: string, delta: bigint) => armed && key.includes('available:') && delta > 0n
    const fail = (): never => {
      armed = false
      throw new StoreUnavailableError({ detail: 'store down', retryAfter: 1 })
    }
    const increment = store.increment.bind(store)
    store.increment = async (key, delta, options) =>
      credits(key, delta) ? fail() : increment(key, delta, options)
    const atomic = store.atomic.bind(store)
    store.atomic = async (steps) =>
      steps.some((step) => step.op === 'increment' && credits(step.key, step.delta)) ? fail() : atomic(steps)
    store.failNextCredit = () => {
      armed = true
    }
    return store
  }

  describe('a top-up whose session closes between its verification and its settlement', () => {
    /**
     * Holds the server node's lookup of one invoice (a slow node): a top-up verified on an open session
     * waits there, past the open check, until `release`, so that a close runs in between. The lookup is
     * held on `lnd`, a copy of `shared`: the file's shared client (other tests use it) is left as it is.
     */
    const holdLookup = (shared: AuthenticatedLnd) => {
      const lnd: AuthenticatedLnd = { ...shared, default: Object.create(shared.default) }
      let held: string | undefined
      let reached!: () => void
      let release!: () => void
      const atHold = new Promise<void>((resolve) => {
        reached = resolve
      })
      const released = new Promise<void>((resolve) => {
        release = resolve
      })
      const lookup = lnd.default.lookupInvoice.bind(lnd.default)
      lnd.default.lookupInvoice = (args: { r_hash: Buffer }, callback: unknown) => {
        if (held === undefined || Buffer.from(args.r_hash).toString('hex') !== held)
          return lookup(args, callback)
        held = undefined
        reached()
        void released.then(() => lookup(args, callback))
      }
      return {
        lnd,
        hold: (paymentHash: string) => {
          held = paymentHash
        },
        atHold,
        release,
      }
    }

    /**
     * A MemoryStore that runs `onClose` right after a close marks the session closed, before that close
     * sweeps and claims the refund.
     */
    const pausingStore = () => {
      const store = new MemoryStore() as MemoryStore & { onClose?: (() => Promise<void>) | undefined }
      const compareAndSet = store.compareAndSet.bind(store)
      store.compareAndSet = async (key, expected, next, ttlMs) => {
        const swapped = await compareAndSet(key, expected, next, ttlMs)
        const run = store.onClose
        if (swapped && run && key.includes('session:') && next.includes('"refundStatus":"pending"')) {
          store.onClose = undefined
          await run()
        }
        return swapped
      }
      return store
    }

    /**
     * Opens a session (deposit 10, one request at `amount`), pays a top-up invoice and sends its topUp,
     * which passes the open check; then the session is closed, and the top-up settles after the whole
     * close or (`duringClose`) after the close marked the session closed, before its refund is claimed.
     */
    const race = async ({ amount, duringClose = false }: { amount: string; duringClose?: boolean }) => {
      const held = holdLookup(lndFor(network.info.nodes.payee))
      const { lnd } = held
      const store = pausingStore()
      const failures: unknown[] = []
      const t = setup({ amount, lnd, store, options: { onRefundFailure: (f) => failures.push(f) } })
      const { sessions, client } = newClient(t.handler)
      const before = await payerBalance()
      expect((await client.fetch(url)).status).toBe(200)
      const state = [...sessions.sessions.values()][0]!
      const c = await t.challenge()
      const payer = lndFor(network.info.nodes.payer)
      const { preimage: topUpPreimage } = await lndWallet(payer).pay(c.request.depositInvoice as string, {
        maxFeeSats: 10,
      })
      const topUp = { action: 'topUp', sessionId: state.sessionId, topUpPreimage }
      held.hold(c.request.paymentHash as string)
      const answer = t.submit(c, topUp)
      await held.atHold
      if (duringClose)
        store.onClose = async () => {
          held.release()
          await answer
        }
      const closed = await t.submit(await t.challenge(), {
        action: 'close',
        sessionId: state.sessionId,
        preimage: state.preimage,
      })
      held.release()
      const refused = await answer
      // The top-up's deposit presented as an open on its own challenge (the core gives a challenge back
      // when its settle throws).
      const reuse = async () =>
        t.submit(c, {
          action: 'open',
          preimage: topUpPreimage,
          returnInvoice: (await createInvoice({ lnd: payer })).request,
        })
      return { ...t, before, state, c, topUp, topUpPreimage, closed, refused, reuse, failures }
    }
    const sessionClosed = 'https://paymentauth.org/problems/lightning/session-closed'

    it('the close refunded nothing: refused, paid back to the return invoice once, and its deposit never opens a session', async () => {
      const r = await race({ amount: '10' })
      expect(await r.closed.json()).toEqual({ status: 'closed', refundSats: 0, refundStatus: 'skipped' })
      expect(r.refused.status).toBe(402)
      const body = await r.refused.json()
      expect(body).toMatchObject({ type: sessionClosed, refundSats: 10, refundStatus: 'succeeded' })
      expect(JSON.stringify(body)).not.toContain(r.topUpPreimage)
      // Paid the 10 sat deposit (spent on the one request) and the 10 sat top-up, which came back.
      expect(r.before - (await payerBalance())).toBe(10)
      // The same credential again is answered the same, paying nothing back twice.
      const again = await r.submit(r.c, r.topUp)
      expect(again.status).toBe(402)
      expect(await again.json()).toEqual(body)
      expect(await problemType(await r.reuse())).toBe('lightning/unknown-challenge')
      expect(r.runs()).toBe(1)
      expect(r.before - (await payerBalance())).toBe(10)
      expect(r.failures).toEqual([])
    })

    it('the close paid its return invoice: refused, reported and recorded as not refunded, and its deposit never opens a session', async () => {
      const r = await race({ amount: '1' })
      expect(await r.closed.json()).toEqual({ status: 'closed', refundSats: 9, refundStatus: 'succeeded' })
      const body = await r.refused.json()
      expect(body).toMatchObject({ type: sessionClosed, refundSats: 10, refundStatus: 'failed' })
      // A BOLT11 invoice is paid once: the top-up cannot go back through it, so the operator is told.
      expect(r.failures).toEqual([
        {
          sessionId: r.state.sessionId,
          refundSats: 10,
          error: 'ReturnInvoiceUsed',
          topUpPaymentHash: r.c.request.paymentHash,
        },
      ])
      expect(JSON.stringify([body, r.failures])).not.toContain(r.topUpPreimage)
      // Paid 10 + 10, got the 9 unspent back; the top-up is held for the operator, never used again.
      expect(r.before - (await payerBalance())).toBe(11)
      expect(await (await r.submit(r.c, r.topUp)).json()).toEqual(body)
      expect(r.failures).toHaveLength(1)
      expect(await problemType(await r.reuse())).toBe('lightning/unknown-challenge')
      expect(r.runs()).toBe(1)
      expect(r.before - (await payerBalance())).toBe(11)
    })

    it('the close had not claimed its refund yet: refused, and the one refund payment carries the top-up', async () => {
      const r = await race({ amount: '1', duringClose: true })
      const body = await r.refused.json()
      expect(body).toMatchObject({ type: sessionClosed, refundSats: 10, refundStatus: 'pending' })
      // 9 unspent + the 10 sat top-up, in the close's refund.
      expect(await r.closed.json()).toEqual({ status: 'closed', refundSats: 19, refundStatus: 'succeeded' })
      expect(r.before - (await payerBalance())).toBe(1)
      expect(await problemType(await r.reuse())).toBe('lightning/unknown-challenge')
      expect(r.runs()).toBe(1)
      expect(r.before - (await payerBalance())).toBe(1)
      expect(r.failures).toEqual([])
    })

    it('the close refunded nothing and the top-up given back has an unknown outcome (the node connection dropped while it was in flight): answered pending, never reported failed, the sweep records what the node did, once', async () => {
      const proxy = await nodeProxy(network.info.nodes.payee.socket)
      proxies.push(proxy)
      const held = holdLookup(lndFor(network.info.nodes.payee, proxy.socket))
      const { lnd } = held
      const store = new MemoryStore()
      const failures: unknown[] = []
      const errors: unknown[] = []
      let offset = 0
      const t = setup({
        amount: '10',
        lnd,
        store,
        options: {
          idleTimeoutSeconds: 60,
          idleCheckIntervalMs: 50,
          onRefundFailure: (f) => failures.push(f),
        },
        errors,
        now: () => Date.now() + offset,
      })
      // The return invoice is a hold invoice of the payer: the top-up given back stays in flight until it
      // settles it.
      const payer = lndFor(network.info.nodes.payer)
      const secret = randomBytes(32).toString('hex')
      const id = createHash('sha256').update(Buffer.from(secret, 'hex')).digest('hex')
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
      const { sessions, client } = newClient(t.handler, { wallet: { pay: wallet.pay, receive } })
      const before = await payerBalance()
      expect((await client.fetch(url)).status).toBe(200)
      const state = [...sessions.sessions.values()][0]!
      const c = await t.challenge()
      const { preimage: topUpPreimage } = await wallet.pay(c.request.depositInvoice as string, {
        maxFeeSats: 10,
      })
      const topUp = { action: 'topUp', sessionId: state.sessionId, topUpPreimage }
      held.hold(c.request.paymentHash as string)
      const answer = t.submit(c, topUp)
      await held.atHold
      const closed = await t.submit(await t.challenge(), {
        action: 'close',
        sessionId: state.sessionId,
        preimage: state.preimage,
      })
      expect(await closed.json()).toEqual({ status: 'closed', refundSats: 0, refundStatus: 'skipped' })
      held.release()
      // The top-up goes back to the return invoice: held there, then the server's node connection drops.
      await expect
        .poll(async () => (await getInvoice({ lnd: payer, id })).is_held, { timeout: 5_000 })
        .toBe(true)
      proxy.down()
      // (Answered 503: the refusal's fresh challenge needs an invoice from the node, unreachable.)
      expect((await answer).status).toBe(503)
      // It arrives after all.
      await settleHodlInvoice({ lnd: payer, secret })
      expect(before - (await payerBalance())).toBe(10)
      // Not reported as failed: an operator told so would refund it a second time.
      expect(failures).toEqual([])
      const claim = async () =>
        JSON.parse(
          (await store.get(`mppkit:m:lightning/session:funds:${c.request.paymentHash as string}`))!,
        ) as Record<string, unknown>
      expect(await claim()).toMatchObject({ state: 'refunding' })
      proxy.up()
      await waitUntilReachable(lnd)
      // Nor answered as failed: the same credential again is told the refund is pending.
      expect(await (await t.submit(c, topUp)).json()).toMatchObject({
        type: 'https://paymentauth.org/problems/lightning/session-closed',
        refundSats: 10,
        refundStatus: 'pending',
      })
      // The idle sweep asks the node once the attempt is old enough: paid, so recorded succeeded, never
      // paid again.
      offset = 601_000
      await expect.poll(async () => (await claim()).refundStatus, { timeout: 5_000 }).toBe('succeeded')
      expect(await claim()).toMatchObject({ state: 'refused' })
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(before - (await payerBalance())).toBe(10)
      expect(failures).toEqual([])
      expect(errors).toEqual([])
      // The same credential again (its challenge still unexpired) is answered from the record.
      offset = 0
      expect(await (await t.submit(c, topUp)).json()).toMatchObject({
        refundSats: 10,
        refundStatus: 'succeeded',
      })
      await t.server.close()
    })
  })

  it('a Store failure part-way through a top-up or an open leaves its deposit to that action: the other cannot use it, a retry settles it once', async () => {
    const store = failingCreditStore()
    const { handler, challenge, submit, runs } = setup({ store })
    const { sessions, client } = newClient(handler)
    const before = await payerBalance()
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    const payer = lndFor(network.info.nodes.payer)
    const returnInvoice = (await createInvoice({ lnd: payer })).request
    // A top-up whose credit fails: its deposit cannot open a session; its retry credits it, once.
    const c = await challenge()
    const { preimage: topUpPreimage } = await lndWallet(payer).pay(c.request.depositInvoice as string, {
      maxFeeSats: 10,
    })
    const topUp = { action: 'topUp', sessionId: state.sessionId, topUpPreimage }
    store.failNextCredit()
    expect((await submit(c, topUp)).status).toBe(503)
    expect(
      await problemType(await submit(c, { action: 'open', preimage: topUpPreimage, returnInvoice })),
    ).toBe('lightning/unknown-challenge')
    const credited = await submit(c, topUp)
    expect(credited.status).toBe(200)
    expect(await credited.json()).toEqual({ status: 'ok' })
    // An open whose session write fails: its deposit cannot top up a session; its retry opens it.
    const o = await challenge()
    const { preimage } = await lndWallet(payer).pay(o.request.depositInvoice as string, { maxFeeSats: 10 })
    const open = { action: 'open', preimage, returnInvoice }
    store.failNextCredit()
    expect((await submit(o, open)).status).toBe(503)
    expect(
      await problemType(
        await submit(o, { action: 'topUp', sessionId: state.sessionId, topUpPreimage: preimage }),
      ),
    ).toBe('lightning/unknown-challenge')
    expect((await submit(o, open)).status).toBe(200)
    // The first session: 10 + 10 deposited, 1 spent.
    expect(await (await sessions.close(url)).json()).toEqual({
      status: 'closed',
      refundSats: 19,
      refundStatus: 'succeeded',
    })
    expect(runs()).toBe(2)
    // Paid 10 + 10 + 10, got 19 back; the second session holds its 10 (1 spent).
    expect(before - (await payerBalance())).toBe(11)
  })

  it('a top-up cut short by a Store failure, whose session then closes, is given back by its retry', async () => {
    const store = failingCreditStore()
    const { handler, challenge, submit, runs } = setup({ store, amount: '10' })
    const { sessions, client } = newClient(handler)
    const before = await payerBalance()
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.sessions.values()][0]!
    const payer = lndFor(network.info.nodes.payer)
    const c = await challenge()
    const { preimage: topUpPreimage } = await lndWallet(payer).pay(c.request.depositInvoice as string, {
      maxFeeSats: 10,
    })
    const topUp = { action: 'topUp', sessionId: state.sessionId, topUpPreimage }
    store.failNextCredit()
    expect((await submit(c, topUp)).status).toBe(503)
    expect(await (await sessions.close(url)).json()).toEqual({
      status: 'closed',
      refundSats: 0,
      refundStatus: 'skipped',
    })
    const retried = await submit(c, topUp)
    expect(await retried.json()).toMatchObject({
      type: 'https://paymentauth.org/problems/lightning/session-closed',
      refundSats: 10,
      refundStatus: 'succeeded',
    })
    // Paid the 10 sat deposit (spent) and the 10 sat top-up, which came back.
    expect(before - (await payerBalance())).toBe(10)
    const returnInvoice = (await createInvoice({ lnd: payer })).request
    expect(
      await problemType(await submit(c, { action: 'open', preimage: topUpPreimage, returnInvoice })),
    ).toBe('lightning/unknown-challenge')
    expect(runs()).toBe(1)
  })
})
