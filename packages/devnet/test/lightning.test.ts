import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto'
import { once } from 'node:events'
// `invoices` is an independent BOLT 11 parser (the one `lightning` uses client side).
import { parsePaymentRequest } from 'invoices'
// The unmodified `lightning` client library (what ln-service re-exports), driving the simulator
// exactly as it would drive LND.
import {
  authenticatedLndGrpc,
  cancelHodlInvoice,
  createHodlInvoice,
  createInvoice,
  decodePaymentRequest,
  getChannelBalance,
  getInvoice,
  getPayment,
  getWalletInfo,
  pay,
  settleHodlInvoice,
  subscribeToInvoice,
  subscribeToPayViaRequest,
} from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Lightning,
  type LightningNodeInfo,
  mintMacaroon,
  startLightning,
} from '../src/lightning/index.js'

const sha256 = (hex: string) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')

let lightning: Lightning
let payer: ReturnType<typeof authenticatedLndGrpc>['lnd']
let payee: ReturnType<typeof authenticatedLndGrpc>['lnd']

beforeAll(async () => {
  lightning = await startLightning({ extraNodes: ['carol'] })
  payer = authenticatedLndGrpc(lightning.info.nodes.payer).lnd
  payee = authenticatedLndGrpc(lightning.info.nodes.payee).lnd
})
afterAll(async () => {
  await lightning?.stop()
})

// `lightning` rejects with `[code, message, { err }]` arrays.
const rejection = async (promise: Promise<unknown>) => {
  try {
    await promise
  } catch (error) {
    return error as [number, string, { err?: { code?: number; details?: string } }?]
  }
  throw new Error('expected a rejection')
}

describe('startLightning', () => {
  it('serves GetInfo over TLS with the admin macaroon (getWalletInfo)', async () => {
    const info = await getWalletInfo({ lnd: payee })
    expect(info.public_key).toBe(lightning.info.nodes.payee.publicKey)
    expect(info.public_key).toMatch(/^0[23][0-9a-f]{64}$/)
    expect(info.alias).toBe('payee')
    expect(info.chains).toEqual(['06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f'])
    expect(info.is_synced_to_chain).toBe(true)
    expect(info.features.length).toBeGreaterThan(0)
    const certificate = Buffer.from(lightning.info.nodes.payee.cert, 'base64').toString()
    expect(certificate).toMatch(/^-----BEGIN CERTIFICATE-----/)
  })

  it('rejects a macaroon minted from another root key, a missing one and a reduced one, as LND does', async () => {
    const forged = mintMacaroon({ rootKey: randomBytes(32), operations: { info: ['read'] } }).toString('hex')
    const { lnd: wrong } = authenticatedLndGrpc({ ...lightning.info.nodes.payee, macaroon: forged })
    const wrongError = await rejection(getWalletInfo({ lnd: wrong }))
    expect(wrongError[0]).toBe(503)
    expect(wrongError[2]?.err?.code).toBe(2)
    expect(wrongError[2]?.err?.details).toMatch(/signature mismatch/)

    const { macaroon: _ignored, ...withoutMacaroon } = lightning.info.nodes.payee
    const { lnd: none } = authenticatedLndGrpc(withoutMacaroon)
    const noneError = await rejection(getWalletInfo({ lnd: none }))
    expect(noneError[2]?.err?.details).toBe('expected 1 macaroon, got 0')

    // The invoice macaroon may create invoices but not read node info.
    const { lnd: invoiceOnly } = authenticatedLndGrpc({
      ...lightning.info.nodes.payee,
      macaroon: lightning.info.nodes.payee.macaroons.invoice,
    })
    expect((await rejection(getWalletInfo({ lnd: invoiceOnly })))[2]?.err?.details).toBe('permission denied')
    await expect(createInvoice({ lnd: invoiceOnly, tokens: 1 })).resolves.toHaveProperty('request')
  })

  it('rejects a client that does not trust the node certificate', async () => {
    const { lnd } = authenticatedLndGrpc({
      ...lightning.info.nodes.payee,
      cert: lightning.info.nodes.payer.cert,
    })
    const error = await rejection(getWalletInfo({ lnd }))
    expect(error[0]).toBe(503)
  })
})

describe('invoices and payments', () => {
  it('creates a signed regtest BOLT 11 invoice and pays it: preimage, balances, state', async () => {
    const before = {
      payer: await getChannelBalance({ lnd: payer }),
      payee: await getChannelBalance({ lnd: payee }),
    }
    const invoice = await createInvoice({ lnd: payee, tokens: 2_500, description: 'coffee' })
    expect(invoice.request).toMatch(/^lnbcrt25u1/)
    expect(invoice.id).toBe(sha256(invoice.secret))

    // Decoded by the node and by an independent parser.
    const decoded = await decodePaymentRequest({ lnd: payer, request: invoice.request })
    expect(decoded).toMatchObject({
      destination: lightning.info.nodes.payee.publicKey,
      tokens: 2_500,
      id: invoice.id,
    })
    const parsed = parsePaymentRequest({ request: invoice.request })
    expect(parsed).toMatchObject({
      network: 'regtest',
      tokens: 2_500,
      destination: lightning.info.nodes.payee.publicKey,
    })

    // Independent signature check with node:crypto: ECDSA over SHA-256(hrp || data) by the payee key.
    const { preimage: signedPreimage, signature, hrp } = signatureParts(invoice.request)
    const key = createPublicKey({
      key: spkiForSecp256k1(lightning.info.nodes.payee.publicKey),
      format: 'der',
      type: 'spki',
    })
    expect(
      verify(
        'sha256',
        Buffer.concat([Buffer.from(hrp), signedPreimage]),
        { key, dsaEncoding: 'ieee-p1363' },
        signature,
      ),
    ).toBe(true)

    const open = await getInvoice({ lnd: payee, id: invoice.id })
    expect(open.is_confirmed).toBe(false)

    const payment = await pay({ lnd: payer, request: invoice.request })
    expect(payment.secret).toBe(invoice.secret)
    expect(sha256(payment.secret)).toBe(invoice.id)
    expect(payment.tokens).toBe(2_500)

    const settled = await getInvoice({ lnd: payee, id: invoice.id })
    expect(settled).toMatchObject({ is_confirmed: true, received: 2_500 })

    const after = {
      payer: await getChannelBalance({ lnd: payer }),
      payee: await getChannelBalance({ lnd: payee }),
    }
    expect(after.payer.channel_balance).toBe(before.payer.channel_balance - 2_500 - payment.fee)
    expect(after.payee.channel_balance).toBe(before.payee.channel_balance + 2_500)
  })

  it('rejects paying the same invoice twice', async () => {
    const invoice = await createInvoice({ lnd: payee, tokens: 10 })
    await pay({ lnd: payer, request: invoice.request })
    const balance = await getChannelBalance({ lnd: payer })
    const error = await rejection(pay({ lnd: payer, request: invoice.request }))
    expect(error[1]).toBe('UnexpectedPaymentError')
    expect(error[2]?.err?.details).toBe('invoice is already paid')
    expect((await getChannelBalance({ lnd: payer })).channel_balance).toBe(balance.channel_balance)
  })

  it('reports the payment to getPayment (TrackPaymentV2) and unknown ids as not found', async () => {
    const invoice = await createInvoice({ lnd: payee, tokens: 42 })
    await pay({ lnd: payer, request: invoice.request })
    const tracked = await getPayment({ lnd: payer, id: invoice.id })
    expect(tracked).toMatchObject({ is_confirmed: true, is_failed: false })
    expect(tracked.payment?.secret).toBe(invoice.secret)
    const unknown = randomBytes(32).toString('hex')
    expect((await rejection(getPayment({ lnd: payer, id: unknown })))[0]).toBe(404)
    const missing = await rejection(getInvoice({ lnd: payee, id: unknown }))
    expect(missing[2]?.err).toMatchObject({ code: 5, details: 'unable to locate invoice' })
  })

  it('rejects at the payee an invoice another node already paid', async () => {
    const invoice = await createInvoice({ lnd: payee, tokens: 15 })
    await pay({ lnd: payer, request: invoice.request })
    const { lnd: carol } = authenticatedLndGrpc(lightning.info.nodes.carol as LightningNodeInfo)
    const before = await getChannelBalance({ lnd: carol })
    const error = await rejection(pay({ lnd: carol, request: invoice.request }))
    expect(error[1]).toBe('PaymentRejectedByDestination')
    expect((await getChannelBalance({ lnd: carol })).channel_balance).toBe(before.channel_balance)
    expect((await getInvoice({ lnd: payee, id: invoice.id })).received).toBe(15)
  })

  it('rejects an expired invoice', async () => {
    const invoice = await createInvoice({
      lnd: payee,
      tokens: 10,
      expires_at: new Date(Date.now() + 1_000).toISOString(),
    })
    await new Promise((resolve) => setTimeout(resolve, 1_300))
    const error = await rejection(pay({ lnd: payer, request: invoice.request }))
    expect(error[2]?.err?.details).toMatch(/^invoice expired/)
    expect((await getInvoice({ lnd: payee, id: invoice.id })).is_canceled).toBe(true)
  })

  it('checks amounts: amountless invoices need one, fixed ones refuse another', async () => {
    const amountless = await createInvoice({ lnd: payee })
    expect(parsePaymentRequest({ request: amountless.request }).tokens).toBe(0)
    const missing = await rejection(pay({ lnd: payer, request: amountless.request }))
    expect(missing[2]?.err?.details).toBe('amount must be specified when paying a zero amount invoice')
    const paid = await pay({ lnd: payer, request: amountless.request, tokens: 321 })
    expect(paid.tokens).toBe(321)
    expect((await getInvoice({ lnd: payee, id: amountless.id })).received).toBe(321)

    const fixed = await createInvoice({ lnd: payee, tokens: 50 })
    const differing = await rejection(pay({ lnd: payer, request: fixed.request, tokens: 49 }))
    expect(differing[2]?.err?.details).toMatch(/amount must not be specified/)
  })

  it('refuses an amount for a fixed-amount invoice even when it equals the invoice amount, as LND does', async () => {
    // router_backend.go: `if reqAmt != 0 { "amount must not be specified when paying a non-zero amount invoice" }`.
    const fixed = await createInvoice({ lnd: payee, tokens: 60 })
    const balance = await getChannelBalance({ lnd: payer })
    const equal = await rejection(pay({ lnd: payer, request: fixed.request, tokens: 60 }))
    expect(equal[2]?.err).toMatchObject({
      code: 2,
      details: 'amount must not be specified when paying a non-zero amount invoice',
    })
    expect((await getChannelBalance({ lnd: payer })).channel_balance).toBe(balance.channel_balance)
    expect((await getInvoice({ lnd: payee, id: fixed.id })).is_confirmed).toBe(false)
  })

  it('applies lnrpc.UnmarshallAmt to sat/msat pairs: both set or negative is an error', async () => {
    // createHodlInvoice sends `value` and `value_msat` when given both tokens and mtokens.
    const both = await rejection(
      createHodlInvoice({
        lnd: payee,
        id: sha256(randomBytes(32).toString('hex')),
        tokens: 5,
        mtokens: '5000',
      }),
    )
    expect(both[2]?.err?.details).toBe('sat and msat arguments are mutually exclusive')

    // SendPaymentV2 through the client's own router stub: fee_limit_sat and fee_limit_msat together.
    const invoice = await createInvoice({ lnd: payee, tokens: 20 })
    const sendRaw = (request: Record<string, unknown>) =>
      new Promise<{ code?: number; details?: string }>((resolve) => {
        const stream = payer.router.sendPaymentV2({
          payment_request: invoice.request,
          timeout_seconds: 5,
          ...request,
        })
        stream.on('data', () => resolve({}))
        stream.on('error', (error: { code?: number; details?: string }) => resolve(error))
      })
    expect(await sendRaw({ fee_limit_sat: 1, fee_limit_msat: 1_000 })).toMatchObject({
      code: 2,
      details: 'sat and msat arguments are mutually exclusive',
    })
    expect(await sendRaw({ fee_limit_sat: -1 })).toMatchObject({
      code: 2,
      details: 'amount cannot be negative',
    })
    expect((await getInvoice({ lnd: payee, id: invoice.id })).is_confirmed).toBe(false)
  })

  it('refuses an invoice expiry above one year, as LND does', async () => {
    const error = await rejection(
      createInvoice({
        lnd: payee,
        tokens: 1,
        expires_at: new Date(Date.now() + 400 * 86_400_000).toISOString(),
      }),
    )
    expect(error[2]?.err?.details).toMatch(
      /^expiry of \d+ seconds greater than max expiry of 31536000 seconds$/,
    )
  })

  it('fails a payment larger than the channel balance without moving funds', async () => {
    const before = await getChannelBalance({ lnd: payer })
    const invoice = await createInvoice({ lnd: payee, tokens: before.channel_balance + 1 })
    const error = await rejection(pay({ lnd: payer, request: invoice.request }))
    expect(error[1]).toBe('InsufficientBalanceToAttemptPayment')
    expect((await getChannelBalance({ lnd: payer })).channel_balance).toBe(before.channel_balance)
    expect((await getInvoice({ lnd: payee, id: invoice.id })).is_confirmed).toBe(false)
  })

  it('streams invoice updates OPEN → SETTLED (subscribeToInvoice)', async () => {
    const invoice = await createInvoice({ lnd: payee, tokens: 77 })
    const subscription = subscribeToInvoice({ lnd: payee, id: invoice.id })
    const updates: Array<{ is_confirmed: boolean }> = []
    const done = new Promise<void>((resolve) =>
      subscription.on('invoice_updated', (update: { is_confirmed: boolean }) => {
        updates.push(update)
        if (update.is_confirmed) resolve()
      }),
    )
    await once(subscription, 'invoice_updated')
    await pay({ lnd: payer, request: invoice.request })
    await done
    subscription.removeAllListeners()
    expect(updates.map((update) => update.is_confirmed)).toEqual([false, true])
  })

  it('holds an invoice ACCEPTED until settled with the preimage (createHodlInvoice)', async () => {
    const secret = randomBytes(32).toString('hex')
    const id = sha256(secret)
    const invoice = await createHodlInvoice({ lnd: payee, id, tokens: 1_000 })
    expect(parsePaymentRequest({ request: invoice.request }).id).toBe(id)

    const subscription = subscribeToPayViaRequest({ lnd: payer, request: invoice.request })
    const paying = once(subscription, 'paying')
    const confirmed = once(subscription, 'confirmed')
    await paying
    const held = await getInvoice({ lnd: payee, id })
    expect(held).toMatchObject({ is_held: true, is_confirmed: false })
    const payerBalance = await getChannelBalance({ lnd: payer })
    expect(payerBalance.unsettled_balance).toBeGreaterThanOrEqual(1_000)

    await settleHodlInvoice({ lnd: payee, secret })
    const [payment] = (await confirmed) as [{ secret: string; tokens: number }]
    expect(payment.secret).toBe(secret)
    expect(await getInvoice({ lnd: payee, id })).toMatchObject({ is_confirmed: true, is_held: undefined })
  })

  it('fails the payment back when a held invoice is canceled (cancelHodlInvoice)', async () => {
    const secret = randomBytes(32).toString('hex')
    const id = sha256(secret)
    const invoice = await createHodlInvoice({ lnd: payee, id, tokens: 500 })
    const before = await getChannelBalance({ lnd: payer })
    const subscription = subscribeToPayViaRequest({ lnd: payer, request: invoice.request })
    const failed = once(subscription, 'failed')
    await once(subscription, 'paying')
    await cancelHodlInvoice({ lnd: payee, id })
    const [failure] = (await failed) as [{ is_invalid_payment: boolean }]
    expect(failure.is_invalid_payment).toBe(true)
    expect((await getInvoice({ lnd: payee, id })).is_canceled).toBe(true)
    expect((await getChannelBalance({ lnd: payer })).channel_balance).toBe(before.channel_balance)
  })
})

describe('startLightning({ routingFee })', () => {
  let routed: Lightning
  beforeAll(async () => {
    routed = await startLightning({ routingFee: { baseMsat: 1_000, ratePpm: 1_000 } })
  })
  afterAll(async () => {
    await routed?.stop()
  })

  it('charges the routing fee to the payer and honours max_fee', async () => {
    const { lnd: from } = authenticatedLndGrpc(routed.info.nodes.payer)
    const { lnd: to } = authenticatedLndGrpc(routed.info.nodes.payee)
    const invoice = await createInvoice({ lnd: to, tokens: 10_000 })
    const tooCheap = await rejection(pay({ lnd: from, request: invoice.request, max_fee: 5 }))
    expect(tooCheap[1]).toBe('PaymentPathfindingFailedToFindPossibleRoute')
    const before = await getChannelBalance({ lnd: from })
    const payment = await pay({ lnd: from, request: invoice.request })
    // 1 000 msat base + 10 000 000 msat × 1 000 ppm = 11 000 msat = 11 sat.
    expect(payment.fee).toBe(11)
    expect(payment.hops).toHaveLength(2)
    expect((await getChannelBalance({ lnd: from })).channel_balance).toBe(before.channel_balance - 10_011)
  })
})

// BOLT 11 signature parts, taken apart here by hand (bech32 words → bytes) rather than by the simulator.
function signatureParts(request: string) {
  const words = bech32Words(request)
  const dataWords = words.slice(0, -6 - 104)
  const signatureBytes = wordsToBytes(words.slice(-6 - 104, -6), false)
  return {
    hrp: request.slice(0, request.lastIndexOf('1')),
    preimage: wordsToBytes(dataWords, true),
    signature: signatureBytes.subarray(0, 64),
  }
}
function bech32Words(request: string) {
  const charset = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
  return [...request.slice(request.lastIndexOf('1') + 1)].map((character) => charset.indexOf(character))
}
function wordsToBytes(words: number[], pad: boolean) {
  let accumulator = 0
  let bits = 0
  const out: number[] = []
  for (const word of words) {
    accumulator = (accumulator << 5) | word
    bits += 5
    while (bits >= 8) {
      bits -= 8
      out.push((accumulator >> bits) & 0xff)
    }
    accumulator &= (1 << bits) - 1
  }
  if (pad && bits > 0) out.push((accumulator << (8 - bits)) & 0xff)
  return Buffer.from(out)
}
// SubjectPublicKeyInfo for a compressed secp256k1 key (id-ecPublicKey, secp256k1), so node:crypto
// can verify the invoice signature without any of the simulator's code.
function spkiForSecp256k1(publicKeyHex: string) {
  return Buffer.concat([
    Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex'),
    Buffer.from(publicKeyHex, 'hex'),
  ])
}
