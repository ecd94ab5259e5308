import { Challenge, create, PaymentFailedError, PolicyError } from '@mppkit/core/client'
import { describe, expect, it } from 'vitest'
import { chargeClient } from './Charge.js'
import type { Wallet } from './Wallet.js'

// A regtest invoice of 250 sat from the devnet's BOLT 11 encoder (see Invoice.test.ts): payment hash
// ab…ab, created at 1 800 000 000 s, expiring 600 s later.
const invoice =
  'lnbcrt2500n1p45n5sqpp54w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w46h2at4w4ssp5ehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxumnwdehxsdq2vdhkven9v5xqzjccqzzs9qyysgq4drzz4c9r0r0vp0yf8f3ddfu7cvers2k5zawsznl5tdh4gzmf49hgec4nhk3auhvqe26egylxfnv85smm2md205g6cs60sjh4qq098gpz4hf2j'
const now = () => 1_800_000_000_000
const challenge: Challenge.Challenge = {
  id: 'ch_ln',
  realm: 'ln.test',
  method: 'lightning',
  intent: 'charge',
  request: { amount: '250', currency: 'sat', methodDetails: { invoice, network: 'regtest' } },
}
const api = (async () =>
  new Response(null, {
    status: 402,
    headers: { 'www-authenticate': Challenge.format(challenge) },
  })) as typeof fetch

/** A wallet whose payments all fail with `failure`; counts its attempts. */
function failing(failure: () => unknown) {
  let attempts = 0
  const wallet: Wallet = {
    pay: async () => {
      attempts++
      throw failure()
    },
    receive: async () => ({ invoice }),
  }
  return { wallet, attempts: () => attempts }
}

// The budget of one payment: the invoice's 250 sat and its default routing fee limit of 10 sat.
const clientOf = (wallet: Wallet) =>
  create({
    methods: [chargeClient({ wallet, network: 'regtest', now })],
    policy: { budget: { sat: 260n } },
    fetch: api,
  })

describe('lightning/charge client, a payment whose outcome is unknown', () => {
  const unknown: [string, () => unknown][] = [
    // The gRPC stream broke while HTLCs may be in flight.
    ['a lost connection', () => [503, 'UnexpectedPaymentError', { err: new Error('14 UNAVAILABLE') }]],
    ['a wallet error', () => new Error('socket hang up')],
    ['a wallet marking it', () => new PaymentFailedError('pending', { mayHaveSettled: true })],
  ]
  for (const [what, failure] of unknown)
    it(`stays booked after ${what}: the retry is refused before paying again`, async () => {
      const { wallet, attempts } = failing(failure)
      const client = clientOf(wallet)
      const error = await client.fetch('https://ln.test/r').catch((e) => e)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error.mayHaveSettled).toBe(true)
      // The payment and its whole fee limit: what it paid in fees is not known.
      expect(client.ledger.spent('sat')).toBe(260n)
      await expect(client.fetch('https://ln.test/r')).rejects.toBeInstanceOf(PolicyError)
      expect(attempts()).toBe(1)
    })

  it('stays booked when the node reports it paid with a preimage that does not match', async () => {
    const wallet: Wallet = {
      pay: async () => ({ preimage: '00'.repeat(32) }),
      receive: async () => ({ invoice }),
    }
    const client = clientOf(wallet)
    const error = await client.fetch('https://ln.test/r').catch((e) => e)
    expect(error.mayHaveSettled).toBe(true)
    expect(error.message).not.toContain('00'.repeat(32))
    expect(client.ledger.spent('sat')).toBe(260n)
  })

  const failed: [string, () => unknown][] = [
    ['no route', () => [503, 'PaymentPathfindingFailedToFindPossibleRoute']],
    ['a refusal before sending', () => [400, 'ExpectedPaymentRequestToPayViaPaymentRequest']],
    ['a wallet saying nothing was paid', () => new PaymentFailedError('insufficient balance')],
  ]
  for (const [what, failure] of failed)
    it(`is released after ${what}: nothing was paid`, async () => {
      const { wallet, attempts } = failing(failure)
      const client = clientOf(wallet)
      const error = await client.fetch('https://ln.test/r').catch((e) => e)
      expect(error.mayHaveSettled).toBe(false)
      expect(client.ledger.spent('sat')).toBe(0n)
      await expect(client.fetch('https://ln.test/r')).rejects.toBeInstanceOf(PaymentFailedError)
      expect(attempts()).toBe(2)
    })
})

describe('lightning/charge client, the routing fee limit', () => {
  /** A client whose wallet records the fee limit it is asked to pay under (and pays nothing). */
  const recording = (maxFeeSats: unknown) => {
    const limits: unknown[] = []
    const wallet: Wallet = {
      pay: async (_invoice, options) => {
        limits.push(options.maxFeeSats)
        throw new PaymentFailedError('recorded')
      },
      receive: async () => ({ invoice }),
    }
    const client = create({
      methods: [chargeClient({ wallet, network: 'regtest', now, maxFeeSats: maxFeeSats as never })],
      policy: { budget: { sat: 1_000n } },
      fetch: api,
    })
    return { client, limits }
  }

  it('pays under the default (1% of the amount, at least 10 sat) or the configured limit', async () => {
    for (const [option, expected] of [
      [undefined, 10],
      [3, 3],
      [(sats: bigint) => Number(sats) / 50, 5],
    ] as const) {
      const { client, limits } = recording(option)
      await expect(client.fetch('https://ln.test/r')).rejects.toBeInstanceOf(PaymentFailedError)
      expect(limits).toEqual([expected])
    }
  })

  // `lightning`'s pay without a fee limit lets LND spend up to Number.MAX_SAFE_INTEGER sat on fees.
  it('refuses a limit that is not a whole number of satoshis, 0 or more, before paying', async () => {
    for (const option of [
      () => undefined,
      (sats: bigint) => sats / 100n,
      -1,
      1.5,
      Number.NaN,
      () => Infinity,
    ]) {
      const { client, limits } = recording(option)
      await expect(client.fetch('https://ln.test/r')).rejects.toThrowErrorMatchingInlineSnapshot(
        `[ConfigurationError: lightning: maxFeeSats must give a whole number of satoshis, 0 or more]`,
      )
      expect(limits).toEqual([])
      expect(client.ledger.spent('sat')).toBe(0n)
    }
  })
})

describe('lightning/charge client, an invoice about to expire', () => {
  /** A client at `at` (epoch ms) whose wallet counts its payments (and pays nothing). */
  const at = (at: number, minValiditySeconds?: number) => {
    const { wallet, attempts } = failing(() => new PaymentFailedError('recorded'))
    const client = create({
      methods: [
        chargeClient({
          wallet,
          network: 'regtest',
          now: () => at,
          ...(minValiditySeconds !== undefined ? { minValiditySeconds } : {}),
        }),
      ],
      policy: { budget: { sat: 260n } },
      fetch: api,
    })
    return { client, attempts }
  }
  // The invoice expires at 1 800 000 600 s.
  const expiry = 1_800_000_600_000

  it('is refused before paying, its booking released, within the default 30 s margin', async () => {
    const { client, attempts } = at(expiry - 29_000)
    await expect(client.fetch('https://ln.test/r')).rejects.toThrowErrorMatchingInlineSnapshot(
      `[PaymentFailedError: lightning: the invoice expires too soon to pay and present in time (minValiditySeconds)]`,
    )
    expect(attempts()).toBe(0)
    expect(client.ledger.spent('sat')).toBe(0n)
  })

  it('is paid outside the margin, which is configurable', async () => {
    for (const [now, margin] of [
      [expiry - 31_000, undefined],
      [expiry - 10_000, 5],
    ] as const) {
      const { client, attempts } = at(now, margin)
      await expect(client.fetch('https://ln.test/r')).rejects.toThrow(/the payment failed/)
      expect(attempts()).toBe(1)
    }
    expect(() => chargeClient({ wallet: failing(() => 0).wallet, minValiditySeconds: -1 })).toThrow(
      /minValiditySeconds must be a number of seconds, 0 or more/,
    )
  })
})
