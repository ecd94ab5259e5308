import { describe, expect, it } from 'vitest'
import { messageBytes, messageKey } from './Transaction.js'

const wire = (signatures: number, message: number[]) =>
  btoa(String.fromCharCode(signatures, ...new Array(64 * signatures).fill(7), ...message))

describe('transaction wire reading', () => {
  it('skips the compact-u16 signature count and the signatures', () => {
    expect(Array.from(messageBytes(wire(2, [1, 2, 3]))!)).toEqual([1, 2, 3])
  })

  it('keys copies alike whatever the signature slots hold, and different messages apart', async () => {
    const a = await messageKey(wire(1, [9, 9]))
    const signedOtherwise = btoa(String.fromCharCode(1, ...new Array(64).fill(1), 9, 9))
    expect(a).toMatch(/^[0-9a-f]{64}$/)
    expect(await messageKey(signedOtherwise)).toBe(a)
    expect(await messageKey(wire(1, [9, 8]))).not.toBe(a)
  })

  it('reads nothing from garbage', async () => {
    expect(messageBytes('!!!')).toBeUndefined()
    expect(messageBytes(btoa(String.fromCharCode(0, 1, 2)))).toBeUndefined()
    expect(messageBytes(btoa(String.fromCharCode(3, 1, 2)))).toBeUndefined()
    expect(await messageKey('')).toBeUndefined()
  })
})
