import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'

// The package installs alone: `npm pack` core and method-lightning, install the two tarballs in a fresh
// folder outside the workspace, check that no chain library or Stripe came along, and pay a charge there
// against the LND simulator (started here, its nodes passed in the environment).

const run = promisify(execFile)
const packages = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'method-lightning'].every((name) =>
  existsSync(join(packages, name, 'dist', 'index.js')),
)
const reason = built
  ? undefined
  : 'dist/ of @mppkit/core or @mppkit/method-lightning is missing: run `npx turbo run build --filter=@mppkit/method-lightning...` (npm test builds first)'
if (reason) console.warn(`[skip] install-alone: ${reason}`)

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

let network: Lightning
let folder: string
beforeAll(async () => {
  if (reason) return
  network = await startLightning()
  folder = await mkdtemp(join(tmpdir(), 'mppkit-lightning-alone-'))
})
afterAll(async () => {
  await network?.stop()
  if (folder) await rm(folder, { recursive: true, force: true })
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs, installs without viem, stripe or @solana/*, and pays against the simulator', {
    timeout: 240_000,
  }, async () => {
    const tarballs: string[] = []
    for (const name of ['core', 'method-lightning']) {
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
          '@mppkit/method-lightning': `file:${tarballs[1]}`,
        },
      }),
    )
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], {
      cwd: folder,
      timeout: 200_000,
    })
    const installed = await readdir(join(folder, 'node_modules'))
    expect(installed).toContain('lightning')
    for (const forbidden of ['viem', 'stripe', '@solana', 'ox']) expect(installed).not.toContain(forbidden)

    await writeFile(join(folder, 'pay.mjs'), script)
    const { stdout } = await run('node', ['pay.mjs'], {
      cwd: folder,
      env: { ...process.env, LIGHTNING_DEVNET: JSON.stringify(network.info.nodes) },
      timeout: 60_000,
    })
    const result = JSON.parse(stdout.trim().split('\n').pop() as string)
    expect(result).toMatchObject({ status: 200, body: { ok: true } })
    expect(result.reference).toMatch(/^[0-9a-f]{64}$/)
  })
})
