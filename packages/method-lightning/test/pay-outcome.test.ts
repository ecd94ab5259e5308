import { createHash, randomBytes } from 'node:crypto'
import { Challenge } from '@mppkit/core'
import { create as createClient, PaymentFailedError, PolicyError } from '@mppkit/core/client'
import { createHodlInvoice, createInvoice, getChannelBalance, getInvoice, settleHodlInvoice } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { feeLimit } from '../src/client/Charge.js'
import { chargeClient } from '../src/client/index.js'
import { lndFor, nodeProxy } from './helpers.js'

// The client's booking after a failed payment, against the LND simulator: kept when the payment may
// have gone out (the connection to the node dropped while it was in flight), released when LND
// finished it as failed.
let network: Lightning
beforeAll(async () => {
  network = await startLightning()
})
afterAll(async () => {
  await network?.stop()
})

/**
 * A client paying `invoice` (from a 402 that asks `sats`) with a budget of exactly one payment: the
 * invoice and its default routing fee limit.
 */
function clientFor(invoice: string, sats: number, socket?: string) {
  const challenge: Challenge.Challenge = {
    id: `ch_${randomBytes(4).toString('hex')}`,
    realm: 'lightning.test',
    method: 'lightning',
    intent: 'charge',
    request: { amount: String(sats), currency: 'sat', methodDetails: { invoice, network: 'regtest' } },
  }
  const api = (async () =>
    new Response(null, {
      status: 402,
      headers: { 'www-authenticate': Challenge.format(challenge) },
    })) as typeof fetch
  return createClient({
    methods: [chargeClient({ lnd: lndFor(network.info.nodes.payer, socket), network: 'regtest' })],
    policy: { budget: { sat: BigInt(sats) + BigInt(feeLimit(undefined, BigInt(sats))) } },
    fetch: api,
  })
}

describe('lightning/charge client, a payment that fails', () => {
  it('stays booked when the node connection drops while the payment is in flight', async () => {
    const payee = lndFor(network.info.nodes.payee)
    // A hold invoice keeps the HTLC in flight until the payee settles it.
    const preimage = randomBytes(32).toString('hex')
    const id = createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex')
    const { request } = await createHodlInvoice({ lnd: payee, id, tokens: 250 })
    const proxy = await nodeProxy(network.info.nodes.payer.socket)
    try {
      const client = clientFor(request, 250, proxy.socket)
      const paying = client.fetch('https://lightning.test/r').catch((e) => e)
      await expect
        .poll(async () => (await getInvoice({ lnd: payee, id })).is_held, { timeout: 5_000 })
        .toBe(true)
      proxy.down()
      const error = await paying
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error.mayHaveSettled).toBe(true)
      // The payee takes the money after all.
      await settleHodlInvoice({ lnd: payee, secret: preimage })
      expect((await getInvoice({ lnd: payee, id })).is_confirmed).toBe(true)
      // The payment and its whole fee limit (10 sat): what it paid in fees is not known.
      expect(client.ledger.spent('sat')).toBe(260n)
      proxy.up()
      await expect(client.fetch('https://lightning.test/r')).rejects.toBeInstanceOf(PolicyError)
    } finally {
      await proxy.close()
    }
  })

  it('is released when LND finished the payment as failed (nothing was paid)', async () => {
    const payer = lndFor(network.info.nodes.payer)
    const { channel_balance: balance } = await getChannelBalance({ lnd: payer })
    // More than the payer's channels hold: LND fails it before any HTLC goes out.
    const sats = balance + 1_000
    const { request } = await createInvoice({ lnd: lndFor(network.info.nodes.payee), tokens: sats })
    const client = clientFor(request, sats)
    const error = await client.fetch('https://lightning.test/r').catch((e) => e)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.message).toMatch(/InsufficientBalanceToAttemptPayment/)
    expect(error.mayHaveSettled).toBe(false)
    expect(client.ledger.spent('sat')).toBe(0n)
  })
})
