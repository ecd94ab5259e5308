import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { MemoryStore } from '@mppkit/core'
import { create as createClient, type Policy, PolicyError } from '@mppkit/core/client'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import { getChannelBalance } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { pay } from '../src/cli.js'
import { chargeClient, sessionClient } from '../src/client/index.js'
import { chargeServer, sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

// Routing fees under the client's spend policy, on the LND simulator with a routing node between payer
// and payee charging 2 sat + 1% (3 sat on 100 sat; the default fee limit of 100 sat is 10 sat).
const realm = 'fees.test'
const secret = 'lightning-fees-test-secret-0123456789abc'

let network: Lightning
let http: HttpServer
let base: string
let served = 0
beforeAll(async () => {
  network = await startLightning({ routingFee: { baseMsat: 2_000, ratePpm: 10_000 } })
  const server = createServer({
    realm,
    secrets: [secret],
    methods: [chargeServer({ lnd: lndFor(network.info.nodes.payee) })],
  })
  const charge = (amount: string) =>
    server.protect({ offers: [{ method: 'lightning', request: { amount } }] }, () => {
      served++
      return new Response('paid')
    })
  const routes: Record<string, ReturnType<typeof charge>> = { '/100': charge('100'), '/150': charge('150') }
  http = createHttpServer(toNodeListener((request) => routes[new URL(request.url).pathname]!(request)))
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
})
afterAll(async () => {
  http?.closeAllConnections()
  await new Promise((resolve) => http?.close(resolve))
  await network?.stop()
})

const payerBalance = async () =>
  (await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance
const chargeClientWith = (policy: Policy) =>
  createClient({
    methods: [chargeClient({ lnd: lndFor(network.info.nodes.payer), network: 'regtest' })],
    policy,
  })

describe('lightning/charge client, routing fees under the spend policy', () => {
  it('refuses before paying when the budget covers the invoice but not its fee limit', async () => {
    const before = await payerBalance()
    const runs = served
    const client = chargeClientWith({ budget: { sat: 109n } })
    await expect(client.fetch(`${base}/100`)).rejects.toThrowErrorMatchingInlineSnapshot(
      `[PolicyError: lightning: the payment and its routing fee limit of 10 sat (maxFeeSats) would exceed the remaining budget]`,
    )
    expect(client.ledger.spent('sat')).toBe(0n)
    expect(await payerBalance()).toBe(before)
    expect(served).toBe(runs)
  })

  it('books the amount and the fee actually paid (rounded up to the satoshi), under a budget that fits the fee limit', async () => {
    const client = chargeClientWith({ budget: { sat: 110n } })
    const before = await payerBalance()
    expect((await client.fetch(`${base}/100`)).status).toBe(200)
    expect(await payerBalance()).toBe(before - 103)
    expect(client.ledger.spent('sat')).toBe(103n)
    // 150 sat: a fee of 3.5 sat, booked as 4.
    const other = chargeClientWith({ budget: { sat: 1_000n } })
    expect((await other.fetch(`${base}/150`)).status).toBe(200)
    expect(other.ledger.spent('sat')).toBe(154n)
  })

  it('does not hold fees to maxAmount: an invoice of maxAmount is paid under a fee limit above it', async () => {
    const client = createClient({
      methods: [chargeClient({ lnd: lndFor(network.info.nodes.payer), network: 'regtest', maxFeeSats: 300 })],
      policy: { maxAmount: { sat: 100n }, budget: { sat: 1_000n } },
    })
    expect((await client.fetch(`${base}/100`)).status).toBe(200)
    expect(client.ledger.spent('sat')).toBe(103n)
  })

  it('never pays past the budget, fees included, under concurrent payments', async () => {
    const client = chargeClientWith({ budget: { sat: 500n } })
    const before = await payerBalance()
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => client.fetch(`${base}/100`)))
    const paid = results.filter((r) => r.status === 'fulfilled' && r.value.status === 200).length
    const refused = results.filter((r) => r.status === 'rejected' && r.reason instanceof PolicyError).length
    expect(paid + refused).toBe(8)
    const spent = before - (await payerBalance())
    expect(spent).toBe(paid * 103)
    expect(spent).toBeLessThanOrEqual(500)
    expect(client.ledger.spent('sat')).toBe(BigInt(spent))
    // 4 × 103 = 412: a fifth payment and its 10 sat fee limit do not fit the 88 sat left.
    expect(paid).toBe(4)
  })
})

describe('lightning/session client, routing fees of deposits and top-ups under the spend policy', () => {
  it('books each deposit with its fee paid, refuses a top-up the budget cannot hold with its fee limit, and gets the refund back', async () => {
    // A 20 sat deposit (a fee of 2.2 sat, booked as 3; a fee limit of 10 sat) at 1 sat per request.
    const server = createServer({
      realm,
      secrets: [secret],
      store: new MemoryStore(),
      methods: [sessionServer({ lnd: lndFor(network.info.nodes.payee), depositSats: 20 })],
    })
    const handler = server.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
      () => new Response('ok'),
    )
    const fetch = ((input: RequestInfo | URL, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof globalThis.fetch
    const sessions = sessionClient({ lnd: lndFor(network.info.nodes.payer), network: 'regtest', fetch })
    const url = 'https://fees.test/session'
    // Each deposit (20 sat, which leaves the wallet) and its fee limit of 10 sat are booked before it is
    // paid, then the fee paid (3 sat) replaces the limit; requests paid from the deposit book nothing.
    const client = createClient({ methods: [sessions], fetch, policy: { budget: { sat: 98n } } })
    const before = await payerBalance()
    // The open: 20 + 10 fit; then 20 + 3. The request (1 sat) is paid from the deposit.
    expect((await client.fetch(url)).status).toBe(200)
    expect(client.ledger.spent('sat')).toBe(23n)
    // Two top-ups: 23 + 30 and 46 + 30 fit.
    expect((await sessions.topUp(url)).status).toBe(200)
    expect(client.ledger.spent('sat')).toBe(46n)
    expect((await sessions.topUp(url)).status).toBe(200)
    expect(client.ledger.spent('sat')).toBe(69n)
    // Three deposits of 20 sat, each with a fee of 2.2 sat (the node counts millisatoshis).
    expect(before - (await payerBalance())).toBeGreaterThanOrEqual(66)
    expect(before - (await payerBalance())).toBeLessThanOrEqual(67)
    // 69 + 20 + 10 > 98: the next top-up is refused before it is paid.
    const paidBefore = await payerBalance()
    await expect(sessions.topUp(url)).rejects.toMatchObject({ reason: 'budget' })
    expect(await payerBalance()).toBe(paidBefore)
    expect(client.ledger.spent('sat')).toBe(69n)
    expect([...sessions.sessions.values()][0]!.deposit).toBe(60n)
    // The close refunds 60 - 1 sat to the return invoice, its routing fee out of it (none free; 2.58 sat
    // over 1 and 2.57 over 2 sat budgets; 55 sat with a 4 sat budget: a fee of 2.55 sat); the node reports
    // the 55 sat it received: given back, so the budget counts the 4 sat the payer did not get back.
    const closed = await sessions.close(url)
    expect(await closed.json()).toEqual({
      status: 'closed',
      refundSats: 55,
      refundStatus: 'succeeded',
      refundFeeSats: 3,
    })
    expect(client.ledger.spent('sat')).toBe(14n)
    await server.close()
  })
})

describe('mppkit pay (Lightning), routing fees', () => {
  const node = () => {
    const { socket, cert, macaroon } = network.info.nodes.payer
    return ['--lnd-socket', socket, '--lnd-cert', cert, '--lnd-macaroon', macaroon, '--network', 'regtest']
  }
  const capture = () => {
    const out = { stdout: '', stderr: '' }
    return { out, io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) } }
  }

  it('names the fee limit before paying, and pays at most --max-amount plus --max-fee', async () => {
    const before = await payerBalance()
    const { out, io } = capture()
    expect(await pay([`${base}/100`, ...node(), '--max-amount', '100', '--max-fee', '5'], io)).toBe(0)
    expect(out.stderr.split('\n')[0]).toMatchInlineSnapshot(
      `"mppkit pay: lightning/charge: pay 100 sat (100 base units) (realm fees.test), plus a routing fee of at most 5 sat (--max-fee)"`,
    )
    expect(before - (await payerBalance())).toBe(103)
  })

  it('pays nothing when the route costs more than --max-fee', async () => {
    const before = await payerBalance()
    const { out, io } = capture()
    expect(await pay([`${base}/100`, ...node(), '--max-fee', '2'], io)).toBe(1)
    expect(out.stderr).toMatch(/plus a routing fee of at most 2 sat \(--max-fee\)/)
    expect(out.stderr).toMatch(/the payment failed/)
    expect(await payerBalance()).toBe(before)
  })
})
