import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LightningChargePayload, LightningSessionPayload, LightningSessionRequest } from './Methods.js'

const hex = 'ab'.repeat(32)

describe('LightningChargePayload', () => {
  it('accepts exactly a 64-character lowercase hex preimage', () => {
    expect(LightningChargePayload.safeParse({ preimage: hex }).success).toBe(true)
    for (const preimage of [hex.toUpperCase(), hex.slice(1), `${hex}0`, `0x${hex.slice(2)}`, 1, null])
      expect(LightningChargePayload.safeParse({ preimage }).success).toBe(false)
  })

  it('never throws on any value', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const result = LightningChargePayload.safeParse(value)
        if (result.success) expect(result.data.preimage).toMatch(/^[0-9a-f]{64}$/)
      }),
    )
  })
})

describe('LightningSessionPayload', () => {
  it('discriminates the four actions and their required fields', () => {
    expect(
      LightningSessionPayload.safeParse({ action: 'bearer', sessionId: hex, preimage: hex }).success,
    ).toBe(true)
    expect(
      LightningSessionPayload.safeParse({ action: 'topUp', sessionId: hex, topUpPreimage: hex }).success,
    ).toBe(true)
    expect(
      LightningSessionPayload.safeParse({ action: 'topUp', sessionId: hex, preimage: hex }).success,
    ).toBe(false)
    expect(LightningSessionPayload.safeParse({ action: 'close', sessionId: hex }).success).toBe(false)
    expect(
      LightningSessionPayload.safeParse({ action: 'refund', sessionId: hex, preimage: hex }).success,
    ).toBe(false)
    // "Implementations MUST ignore unknown fields"
    expect(
      LightningSessionPayload.safeParse({ action: 'close', sessionId: hex, preimage: hex, extra: 1 }).success,
    ).toBe(true)
  })

  it('never throws on any value', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc.record({
            action: fc.constantFrom('open', 'bearer', 'topUp', 'close', 'x'),
            sessionId: fc.oneof(fc.constant(hex), fc.string()),
            preimage: fc.oneof(fc.constant(hex), fc.string()),
          }),
        ),
        (value) => {
          LightningSessionPayload.safeParse(value)
        },
      ),
    )
  })
})

describe('LightningSessionRequest', () => {
  it('requires a positive amount in sat', () => {
    expect(LightningSessionRequest.safeParse({ amount: '2', currency: 'sat' }).success).toBe(true)
    expect(LightningSessionRequest.safeParse({ amount: '0', currency: 'sat' }).success).toBe(false)
    expect(LightningSessionRequest.safeParse({ amount: '2', currency: 'BTC' }).success).toBe(false)
  })
})
