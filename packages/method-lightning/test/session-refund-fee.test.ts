import { Challenge, Credential, MemoryStore, Receipt } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { createInvoice, getChannelBalance, getInvoice, pay } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import * as Invoice from '../src/Invoice.js'
import { defaultNodeTimeouts } from '../src/internal/node.js'
import { type RefundFailure, type SessionOptions, sessionServer } from '../src/server/index.js'
import { Deposits } from '../src/server/session/Deposits.js'
import { feeBudgets, paymentAtNode, payReturnInvoice } from '../src/server/session/Refund.js'
import { Sessions } from '../src/server/session/Sessions.js'
import { lndFor } from './helpers.js'

// A refund's routing fee comes out of the refund: the payer writes the return invoice (its route hints
// can set the hop fees), so a fee paid on top of it would let every open and close drain the payee.
// Every payment here crosses a routing node charging 10 sat, as a payer's own route hint could ask.
const realm = 'lightning.test'
const url = 'https://lightning.test/generate'
const routeFeeSats = 10

let network: Lightning
beforeAll(async () => {
  network = await startLightning({ routingFee: { baseMsat: routeFeeSats * 1000, ratePpm: 0 } })
})
afterAll(async () => {
  await network?.stop()
})

const payee = () => lndFor(network.info.nodes.payee)
const payer = () => lndFor(network.info.nodes.payer)
const balanceMsat = async (lnd = payee()) =>
  BigInt((await getChannelBalance({ lnd })).channel_balance_mtokens!)
/** What the payer's node received on its return invoice (sat). */
const received = async (returnInvoice: string) =>
  (await getInvoice({ lnd: payer(), id: Invoice.decode(returnInvoice).paymentHash })).received

function setup(options: Partial<SessionOptions> = {}) {
  const failures: RefundFailure[] = []
  const store = new MemoryStore()
  const method = sessionServer({
    lnd: payee(),
    depositSats: 20,
    onRefundFailure: (failure) => failures.push(failure),
    ...options,
  })
  const server = createServer({
    realm,
    secrets: ['refund-fee-secret-0123456789abcdef'],
    methods: [method],
    store,
  })
  const handler = server.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
    () => Response.json({ ok: true }),
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
  /** Pays a deposit and opens a session with a fresh return invoice of the payer's. */
  const open = async () => {
    const c = await challenge()
    const deposit = (c.request as { depositInvoice: string }).depositInvoice
    const { secret: preimage, id: sessionId } = await pay({ lnd: payer(), request: deposit, max_fee: 20 })
    const returnInvoice = (await createInvoice({ lnd: payer() })).request
    const opened = await submit(c, { action: 'open', preimage, returnInvoice })
    expect(opened.status).toBe(200)
    return { sessionId, preimage, returnInvoice }
  }
  const close = async (session: { sessionId: string; preimage: string }) =>
    submit(await challenge(), { action: 'close', ...session })
  const record = async (sessionId: string) => {
    const raw = await store.get(`mppkit:m:lightning/session:session:${sessionId}`)
    return raw === undefined ? undefined : (JSON.parse(raw) as Record<string, unknown>)
  }
  return { server, method, failures, open, close, record, submit, challenge }
}

describe('a refund pays its routing fee out of itself', () => {
  it.each([
    { billPerRequest: true, balance: 19, kept: 1 },
    { billPerRequest: false, balance: 20, kept: 0 },
  ])(
    'a close (billPerRequest $billPerRequest) sends the balance less the fee: the payee keeps $kept sat, never less',
    async ({ billPerRequest, balance, kept }) => {
      const { server, open, close, record, failures } = setup({ billPerRequest })
      const before = await balanceMsat()
      const session = await open()
      const closed = await close(session)
      expect(closed.status).toBe(200)
      // No route without fees, none within 1, 2, 4 or 8 sat: the balance less a 10 sat budget, which the
      // route's 10 sat fee uses up.
      const refundSats = balance - routeFeeSats
      const body = { status: 'closed', refundSats, refundStatus: 'succeeded', refundFeeSats: routeFeeSats }
      expect(await closed.json()).toEqual(body)
      expect(Receipt.parse(closed.headers.get('payment-receipt')!)).toMatchObject({
        refundSats,
        refundStatus: 'succeeded',
        refundFeeSats: routeFeeSats,
      })
      expect(await received(session.returnInvoice)).toBe(refundSats)
      // Deposit in, refund and its fee out: what the session was billed.
      expect((await balanceMsat()) - before).toBe(BigInt(kept) * 1000n)
      expect(await record(session.sessionId)).toMatchObject({
        status: 'closed',
        refundStatus: 'succeeded',
        refundSats: String(refundSats),
        refundFeeSats: String(routeFeeSats),
      })
      expect(failures).toEqual([])
      await server.close()
    },
  )

  it('an idle close follows the same rule ("subject to the same fee constraints as a client-initiated close")', async () => {
    const { server, method, open, record } = setup({ idleTimeoutSeconds: 1, idleCheckIntervalMs: 60_000 })
    const before = await balanceMsat()
    const session = await open()
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    await method.sweepIdle()
    expect(await record(session.sessionId)).toMatchObject({
      status: 'closed',
      refundStatus: 'succeeded',
      refundSats: '9',
      refundFeeSats: '10',
    })
    expect(await received(session.returnInvoice)).toBe(9)
    expect((await balanceMsat()) - before).toBe(1000n)
    await server.close()
  })

  it('a refund too small to pay its route fee is not paid: failed, reported, and kept for the operator to settle', async () => {
    const { server, open, close, record, failures } = setup({ depositSats: 10 })
    const before = await balanceMsat()
    const session = await open()
    const closed = await close(session)
    // 9 sat owed; the route costs 10: no budget below the refund finds it.
    expect(await closed.json()).toEqual({ status: 'closed', refundSats: 9, refundStatus: 'failed' })
    expect(failures).toEqual([
      { sessionId: session.sessionId, refundSats: 9, error: 'RefundBelowRoutingFee' },
    ])
    expect(await record(session.sessionId)).toMatchObject({ refundStatus: 'failed', refundSats: '9' })
    expect(await received(session.returnInvoice)).toBe(0)
    expect((await balanceMsat()) - before).toBe(10_000n)
    await server.close()
  })

  it('maxRefundFeeSats 0 tries a route without fees only: none here, so the refund fails and is reported', async () => {
    const { server, open, close, failures } = setup({ maxRefundFeeSats: 0 })
    const session = await open()
    expect(await (await close(session)).json()).toEqual({
      status: 'closed',
      refundSats: 19,
      refundStatus: 'failed',
    })
    expect(failures).toEqual([
      { sessionId: session.sessionId, refundSats: 19, error: 'PaymentPathfindingFailedToFindPossibleRoute' },
    ])
    expect(await received(session.returnInvoice)).toBe(0)
    await server.close()
  })

  it('a top-up given back after its session closed pays its fee out of itself too', async () => {
    const store = new MemoryStore()
    const sessions = new Sessions(store, { ttlMs: 60_000, idleMs: 60_000 })
    const failures: RefundFailure[] = []
    const deposits = new Deposits(sessions, {
      ttlMs: 60_000,
      lnd: payee(),
      timeouts: defaultNodeTimeouts,
      maxFeeSats: () => 10,
      onRefundFailure: (failure) => failures.push(failure),
      recoveryMs: 600_000,
    })
    const id = 'e1'.repeat(32)
    const returnInvoice = (await createInvoice({ lnd: payer() })).request
    await sessions.open({ paymentHash: id, returnInvoice, status: 'open', openedBy: 'c0' }, 10n)
    // All spent: the close refunds nothing, so the return invoice is free for the top-up.
    expect(await sessions.charge(id, 10n)).toBe(true)
    await sessions.close(id)
    const claimed = await sessions.claimRefund(id)
    await sessions.recordRefund(id, claimed!.refundSats, 'skipped')
    const before = await balanceMsat()
    const hash = 'e2'.repeat(32)
    const claim = await deposits.claim(hash, {
      action: 'topUp',
      challengeId: 'c1',
      sessionId: id,
      sats: '25',
      state: 'claimed',
    })
    expect(await deposits.topUp(hash, claim!)).toEqual({
      status: 'refused',
      refundSats: 15,
      refundStatus: 'succeeded',
      refundFeeSats: 10,
    })
    expect(await deposits.get(hash)).toMatchObject({
      state: 'refused',
      refundedSats: '15',
      refundFeeSats: '10',
    })
    expect(await received(returnInvoice)).toBe(15)
    expect(before - (await balanceMsat())).toBe(25_000n)
    expect(failures).toEqual([])
  })

  it('pays and recognizes a refund at the node by the same fee budgets; a payment outside them is not the refund', async () => {
    expect(feeBudgets(19n, 10)).toEqual([0n, 1n, 2n, 4n, 8n, 10n])
    expect(feeBudgets(9n, 10)).toEqual([0n, 1n, 2n, 4n, 8n])
    expect(feeBudgets(1n, 10)).toEqual([0n])
    expect(feeBudgets(50n, 0)).toEqual([0n])
    expect(feeBudgets(0n, 10)).toEqual([])
    const invoice = (await createInvoice({ lnd: payer() })).request
    const before = await balanceMsat()
    const paid = await payReturnInvoice(payee(), { invoice, sats: 30n, maxFeeSats: 12 })
    // 0, 1, 2, 4 and 8 sat find no route; 16 is above the limit: 12.
    expect(paid).toEqual({ succeeded: { sentSats: 18n, feeSats: 10n } })
    expect(before - (await balanceMsat())).toBe(28_000n)
    expect(await paymentAtNode(payee(), invoice, { sats: 30n, budgets: feeBudgets(30n, 12) })).toEqual(paid)
    // Owed 20 instead: 18 sent with a 10 sat fee is more than the 2 sat budget that would leave 18.
    expect(await paymentAtNode(payee(), invoice, { sats: 20n, budgets: feeBudgets(20n, 12) })).toEqual({
      failed: 'ReturnInvoicePaidAnotherAmount',
    })
  })
})

describe('the return invoice at open', () => {
  it('is refused when already expired (no refund could reach it); the paid deposit opens with another', async () => {
    const { server, challenge, submit, close } = setup()
    const c = await challenge()
    const deposit = (c.request as { depositInvoice: string }).depositInvoice
    const { secret: preimage, id: sessionId } = await pay({ lnd: payer(), request: deposit, max_fee: 20 })
    const expiring = (
      await createInvoice({ lnd: payer(), expires_at: new Date(Date.now() + 2_000).toISOString() })
    ).request
    const left = Invoice.decode(expiring).expiresAt - Date.now()
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, left) + 50))
    const refused = await submit(c, { action: 'open', preimage, returnInvoice: expiring })
    expect(refused.status).toBe(402)
    expect(await refused.json()).toMatchObject({
      type: 'https://paymentauth.org/problems/lightning/invalid-return-invoice',
      detail: 'The return invoice has expired.',
    })
    const returnInvoice = (await createInvoice({ lnd: payer() })).request
    expect((await submit(c, { action: 'open', preimage, returnInvoice })).status).toBe(200)
    expect((await close({ sessionId, preimage })).status).toBe(200)
    await server.close()
  })
})
