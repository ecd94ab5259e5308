import { createHash, randomBytes } from 'node:crypto'
import { Challenge, Credential, Receipt } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { getChannelBalance } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { chargeClient } from '../src/client/index.js'
import * as Invoice from '../src/Invoice.js'
import { chargeServer } from '../src/server/index.js'
import { lndFor, nodeProxy, waitUntilReachable } from './helpers.js'

const realm = 'lightning.test'
const secret = 'lightning-charge-test-secret-0123456789'
const url = 'https://lightning.test/weather'
const sha256 = (hex: string) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')

let network: Lightning
let proxy: Awaited<ReturnType<typeof nodeProxy>>

beforeAll(async () => {
  network = await startLightning()
  proxy = await nodeProxy(network.info.nodes.payee.socket)
})
afterAll(async () => {
  await proxy?.close()
  await network?.stop()
})

function setup(options: { amount?: string; now?: () => number; errors?: unknown[] } = {}) {
  const serverLnd = lndFor(network.info.nodes.payee, proxy.socket)
  const server = createServer({
    realm,
    secrets: [secret],
    methods: [chargeServer({ lnd: serverLnd })],
    ...(options.now ? { now: options.now } : {}),
    onError: (error) => options.errors?.push(error),
  })
  let runs = 0
  const handler = server.protect(
    {
      offers: [
        {
          method: 'lightning',
          request: { amount: options.amount ?? '100', description: 'Weather report for 94107' },
        },
      ],
    },
    () => {
      runs++
      return Response.json({ temperature: 72 })
    },
  )
  const challenge = async () => {
    const response = await handler(new Request(url))
    expect(response.status).toBe(402)
    return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
  }
  const submit = (challenge: Challenge.Challenge, payload: unknown) =>
    handler(
      new Request(url, { headers: { authorization: Credential.format({ challenge, payload } as never) } }),
    )
  return { handler, challenge, submit, runs: () => runs, serverLnd }
}

const payer = () => chargeClient({ lnd: lndFor(network.info.nodes.payer), network: 'regtest' })
/** Pays a challenge's invoice with the payer node, returning the preimage. */
const pay = async (challenge: Challenge.Challenge) =>
  (
    (await payer().createPayload({ challenge, request: challenge.request as never, url })).payload as {
      preimage: string
    }
  ).preimage

async function expectProblem(response: Response, type: string) {
  expect(response.status).toBe(402)
  expect(response.headers.get('cache-control')).toBe('no-store')
  expect(response.headers.get('payment-receipt')).toBeNull()
  const body = (await response.json()) as { type: string; detail?: string }
  expect(body.type).toBe(`https://paymentauth.org/problems/lightning/${type}`)
  // "A fresh challenge MUST be included in `WWW-Authenticate`."
  const [fresh] = Challenge.parseAll(response.headers.get('www-authenticate')!)
  expect(fresh?.method).toBe('lightning')
  return { body, fresh: fresh! }
}

describe('chargeServer', () => {
  it('issues a fresh invoice per challenge that matches the request fields and expiry', async () => {
    const { challenge } = setup()
    const [a, b] = [await challenge(), await challenge()]
    const request = a.request as { amount: string; currency: string; methodDetails: Record<string, string> }
    expect(request.amount).toBe('100')
    expect(request.currency).toBe('sat')
    const invoice = Invoice.decode(request.methodDetails.invoice!)
    expect(invoice).toMatchObject({
      network: 'regtest',
      amountMsat: 100_000n,
      description: 'Weather report for 94107',
    })
    expect(request.methodDetails.paymentHash).toBe(invoice.paymentHash)
    expect(request.methodDetails.network).toBe('regtest')
    // "Servers MUST NOT set the `expires` auth-param to a time later than the invoice's BOLT11 expiry time."
    const expires = Date.parse(a.expires!)
    expect(invoice.expiresAt).toBeGreaterThanOrEqual(expires)
    expect(invoice.expiresAt - expires).toBeLessThanOrEqual(2_000)
    // A fresh random payment hash per challenge.
    expect((b.request as typeof request).methodDetails.paymentHash).not.toBe(invoice.paymentHash)
  })

  it('serves a paid request once and answers with the payment hash as reference', async () => {
    const { handler, runs } = setup()
    const before = await getChannelBalance({ lnd: lndFor(network.info.nodes.payee) })
    const client = createClient({ methods: [payer()], fetch: handler as typeof fetch })
    const response = await client.fetch(url)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ temperature: 72 })
    expect(runs()).toBe(1)
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ method: 'lightning', status: 'success' })
    expect(receipt.reference).toMatch(/^[0-9a-f]{64}$/)
    expect(typeof receipt.challengeId).toBe('string')
    const after = await getChannelBalance({ lnd: lndFor(network.info.nodes.payee) })
    expect(after.channel_balance).toBe(before.channel_balance + 100)
  })

  it('never puts the preimage in the receipt', async () => {
    const { challenge, submit } = setup()
    const c = await challenge()
    const preimage = await pay(c)
    const response = await submit(c, { preimage })
    expect(response.status).toBe(200)
    const header = response.headers.get('payment-receipt')!
    expect(Buffer.from(header, 'base64url').toString()).not.toContain(preimage)
    expect(Receipt.parse(header).reference).toBe(sha256(preimage))
  })

  it('answers a wrong preimage with invalid-preimage and a fresh challenge', async () => {
    const { challenge, submit, runs } = setup()
    const c = await challenge()
    await pay(c)
    const wrong = randomBytes(32).toString('hex')
    const { body, fresh } = await expectProblem(await submit(c, { preimage: wrong }), 'invalid-preimage')
    expect(JSON.stringify(body)).not.toContain(wrong)
    expect(fresh.id).not.toBe(c.id)
    expect(runs()).toBe(0)
  })

  it('answers the preimage of another challenge invoice with invalid-preimage', async () => {
    const { challenge, submit, runs } = setup()
    const [a, b] = [await challenge(), await challenge()]
    const preimageOfA = await pay(a)
    await expectProblem(await submit(b, { preimage: preimageOfA }), 'invalid-preimage')
    expect(runs()).toBe(0)
    // A's own challenge still accepts it.
    expect((await submit(a, { preimage: preimageOfA })).status).toBe(200)
  })

  it('answers another challenge echo carrying this invoice with unknown-challenge', async () => {
    const { challenge, submit } = setup()
    const [a, b] = [await challenge(), await challenge()]
    const preimage = await pay(a)
    const swapped = { ...b, request: a.request }
    await expectProblem(await submit(swapped, { preimage }), 'unknown-challenge')
  })

  it('answers an expired challenge with expired-invoice', async () => {
    let now = Date.now()
    const { challenge, submit, runs } = setup({ now: () => now })
    const c = await challenge()
    const preimage = await pay(c)
    now += 3_600_000
    await expectProblem(await submit(c, { preimage }), 'expired-invoice')
    expect(runs()).toBe(0)
  })

  it('answers a consumed challenge with unknown-challenge', async () => {
    const { challenge, submit, runs } = setup()
    const c = await challenge()
    const preimage = await pay(c)
    expect((await submit(c, { preimage })).status).toBe(200)
    await expectProblem(await submit(c, { preimage }), 'unknown-challenge')
    expect(runs()).toBe(1)
  })

  it('answers malformed payloads (length, case, encoding, missing) with malformed-credential, never a 500', async () => {
    const { challenge, submit, runs } = setup()
    const c = await challenge()
    const good = randomBytes(32).toString('hex')
    for (const payload of [
      {},
      { preimage: good.slice(2) },
      { preimage: `${good}00` },
      { preimage: good.toUpperCase() },
      { preimage: Buffer.from(good, 'hex').toString('base64') },
      { preimage: 42 },
      { preimage: null },
    ])
      await expectProblem(await submit(c, payload), 'malformed-credential')
    expect(runs()).toBe(0)
  })

  it('settles one of 16 concurrent submissions of one preimage', async () => {
    const { challenge, submit, runs } = setup()
    const c = await challenge()
    const preimage = await pay(c)
    const responses = await Promise.all(Array.from({ length: 16 }, () => submit(c, { preimage })))
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
    expect(responses.filter((r) => r.status === 402)).toHaveLength(15)
    expect(runs()).toBe(1)
  })

  it('answers 503 + Retry-After while LND is down, consumes nothing, and a retry succeeds', async () => {
    const errors: unknown[] = []
    const { challenge, submit, runs, serverLnd } = setup({ errors })
    const c = await challenge()
    const preimage = await pay(c)
    proxy.down()
    let down: Response
    try {
      down = await submit(c, { preimage })
      // Issuing needs the node too: no challenge without an invoice.
      expect((await setup().handler(new Request(url))).status).toBe(503)
    } finally {
      proxy.up()
    }
    expect(down.status).toBe(503)
    expect(down.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(JSON.stringify(await down.json())).not.toContain(preimage)
    expect(runs()).toBe(0)
    await waitUntilReachable(serverLnd)
    expect((await submit(c, { preimage })).status).toBe(200)
    expect(runs()).toBe(1)
    for (const error of errors) expect(String(error)).not.toContain(preimage)
  })
})

describe('chargeClient', () => {
  const request = async () => {
    const c = await setup().challenge()
    return { c, request: c.request as Record<string, unknown> & { methodDetails: Record<string, string> } }
  }
  const attempt = (client: ReturnType<typeof payer>, c: Challenge.Challenge, request: unknown) =>
    client.createPayload({ challenge: c, request: request as never, url })

  it('refuses an invoice of another network', async () => {
    const { c, request: r } = await request()
    const mainnet = chargeClient({ lnd: lndFor(network.info.nodes.payer), network: 'mainnet' })
    await expect(attempt(mainnet, c, r)).rejects.toThrowErrorMatchingInlineSnapshot(
      `[PaymentFailedError: lightning: the invoice is for regtest, this client pays on mainnet]`,
    )
  })

  it('refuses convenience fields that do not match the invoice, and a mismatching amount', async () => {
    const { c, request: r } = await request()
    const otherHash = { ...r, methodDetails: { ...r.methodDetails, paymentHash: 'ab'.repeat(32) } }
    await expect(attempt(payer(), c, otherHash)).rejects.toThrow(/paymentHash does not match/)
    const otherNetwork = { ...r, methodDetails: { ...r.methodDetails, network: 'signet' } }
    await expect(attempt(payer(), c, otherNetwork)).rejects.toThrow(/network does not match/)
    await expect(attempt(payer(), c, { ...r, amount: '99' })).rejects.toThrow(/amount does not match/)
  })

  it('refuses an expired invoice without paying', async () => {
    const { c, request: r } = await request()
    const late = chargeClient({
      lnd: lndFor(network.info.nodes.payer),
      network: 'regtest',
      now: () => Date.now() + 3_600_000,
    })
    const before = await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })
    await expect(attempt(late, c, r)).rejects.toThrow(/expired/)
    expect((await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance).toBe(
      before.channel_balance,
    )
  })

  it('is refused by the spend policy before paying', async () => {
    const { handler } = setup({ amount: '5000' })
    const client = createClient({
      methods: [payer()],
      fetch: handler as typeof fetch,
      policy: { maxAmount: { sat: 1_000n } },
    })
    const before = await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })
    await expect(client.fetch(url)).rejects.toThrow()
    expect((await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance).toBe(
      before.channel_balance,
    )
  })
})
