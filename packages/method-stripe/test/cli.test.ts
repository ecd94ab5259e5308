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
  const visa = () => [...stripeFlags(), '--payment-method', 'pm_card_visa']

  it('pays with an issued SPT within --max-amount, shows what it pays, prints the body and the receipt', async () => {
    const { out, io } = capture()
    const code = await pay(
      [`${base}/paid`, ...visa(), '--currency', 'USD', '--max-amount', '700', '-d', 'hi'],
      io,
    )
    expect(code, out.stderr).toBe(0)
    expect(out.stdout).toBe('paid POST hi')
    // To the Stripe profile the token is granted to.
    expect(out.stderr.split('\n')[0]).toBe(
      `mppkit pay: stripe/charge: pay 7 USD (700 base units) to Stripe profile ${node.info.networkId} (realm ${realm})`,
    )
    expect(out.stderr).toMatch(/"reference": "pi_\w+"/)
    expect(out.stderr + out.stdout).not.toMatch(/spt_\w{4}/)
  })

  it('refuses above the default cap of 1.00 (100 cents) without creating a token', async () => {
    const before = (await sdk(node).paymentIntents.list({ limit: 100 })).data.length
    const { out, io } = capture()
    expect(await pay([`${base}/paid`, ...visa()], io)).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatchInlineSnapshot(`
      "mppkit pay: refusing to pay 700 base units of usd: above the cap of 100 base units; raise it with --currency usd --max-amount <base units>
      "
    `)
    expect((await sdk(node).paymentIntents.list({ limit: 100 })).data.length).toBe(before)
  })

  it('asks at a terminal above 0.10 and pays only on yes; --yes does not ask', async () => {
    const questions: string[] = []
    const declined = capture()
    const no = {
      ...declined.io,
      confirm: async (q: string) => {
        questions.push(q)
        return false
      },
    }
    expect(await pay([`${base}/paid`, ...visa(), '--currency', 'usd', '--max-amount', '700'], no)).toBe(1)
    expect(questions).toEqual([
      `mppkit pay: stripe/charge: pay 7 USD (700 base units) to Stripe profile ${node.info.networkId} (realm ${realm})`,
    ])
    expect(declined.out.stdout).toBe('')
    expect(declined.out.stderr).toContain('payment declined')
    const yes = capture()
    const never = { ...yes.io, confirm: async () => expect.fail('asked despite --yes') }
    expect(await pay([`${base}/paid`, ...visa(), '--currency=usd', '--max-amount=700', '--yes'], never)).toBe(
      0,
    )
    expect(yes.out.stdout).toBe('paid GET')
  })

  // 700 is 7.00 dollars but 700 yen, 0.700 dinar: one number for every currency once paid 7 dollars
  // with a cap meant for yen.
  it('reads --max-amount in the minor units of --currency only: refused without it, other currencies not paid', async () => {
    const before = (await sdk(node).paymentIntents.list({ limit: 100 })).data.length
    const bare = capture()
    expect(await pay([`${base}/paid`, ...visa(), '--max-amount', '700', '--yes'], bare.io)).toBe(2)
    expect(bare.out.stderr.split('\n')[0]).toBe(
      "mppkit pay: --max-amount counts base units, whose size differs between this rail's currencies: " +
        'name the currency it is in with --currency <id>',
    )
    const yen = capture()
    expect(
      await pay([`${base}/paid`, ...visa(), '--currency', 'jpy', '--max-amount', '700', '--yes'], yen.io),
    ).toBe(1)
    expect(yen.out.stdout).toBe('')
    expect(yen.out.stderr).toBe(
      'mppkit pay: refusing to pay 700 base units of usd: only jpy is paid (--currency)\n',
    )
    const notCode = capture()
    expect(await pay([`${base}/paid`, ...visa(), '--currency', 'dollars', '--yes'], notCode.io)).toBe(2)
    expect(notCode.out.stderr.split('\n')[0]).toBe(
      'mppkit pay: --currency takes an ISO 4217 currency code such as usd; the 7 characters given are not one (not shown)',
    )
    expect((await sdk(node).paymentIntents.list({ limit: 100 })).data.length).toBe(before)
  })

  it('unknown options and bad values are usage errors (exit 2), before any request', async () => {
    const typo = capture()
    expect(await pay([`${base}/paid`, ...visa(), '--maxamount', '700'], typo.io)).toBe(2)
    expect(typo.out.stderr.split('\n')[0]).toBe(
      'mppkit pay: unknown option --maxamount (did you mean --max-amount?)',
    )
    const bad = capture()
    expect(await pay([`${base}/paid`, ...visa(), '--max-amount', '7.00'], bad.io)).toBe(2)
    expect(bad.out.stderr.split('\n')[0]).toBe(
      'mppkit pay: --max-amount takes a whole number of base units (e.g. 1000000), got "7.00"',
    )
    // The platform's secret key goes to the API base: a live key never in cleartext beyond this machine.
    const live = 'sk_live_51Habcdefghijklmnopqrstuvwxyz0123456789'
    for (const [key, apiBase] of [
      [live, 'http://stripe.invalid'],
      [live, 'http://192.0.2.1:12111'],
      [live, 'http://stripe.localhost:12111'],
      [node.info.secretKey, 'ftp://stripe.invalid'],
      [node.info.secretKey, 'stripe.invalid:443'],
    ] as const) {
      const insecure = capture()
      const flags = ['--stripe-key', key, '--payment-method', 'pm_card_visa', '--yes', '--api-base', apiBase]
      expect(await pay([`${base}/paid`, ...flags], insecure.io), apiBase).toBe(2)
      expect(insecure.out.stderr.split('\n')[0]).toBe(
        'mppkit pay: --api-base must be an https: URL (http: only on loopback or with a test-mode key): it receives the Stripe secret key',
      )
      expect(insecure.out.stderr).not.toContain(live.slice(0, 12))
    }
    const help = capture()
    expect(await pay(['--help'], help.io)).toBe(0)
    expect(help.out.stdout).toMatch(/--max-amount <units> +largest payment/)
  })

  it('exits 1 with the problem on a decline, 2 on missing flags', async () => {
    const declined = capture()
    expect(
      await pay(
        [
          `${base}/paid`,
          ...stripeFlags(),
          '--payment-method',
          'pm_card_chargeDeclined',
          '--currency',
          'usd',
          '--max-amount',
          '700',
        ],
        declined.io,
      ),
    ).toBe(1)
    expect(declined.out.stdout).toBe('')
    expect(declined.out.stderr).toMatch(/still asks for payment \(402\): .*\(generic_decline\)/)
    const missing = capture()
    const saved = { key: process.env.STRIPE_SECRET_KEY, method: process.env.STRIPE_PAYMENT_METHOD }
    delete process.env.STRIPE_SECRET_KEY
    delete process.env.STRIPE_PAYMENT_METHOD
    try {
      expect(await pay([`${base}/paid`, '--stripe-key', 'sk_test_x'], missing.io)).toBe(2)
      expect(missing.out.stderr.split('\n')[0]).toBe(
        'mppkit pay: missing --payment-method or STRIPE_PAYMENT_METHOD',
      )
    } finally {
      if (saved.key !== undefined) process.env.STRIPE_SECRET_KEY = saved.key
      if (saved.method !== undefined) process.env.STRIPE_PAYMENT_METHOD = saved.method
    }
  })
})
