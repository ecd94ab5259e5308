import { createSolanaRpc, signature as toSignature } from '@solana/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { airdrop, type SolanaNode, startSolana } from '../src/solana/index.js'

// Commitment levels over slots, read through an unmodified @solana/kit RPC client.
let node: SolanaNode

beforeAll(async () => {
  node = await startSolana({ commitment: { confirmed: 2, finalized: 5 } })
})
afterAll(async () => {
  await node?.stop()
})

describe('startSolana({ commitment })', () => {
  it('reports processed → confirmed → finalized as slots pass, and getTransaction follows', async () => {
    const rpc = createSolanaRpc(node.info.rpcUrl)
    const signature = toSignature(await airdrop(node, { address: node.info.payer.address, lamports: 1n }))
    const level = async () =>
      (await rpc.getSignatureStatuses([signature]).send()).value[0]?.confirmationStatus
    const fetchAt = (commitment: 'confirmed' | 'finalized') =>
      rpc
        .getTransaction(signature, { commitment, encoding: 'json', maxSupportedTransactionVersion: 0 })
        .send()
    expect(await level()).toBe('processed')
    expect(await fetchAt('confirmed')).toBeNull()
    node.advanceSlots(2)
    expect(await level()).toBe('confirmed')
    expect(await fetchAt('confirmed')).not.toBeNull()
    expect(await fetchAt('finalized')).toBeNull()
    node.advanceSlots(3)
    expect(await level()).toBe('finalized')
    const finalized = (await fetchAt('finalized')) as { meta: { err: unknown } | null } | null
    expect(finalized?.meta?.err).toBeNull()
    await expect(
      rpc.getTransaction(signature, { commitment: 'processed', encoding: 'json' } as never).send(),
    ).rejects.toThrow(/commitment below/)
  })

  it('a slot clock (slotTimeMs) confirms transactions without further traffic', async () => {
    const clocked = await startSolana({ commitment: { confirmed: 1, finalized: 3 }, slotTimeMs: 10 })
    try {
      const rpc = createSolanaRpc(clocked.info.rpcUrl)
      const signature = toSignature(
        await airdrop(clocked, { address: clocked.info.payer.address, lamports: 1n }),
      )
      for (let i = 0; i < 100; i++) {
        const status = (await rpc.getSignatureStatuses([signature]).send()).value[0]
        if (status?.confirmationStatus === 'finalized') return
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      throw new Error('never finalized')
    } finally {
      await clocked.stop()
    }
  })
})
