import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Installation, installAlone, missingBuild } from '../../../scripts/install-alone.js'
import { type StripeDevnet, startStripe } from './helpers.js'

// The package installs alone: `npm pack` core and method-stripe, install the two tarballs in a fresh
// folder outside the workspace (scripts/install-alone.ts), check that no chain library came along, run a
// paid server and client there against the simulator (started here, its address passed in the
// environment), and the installed `mppkit pay` reaching this rail's CLI through @mppkit/core/cli.

const reason = missingBuild(['core', 'method-stripe'])

const script = `
import { Receipt } from '@mppkit/core'
import { Client } from '@mppkit/core/client'
import { Server } from '@mppkit/core/server'
import { issuedTokens, stripe as stripeClient } from '@mppkit/method-stripe/client'
import { stripe as stripeServer } from '@mppkit/method-stripe/server'
import Stripe from 'stripe'

const info = JSON.parse(process.env.STRIPE_DEVNET)
const sdk = () => new Stripe(info.secretKey, { host: info.host, port: info.port, protocol: info.protocol })
const server = Server.create({
  realm: 'alone.test',
  secrets: ['install-alone-secret-0123456789abcdefghij'],
  methods: [stripeServer({ client: sdk(), networkId: info.networkId, currency: 'usd' })],
})
const handler = server.protect({ offers: [{ method: 'stripe', request: { amount: '1500' } }] }, () => Response.json({ ok: true }))
const client = Client.create({
  methods: [stripeClient({ createToken: issuedTokens({ client: sdk(), paymentMethod: 'pm_card_visa' }) })],
  fetch: (input, init) => handler(new Request(input, init)),
})
const response = await client.fetch('https://alone.test/paid')
const receipt = Receipt.parse(response.headers.get('payment-receipt'))
const pi = await sdk().paymentIntents.retrieve(receipt.reference)
console.log(JSON.stringify({ status: response.status, body: await response.json(), reference: receipt.reference, pi: pi.status, amount: pi.amount }))
`

// The simulator starts while the two packages are packed and installed; the test awaits both.
let node: Promise<StripeDevnet> | undefined
let installation: Promise<Installation> | undefined
beforeAll(() => {
  if (reason) return
  node = startStripe()
  installation = installAlone(['core', 'method-stripe'])
  for (const started of [node, installation]) started.catch(() => {})
})
afterAll(async () => {
  await (await node?.catch(() => undefined))?.stop()
  await (await installation?.catch(() => undefined))?.remove()
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs, installs without viem/@solana/lightning, and pays against the simulator', {
    timeout: 240_000,
  }, async () => {
    const alone = await installation!
    expect(alone.modules).toContain('stripe')
    for (const forbidden of ['viem', '@solana', 'lightning', 'ln-service', 'ox'])
      expect(alone.modules).not.toContain(forbidden)

    const { info } = await node!
    const last = await alone.run(script, { STRIPE_DEVNET: JSON.stringify(info) })
    const result = JSON.parse(last)
    expect(result).toMatchObject({ status: 200, body: { ok: true }, pi: 'succeeded', amount: 1500 })
    expect(result.reference).toMatch(/^pi_/)

    // The installed core bin finds this rail's CLI, which shares @mppkit/core/cli's rules.
    const help = await alone.bin('mppkit', ['pay', '--rail', 'stripe', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/--max-amount <\w+> +largest payment/)
    const typo = await alone.bin('mppkit', ['pay', '--rail', 'stripe', '--max-amout', '1'])
    expect(typo.code).toBe(2)
    expect(typo.stderr.split('\n')[0]).toBe(
      'mppkit pay: unknown option --max-amout (did you mean --max-amount?)',
    )
  })
})
