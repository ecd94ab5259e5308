import { ParseError } from '@mppkit/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Wire from './Wire.js'

describe('decode', () => {
  it('reads base64 of a JSON object', () => {
    expect(Wire.decode('eyJ4NDAyVmVyc2lvbiI6Mn0=')).toEqual({ x402Version: 2 })
  })

  it('refuses what is not base64 of a UTF-8 JSON object, with a typed error', () => {
    const reasons = [
      '',
      '%%%',
      'e30',
      Wire.encode([1]),
      Wire.encode('x'),
      btoa('{"a":'),
      btoa('\xff\xfe'),
    ].map((value) => {
      try {
        Wire.decode(value)
        return 'accepted'
      } catch (error) {
        return error instanceof ParseError ? error.message : 'other'
      }
    })
    expect(reasons).toMatchInlineSnapshot(`
      [
        "x402 header is not base64",
        "x402 header is not base64",
        "accepted",
        "x402 header is not a JSON object",
        "x402 header is not a JSON object",
        "x402 header is not JSON",
        "x402 header is not base64 of UTF-8",
      ]
    `)
  })

  it('never throws anything but ParseError on arbitrary input (fuzz)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.base64String(),
          fc.json().map((json) => btoa(unescape(encodeURIComponent(json)))),
        ),
        (value) => {
          try {
            const decoded = Wire.decode(value)
            expect(typeof decoded).toBe('object')
          } catch (error) {
            expect(error).toBeInstanceOf(ParseError)
          }
        },
      ),
    )
  })
})

describe('encode', () => {
  it('round-trips through decode, UTF-8 included', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.string()), (value) => {
        expect(Wire.decode(Wire.encode(value))).toEqual(value)
      }),
    )
    expect(Wire.encode({ description: 'café' })).toMatchInlineSnapshot(`"eyJkZXNjcmlwdGlvbiI6ImNhZsOpIn0="`)
  })
})

describe('chainIdOf', () => {
  it('reads CAIP-2 eip155 ids and v1 names, and nothing else', () => {
    expect(
      ['eip155:8453', 'base-sepolia', 'eip155:0', 'eip155:01', 'solana', 'toString', 'mine'].map((network) =>
        Wire.chainIdOf(network, { mine: 31337 }),
      ),
    ).toMatchInlineSnapshot(`
      [
        8453,
        84532,
        undefined,
        undefined,
        undefined,
        undefined,
        31337,
      ]
    `)
  })
})
