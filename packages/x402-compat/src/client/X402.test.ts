import type { Challenge } from '@mppkit/core/client'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Wire from '../Wire.js'
import { x402 } from './X402.js'

const token = '0x036CbD53842c5426634e7929541eC2318f3dCF7e'
const payTo = '0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00'
const exact = {
  scheme: 'exact',
  network: 'eip155:84532',
  asset: token,
  amount: '10000',
  payTo,
  maxTimeoutSeconds: 60,
  extra: { name: 'USDC', version: '2' },
}

const now = () => Date.parse('2026-01-01T00:00:00Z')

function v2(accepts: unknown[], extensions?: unknown) {
  return new Response('{}', {
    status: 402,
    headers: {
      [Wire.headers.paymentRequired]: Wire.encode({
        x402Version: 2,
        resource: { url: 'https://api.example.com/weather', description: 'Weather' },
        accepts,
        ...(extensions ? { extensions } : {}),
      }),
    },
  })
}

describe('x402', () => {
  it('maps each usable v2 requirement to an evm charge challenge, and says why it skips the rest', async () => {
    const skipped: string[] = []
    const plug = x402({
      now,
      decimals: { [`eip155:84532:${token}`]: 6 },
      onSkip: ({ reason }) => skipped.push(reason),
    })
    const challenges = await plug.challenges(
      v2([
        exact,
        { ...exact, scheme: 'upto' },
        { ...exact, network: 'solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp' },
        { ...exact, extra: {} },
        { ...exact, amount: '1.5' },
        { ...exact, maxTimeoutSeconds: 2 },
        { ...exact, extra: { ...exact.extra, assetTransferMethod: 'eip2612' } },
        'junk',
      ]),
    )
    expect(challenges.map(({ id: _id, ...rest }) => rest)).toMatchInlineSnapshot(`
      [
        {
          "description": "Weather",
          "expires": "2026-01-01T00:01:00Z",
          "intent": "charge",
          "method": "evm",
          "realm": "api.example.com",
          "request": {
            "amount": "10000",
            "currency": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
            "methodDetails": {
              "chainId": 84532,
              "credentialTypes": [
                "authorization",
              ],
              "decimals": 6,
              "eip712": {
                "name": "USDC",
                "version": "2",
              },
            },
            "recipient": "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",
          },
        },
      ]
    `)
    expect(skipped).toMatchInlineSnapshot(`
      [
        "scheme upto is not supported",
        "asset is not a Solana mint address",
        "extra.name/extra.version (the EIP-712 domain) are missing",
        "amount is not a base-unit integer string",
        "maxTimeoutSeconds must be an integer of at least 6",
        "asset transfer method eip2612 is not supported",
        "the entry is not an object",
      ]
    `)
  })

  it('maps a v2 Permit2 requirement (no EIP-712 domain needed) to a permit2 challenge for x402’s proxy; v1 has none', async () => {
    const skipped: string[] = []
    const plug = x402({ now, onSkip: ({ reason }) => skipped.push(reason) })
    const permit2 = { ...exact, extra: { assetTransferMethod: 'permit2' } }
    const [challenge] = await plug.challenges(v2([permit2]))
    expect(challenge?.request).toMatchInlineSnapshot(`
      {
        "amount": "10000",
        "currency": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
        "methodDetails": {
          "chainId": 84532,
          "credentialTypes": [
            "permit2",
          ],
          "permit2Address": "0x000000000022D473030F116dDEE9F6B43aC78BA3",
          "permit2Witness": "x402",
          "spender": "0x402085c248EeA27D92E8b30b2C58ed07f9E20001",
        },
        "recipient": "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",
      }
    `)
    // Sent back as x402's Permit2 form: `permit2Authorization` beside the signature, the requirement echoed.
    const permit2Authorization = { from: payTo, nonce: '1' }
    const headers = plug.headers({
      challenge: challenge!,
      credential: {
        challenge: challenge!,
        payload: { type: 'x402-permit2', permit2Authorization, signature: '0xab' },
      },
      authorization: 'unused',
      header: 'authorization',
    } as never)
    expect(Wire.decode(headers[Wire.headers.paymentSignature]!)).toMatchObject({
      accepted: permit2,
      payload: { signature: '0xab', permit2Authorization },
    })
    const v1 = Response.json(
      { x402Version: 1, accepts: [{ ...permit2, network: 'base-sepolia', maxAmountRequired: '10000' }] },
      { status: 402 },
    )
    expect(await plug.challenges(v1)).toEqual([])
    expect(skipped).toEqual(['asset transfer method permit2 is x402 v2 only'])
  })

  it('marks a Permit2 offer eip2612 only when eip2612GasSponsoring is advertised and extra names the domain; sends the permit inside the echoed declaration', async () => {
    const plug = x402({ now })
    const permit2 = { ...exact, extra: { assetTransferMethod: 'permit2', name: 'USDC', version: '2' } }
    const declared = { info: { description: 'sponsored', version: '1' }, schema: { type: 'object' } }
    const other = { info: { hello: 'world' } }
    const offered = async (accepts: unknown[], extensions?: unknown) =>
      (await plug.challenges(v2(accepts, extensions)))[0]!
    const [sponsored, unsponsored, nameless] = [
      await offered([permit2], { eip2612GasSponsoring: declared, other }),
      await offered([permit2], { other }),
      await offered([{ ...exact, extra: { assetTransferMethod: 'permit2' } }], {
        eip2612GasSponsoring: declared,
      }),
    ]
    const details = (challenge: Challenge.Challenge) => {
      const { eip712, eip2612 } = (challenge.request as { methodDetails: Record<string, unknown> })
        .methodDetails
      return { eip712, eip2612 }
    }
    expect(details(sponsored)).toEqual({ eip712: { name: 'USDC', version: '2' }, eip2612: true })
    expect(details(unsponsored)).toEqual({ eip712: undefined, eip2612: undefined })
    expect(details(nameless)).toEqual({ eip712: undefined, eip2612: undefined })
    const permit = {
      from: payTo,
      asset: token,
      spender: '0x000000000022D473030F116dDEE9F6B43aC78BA3',
      amount: '10000',
      nonce: '0',
      deadline: '1767225660',
      signature: `0x${'ab'.repeat(65)}`,
      version: '1',
    }
    const send = (eip2612?: unknown) =>
      Wire.decode(
        plug.headers({
          challenge: sponsored,
          credential: {
            challenge: sponsored,
            payload: {
              type: 'x402-permit2',
              permit2Authorization: { from: payTo },
              signature: '0xab',
              ...(eip2612 ? { eip2612 } : {}),
            },
          },
          authorization: 'unused',
          header: 'authorization',
        } as never)[Wire.headers.paymentSignature]!,
      )
    // Every advertised extension is echoed; the permit joins the declaration's info (its members kept).
    const withPermit = send(permit)
    expect(withPermit.extensions).toEqual({
      eip2612GasSponsoring: { ...declared, info: { ...declared.info, ...permit } },
      other,
    })
    expect(withPermit.payload).toEqual({ signature: '0xab', permit2Authorization: { from: payTo } })
    expect(send().extensions).toEqual({ eip2612GasSponsoring: declared, other })
  })

  it('reads a v1 body (maxAmountRequired, named network) and sends X-PAYMENT', async () => {
    const plug = x402({ now })
    const v1 = {
      ...exact,
      network: 'base-sepolia',
      maxAmountRequired: '10000',
      resource: 'https://api.example.com/x',
      description: 'X',
      mimeType: '',
    }
    const response = Response.json({ x402Version: 1, error: 'pay', accepts: [v1] }, { status: 402 })
    const [challenge] = await plug.challenges(response)
    expect(challenge).toMatchObject({
      realm: 'api.example.com',
      method: 'evm',
      request: { amount: '10000', methodDetails: { chainId: 84532 } },
    })
    const headers = plug.headers(payment(challenge!))
    expect(Object.keys(headers)).toEqual(['X-PAYMENT'])
    expect(Wire.decode(headers['X-PAYMENT']!)).toMatchInlineSnapshot(`
      {
        "network": "base-sepolia",
        "payload": {
          "authorization": {
            "from": "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",
            "nonce": "0x1111111111111111111111111111111111111111111111111111111111111111",
            "to": "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",
            "validAfter": "0",
            "validBefore": "1767225660",
            "value": "10000",
          },
          "signature": "0x2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222",
        },
        "scheme": "exact",
        "x402Version": 1,
      }
    `)
  })

  it('echoes the accepted requirement, resource and extensions in PAYMENT-SIGNATURE', async () => {
    const plug = x402({ now })
    const [challenge] = await plug.challenges(v2([exact], { bazaar: { info: 1 } }))
    const headers = plug.headers(payment(challenge!))
    expect(Wire.decode(headers['PAYMENT-SIGNATURE']!)).toMatchInlineSnapshot(`
      {
        "accepted": {
          "amount": "10000",
          "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
          "extra": {
            "name": "USDC",
            "version": "2",
          },
          "maxTimeoutSeconds": 60,
          "network": "eip155:84532",
          "payTo": "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",
          "scheme": "exact",
        },
        "extensions": {
          "bazaar": {
            "info": 1,
          },
        },
        "payload": {
          "authorization": {
            "from": "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",
            "nonce": "0x1111111111111111111111111111111111111111111111111111111111111111",
            "to": "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",
            "validAfter": "0",
            "validBefore": "1767225660",
            "value": "10000",
          },
          "signature": "0x2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222",
        },
        "resource": {
          "description": "Weather",
          "url": "https://api.example.com/weather",
        },
        "x402Version": 2,
      }
    `)
  })

  it('reads PAYMENT-RESPONSE as a receipt, and nothing from a failed or garbled one', () => {
    const plug = x402({ now })
    const receiptOf = (value: string) =>
      plug.receipt!(new Response('', { headers: { [Wire.headers.paymentResponse]: value } }))
    expect(
      receiptOf(Wire.encode({ success: true, transaction: '0xabc', network: 'eip155:84532', payer: payTo })),
    ).toMatchInlineSnapshot(`
      {
        "method": "evm",
        "network": "eip155:84532",
        "payer": "0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00",
        "reference": "0xabc",
        "status": "success",
        "timestamp": "2026-01-01T00:00:00.000Z",
      }
    `)
    expect([receiptOf(Wire.encode({ success: false, transaction: '' })), receiptOf('%%')]).toEqual([
      undefined,
      undefined,
    ])
  })

  it('offers nothing for a 402 whose v1 body is not JSON, and reads no receipt from a garbled X-PAYMENT-RESPONSE', async () => {
    const plug = x402({ now })
    for (const body of ['{"x402Version":1,', '<html>402</html>', ''])
      expect(
        await plug.challenges(
          new Response(body, { status: 402, headers: { 'content-type': 'application/json' } }),
        ),
      ).toEqual([])
    for (const value of ['%%', btoa('{"success":true'), Wire.encode([1])])
      expect(
        plug.receipt!(new Response('', { headers: { [Wire.headers.v1PaymentResponse]: value } })),
      ).toBeUndefined()
  })

  it('offers nothing, and never throws anything but a parse error, for arbitrary PAYMENT-REQUIRED values (fuzz)', async () => {
    const plug = x402({ now })
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.jsonValue().map((value) => Wire.encode({ x402Version: 2, accepts: [value] })),
        ),
        async (value) => {
          try {
            const found = await plug.challenges(
              new Response('', { status: 402, headers: { [Wire.headers.paymentRequired]: value } }),
            )
            expect(Array.isArray(found)).toBe(true)
          } catch (error) {
            expect((error as Error).name).toBe('ParseError')
          }
        },
      ),
    )
  })
})

function payment(challenge: Challenge.Challenge) {
  const payload = {
    type: 'authorization',
    from: payTo,
    to: payTo,
    value: '10000',
    validAfter: '0',
    validBefore: '1767225660',
    nonce: `0x${'11'.repeat(32)}`,
    signature: `0x${'22'.repeat(65)}`,
  }
  return {
    challenge,
    credential: { challenge, payload },
    authorization: '',
    header: 'Authorization',
    quote: { amount: 1n, currency: token },
    receipt() {},
  }
}
