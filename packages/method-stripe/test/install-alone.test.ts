import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type StripeDevnet, startStripe } from './helpers.js'

// The package installs alone: `npm pack` core and method-stripe, install the two tarballs in a fresh
// folder outside the workspace, check that no chain library came along, and run a paid server and client
// there against the simulator (started here, its address passed in the environment).

const run = promisify(execFile)
const packages = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'method-stripe'].every((name) => existsSync(join(packages, name, 'dist', 'index.js')))
const reason = built
  ? undefined
  : 'dist/ of @mppkit/core or @mppkit/method-stripe is missing: run `npx turbo run build --filter=@mppkit/method-stripe...` (npm test builds first)'
if (reason) console.warn(`[skip] install-alone: ${reason}`)

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

let node: StripeDevnet
let folder: string
beforeAll(async () => {
  if (reason) return
  node = await startStripe()
  folder = await mkdtemp(join(tmpdir(), 'mppkit-stripe-alone-'))
})
afterAll(async () => {
  await node?.stop()
  if (folder) await rm(folder, { recursive: true, force: true })
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs, installs without viem/@solana/lightning, and pays against the simulator', {
    timeout: 240_000,
  }, async () => {
    const tarballs: string[] = []
    for (const name of ['core', 'method-stripe']) {
      const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', folder], {
        cwd: join(packages, name),
      })
      tarballs.push(join(folder, stdout.trim().split('\n').pop() as string))
    }
    await writeFile(
      join(folder, 'package.json'),
      JSON.stringify({
        name: 'alone',
        private: true,
        type: 'module',
        dependencies: {
          '@mppkit/core': `file:${tarballs[0]}`,
          '@mppkit/method-stripe': `file:${tarballs[1]}`,
        },
      }),
    )
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], {
      cwd: folder,
      timeout: 200_000,
    })
    const installed = await readdir(join(folder, 'node_modules'))
    expect(installed).toContain('stripe')
    for (const forbidden of ['viem', '@solana', 'lightning', 'ln-service', 'ox'])
      expect(installed).not.toContain(forbidden)

    await writeFile(join(folder, 'pay.mjs'), script)
    const { stdout } = await run('node', ['pay.mjs'], {
      cwd: folder,
      env: { ...process.env, STRIPE_DEVNET: JSON.stringify(node.info) },
      timeout: 60_000,
    })
    const result = JSON.parse(stdout.trim().split('\n').pop() as string)
    expect(result).toMatchObject({ status: 200, body: { ok: true }, pi: 'succeeded', amount: 1500 })
    expect(result.reference).toMatch(/^pi_/)
  })
})
