import { Receipt } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { generateKeyPairSigner } from '@solana/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount } from '../../devnet/src/solana/index.js'
import { chargeClient } from '../src/client/index.js'
import { type SolanaNode, serve, signerOf, startSolana, tokenBalance, tokenWorld } from './helpers.js'

// Interop with the Solana Foundation's SDK, @solana/mpp@0.6.0 (over mppx), on the devnet SVM, in both
// directions: its client pays our server (pull and push), our client pays its server (pull and push).
const mppClient = await import('@solana/mpp/client').catch(() => undefined)
const mppServer = await import('@solana/mpp/server').catch(() => undefined)
const reason = mppClient && mppServer ? undefined : '@solana/mpp is not installed'
if (reason) console.warn(`[skip] ${reason}`)

const realm = 'interop.test'
const secret = 'solana-interop-secret-0123456789abcdefghij'
let node: SolanaNode

beforeAll(async () => {
  node = await startSolana({ commitment: { confirmed: 1, finalized: 4 }, slotTimeMs: 20 })
})
afterAll(async () => {
  await node?.stop()
})

describe.skipIf(!!reason)('solana/charge ↔ @solana/mpp@0.6.0', () => {
  for (const broadcast of [false, true])
    it(`its client pays our server (${broadcast ? 'push' : 'pull'})`, async () => {
      const world = await tokenWorld(node)
      const served = serve(
        {
          rpcUrl: node.info.rpcUrl,
          network: 'localnet',
          currency: world.mint,
          decimals: 6,
          recipient: world.recipient.address,
        },
        { method: 'solana', request: { amount: '1500', externalId: 'inv-7' } },
      )
      const mppx = mppClient!.Mppx.create({
        polyfill: false,
        fetch: served.fetch,
        methods: [mppClient!.solana.charge({ signer: world.payer, rpcUrl: node.info.rpcUrl, broadcast })],
      })
      const response = await mppx.fetch('https://solana.test/r')
      expect(response.status, await response.clone().text()).toBe(200)
      const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
      expect(node.ledger.history.get(receipt.reference)?.err).toBeNull()
      expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(1500n)
    })

  it('its client pays our fee-sponsored server with splits (pull)', async () => {
    const world = await tokenWorld(node)
    const feePayer = await signerOf(await createFundedAccount(node))
    const split = await generateKeyPairSigner()
    const served = serve({
      rpcUrl: node.info.rpcUrl,
      network: 'localnet',
      currency: world.mint,
      decimals: 6,
      recipient: world.recipient.address,
      feePayer,
      splits: [{ recipient: split.address, amount: '100', ataCreationRequired: true, memo: 'platform' }],
    })
    const mppx = mppClient!.Mppx.create({
      polyfill: false,
      fetch: served.fetch,
      methods: [mppClient!.solana.charge({ signer: world.payer, rpcUrl: node.info.rpcUrl })],
    })
    const response = await mppx.fetch('https://solana.test/r')
    expect(response.status, await response.clone().text()).toBe(200)
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(900n)
    expect(await tokenBalance(node, world.mint, split.address)).toBe(100n)
  })

  it('our client pays its server (pull, then push)', async () => {
    const world = await tokenWorld(node)
    const mppx = mppServer!.Mppx.create({
      realm,
      secretKey: secret,
      methods: [
        mppServer!.solana.charge({
          recipient: world.recipient.address,
          currency: world.mint,
          decimals: 6,
          network: 'localnet',
          rpcUrl: node.info.rpcUrl,
        }),
      ],
    })
    const route = (mppx as unknown as Record<string, (o: unknown) => (r: Request) => Promise<any>>)[
      'solana/charge'
    ]!({ amount: '2000', externalId: 'inv-9' })
    const handler = async (request: Request) => {
      const result = await route(request)
      if (result.status === 402) return result.challenge as Response
      return result.withReceipt(Response.json({ paid: true })) as Response
    }
    for (const mode of ['pull', 'push'] as const) {
      const client = createClient({
        methods: [chargeClient({ signer: world.payer, rpcUrl: node.info.rpcUrl, network: 'localnet', mode })],
        fetch: ((input: RequestInfo, init?: RequestInit) =>
          handler(new Request(input, init))) as typeof fetch,
      })
      const response = await client.fetch('https://interop.test/paid')
      expect(response.status, await response.clone().text()).toBe(200)
      const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
      expect(node.ledger.history.get(receipt.reference)?.err).toBeNull()
    }
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(4000n)
  })
})
