import { create as createClient, Protocol } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { x402Client, x402HTTPClient } from '@x402/core/client'
import { HTTPFacilitatorClient } from '@x402/core/server'
import { toClientEvmSigner } from '@x402/evm'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import { type Hex, toHex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { typedData } from '../src/Authorization.js'
import { charge as chargeClient } from '../src/client/index.js'
import { charge, type Facilitator, x402 } from '../src/server/index.js'
import type { Reader } from '../src/server/Shared.js'
import * as Wire from '../src/Wire.js'
import { asFetch, balanceOf, facilitator, walletOf } from './peers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
beforeAll(async () => {
  if (!reason) devnet = await startTempo({ accounts: 8 })
})
afterAll(async () => {
  await devnet?.stop()
})

const url = 'http://localhost/paid'

function setup(options: { facilitator?: Facilitator; timeout?: number; client?: Reader } = {}) {
  const info = devnet.info
  const fac = facilitator(info, 7)
  const payTo = info.accounts[6]!.address
  const method = charge({
    chainId: info.chainId,
    currency: info.eip3009Token,
    recipient: payTo,
    domain: { name: info.eip3009.name, version: info.eip3009.version },
    decimals: info.eip3009.decimals,
    facilitator: options.facilitator ?? fac.client,
    ...(options.timeout ? { timeout: options.timeout } : {}),
    ...(options.client ? { client: options.client } : {}),
  })
  const server = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    methods: [method],
  })
  let runs = 0
  const handler = x402(server, { maxTimeoutSeconds: 120 }).protect(
    { offers: [{ method: 'evm', request: { amount: '1000' } }] },
    () => {
      runs++
      return new Response('paid content')
    },
  )
  return { info, fac, payTo, handler, runs: () => runs }
}

/** The `@x402/fetch` v2 client of dev account `index`, allowed to pay the devnet token. */
function x402Fetch(handler: (request: Request) => Promise<Response>, index: number) {
  const info = devnet.info
  const network = `eip155:${info.chainId}` as const
  const client = x402Client.fromConfig({
    schemes: [
      {
        network,
        client: new ExactEvmScheme(toClientEvmSigner(privateKeyToAccount(info.accounts[index]!.privateKey))),
      },
    ],
    spendControls: { allowedAssets: [{ network, asset: info.eip3009Token, maxAmountPerPayment: '1000000' }] },
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

/** Signs an x402 v2 payment for the route's requirement, with chosen changes (tampering, expiry). */
async function signed(
  index: number,
  requirement: Record<string, any>,
  change: { value?: string; to?: string; validBefore?: string; accepted?: Record<string, unknown> } = {},
) {
  const info = devnet.info
  const account = privateKeyToAccount(info.accounts[index]!.privateKey)
  const authorization = {
    from: account.address,
    to: change.to ?? requirement.payTo,
    value: change.value ?? requirement.amount,
    validAfter: '0',
    validBefore: change.validBefore ?? String(Math.floor(Date.now() / 1000) + 60),
    nonce: toHex(globalThis.crypto.getRandomValues(new Uint8Array(32))) as Hex,
  }
  const signature = await account.signTypedData(
    typedData({ ...info.eip3009, chainId: info.chainId, token: info.eip3009Token }, authorization),
  )
  return Wire.encode({
    x402Version: 2,
    resource: { url },
    accepted: { ...requirement, ...change.accepted },
    payload: { signature, authorization },
  })
}

async function requirementOf(handler: (request: Request) => Promise<Response>) {
  const response = await handler(new Request(url))
  return (
    Wire.decode(response.headers.get(Wire.headers.paymentRequired)!).accepts as Record<string, any>[]
  )[0]!
}

describe.skipIf(reason)('x402 (server) with @x402/fetch v2 and MPP clients on one route', () => {
  it('answers a 402 with WWW-Authenticate: Payment and PAYMENT-REQUIRED for the same price', async () => {
    const { info, handler, payTo } = setup()
    const response = await handler(new Request(url))
    expect(response.status).toBe(402)
    expect(response.headers.get('www-authenticate')).toMatch(
      /^Payment id="[^"]+", realm="localhost", method="evm", intent="charge"/,
    )
    const required = Wire.decode(response.headers.get(Wire.headers.paymentRequired)!)
    expect(required).toMatchObject({
      x402Version: 2,
      resource: { url },
      accepts: [
        {
          scheme: 'exact',
          network: `eip155:${info.chainId}`,
          asset: info.eip3009Token,
          amount: '1000',
          payTo,
          maxTimeoutSeconds: 120,
          extra: { name: 'USD Coin', version: '2' },
        },
      ],
    })
  })

  it('@x402/fetch pays: settles once, the handler runs, Payment-Receipt and PAYMENT-RESPONSE are sent', async () => {
    const { info, handler, payTo, fac, runs } = setup()
    const before = await balanceOf(info, payTo)
    const { fetch } = x402Fetch(handler, 1)
    const response = await fetch(url)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('paid content')
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
    expect(response.headers.get('payment-receipt')).toBeTruthy()
    const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
    expect(settled).toMatchObject({
      success: true,
      network: `eip155:${info.chainId}`,
      payer: info.accounts[1]!.address,
    })
    expect(settled.transaction).toMatch(/^0x[0-9a-f]{64}$/)
  })

  it('an Idempotency-Key retry of an @x402/fetch payment is served again with the same PAYMENT-RESPONSE, settled once', async () => {
    const { info, handler, payTo, fac, runs } = setup()
    const before = await balanceOf(info, payTo)
    const { fetch, sent } = x402Fetch(handler, 1)
    const init = { headers: { 'idempotency-key': 'order-x402-fetch' } }
    const first = await fetch(url, init)
    expect(first.status).toBe(200)
    expect(sent).toHaveLength(1)
    // The answer was lost: the client sends its paid request again (same key, same PAYMENT-SIGNATURE);
    // @x402/fetch passes a non-402 answer through as it is.
    const retry = await fetch(url, {
      headers: { ...init.headers, [Wire.headers.paymentSignature]: sent[0]! },
    })
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('paid content')
    const reader = new x402HTTPClient(x402Client.fromConfig({ schemes: [] }))
    const settledFirst = reader.getPaymentSettleResponse((name) => first.headers.get(name))
    const settledAgain = reader.getPaymentSettleResponse((name) => retry.headers.get(name))
    expect(settledAgain).toEqual(settledFirst)
    expect(settledAgain).toMatchObject({
      success: true,
      network: `eip155:${info.chainId}`,
      payer: info.accounts[1]!.address,
    })
    expect(retry.headers.get(Wire.headers.paymentResponse)).toBe(
      first.headers.get(Wire.headers.paymentResponse),
    )
    expect(retry.headers.get('payment-receipt')).toBe(first.headers.get('payment-receipt'))
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('an MPP client pays the same route natively (nonce = challenge hash)', async () => {
    const { info, handler, payTo, runs } = setup()
    const before = await balanceOf(info, payTo)
    const client = createClient({
      methods: [chargeClient({ account: privateKeyToAccount(info.accounts[2]!.privateKey) })],
      protocols: [Protocol.mpp],
      fetch: asFetch(handler),
    })
    const response = await client.fetch(url)
    expect(response.status).toBe(200)
    expect(runs()).toBe(1)
    expect(response.headers.get(Wire.headers.paymentResponse)).toBeNull()
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it("mppx@0.11.0's evm client pays the same route natively", async () => {
    const mppxClient = await import('mppx/client').catch(() => undefined)
    const mppxEvm = await import('mppx/evm/client').catch(() => undefined)
    if (!mppxClient || !mppxEvm) {
      console.warn('[skip] mppx@0.11.0 is not installed')
      return
    }
    const { info, handler, payTo, runs } = setup()
    const before = await balanceOf(info, payTo)
    const mppx = mppxClient.Mppx.create({
      methods: [
        mppxEvm.charge({
          account: privateKeyToAccount(info.accounts[2]!.privateKey),
          authorization: { name: info.eip3009.name, version: info.eip3009.version },
        }),
      ],
      polyfill: false,
      fetch: ((input: RequestInfo, init?: RequestInit) => handler(new Request(input, init))) as typeof fetch,
    })
    const response = await mppx.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('refuses a replayed PAYMENT-SIGNATURE and settles 50 concurrent copies once', async () => {
    const { handler, fac, runs } = setup()
    const header = await signed(3, await requirementOf(handler))
    const send = () => handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))
    const responses = await Promise.all(Array.from({ length: 50 }, send))
    const statuses = responses.map((r) => r.status)
    expect(statuses.filter((s) => s === 200)).toHaveLength(1)
    expect(statuses.filter((s) => s === 402)).toHaveLength(49)
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    const replay = await send()
    expect(replay.status).toBe(402)
    expect(await replay.json()).toMatchObject({ reason: 'authorization-used' })
    expect(replay.headers.get(Wire.headers.paymentRequired)).toBeTruthy()
    expect(fac.counts.settle).toBe(1)
  })

  it('refuses tampered amount, recipient and asset, and an expired authorization', async () => {
    const { info, handler, fac, runs } = setup()
    const requirement = await requirementOf(handler)
    const cases = {
      amount: await signed(4, requirement, { value: '999', accepted: { amount: '999' } }),
      value: await signed(4, requirement, { value: '999' }),
      recipient: await signed(4, requirement, { to: info.accounts[5]!.address }),
      asset: await signed(4, requirement, { accepted: { asset: info.tokens.pathUsd } }),
      expired: await signed(4, requirement, { validBefore: String(Math.floor(Date.now() / 1000) - 1) }),
    }
    const details: Record<string, unknown> = {}
    for (const [name, header] of Object.entries(cases)) {
      const response = await handler(
        new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }),
      )
      expect(response.status).toBe(402)
      details[name] = (await response.json()).detail
    }
    expect(details).toMatchInlineSnapshot(`
      {
        "amount": "The accepted requirement is not offered here now.",
        "asset": "The accepted requirement is not offered here now.",
        "expired": "The authorization has expired.",
        "recipient": "The authorization pays another recipient.",
        "value": "The authorization moves another amount.",
      }
    `)
    expect(runs()).toBe(0)
    expect(fac.counts.settle).toBe(0)
  })

  it('facilitator down or slow → 503 + Retry-After, nothing consumed: the same signature pays later', async () => {
    const down = setup({ facilitator: new HTTPFacilitatorClient({ url: 'http://127.0.0.1:1' }) })
    const header = await signed(5, await requirementOf(down.handler))
    const first = await down.handler(
      new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }),
    )
    expect(first.status).toBe(503)
    expect(first.headers.get('retry-after')).toBe('1')
    const slow = setup({
      facilitator: { verify: () => new Promise(() => {}), settle: () => new Promise(() => {}) },
      timeout: 200,
    })
    const second = await slow.handler(
      new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }),
    )
    expect(second.status).toBe(503)
    expect(down.runs() + slow.runs()).toBe(0)
    // Each setup has its own store, so this shows the chain did not consume the authorization.
    const working = setup()
    const paid = await working.handler(
      new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }),
    )
    expect(paid.status).toBe(200)
  })

  it('a settlement whose answer is lost after the transfer landed is found on chain: served once, then refused', async () => {
    const fac = facilitator(devnet.info, 7)
    // The facilitator settles for real, then the connection drops before its answer arrives.
    const losing: Facilitator = {
      verify: (document, requirement) => fac.client.verify(document as never, requirement as never),
      settle: async (document, requirement) => {
        await fac.client.settle(document as never, requirement as never)
        throw new Error('socket hang up')
      },
    }
    const { info, handler, payTo, runs } = setup({ facilitator: losing, client: walletOf(devnet.info, 0) })
    const before = await balanceOf(info, payTo)
    const header = await signed(5, await requirementOf(handler))
    const send = () => handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))
    const paid = await send()
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
    const again = await send()
    expect(again.status).toBe(402)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('malformed PAYMENT-SIGNATURE values are problems, never a 500', async () => {
    const { handler } = setup()
    const values = [
      '%%%',
      'e30',
      Wire.encode([1]),
      btoa('{"x402Version":2'),
      Wire.encode({ x402Version: 2 }),
      Wire.encode({ x402Version: 2, payload: { signature: 1 } }),
    ]
    for (const value of values) {
      const response = await handler(
        new Request(url, { headers: { [Wire.headers.paymentSignature]: value } }),
      )
      expect(response.status).toBe(402)
      expect(response.headers.get('content-type')).toBe('application/problem+json')
    }
  })

  it('a price that cannot be computed is a 503 problem for x402 credentials too, never a 500', async () => {
    const { info, handler } = setup()
    const header = await signed(5, await requirementOf(handler))
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [
        charge({
          chainId: info.chainId,
          currency: info.eip3009Token,
          recipient: info.accounts[6]!.address,
          domain: { name: info.eip3009.name, version: info.eip3009.version },
          facilitator: facilitator(info, 7).client,
        }),
      ],
      onError: () => {},
    })
    const broken = x402(server).protect(
      {
        offers: [
          {
            method: 'evm',
            request: () => {
              throw new Error('price feed down')
            },
          },
        ],
      },
      () => new Response('never'),
    )
    const response = await broken(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))
    expect(response.status).toBe(503)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
  })

  it('a request with both a Payment credential and PAYMENT-SIGNATURE is a 400', async () => {
    const { handler } = setup()
    const header = await signed(5, await requirementOf(handler))
    const response = await handler(
      new Request(url, {
        headers: { [Wire.headers.paymentSignature]: header, authorization: 'Payment eyJ9' },
      }),
    )
    expect(response.status).toBe(400)
  })
})
