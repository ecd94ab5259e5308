import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Installation, installAlone, missingBuild } from '../../../scripts/install-alone.js'
import { type SolanaNode, startSolana } from './helpers.js'

// The package installs alone: `npm pack` core and method-solana, install the two tarballs in a fresh
// folder outside the workspace (scripts/install-alone.ts), check that no viem, stripe or lightning came
// along, pay a SOL charge there (pull, then push) against a devnet node started here, and run the
// installed `mppkit pay` reaching this rail's CLI through @mppkit/core/cli.

const reason = missingBuild(['core', 'method-solana'])

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

// The node starts while the two packages are packed and installed; the test awaits both.
let node: Promise<SolanaNode> | undefined
let installation: Promise<Installation> | undefined
beforeAll(() => {
  if (reason) return
  node = startSolana()
  installation = installAlone(['core', 'method-solana'])
  for (const started of [node, installation]) started.catch(() => {})
})
afterAll(async () => {
  await (await node?.catch(() => undefined))?.stop()
  await (await installation?.catch(() => undefined))?.remove()
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs, installs without viem/stripe/lightning, and pays a SOL charge', {
    timeout: 240_000,
  }, async () => {
    const alone = await installation!
    expect(alone.modules).toContain('@solana')
    for (const forbidden of ['viem', 'stripe', 'lightning', 'ln-service', 'ox', 'mppx'])
      expect(alone.modules).not.toContain(forbidden)

    const { info } = await node!
    const last = await alone.run(script, { SOLANA_DEVNET: JSON.stringify(info) })
    const result = JSON.parse(last)
    expect(result.out.map((o: { status: number }) => o.status)).toEqual([200, 200])
    expect(result.balance).toBe(10_000_000)

    // The installed core bin finds this rail's CLI, which shares @mppkit/core/cli's rules.
    const help = await alone.bin('mppkit', ['pay', '--rail', 'solana', '--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/--max-amount <\w+> +largest payment/)
    const typo = await alone.bin('mppkit', ['pay', '--rail', 'solana', '--rpcurl', '1'])
    expect(typo.code).toBe(2)
    expect(typo.stderr.split('\n')[0]).toBe('mppkit pay: unknown option --rpcurl (did you mean --rpc-url?)')
  })
})
