import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server, toNodeListener } from '@mppkit/core/server'
import { createTestRail, testCharge } from '@mppkit/core/testing'
import { type StripeDevnet, startStripe } from '@mppkit/devnet'
import { stripe } from '@mppkit/method-stripe/server'
import Stripe from 'stripe'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { payCommand } from '../../packages/core/src/internal/railCli.js'

// `mppkit pay` (the core bin's dispatcher) choosing the rail from the 402, against the Stripe example's
// server (same realm, price and body as ./server.mjs) on the devnet Stripe simulator. The rails' CLIs are
// the real @mppkit/method-<name>/cli modules (vitest resolves them to their sources).

let node: StripeDevnet
let http: HttpServer
let base: string
beforeAll(async () => {
  node = await startStripe()
  const { host, port, protocol, secretKey } = node.info
  const client = new Stripe(secretKey, { host, port, protocol, maxNetworkRetries: 0 })
  // A second method the server offers, named like the Tempo rail (the CLI chosen for it is the real one).
  const tempoLike = { ...createTestRail().server(), definition: { ...testCharge, name: 'tempo' } }
  const server = Server.create({
    realm: 'stripe-charge.example',
    secrets: ['dev-only-secret-change-me-0123456789abcdef'],
    methods: [stripe({ client, networkId: node.info.networkId, currency: 'usd' }), tempoLike as never],
  })
  const tempoOffer = { method: 'tempo', request: { amount: '50', currency: 'usd', recipient: 'seller' } }
  const stripeOffer = { method: 'stripe', request: { amount: '50' } }
  const body = (_request: Request, payment: { receipt: { reference: string } }) =>
    Response.json({ report: 'Q3 revenue up 12%', paymentIntent: payment.receipt.reference })
  const routes: Record<string, (request: Request) => Promise<Response>> = {
    '/report': server.protect({ offers: [stripeOffer] }, body),
    '/stripe-then-tempo': server.protect({ offers: [stripeOffer, tempoOffer] }, body),
    '/tempo-then-stripe': server.protect({ offers: [tempoOffer, stripeOffer] }, body),
  }
  http = createHttpServer(
    toNodeListener((request) => {
      const route = routes[new URL(request.url).pathname]
      return route ? route(request) : Promise.resolve(new Response('free', { status: 200 }))
    }),
  )
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
  const io = {
    stdout: (text: string) => {
      out.stdout += text
    },
    stderr: (text: string) => {
      out.stderr += text
    },
  }
  return { out, io }
}

const stripeFlags = () => [
  '--stripe-key',
  node.info.secretKey,
  '--api-base',
  node.info.apiBase,
  '--payment-method',
  'pm_card_visa',
]

describe('payCommand', () => {
  it('pays the Stripe example server with the Stripe rail it offers, and prints the receipt', async () => {
    const { out, io } = capture()
    const code = await payCommand([`${base}/report`, ...stripeFlags()], { io })
    expect(out.stderr).toMatch(/receipt: \{/)
    expect(code).toBe(0)
    expect(out.stdout).toMatch(/^\{"report":"Q3 revenue up 12%","paymentIntent":"pi_\w+"\}$/)
    expect(out.stderr).toMatch(/"method": "stripe"/)
    expect(out.stderr + out.stdout).not.toMatch(/spt_\w{4}/)
  })

  it('the Stripe rail shows what it pays, asks first at a terminal, and pays only on yes or --yes', async () => {
    const questions: string[] = []
    const declined = capture()
    const no = {
      ...declined.io,
      confirm: async (question: string) => {
        questions.push(question)
        return false
      },
    }
    expect(await payCommand([`${base}/report`, ...stripeFlags()], { io: no })).toBe(1)
    expect(declined.out.stderr).toMatchInlineSnapshot(`
      "mppkit pay: payment declined
      "
    `)
    expect(declined.out.stdout).toBe('')
    // The payee is the Stripe profile the token is granted to (the simulator's, new on each run).
    expect(questions).toHaveLength(1)
    expect(questions[0]).toMatch(
      /^mppkit pay: stripe\/charge: pay 0\.5 USD \(50 base units\) to Stripe profile profile_test_\w+ \(realm stripe-charge\.example\)$/,
    )

    const yes = capture()
    const never = { ...yes.io, confirm: async () => expect.fail('asked despite --yes') }
    expect(await payCommand([`${base}/report`, '--yes', ...stripeFlags()], { io: never })).toBe(0)
    expect(yes.out.stdout).toMatch(/"report":"Q3 revenue up 12%"/)
  })

  it('a rail CLI without its own guard and no caps to take: mppkit pay shows the offer and pays only with --yes', async () => {
    const ran: string[][] = []
    const bare = {
      pay: async (argv: string[]) => {
        ran.push(argv)
        return 0
      },
    }
    const questions: string[] = []
    const declined = capture()
    const no = {
      ...declined.io,
      confirm: async (q: string) => {
        questions.push(q)
        return false
      },
    }
    const load = async (name: string) => (name === 'stripe' ? bare : undefined)
    expect(await payCommand([`${base}/report`], { io: no, load })).toBe(1)
    // A yes here could not cap what the rail then pays (it exports no options to pass caps with):
    // not asked, not paid.
    expect(declined.out.stderr).toMatchInlineSnapshot(`
      "mppkit pay: stripe/charge asks 50 usd (smallest unit) (realm stripe-charge.example)
      mppkit pay: not paid: a confirmation here could not cap what the rail pays (the stripe rail's CLI exports no \`options\` to pass --max-amount and --currency with); check the offer(s) above and run again with --yes
      "
    `)
    expect(questions).toEqual([])
    expect(ran).toEqual([])
    const yes = capture()
    expect(await payCommand([`${base}/report`, '-y'], { io: yes.io, load })).toBe(0)
    expect(ran).toEqual([[`${base}/report`]])
  })

  it('pays with the first offered method whose CLI is installed, or the one --rail names', async () => {
    const first = capture()
    expect(await payCommand([`${base}/stripe-then-tempo`, ...stripeFlags()], { io: first.io })).toBe(0)
    expect(first.out.stderr).toMatch(/"method": "stripe"/)

    // Tempo offered first: the Tempo CLI runs (and stops at its own missing-key usage error).
    const saved = process.env.MPPKIT_PRIVATE_KEY
    delete process.env.MPPKIT_PRIVATE_KEY
    try {
      const tempo = capture()
      expect(
        await payCommand([`${base}/tempo-then-stripe`, '--rpc', 'http://127.0.0.1:1'], { io: tempo.io }),
      ).toBe(2)
      expect(tempo.out.stderr.split('\n')[0]).toBe('mppkit pay: missing --key or MPPKIT_PRIVATE_KEY')
    } finally {
      if (saved !== undefined) process.env.MPPKIT_PRIVATE_KEY = saved
    }

    const requested = capture()
    expect(
      await payCommand([`${base}/tempo-then-stripe`, '--rail', 'stripe', ...stripeFlags()], {
        io: requested.io,
      }),
    ).toBe(0)
    expect(requested.out.stdout).toMatch(/"report":"Q3 revenue up 12%"/)
    expect(requested.out.stderr).toMatch(/"method": "stripe"/)
  })

  it('exits 1 when --rail names a method the server does not offer, 2 on a bad or uninstalled rail', async () => {
    const absent = capture()
    expect(await payCommand([`${base}/report`, '--rail=tempo'], { io: absent.io })).toBe(1)
    expect(absent.out.stderr).toBe(`mppkit pay: ${base}/report does not offer tempo (it offers stripe)\n`)
    const bad = capture()
    expect(await payCommand([`${base}/report`, '--rail', '../x'], { io: bad.io })).toBe(2)
    expect(bad.out.stderr.split('\n')[0]).toBe(
      'mppkit pay: --rail takes a method name such as tempo or stripe, got "../x"',
    )
    const none = capture()
    const load = async () => undefined
    expect(await payCommand([`${base}/report`], { io: none.io, load })).toBe(1)
    expect(none.out.stderr.replace(base, '<base>')).toMatchInlineSnapshot(`
      "mppkit pay: <base>/report offers stripe; none of their CLIs is installed
      hint: npm install @mppkit/method-stripe
      "
    `)
    const uninstalled = capture()
    expect(await payCommand([`${base}/report`, '--rail', 'stripe'], { io: uninstalled.io, load })).toBe(2)
    expect(uninstalled.out.stderr).toMatchInlineSnapshot(`
      "mppkit pay: the stripe rail is not installed
      hint: npm install @mppkit/method-stripe
      "
    `)
  })

  it('prints a free resource (no 402) without loading a rail', async () => {
    const { out, io } = capture()
    expect(await payCommand([`${base}/free`], { io, load: async () => undefined })).toBe(0)
    expect(out.stdout).toBe('free')
  })
})
