import { MemoryStore, PaymentError } from '@mppkit/core'
import type { Address, Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import type { ChannelState, SessionChain } from './Chain.js'
import { createChannelStore } from './ChannelStore.js'
import { createSettle } from './Settle.js'

const payee: Address = '0x00000000000000000000000000000000000000a1'
const currency: Address = '0x20c0000000000000000000000000000000000000'
const escrow: Address = '0x00000000000000000000000000000000000000e5'
const payer: Address = '0x00000000000000000000000000000000000000b2'
const channelId: Hex = `0x${'11'.repeat(32)}`

/** A settle over a stand-in escrow holding `onChain`, on a memory store. */
function settleOver(onChain: ChannelState) {
  const readChannel = async () => ({ ...onChain, readAt: Date.now() })
  const chain = { readChannel } as unknown as SessionChain
  const channels = createChannelStore({ ttlMs: 60_000, stateTtl: 1_000, payee, currency, readChannel })
  const settle = createSettle({
    chain,
    channels,
    escrow,
    currency,
    payee,
    unitsPerRequest: 1n,
    voucherTimeout: 1_000,
    closed: () => false,
  })
  return (signer: Address) =>
    settle({
      challenge: { id: 'challenge' },
      request: { amount: '1000', methodDetails: {} },
      payload: { signature: '0x' },
      store: new MemoryStore(),
      verified: {
        action: 'open',
        channelId,
        serialized: '0x',
        payer,
        signer,
        amount: 5_000n,
        deposit: 10_000n,
      },
      httpRequest: new Request('https://session.test/r'),
    } as never)
}

describe('createSettle', () => {
  const onChain: ChannelState = {
    payer,
    payee,
    token: currency,
    signer: '0x00000000000000000000000000000000000000c3',
    deposit: '10000',
    settled: '0',
    closeRequestedAt: '0',
    finalized: false,
    readAt: 0,
  }

  it('serves an open whose voucher signer is the on-chain channel signer', async () => {
    const settlement = await settleOver(onChain)(onChain.signer)
    expect(settlement.receipt).toMatchObject({ acceptedCumulative: '5000', spent: '1000' })
  })

  it('refuses an open of an existing channel whose on-chain signer is not the one its voucher was checked against', async () => {
    // "Signer matches `channel.payer` or `channel.authorizedSigner`" (Open Verification, step 3): the
    // channel queried from the escrow, not the open transaction's calldata.
    const refused = await settleOver(onChain)(payer).catch((error: unknown) => error)
    expect(PaymentError.is(refused) && refused.type).toBe('session/signer-mismatch')
  })
})
