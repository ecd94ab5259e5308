import { Ledger } from '@mppkit/core/client'
import { privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { chargeClient } from './Charge.js'

const account = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d')
const request = {
  amount: '1000000',
  currency: '0x20C0000000000000000000000000000000000001',
  recipient: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
  methodDetails: { chainId: 42431 },
}

describe('chargeClient', () => {
  it('quotes the chain the payment moves on and TIP-20 decimals', () => {
    const client = chargeClient({ account, chainId: 42431 })
    expect(client.quote?.(request as never)).toMatchInlineSnapshot(`
      {
        "amount": 1000000n,
        "currency": "0x20C0000000000000000000000000000000000001",
        "decimals": 6,
        "network": "tempo:42431",
      }
    `)
    expect(chargeClient({ account }).quote?.({ ...request, methodDetails: {} } as never).network).toBe(
      'tempo:4217',
    )
  })

  it('lets a policy key limits by network:currency', () => {
    const quote = chargeClient({ account }).quote!(request as never)
    const ledger = new Ledger({
      maxAmount: { [`tempo:42431:${request.currency.toLowerCase()}`]: 1_000_000n },
    })
    expect(() => ledger.check({ method: 'tempo', intent: 'charge', realm: 'r', quote })).not.toThrow()
    const mainnet = chargeClient({ account }).quote!({
      ...request,
      methodDetails: { chainId: 4217 },
    } as never)
    expect(() => ledger.check({ method: 'tempo', intent: 'charge', realm: 'r', quote: mainnet })).toThrow(
      /exceeds the per-request maximum 0/,
    )
  })
})
