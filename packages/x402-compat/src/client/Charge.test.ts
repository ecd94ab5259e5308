import { PolicyError } from '@mppkit/core/client'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import type { EvmChargeRequest } from '../Methods.js'
import { charge } from './Charge.js'

const usdc = '0x036CbD53842c5426634e7929541eC2318f3dCF7e'
const account = privateKeyToAccount(generatePrivateKey())
const request = (decimals?: number): EvmChargeRequest => ({
  amount: '1000000000000',
  currency: usdc,
  recipient: '0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00',
  methodDetails: { chainId: 84532, ...(decimals !== undefined ? { decimals } : {}) },
})

describe('charge (client) quote', () => {
  it('quotes the configured decimals, and refuses a challenge naming others (more decimals: a smaller-looking amount)', () => {
    const method = charge({ account, decimals: { [`eip155:84532:${usdc.toLowerCase()}`]: 6 } })
    expect(method.quote!(request(6))).toMatchObject({ decimals: 6, network: 'eip155:84532' })
    expect(method.quote!(request())).toMatchObject({ decimals: 6 })
    expect(() => method.quote!(request(18))).toThrowErrorMatchingInlineSnapshot(
      `[PolicyError: evm: the challenge names 18 decimals for 0x036CbD53842c5426634e7929541eC2318f3dCF7e, this client knows 6]`,
    )
    expect(() => method.quote!(request(18))).toThrow(PolicyError)
    // A key for another chain does not apply.
    const elsewhere = charge({ account, decimals: { [`eip155:1:${usdc}`]: 6 } })
    expect(elsewhere.quote!(request(18)).decimals).toBe(18)
  })
})
