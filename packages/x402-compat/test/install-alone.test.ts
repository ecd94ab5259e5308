import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'

// The package installs alone: `npm pack` core and x402-compat, install the two tarballs in a fresh
// folder outside the workspace, check that viem came along and no x402, Solana or Stripe package did,
// and run a dual-stack route paid by an MPP client there, on anvil (started here, passed in the env).

const run = promisify(execFile)
const packages = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'x402-compat'].every((name) => existsSync(join(packages, name, 'dist', 'index.js')))
const reason =
  tempoUnavailableReason() ??
  (built
    ? undefined
    : 'dist/ of @mppkit/core or @mppkit/x402-compat is missing: run `npx turbo run build --filter=@mppkit/x402-compat...` (npm test builds first)')
if (reason) console.warn(`[skip] install-alone: ${reason}`)

const script = `
import { Client, receipt } from '@mppkit/core/client'
import { Server } from '@mppkit/core/server'
import { charge as payer } from '@mppkit/x402-compat/client'
import { charge, x402 } from '@mppkit/x402-compat/server'
import { createWalletClient, defineChain, http, publicActions } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'

const info = JSON.parse(process.env.TEMPO_DEVNET)
const chain = defineChain({ id: info.chainId, name: 'devnet', nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [info.rpcUrl] } } })
const wallet = createWalletClient({ account: privateKeyToAccount(info.accounts[2].privateKey), chain, transport: http(info.rpcUrl) }).extend(publicActions)
const server = Server.create({
  realm: 'alone.test',
  secrets: ['install-alone-secret-0123456789abcdefghij'],
  methods: [charge({ chainId: info.chainId, currency: info.eip3009Token, recipient: info.accounts[1].address, domain: info.eip3009, wallet })],
})
const handler = x402(server).protect({ offers: [{ method: 'evm', request: { amount: '1500' } }] }, () => Response.json({ ok: true }))
const unpaid = await handler(new Request('https://alone.test/paid'))
const client = Client.create({ methods: [payer({ account: privateKeyToAccount(info.accounts[0].privateKey) })], fetch: (input, init) => handler(new Request(input, init)) })
const response = await client.fetch('https://alone.test/paid')
console.log(JSON.stringify({ unpaid: unpaid.status, x402: unpaid.headers.has('payment-required'), status: response.status, body: await response.json(), reference: receipt(response)?.reference }))
`

let node: TempoDevnet
let folder: string
beforeAll(async () => {
  if (reason) return
  node = await startTempo({ accounts: 3 })
  folder = await mkdtemp(join(tmpdir(), 'mppkit-x402-alone-'))
})
afterAll(async () => {
  await node?.stop()
  if (folder) await rm(folder, { recursive: true, force: true })
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs, installs without any x402, Solana or Stripe package, and pays a dual-stack route on anvil', {
    timeout: 240_000,
  }, async () => {
    const tarballs: string[] = []
    for (const name of ['core', 'x402-compat']) {
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
        dependencies: { '@mppkit/core': `file:${tarballs[0]}`, '@mppkit/x402-compat': `file:${tarballs[1]}` },
      }),
    )
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], {
      cwd: folder,
      timeout: 200_000,
    })
    const installed = await readdir(join(folder, 'node_modules'))
    expect(installed).toContain('viem')
    for (const forbidden of ['@x402', 'x402', '@solana', 'stripe', 'lightning', 'mppx'])
      expect(installed).not.toContain(forbidden)

    await writeFile(join(folder, 'pay.mjs'), script)
    const { stdout } = await run('node', ['pay.mjs'], {
      cwd: folder,
      env: { ...process.env, TEMPO_DEVNET: JSON.stringify(node.info) },
      timeout: 60_000,
    })
    const result = JSON.parse(stdout.trim().split('\n').pop() as string)
    expect(result).toMatchObject({ unpaid: 402, x402: true, status: 200, body: { ok: true } })
    expect(result.reference).toMatch(/^0x[0-9a-f]{64}$/)
  })
})
