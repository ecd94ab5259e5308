import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SolanaNode, startSolana } from './helpers.js'

// The package installs alone: `npm pack` core and method-solana, install the two tarballs in a fresh
// folder outside the workspace, check that no viem, stripe or lightning came along, and pay a SOL
// charge there (pull, then push) against a devnet node started here.

const run = promisify(execFile)
const packages = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'method-solana'].every((name) => existsSync(join(packages, name, 'dist', 'index.js')))
const reason = built
  ? undefined
  : 'dist/ of @mppkit/core or @mppkit/method-solana is missing: run `npx turbo run build --filter=@mppkit/method-solana...` (npm test builds first)'
if (reason) console.warn(`[skip] install-alone: ${reason}`)

const script = `
import { Receipt } from '@mppkit/core'
import { Client } from '@mppkit/core/client'
import { Server } from '@mppkit/core/server'
import { solana as solanaClient } from '@mppkit/method-solana/client'
import { solana as solanaServer } from '@mppkit/method-solana/server'
import { createKeyPairSignerFromBytes, generateKeyPairSigner } from '@solana/kit'

const info = JSON.parse(process.env.SOLANA_DEVNET)
const recipient = (await generateKeyPairSigner()).address
const server = Server.create({
  realm: 'alone.test',
  secrets: ['install-alone-secret-0123456789abcdefghij'],
  methods: [solanaServer({ rpcUrl: info.rpcUrl, network: 'localnet', currency: 'sol', recipient })],
})
const handler = server.protect({ offers: [{ method: 'solana', request: { amount: '5000000' } }] }, () => Response.json({ ok: true }))
const signer = await createKeyPairSignerFromBytes(new Uint8Array(info.payer.secretKey))
const out = []
for (const mode of ['pull', 'push']) {
  const client = Client.create({
    methods: [solanaClient({ signer, rpcUrl: info.rpcUrl, network: 'localnet', mode })],
    fetch: (input, init) => handler(new Request(input, init)),
  })
  const response = await client.fetch('https://alone.test/paid')
  out.push({ status: response.status, reference: Receipt.parse(response.headers.get('payment-receipt')).reference })
}
const balance = await fetch(info.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'getBalance', params: [recipient] }) }).then((r) => r.json())
console.log(JSON.stringify({ out, balance: balance.result.value }))
`

let node: SolanaNode
let folder: string
beforeAll(async () => {
  if (reason) return
  node = await startSolana()
  folder = await mkdtemp(join(tmpdir(), 'mppkit-solana-alone-'))
})
afterAll(async () => {
  await node?.stop()
  if (folder) await rm(folder, { recursive: true, force: true })
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs, installs without viem/stripe/lightning, and pays a SOL charge', {
    timeout: 240_000,
  }, async () => {
    const tarballs: string[] = []
    for (const name of ['core', 'method-solana']) {
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
          '@mppkit/method-solana': `file:${tarballs[1]}`,
        },
      }),
    )
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], {
      cwd: folder,
      timeout: 200_000,
    })
    const installed = await readdir(join(folder, 'node_modules'))
    expect(installed).toContain('@solana')
    for (const forbidden of ['viem', 'stripe', 'lightning', 'ln-service', 'ox', 'mppx'])
      expect(installed).not.toContain(forbidden)

    await writeFile(join(folder, 'pay.mjs'), script)
    const { stdout } = await run('node', ['pay.mjs'], {
      cwd: folder,
      env: { ...process.env, SOLANA_DEVNET: JSON.stringify(node.info) },
      timeout: 60_000,
    })
    const result = JSON.parse(stdout.trim().split('\n').pop() as string)
    expect(result.out.map((o: { status: number }) => o.status)).toEqual([200, 200])
    expect(result.balance).toBe(10_000_000)
  })
})
