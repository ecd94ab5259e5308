import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Installation, installAlone, missingBuild } from '../../../scripts/install-alone.js'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'

// The package installs alone: `npm pack` core and x402-compat, install the two tarballs in a fresh
// folder outside the workspace (scripts/install-alone.ts), check that viem came along and no x402, Solana
// or Stripe package did, and run a dual-stack route paid by an MPP client there, on anvil (started here,
// passed in the env).

const tempoReason = tempoUnavailableReason()
if (tempoReason) console.warn(`[skip] install-alone: ${tempoReason}`)
const reason = tempoReason ?? missingBuild(['core', 'x402-compat'])

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

// anvil starts while the two packages are packed and installed; the test awaits both.
let node: Promise<TempoDevnet> | undefined
let installation: Promise<Installation> | undefined
beforeAll(() => {
  if (reason) return
  node = startTempo({ accounts: 3 })
  installation = installAlone(['core', 'x402-compat'])
  for (const started of [node, installation]) started.catch(() => {})
})
afterAll(async () => {
  await (await node?.catch(() => undefined))?.stop()
  await (await installation?.catch(() => undefined))?.remove()
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs, installs without any x402, Solana or Stripe package, and pays a dual-stack route on anvil', {
    timeout: 240_000,
  }, async () => {
    const alone = await installation!
    expect(alone.modules).toContain('viem')
    for (const forbidden of ['@x402', 'x402', '@solana', 'stripe', 'lightning', 'mppx'])
      expect(alone.modules).not.toContain(forbidden)

    const { info } = await node!
    const result = JSON.parse(await alone.run(script, { TEMPO_DEVNET: JSON.stringify(info) }))
    expect(result).toMatchObject({ unpaid: 402, x402: true, status: 200, body: { ok: true } })
    expect(result.reference).toMatch(/^0x[0-9a-f]{64}$/)
  })
})
