import { Receipt } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chargeClient } from '../src/client/index.js'
import { type SolanaNode, serve, startSolana, tokenBalance, tokenWorld } from './helpers.js'

let node: SolanaNode

beforeAll(async () => {
  node = await startSolana()
})
afterAll(async () => {
  await node?.stop()
})

describe('solana/charge on the devnet SVM', () => {
  it('pull, SPL Token: the server checks, sends and confirms; the receipt reference is the signature', async () => {
    const world = await tokenWorld(node)
    const { fetch, runs } = serve({
      rpcUrl: node.info.rpcUrl,
      network: 'localnet',
      currency: world.mint,
      decimals: world.decimals,
      recipient: world.recipient.address,
    })
    const client = createClient({
      methods: [chargeClient({ signer: world.payer, rpcUrl: node.info.rpcUrl, network: 'localnet' })],
      fetch,
    })
    const paid = await client.fetch('https://solana.test/r')
    expect(paid.status).toBe(200)
    expect(await paid.text()).toBe('paid content')
    const receipt = Receipt.parse(paid.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ method: 'solana', status: 'success' })
    expect(node.ledger.history.get(receipt.reference)?.err).toBeNull()
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(1000n)
    expect(runs()).toBe(1)
  })
})
