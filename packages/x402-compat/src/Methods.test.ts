import { describe, expect, it } from 'vitest'
import { AuthorizationPayload, Permit2Payload } from './Methods.js'

const address = '0x1111111111111111111111111111111111111111'
const permit = (amount: string, nonce = '1') => ({
  type: 'permit2',
  permit: { permitted: [{ token: address, amount }], nonce, deadline: '1' },
  transferDetails: [{ to: address, requestedAmount: '1' }],
  witness: { challengeHash: `0x${'00'.repeat(32)}` },
  signature: '0x11',
})

describe('Permit2Payload', () => {
  it('takes integers up to 2^256 - 1 and refuses larger ones or non-integers (no throw)', () => {
    const max = (2n ** 256n - 1n).toString()
    const over = (2n ** 256n).toString()
    expect(Permit2Payload.safeParse(permit(max, max)).success).toBe(true)
    expect(Permit2Payload.safeParse(permit(over)).success).toBe(false)
    expect(Permit2Payload.safeParse(permit('1', over)).success).toBe(false)
    expect(Permit2Payload.safeParse(permit('abc')).success).toBe(false)
    expect(Permit2Payload.safeParse(permit(`9${'9'.repeat(80)}`)).success).toBe(false)
  })
})

describe('AuthorizationPayload', () => {
  it('refuses a value past 2^256 - 1', () => {
    const authorization = (value: string) => ({
      type: 'authorization',
      from: address,
      to: address,
      value,
      validAfter: '0',
      validBefore: '1',
      nonce: `0x${'00'.repeat(32)}`,
      signature: '0x11',
    })
    expect(AuthorizationPayload.safeParse(authorization('1000')).success).toBe(true)
    expect(AuthorizationPayload.safeParse(authorization((2n ** 256n).toString())).success).toBe(false)
  })
})
