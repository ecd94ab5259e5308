import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Installation, installAlone, missingBuild } from '../../../scripts/install-alone.js'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'

// The package installs alone: `npm pack` core and method-lightning, install the two tarballs in a fresh
// folder outside the workspace (scripts/install-alone.ts), check that no chain library or Stripe came
// along, pay a charge there against the LND simulator (started here, its nodes passed in the
// environment), and run the installed `mppkit pay` reaching this rail's CLI through @mppkit/core/cli.

const reason = missingBuild(['core', 'method-lightning'])

const script = `
import { Receipt } from '@mppkit/core'
import { Client } from '@mppkit/core/client'
import { Server } from '@mppkit/core/server'
import { lightning as lightningClient } from '@mppkit/method-lightning/client'
import { lightning as lightningServer } from '@mppkit/method-lightning/server'
import { authenticatedLndGrpc } from 'lightning'

const nodes = JSON.parse(process.env.LIGHTNING_DEVNET)
const server = Server.create({
  realm: 'alone.test',
  secrets: ['install-alone-secret-0123456789abcdefghij'],
  methods: [lightningServer({ lnd: authenticatedLndGrpc(nodes.payee).lnd })],
})
const handler = server.protect({ offers: [{ method: 'lightning', request: { amount: '21' } }] }, () => Response.json({ ok: true }))
const client = Client.create({
  methods: [lightningClient({ lnd: authenticatedLndGrpc(nodes.payer).lnd, network: 'regtest' })],
  fetch: (input, init) => handler(new Request(input, init)),
})
const response = await client.fetch('https://alone.test/paid')
const receipt = Receipt.parse(response.headers.get('payment-receipt'))
console.log(JSON.stringify({ status: response.status, body: await response.json(), reference: receipt.reference }))
process.exit(0)
`

// The simulator starts while the two packages are packed and installed; the test awaits both.
let network: Promise<Lightning> | undefined
let installation: Promise<Installation> | undefined
beforeAll(() => {
  if (reason) return
  network = startLightning()
  installation = installAlone(['core', 'method-lightning'])
  for (const started of [network, installation]) started.catch(() => {})
})
afterAll(async () => {
  await (await network?.catch(() => undefined))?.stop()
  await (await installation?.catch(() => undefined))?.remove()
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs, installs without viem, stripe or @solana/*, and pays against the simulator', {
    timeout: 240_000,
  }, async () => {
    const alone = await installation!
    expect(alone.modules).toContain('lightning')
    for (const forbidden of ['viem', 'stripe', '@solana', 'ox'])
      expect(alone.modules).not.toContain(forbidden)

    const { info } = await network!
    const last = await alone.run(script, { LIGHTNING_DEVNET: JSON.stringify(info.nodes) })
    const result = JSON.parse(last)
    expect(result).toMatchObject({ status: 200, body: { ok: true } })
    expect(result.reference).toMatch(/^[0-9a-f]{64}$/)

    // The installed core bin finds this rail's CLI, which shares @mppkit/core/cli's rules.
    const help = await alone.bin('mppkit', ['pay', '--rail', 'lightning', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/--max-amount <\w+> +largest payment/)
    const typo = await alone.bin('mppkit', ['pay', '--rail', 'lightning', '--max-fees', '1'])
    expect(typo.code).toBe(2)
    expect(typo.stderr.split('\n')[0]).toBe('mppkit pay: unknown option --max-fees (did you mean --max-fee?)')
  })
})
