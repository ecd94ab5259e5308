import { create as createClient, Protocol, receipt } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPaymentHeader } from 'x402/client'
import { settle, verify } from 'x402/facilitator'
import { decodePayment } from 'x402/schemes'
import { decodeXPaymentResponse } from 'x402/shared'
import { settleResponseHeader } from 'x402/types'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { charge as chargeClient, x402 as x402Client } from '../src/client/index.js'
import { charge, x402 } from '../src/server/index.js'
import * as Wire from '../src/Wire.js'
import { asFetch, balanceOf, facilitator, walletOf } from './peers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

// x402 v1 names networks; `base-sepolia` is chain 84532, so this devnet takes that id.
let devnet: TempoDevnet
beforeAll(async () => {
  if (!reason) devnet = await startTempo({ accounts: 6, chainId: 84532 })
})
afterAll(async () => {
  await devnet?.stop()
})

const url = 'http://localhost/paid'

/** An x402 v1 server built from `x402@1.2.0`'s own pieces: its 402 body, decodePayment, verify, settle. */
function v1Server(payTo: string, amount: string) {
  const info = devnet.info
  const requirement = {
    scheme: 'exact' as const,
    network: 'base-sepolia' as const,
    maxAmountRequired: amount,
    resource: url,
    description: 'a paid thing',
    mimeType: 'text/plain',
    payTo,
    maxTimeoutSeconds: 120,
    asset: info.eip3009Token,
    extra: { name: info.eip3009.name, version: info.eip3009.version },
  }
  let runs = 0
  let settlements = 0
  const fetch = async (request: Request) => {
    const header = request.headers.get('x-payment')
    const required = (error: string) =>
      Response.json({ x402Version: 1, error, accepts: [requirement] }, { status: 402 })
    if (!header) return required('X-PAYMENT header is required')
    const payment = decodePayment(header)
    const wallet = walletOf(info, 5)
    const verified = await verify(wallet as never, payment, requirement)
    if (!verified.isValid) return required(verified.invalidReason ?? 'invalid')
    const settled = await settle(wallet as never, payment, requirement)
    if (!settled.success) return required(settled.errorReason ?? 'settle failed')
    settlements++
    runs++
    return new Response('paid content', { headers: { 'X-PAYMENT-RESPONSE': settleResponseHeader(settled) } })
  }
  return { fetch, runs: () => runs, settlements: () => settlements }
}

describe.skipIf(reason)('x402 v1', () => {
  it('our client pays an x402@1.2.0 v1 server: X-PAYMENT sent, X-PAYMENT-RESPONSE is the receipt', async () => {
    const info = devnet.info
    const payTo = info.accounts[4]!.address
    const server = v1Server(payTo, '1500')
    const before = await balanceOf(info, payTo)
    const client = createClient({
      methods: [chargeClient({ account: privateKeyToAccount(info.accounts[1]!.privateKey) })],
      protocols: [Protocol.mpp, x402Client()],
      fetch: asFetch(server.fetch),
    })
    const response = await client.fetch(url)
    expect(response.status).toBe(200)
    expect(server.settlements()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1500n)
    expect(receipt(response)).toMatchObject({ status: 'success', method: 'evm', network: 'base-sepolia' })
  })

  it('the x402@1.2.0 v1 client pays our server (X-PAYMENT), once', async () => {
    const info = devnet.info
    const payTo = info.accounts[3]!.address
    const fac = facilitator(info, 5)
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [
        charge({
          chainId: info.chainId,
          currency: info.eip3009Token,
          recipient: payTo,
          domain: { name: info.eip3009.name, version: info.eip3009.version },
          facilitator: fac.client,
        }),
      ],
    })
    let runs = 0
    const handler = x402(server, { v1: true, maxTimeoutSeconds: 120 }).protect(
      { offers: [{ method: 'evm', request: { amount: '2000' } }] },
      () => {
        runs++
        return new Response('paid content')
      },
    )
    const unpaid = await handler(new Request(url))
    expect(unpaid.status).toBe(402)
    const body = await unpaid.json()
    expect(body).toMatchObject({
      x402Version: 1,
      status: 402,
      accepts: [{ network: 'base-sepolia', maxAmountRequired: '2000' }],
    })
    const before = await balanceOf(info, payTo)
    const header = await createPaymentHeader(walletOf(info, 2) as never, 1, body.accepts[0])
    const paid = await handler(new Request(url, { headers: { 'X-PAYMENT': header } }))
    expect(paid.status).toBe(200)
    expect(runs).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(2000n)
    expect(Wire.decode(paid.headers.get('x-payment-response')!)).toMatchObject({
      success: true,
      network: 'base-sepolia',
    })
    const replay = await handler(new Request(url, { headers: { 'X-PAYMENT': header } }))
    expect(replay.status).toBe(402)
    expect(runs).toBe(1)
    expect(fac.counts.settle).toBe(1)
    const both = await handler(
      new Request(url, { headers: { 'X-PAYMENT': header, 'PAYMENT-SIGNATURE': header } }),
    )
    expect(both.status).toBe(400)
  })

  it('an Idempotency-Key retry of an x402@1.2.0 payment gets the same X-PAYMENT-RESPONSE, settled once', async () => {
    const info = devnet.info
    const payTo = info.accounts[3]!.address
    const fac = facilitator(info, 5)
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [
        charge({
          chainId: info.chainId,
          currency: info.eip3009Token,
          recipient: payTo,
          domain: { name: info.eip3009.name, version: info.eip3009.version },
          facilitator: fac.client,
        }),
      ],
    })
    let runs = 0
    const handler = x402(server, { v1: true, maxTimeoutSeconds: 120 }).protect(
      { offers: [{ method: 'evm', request: { amount: '2000' } }] },
      () => {
        runs++
        return new Response('paid content')
      },
    )
    const body = await (await handler(new Request(url))).json()
    const before = await balanceOf(info, payTo)
    const header = await createPaymentHeader(walletOf(info, 2) as never, 1, body.accepts[0])
    const send = () =>
      handler(new Request(url, { headers: { 'X-PAYMENT': header, 'Idempotency-Key': 'order-v1' } }))
    const first = await send()
    expect(first.status).toBe(200)
    const retry = await send()
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('paid content')
    const settled = decodeXPaymentResponse(first.headers.get('x-payment-response')!)
    expect(settled).toMatchObject({
      success: true,
      network: 'base-sepolia',
      payer: info.accounts[2]!.address,
    })
    expect(decodeXPaymentResponse(retry.headers.get('x-payment-response')!)).toEqual(settled)
    expect(retry.headers.get('payment-response')).toBeNull()
    expect(runs).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(2000n)
  })

  it('malformed X-PAYMENT values (base64, JSON, shape) are 402 problems with both 402 faces, never a 500', async () => {
    const info = devnet.info
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [
        charge({
          chainId: info.chainId,
          currency: info.eip3009Token,
          recipient: info.accounts[3]!.address,
          domain: { name: info.eip3009.name, version: info.eip3009.version },
          facilitator: facilitator(info, 5).client,
        }),
      ],
    })
    let runs = 0
    const handler = x402(server, { v1: true }).protect(
      { offers: [{ method: 'evm', request: { amount: '2000' } }] },
      () => {
        runs++
        return new Response('paid content')
      },
    )
    const values = [
      '%%%',
      '!!!!',
      btoa('{"x402Version":1'),
      btoa('\xff\xfe'),
      Wire.encode([1]),
      Wire.encode('text'),
      Wire.encode({ x402Version: 1 }),
      Wire.encode({ x402Version: 2, scheme: 'exact', network: 'base-sepolia', payload: {} }),
      Wire.encode({ x402Version: 1, scheme: 'exact', network: 'base-sepolia', payload: { signature: 1 } }),
    ]
    for (const value of values) {
      const response = await handler(new Request(url, { headers: { 'X-PAYMENT': value } }))
      expect(response.status, value).toBe(402)
      expect(response.headers.get('content-type')).toBe('application/problem+json')
      expect(response.headers.get('payment-required')).toBeTruthy()
      expect((await response.json()).x402Version).toBe(1)
    }
    expect(runs).toBe(0)
  })
})
