import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server, toNodeListener } from '@mppkit/core/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pay } from '../src/cli.js'
import { stripe } from '../src/server/index.js'
import { realm, type StripeDevnet, sdk, secret, startStripe } from './helpers.js'

// `pay` of @mppkit/method-stripe/cli (what `mppkit pay` runs for Stripe) against a real HTTP server on
// loopback and the simulator.

let node: StripeDevnet
let http: HttpServer
let base: string
beforeAll(async () => {
  node = await startStripe()
  const server = Server.create({
    realm,
    secrets: [secret],
    methods: [stripe({ client: sdk(node), networkId: node.info.networkId, currency: 'usd' })],
  })
  const handler = server.protect(
    { offers: [{ method: 'stripe', request: { amount: '700' } }] },
    async (request) =>
      new Response(`paid ${request.method} ${request.method === 'POST' ? await request.text() : ''}`.trim()),
  )
  http = createHttpServer(toNodeListener(handler))
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
})
afterAll(async () => {
  http?.closeAllConnections()
  await new Promise((resolve) => http?.close(resolve))
  await node?.stop()
})

function capture() {
  const out = { stdout: '', stderr: '' }
  return {
    out,
    io: {
      stdout: (text: string) => {
        out.stdout += text
      },
      stderr: (text: string) => {
        out.stderr += text
      },
    },
  }
}

describe('pay', () => {
  const stripeFlags = () => ['--stripe-key', node.info.secretKey, '--api-base', node.info.apiBase]

  it('pays with an issued SPT, prints the body and the receipt', async () => {
    const { out, io } = capture()
    const code = await pay(
      [`${base}/paid`, ...stripeFlags(), '--payment-method', 'pm_card_visa', '-d', 'hi'],
      io,
    )
    expect(out.stderr).toMatch(/receipt: \{/)
    expect(code).toBe(0)
    expect(out.stdout).toBe('paid POST hi')
    expect(out.stderr).toMatch(/"reference": "pi_\w+"/)
    expect(out.stderr + out.stdout).not.toMatch(/spt_\w{4}/)
  })

  it('exits 1 with the problem on a decline, 1 on a policy refusal, 2 on missing flags', async () => {
    const declined = capture()
    expect(
      await pay(
        [`${base}/paid`, ...stripeFlags(), '--payment-method', 'pm_card_chargeDeclined'],
        declined.io,
      ),
    ).toBe(1)
    expect(declined.out.stdout).toContain('"reason":"generic_decline"')
    expect(declined.out.stderr).toContain('HTTP 402')
    const refused = capture()
    expect(
      await pay(
        [`${base}/paid`, ...stripeFlags(), '--payment-method', 'pm_card_visa', '--max-amount', '100'],
        refused.io,
      ),
    ).toBe(1)
    expect(refused.out.stderr).toMatchInlineSnapshot(`
      "mppkit pay: amount 700 usd exceeds the per-request maximum 100
      "
    `)
    const missing = capture()
    const saved = { key: process.env.STRIPE_SECRET_KEY, method: process.env.STRIPE_PAYMENT_METHOD }
    delete process.env.STRIPE_SECRET_KEY
    delete process.env.STRIPE_PAYMENT_METHOD
    try {
      expect(await pay([`${base}/paid`, '--stripe-key', 'sk_test_x'], missing.io)).toBe(2)
      expect(missing.out.stderr.split('\n')[0]).toBe('missing --payment-method or STRIPE_PAYMENT_METHOD')
    } finally {
      if (saved.key !== undefined) process.env.STRIPE_SECRET_KEY = saved.key
      if (saved.method !== undefined) process.env.STRIPE_PAYMENT_METHOD = saved.method
    }
  })
})
