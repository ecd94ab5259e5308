import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { readHeaderToken } from './HeaderTokens.js'

const read = (headers: Record<string, string>) => readHeaderToken(new Request('https://x.test/', { headers }))

describe('readHeaderToken', () => {
  it('reads both header forms and lets a Payment credential win', () => {
    expect(read({ 'x-payment-token': ' spt_abc ' })).toBe('spt_abc')
    expect(read({ authorization: 'Bearer spt_abc', 'x-payment-protocol': 'MPP/1.0' })).toBe('spt_abc')
    expect(read({ authorization: 'bearer spt_abc', 'x-payment-protocol': 'mpp/1' })).toBe('spt_abc')
    expect(read({ authorization: 'Bearer spt_abc' })).toBeUndefined()
    expect(read({ authorization: 'Bearer spt_abc', 'x-payment-protocol': 'x402' })).toBeUndefined()
    expect(read({ authorization: 'Payment abc', 'x-payment-token': 'spt_abc' })).toBeUndefined()
    expect(read({ 'x-payment-token': 'sk_test_123' })).toBe('malformed')
    expect(read({ authorization: 'Bearer spt_a/b', 'x-payment-protocol': 'MPP/1.0' })).toBe('malformed')
    expect(read({})).toBeUndefined()
  })

  it('property: never throws; a token it returns is an SPT id', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), (token, authorization, protocol) => {
        const headers: Record<string, string> = {}
        try {
          new Headers({ a: token, b: authorization, c: protocol })
        } catch {
          return // not a valid header value at all
        }
        if (token) headers['x-payment-token'] = token
        if (authorization) headers.authorization = authorization
        if (protocol) headers['x-payment-protocol'] = protocol
        const result = read(headers)
        if (result !== undefined && result !== 'malformed') expect(result).toMatch(/^spt_[A-Za-z0-9_]+$/)
      }),
    )
  })
})
