import { createHash, randomBytes } from 'node:crypto'
import { Challenge, Credential, create, PaymentFailedError } from '@mppkit/core/client'
import { describe, expect, it } from 'vitest'
import { encodePaymentRequest } from '../../devnet/src/lightning/bolt11.js'
import { sessionClient } from '../src/client/index.js'
import type { Wallet } from '../src/client/Wallet.js'
import * as Invoice from '../src/Invoice.js'

const key = randomBytes(32)
const url = 'https://lightning.test/r'
const notFound = 'https://paymentauth.org/problems/challenge-not-found'

/** A real regtest BOLT 11 invoice of `sats` and its preimage. */
function invoice(sats: bigint) {
  const preimage = randomBytes(32)
  const paymentHash = createHash('sha256').update(preimage).digest()
  const text = encodePaymentRequest(
    {
      currency: 'bcrt',
      amountMsat: sats * 1000n,
      timestamp: Math.floor(Date.now() / 1000),
      paymentHash,
      paymentSecret: randomBytes(32),
      description: 'deposit',
      descriptionHash: undefined,
      expirySeconds: 3600,
      minFinalCltvExpiry: 18,
      features: [],
    },
    key,
  )
  return { text, preimage: preimage.toString('hex'), hash: paymentHash.toString('hex') }
}

/**
 * A mock wallet (each payment takes a little while, so concurrent requests overlap) and a mock server
 * that issues a fresh deposit invoice per challenge and accepts every credential, unless `refuseClose`.
 */
function setup(price: bigint, depositSats: bigint) {
  const preimages = new Map<string, string>()
  const paid: bigint[] = []
  const opens: string[] = []
  const t = { refuseClose: false }
  const wallet: Wallet = {
    async pay(text) {
      const preimage = preimages.get(text)
      if (preimage === undefined) throw new PaymentFailedError('unknown invoice')
      await new Promise((resolve) => setTimeout(resolve, 20))
      paid.push(depositSats)
      return { preimage }
    },
    receive: async () => ({ invoice: invoice(0n).text }),
  }
  const challenge = () => {
    const deposit = invoice(depositSats)
    preimages.set(deposit.text, deposit.preimage)
    return Challenge.format({
      id: randomBytes(8).toString('hex'),
      realm: 'lightning.test',
      method: 'lightning',
      intent: 'session',
      request: {
        amount: String(price),
        currency: 'sat',
        depositInvoice: deposit.text,
        paymentHash: deposit.hash,
        depositAmount: String(depositSats),
        network: 'regtest',
      },
    })
  }
  const server = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const auth = new Request(input, init).headers.get('authorization')
    if (!auth) return new Response('{}', { status: 402, headers: { 'www-authenticate': challenge() } })
    const credential = Credential.parse(auth)
    const payload = credential.payload as { action: string }
    if (payload.action === 'close' && t.refuseClose)
      return Response.json({ type: notFound }, { status: 402, headers: { 'www-authenticate': challenge() } })
    if (payload.action === 'open') opens.push(credential.challenge.request.paymentHash as string)
    // A close is answered with the spec's close body (the client takes no other 2xx for a close).
    if (payload.action === 'close')
      return Response.json({ status: 'closed', refundSats: 0, refundStatus: 'skipped' })
    return Response.json({ status: 'ok' })
  }) as typeof fetch
  return { wallet, server, paid, opens, t }
}

function clientOf(s: ReturnType<typeof setup>, maxDeposit: bigint, now?: () => number) {
  const method = sessionClient({
    wallet: s.wallet,
    network: 'regtest',
    fetch: s.server,
    ...(now ? { now } : {}),
  })
  const client = create({
    methods: [method],
    fetch: s.server,
    policy: { maxDeposit: { sat: maxDeposit }, budget: { sat: 100_000n } },
  })
  return { method, client }
}

describe('sessionClient under concurrent requests', () => {
  it('concurrent auto top-ups never pay deposits past the policy maxDeposit', async () => {
    const s = setup(200n, 300n)
    const { method, client } = clientOf(s, 600n)
    expect((await client.fetch(url)).status).toBe(200)
    const results = await Promise.allSettled([1, 2, 3, 4].map(() => client.fetch(url)))
    const sum = s.paid.reduce((a, b) => a + b, 0n)
    expect(sum).toBeLessThanOrEqual(600n)
    expect(s.paid).toEqual([300n, 300n])
    const state = [...method.sessions.values()][0]!
    expect(state.deposit).toBe(600n)
    // 600 sat pays 3 requests of 200: the first and two more; the others are refused before paying.
    expect(results.filter((r) => r.status === 'fulfilled' && r.value.status === 200)).toHaveLength(2)
  })

  it('concurrent first requests open one session, pay one deposit and track it', async () => {
    const s = setup(10n, 300n)
    const { method, client } = clientOf(s, 300n)
    const results = await Promise.all([1, 2, 3].map(() => client.fetch(url)))
    expect(results.map((r) => r.status)).toEqual([200, 200, 200])
    expect(s.paid).toEqual([300n])
    expect(s.opens).toHaveLength(1)
    expect(method.sessions.size).toBe(1)
    const state = [...method.sessions.values()][0]!
    expect(state.sessionId).toBe(s.opens[0])
    expect(state.spent).toBe(30n)
  })

  it('keeps the session and its preimage when a close is refused with a 402 that does not close it', async () => {
    const s = setup(10n, 300n)
    const { method, client } = clientOf(s, 300n)
    expect((await client.fetch(url)).status).toBe(200)
    const { sessionId, preimage } = [...method.sessions.values()][0]!
    s.t.refuseClose = true
    expect((await method.close(url)).status).toBe(402)
    expect(method.sessions.size).toBe(1)
    expect([...method.sessions.values()][0]).toMatchObject({ sessionId, preimage })
    s.t.refuseClose = false
    expect((await method.close(url)).status).toBe(200)
    expect(method.sessions.size).toBe(0)
  })

  it('pays no deposit or top-up whose invoice expires within the safety margin (default 30 s), and creates no return invoice for it', async () => {
    const s = setup(10n, 300n)
    let receives = 0
    const receive = s.wallet.receive
    s.wallet.receive = (options) => {
      receives++
      return receive(options)
    }
    // The mock server's invoices expire 3600 s after they are issued.
    let offset = 3_600_000 - 20_000
    const { method, client } = clientOf(s, 600n, () => Date.now() + offset)
    await expect(client.fetch(url)).rejects.toThrow(/expires too soon/)
    expect([s.paid, receives, method.sessions.size]).toEqual([[], 0, 0])
    expect(client.ledger.spent('sat')).toBe(0n)
    offset = 0
    expect((await client.fetch(url)).status).toBe(200)
    offset = 3_600_000 - 20_000
    await expect(method.topUp(url)).rejects.toThrow(/expires too soon/)
    expect(s.paid).toEqual([300n])
    offset = 0
    expect((await method.topUp(url)).status).toBe(200)
    expect(s.paid).toEqual([300n, 300n])
  })

  it('books each deposit once, as a prepayment before paying it, whatever sessions open or close after its quote', async () => {
    const s = setup(10n, 300n)
    const { method, client } = clientOf(s, 300n)
    /** A fresh challenge of the mock server, for another realm. */
    const otherRealm = async () => {
      const c = Challenge.parseAll((await s.server(url)).headers.get('www-authenticate')!)[0]!
      return { ...c, realm: 'other.test' }
    }
    const booked: unknown[] = []
    const spend = (quote: unknown) => {
      booked.push(quote)
      return () => {}
    }
    // A request's quote books nothing (it is paid from the deposit): it is `prepaid`, checked against
    // maxAmount only.
    expect(method.quote!((await otherRealm()).request as never)).toMatchObject({ amount: 10n, prepaid: true })
    // Quoted while a session is open (no deposit in the quote); that session closes before the payment:
    // the deposit is booked (against the budget and maxDeposit) before it is paid.
    expect((await client.fetch(url)).status).toBe(200)
    const first = await otherRealm()
    expect(method.quote!(first.request as never).deposit).toBeUndefined()
    expect((await method.close(url)).status).toBe(200)
    await method.createPayload({ challenge: first, request: first.request as never, url, spend })
    // (The deposit's routing fee limit is booked too, as a fee.)
    const deposits = () => booked.filter((quote) => (quote as { prepay?: boolean }).prepay === true)
    expect(deposits()).toEqual([expect.objectContaining({ amount: 300n, deposit: 300n, prepay: true })])
    // Quoted with the deposit (no session then); a session opens before the payment: booked once, here.
    await method.close(url)
    booked.length = 0
    const second = await otherRealm()
    expect(method.quote!(second.request as never).deposit).toBe(300n)
    expect((await client.fetch(url)).status).toBe(200)
    // (Another origin: this client keeps one session per origin, and refuses another realm on `url`'s.)
    await method.createPayload({
      challenge: second,
      request: second.request as never,
      url: 'https://other.test/r',
      spend,
    })
    expect(deposits()).toEqual([expect.objectContaining({ amount: 300n, deposit: 300n, prepay: true })])
    expect(method.sessions.size).toBe(2)
  })
})

describe('sessionClient deposits under the spend policy budget', () => {
  /** A client over the mock server whose wallet reports `refunded` sat received on its return invoice. */
  const withRefund = (budget: bigint, refunded: ((hash: string) => Promise<bigint>) | undefined) => {
    const s = setup(10n, 300n)
    // No routing fee (its booking is tested elsewhere): only deposits and refunds move the budget here.
    const pay = s.wallet.pay
    s.wallet.pay = async (...args) => ({ ...(await pay(...args)), feeSats: 0 })
    const asked: string[] = []
    if (refunded)
      s.wallet.received = (hash) => {
        asked.push(hash)
        return refunded(hash)
      }
    const method = sessionClient({ wallet: s.wallet, network: 'regtest', fetch: s.server })
    const client = create({
      methods: [method],
      fetch: s.server,
      policy: { maxAmount: { sat: 10n }, maxDeposit: { sat: 600n }, budget: { sat: budget } },
    })
    return { s, method, client, asked }
  }

  it('books each deposit and top-up when paid, not the requests paid from them', async () => {
    const { s, method, client } = withRefund(1_000n, undefined)
    for (let i = 0; i < 5; i++) expect((await client.fetch(url)).status).toBe(200)
    // The deposit left the wallet: 300 sat booked; five requests of 10 drawn from it book nothing more.
    expect(client.ledger.spent('sat')).toBe(300n)
    expect((await method.topUp(url)).status).toBe(200)
    expect(client.ledger.spent('sat')).toBe(600n)
    expect(s.paid).toEqual([300n, 300n])
  })

  it('refuses a deposit or top-up the budget cannot hold, before paying it', async () => {
    const { s, method, client } = withRefund(500n, undefined)
    expect((await client.fetch(url)).status).toBe(200)
    const refused = method.topUp(url)
    await expect(refused).rejects.toMatchObject({ reason: 'budget' })
    expect(s.paid).toEqual([300n])
    expect(client.ledger.spent('sat')).toBe(300n)
    // A budget below one deposit opens nothing.
    const small = withRefund(299n, undefined)
    await expect(small.client.fetch(url)).rejects.toMatchObject({ reason: 'budget' })
    expect(small.s.paid).toEqual([])
    expect(small.client.ledger.spent('sat')).toBe(0n)
  })

  it('keeps a top-up booked when its payment may have gone out, and gives back one that surely did not', async () => {
    const { s, method, client } = withRefund(1_000n, undefined)
    expect((await client.fetch(url)).status).toBe(200)
    const pay = s.wallet.pay
    // The node connection drops mid-payment: the outcome is unknown, the 300 sat stay booked (and the
    // routing fee limit of 10 sat with them).
    s.wallet.pay = async () => {
      throw new Error('connection lost')
    }
    await expect(method.topUp(url)).rejects.toMatchObject({ mayHaveSettled: true })
    expect(client.ledger.spent('sat')).toBe(610n)
    // The wallet knows nothing was paid: given back.
    s.wallet.pay = async () => {
      throw new PaymentFailedError('no route')
    }
    await expect(method.topUp(url)).rejects.toBeInstanceOf(PaymentFailedError)
    expect(client.ledger.spent('sat')).toBe(610n)
    s.wallet.pay = pay
  })

  it('gives a close refund back to the budget once the wallet reports its return invoice paid', async () => {
    const { method, client, asked } = withRefund(1_000n, async () => 550n)
    expect((await client.fetch(url)).status).toBe(200)
    expect((await method.topUp(url)).status).toBe(200)
    const returnInvoice = [...method.sessions.values()][0]!.returnInvoice!
    expect(client.ledger.spent('sat')).toBe(600n)
    expect((await method.close(url)).status).toBe(200)
    // The wallet was asked about the return invoice this session sent, and 550 sat came back.
    expect(asked).toEqual([Invoice.tryDecode(returnInvoice)!.paymentHash])
    expect(client.ledger.spent('sat')).toBe(50n)
    // A refund reported above what was booked gives back no more than the deposits.
    const over = withRefund(1_000n, async () => 10_000n)
    expect((await over.client.fetch(url)).status).toBe(200)
    expect((await over.method.close(url)).status).toBe(200)
    expect(over.client.ledger.spent('sat')).toBe(0n)
  })

  it('keeps the deposits booked when the wallet cannot tell: no lookup, a failing one, nothing received', async () => {
    for (const refunded of [
      undefined,
      async () => {
        throw new Error('lookup failed')
      },
      async () => 0n,
    ]) {
      const { method, client } = withRefund(1_000n, refunded)
      expect((await client.fetch(url)).status).toBe(200)
      expect((await method.close(url)).status).toBe(200)
      expect(client.ledger.spent('sat')).toBe(300n)
    }
  })
})
