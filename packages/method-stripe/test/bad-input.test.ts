import { Credential } from '@mppkit/core'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { problem, rig, type StripeDevnet, startStripe } from './helpers.js'

// Untrusted credentials never produce a 500 or a stack trace: malformed SPT ids, hostile payload members,
// huge metadata and non-string amounts in the echoed request are each a problem (402/400), and nothing is
// sent to Stripe for them.

let node: StripeDevnet
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})

/** Re-encodes a credential with a changed payload or echoed request (the id no longer binds a changed request). */
function tamper(
  authorization: string,
  change: { payload?: unknown; request?: Record<string, unknown> },
): string {
  const credential = Credential.parse(authorization)
  if (change.request) credential.challenge = { ...credential.challenge, request: change.request }
  if ('payload' in change) credential.payload = change.payload as Record<string, unknown>
  return Credential.format(credential)
}

describe('bad input', () => {
  it('malformed SPT ids are a malformed-credential problem, and Stripe is never called', async () => {
    const r = rig(node)
    const before = (await r.stripe.paymentIntents.list({ limit: 100 })).data.length
    for (const spt of [
      '',
      'spt_',
      'sk_test_123',
      'pm_card_visa',
      'spt_../../v1/account',
      `spt_${'a'.repeat(300)}`,
      42,
      null,
    ]) {
      const response = await r.submit(tamper(await r.credential(), { payload: { spt } }))
      expect(response.status).toBe(402)
      expect((await problem(response)).type).toBe('https://paymentauth.org/problems/malformed-credential')
    }
    expect((await r.stripe.paymentIntents.list({ limit: 100 })).data.length).toBe(before)
  })

  it('Connect parameters in a payload are ignored', async () => {
    const r = rig(node)
    const authorization = await r.credential()
    const credential = Credential.parse(authorization)
    const response = await r.submit(
      tamper(authorization, {
        payload: {
          ...credential.payload,
          application_fee_amount: 999,
          transfer_data: { destination: node.info.accounts.connected[0] },
          stripeAccount: node.info.accounts.connected[0],
        },
      }),
    )
    expect(response.status).toBe(200)
    const [pi] = (await r.stripe.paymentIntents.list({ limit: 1 })).data
    expect(pi?.application_fee_amount).toBeNull()
    expect(pi?.transfer_data).toBeNull()
  })

  it('huge metadata, non-string amounts and odd currencies in the echoed request are refused', async () => {
    const r = rig(node)
    const authorization = await r.credential()
    const request = Credential.parse(authorization).challenge.request
    const unbound = 'https://paymentauth.org/problems/invalid-challenge'
    const variants: [Record<string, unknown>, string][] = [
      [{ ...request, amount: 1000 }, unbound],
      [{ ...request, amount: '1e3' }, unbound],
      [{ ...request, amount: ['1000'] }, unbound],
      [{ ...request, currency: 'US Dollar' }, unbound],
      [
        {
          ...request,
          methodDetails: {
            ...(request.methodDetails as object),
            metadata: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, 'v'.repeat(500)])),
          },
        },
        // The core refuses a credential this large before decoding it.
        'https://paymentauth.org/problems/malformed-credential',
      ],
    ]
    for (const [variant, type] of variants) {
      const response = await r.submit(tamper(authorization, { request: variant }))
      expect(response.status).toBe(402)
      expect((await problem(response)).type).toBe(type)
    }
  })

  it('property: any payload is a 4xx/402 problem, never a 500', async () => {
    const r = rig(node)
    const authorization = await r.credential()
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          // Credential.format only encodes object payloads (the wire form of any other is malformed anyway).
          fc.object(),
          fc.record({ spt: fc.string(), externalId: fc.anything() }, { requiredKeys: [] }),
          fc.record({ spt: fc.stringMatching(/^spt_[A-Za-z0-9_]{0,20}$/) }),
        ),
        async (payload) => {
          const response = await r.submit(tamper(authorization, { payload }))
          expect([200, 400, 402, 503]).toContain(response.status)
          expect(response.status).not.toBe(500)
          if (response.status !== 200)
            expect((await problem(response)).type).toMatch(/^https:\/\/paymentauth\.org\/problems\//)
        },
      ),
      { numRuns: 60 },
    )
  })
})
