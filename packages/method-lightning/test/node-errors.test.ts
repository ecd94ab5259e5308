import * as grpc from '@grpc/grpc-js'
import { Challenge, Credential, type Method } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { createInvoice, getChannelBalance, pay } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { LookupFailedError, settledMsat } from '../src/server/InvoiceLookup.js'
import { chargeServer, sessionServer } from '../src/server/index.js'
import { type Fault, faultyNode } from './faultyNode.js'
import { lndFor } from './helpers.js'

// A node that fails an invoice lookup (LND answering LookupInvoice with gRPC INTERNAL or UNKNOWN: a
// locked database, a failed RPC layer) has not said the invoice is unpaid. The payer has paid: the
// credential is answered 503 + Retry-After, the challenge is kept, and the same credential is served
// once the node answers again. Only the node's definite answers (found and not settled, not found) are
// a 402. The faults come from a gRPC proxy in front of the LND simulator, so the unmodified `lightning`
// client receives each status over a real connection.

const realm = 'lightning.test'
const secret = 'lightning-node-errors-test-secret-0123456789'
const url = 'https://lightning.test/resource'

let network: Lightning
let node: Awaited<ReturnType<typeof faultyNode>>
beforeAll(async () => {
  network = await startLightning({ extraNodes: ['other'] })
  node = await faultyNode(network.info.nodes.payee)
})
afterAll(async () => {
  await node?.close()
  await network?.stop()
})

const internal: Fault = { code: grpc.status.INTERNAL, details: 'unable to read invoice: database is locked' }
const unknown: Fault = { code: grpc.status.UNKNOWN, details: 'invoice registry shutting down' }
const failures: Array<[string, Fault]> = [
  ['INTERNAL', internal],
  ['UNKNOWN', unknown],
]

const payer = () => lndFor(network.info.nodes.payer)
const payerBalance = async () => (await getChannelBalance({ lnd: payer() })).channel_balance

function setup(method: Method.Server, errors: unknown[] = [], offer: Record<string, unknown> = {}) {
  const server = createServer({
    realm,
    secrets: [secret],
    methods: [method],
    logger: false,
    onError: (error) => errors.push(error),
  })
  let runs = 0
  const handler = server.protect(
    { offers: [{ method: 'lightning', request: { amount: '100' }, ...offer }] },
    () => {
      runs++
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
  return { challenge, submit, runs: () => runs }
}

/** A 503 + Retry-After saying the rail is unavailable, carrying no secret of the credential. */
async function expectUnavailable(response: Response, secretHex: string) {
  expect(response.status).toBe(503)
  expect(response.headers.get('retry-after')).toMatch(/^[1-9]\d*$/)
  expect(response.headers.get('www-authenticate')).toBeNull()
  const text = await response.text()
  expect(JSON.parse(text)).toMatchObject({
    type: 'https://paymentauth.org/problems/service-unavailable',
    reason: 'rail-unavailable',
  })
  expect(text).not.toContain(secretHex)
}

/** The one report of a failed lookup: the payment hash and gRPC status, never the preimage. */
function expectReported(errors: unknown[], paymentHash: string, code: number, preimage: string) {
  expect(errors).toHaveLength(1)
  const [error] = errors as Error[]
  expect(error).toMatchObject({ name: 'InvoiceLookup.LookupFailedError', code: 'lightning-lookup-failed' })
  expect(error!.message).toContain(paymentHash)
  expect(error!.message).toContain(`gRPC status ${code}`)
  expect(error!.message).not.toContain(preimage)
}

describe('chargeServer: a failed invoice lookup', () => {
  it.each(failures)(
    'is answered 503 + Retry-After after the payer paid (%s), reported once, and the same credential is served once the node answers',
    async (_name, fault) => {
      const errors: unknown[] = []
      const { challenge, submit, runs } = setup(chargeServer({ lnd: lndFor(node.info) }), errors)
      const c = await challenge()
      const { methodDetails } = c.request as { methodDetails: { invoice: string; paymentHash: string } }
      const before = await payerBalance()
      const { secret: preimage } = await pay({ lnd: payer(), request: methodDetails.invoice })
      const lookups = node.calls('LookupInvoice')
      node.fail('LookupInvoice', fault, methodDetails.paymentHash)
      try {
        await expectUnavailable(await submit(c, { preimage }), preimage)
        // Asked again: still failing, still not a 402 (the challenge was not consumed).
        await expectUnavailable(await submit(c, { preimage }), preimage)
      } finally {
        node.heal()
      }
      expect(node.calls('LookupInvoice')).toBe(lookups + 2)
      expect(runs()).toBe(0)
      expectReported(errors.slice(0, 1), methodDetails.paymentHash, fault.code, preimage)
      expect(errors).toHaveLength(2)
      const served = await submit(c, { preimage })
      expect(served.status).toBe(200)
      expect(runs()).toBe(1)
      expect(await payerBalance()).toBe(before - 100)
    },
  )

  it("answers the node's definite answers with 402 invoice-not-settled: not found (NOT_FOUND, or an older LND's UNKNOWN text)", async () => {
    // Issued and paid on the payee; presented to a server (same realm and secret) whose node never
    // issued the invoice: the simulator answers NOT_FOUND, as LND does.
    const issuing = setup(chargeServer({ lnd: lndFor(network.info.nodes.payee) }))
    const errors: unknown[] = []
    const elsewhere = setup(chargeServer({ lnd: lndFor(network.info.nodes.other!) }), errors)
    const c = await issuing.challenge()
    const { invoice, paymentHash } = (
      c.request as { methodDetails: { invoice: string; paymentHash: string } }
    ).methodDetails
    const { secret: preimage } = await pay({ lnd: payer(), request: invoice })
    const notFound = await elsewhere.submit(c, { preimage })
    expect(notFound.status).toBe(402)
    expect(await notFound.json()).toMatchObject({ reason: 'invoice-not-settled' })
    // LND before NOT_FOUND: UNKNOWN with its own "unable to locate invoice" text.
    const viaProxy = setup(chargeServer({ lnd: lndFor(node.info) }), errors)
    node.fail(
      'LookupInvoice',
      { code: grpc.status.UNKNOWN, details: 'unable to locate invoice' },
      paymentHash,
    )
    try {
      const old = await viaProxy.submit(c, { preimage })
      expect(old.status).toBe(402)
      expect(await old.json()).toMatchObject({ reason: 'invoice-not-settled' })
    } finally {
      node.heal()
    }
    // Definite answers are not failures: nothing reported.
    expect(errors).toEqual([])
    expect(elsewhere.runs() + viaProxy.runs()).toBe(0)
    // The payee's own server serves it.
    expect((await issuing.submit(c, { preimage })).status).toBe(200)
  })
})

describe('sessionServer: a failed deposit lookup', () => {
  it.each(failures)(
    'answers open and topUp 503 + Retry-After after the payer paid (%s), credits nothing, and the same credentials succeed once the node answers',
    async (_name, fault) => {
      const errors: unknown[] = []
      const method = sessionServer({ lnd: lndFor(node.info), depositSats: 10 })
      const { challenge, submit, runs } = setup(method, errors, {
        intent: 'session',
        request: { amount: '1' },
      })
      const before = await payerBalance()
      const open = await challenge()
      const deposit = open.request as { depositInvoice: string; paymentHash: string }
      const { secret: preimage } = await pay({ lnd: payer(), request: deposit.depositInvoice })
      const returnInvoice = (await createInvoice({ lnd: payer() })).request
      const opening = { action: 'open', preimage, returnInvoice }
      node.fail('LookupInvoice', fault, deposit.paymentHash)
      try {
        await expectUnavailable(await submit(open, opening), preimage)
      } finally {
        node.heal()
      }
      expectReported(errors, deposit.paymentHash, fault.code, preimage)
      expect(runs()).toBe(0)
      const opened = await submit(open, opening)
      expect(opened.status).toBe(200)
      expect(runs()).toBe(1)
      const sessionId = deposit.paymentHash

      const topUp = await challenge()
      const topUpDeposit = topUp.request as { depositInvoice: string; paymentHash: string }
      const { secret: topUpPreimage } = await pay({ lnd: payer(), request: topUpDeposit.depositInvoice })
      const toppingUp = { action: 'topUp', sessionId, topUpPreimage }
      node.fail('LookupInvoice', fault, topUpDeposit.paymentHash)
      try {
        await expectUnavailable(await submit(topUp, toppingUp), topUpPreimage)
      } finally {
        node.heal()
      }
      expectReported(errors.slice(1), topUpDeposit.paymentHash, fault.code, topUpPreimage)
      const credited = await submit(topUp, toppingUp)
      expect(credited.status).toBe(200)
      expect(await credited.json()).toEqual({ status: 'ok' })
      // Both deposits paid once each, and credited: 10 + 10 in, one request billed.
      expect(await payerBalance()).toBe(before - 20)
      expect(runs()).toBe(1)
    },
  )
})

describe('settledMsat', () => {
  it('gives what the node says: the amount of a settled invoice, undefined for an open or unknown one; throws when the lookup fails', async () => {
    const lnd = lndFor(node.info)
    const open = await createInvoice({ lnd: lndFor(network.info.nodes.payee), tokens: 21 })
    expect(await settledMsat(lnd, open.id, 5_000)).toBeUndefined()
    await pay({ lnd: payer(), request: open.request })
    expect(await settledMsat(lnd, open.id, 5_000)).toBe(21_000n)
    expect(await settledMsat(lnd, 'ab'.repeat(32), 5_000)).toBeUndefined()
    node.fail('LookupInvoice', internal, open.id)
    try {
      const failed = await settledMsat(lnd, open.id, 5_000).catch((error: unknown) => error)
      expect(failed).toBeInstanceOf(LookupFailedError)
      expect((failed as Error).message.replace(open.id, '<hash>')).toMatchInlineSnapshot(
        `"The Lightning node failed to look up invoice <hash> (UnexpectedLookupInvoiceErr, gRPC status 13): whether it was paid is unknown (answered 503; the same credential may be presented again)."`,
      )
      // Another invoice's lookup is not touched by the fault.
      expect(await settledMsat(lnd, 'ab'.repeat(32), 5_000)).toBeUndefined()
    } finally {
      node.heal()
    }
  })
})
