import { PaymentFailedError, PolicyError } from '@mppkit/core/client'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { x402Offers } from '../internal/x402Offers.js'
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

describe('charge (client) x402 Permit2 (permit2Witness: "x402")', () => {
  const x402Request = (details: Partial<EvmChargeRequest['methodDetails']>): EvmChargeRequest => ({
    ...request(),
    methodDetails: {
      chainId: 84532,
      credentialTypes: ['permit2'],
      permit2Address: '0x000000000022D473030F116dDEE9F6B43aC78BA3',
      spender: '0x402085c248EeA27D92E8b30b2C58ed07f9E20001',
      permit2Witness: 'x402',
      ...details,
    },
  })
  const pay = async (details: Partial<EvmChargeRequest['methodDetails']>, fromPlug = true) => {
    let signed = 0
    const challenge = { id: 'x402v2-1', realm: 'r', method: 'evm', intent: 'charge', request: {} }
    // As the x402 plug registers the challenges it makes from x402 offers.
    if (fromPlug) x402Offers.add(challenge)
    const method = charge({
      account: {
        ...account,
        signTypedData: async (data: never) => {
          signed++
          return account.signTypedData(data)
        },
      } as never,
    })
    const outcome = await method
      .createPayload({
        challenge: challenge as never,
        request: x402Request(details),
      } as never)
      .catch((error: unknown) => error)
    return { outcome, signed }
  }

  it('refuses any spender but x402’s proxy, another Permit2 or splits, before signing (Permit2 lets the spender pick the recipient)', async () => {
    const cases = [
      { spender: '0x1111111111111111111111111111111111111111' },
      { permit2Address: '0x2222222222222222222222222222222222222222' },
      { splits: [{ recipient: '0x3333333333333333333333333333333333333333', amount: '1' }] },
    ]
    const outcomes = []
    for (const details of cases) {
      const { outcome, signed } = await pay(details)
      expect(outcome).toBeInstanceOf(PaymentFailedError)
      expect(signed).toBe(0)
      outcomes.push(`${(outcome as PaymentFailedError).code}: ${(outcome as Error).message}`)
    }
    expect(outcomes).toMatchInlineSnapshot(`
      [
        "unsupported-spender: evm: x402 Permit2 payments are signed for x402's proxy 0x402085c248EeA27D92E8b30b2C58ed07f9E20001 only, not 0x1111111111111111111111111111111111111111",
        "unsupported-permit2: evm: x402 Permit2 payments go through Permit2 at 0x000000000022D473030F116dDEE9F6B43aC78BA3 only",
        "invalid-splits: evm: x402 Permit2 payments carry no splits",
      ]
    `)
  })

  it('refuses the form for a challenge the x402 plug did not make (a native MPP server marking its own): its witness binds no challenge', async () => {
    const { outcome, signed } = await pay({}, false)
    expect(signed).toBe(0)
    expect(outcome).toBeInstanceOf(PaymentFailedError)
    expect((outcome as PaymentFailedError).code).toBe('unsupported-credential')
  })

  it('signs x402’s form for the proxy, exactly the amount to the recipient', async () => {
    const { outcome, signed } = await pay({})
    expect(signed).toBe(1)
    const { payload } = outcome as { payload: { permit2Authorization: Record<string, unknown> } }
    expect(payload.permit2Authorization).toMatchObject({
      from: account.address,
      permitted: { token: usdc, amount: '1000000000000' },
      spender: '0x402085c248EeA27D92E8b30b2C58ed07f9E20001',
      witness: { to: '0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00', validAfter: '0' },
    })
  })
})
