import { describe, expect, it } from 'vitest'
import { challengeHash, pkh, sameAddress } from './Authorization.js'

describe('challengeHash', () => {
  it('is keccak256(abi.encodePacked(id, realm))', () => {
    expect(challengeHash({ id: 'aB3cDeF4gHiJkLmN', realm: 'api.example.com' })).toMatchInlineSnapshot(
      `"0x899e3a8fe6830644e150b972d4ba1fce69bcdf0bf9ea7f13d57cada71c6f281d"`,
    )
    expect(challengeHash({ id: 'a', realm: 'bc' })).toBe(challengeHash({ id: 'ab', realm: 'c' }))
  })
})

describe('sameAddress', () => {
  it('compares 20 bytes, not case, and refuses non-addresses', () => {
    const a = '0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00'
    expect([sameAddress(a, a.toLowerCase()), sameAddress(a, `${a}00`), sameAddress('0x', '0x')]).toEqual([
      true,
      false,
      false,
    ])
  })
})

describe('pkh', () => {
  it('names the payer as a did:pkh with the chain id', () => {
    expect(pkh(8453, '0x742d35cc6634c0532925a3b844bc9e7595f8fe00')).toMatchInlineSnapshot(
      `"did:pkh:eip155:8453:0x742d35Cc6634c0532925a3b844bC9e7595F8fE00"`,
    )
  })
})
