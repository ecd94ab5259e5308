import { describe, expect, it } from 'vitest'
import { PaymentError } from '../Errors.js'
import { longTtl, type StoreSuite, sleep } from './describeStore.js'

/**
 * Registers the `increment` cases of the Store contract: counting from zero, bounds (`max`, `min`),
 * decimal storage, arbitrary precision, TTL handling.
 *
 * @example
 * ```ts
 * storeIncrementCases(suite)
 * ```
 * @see draft-tempo-session-00 §9 (Accounting): spent is a bounded increment
 */
export function storeIncrementCases(suite: StoreSuite): void {
  const { store, key, shortTtl, bigIntegers } = suite
  describe('increment', () => {
    it('counts from 0 on an absent key and stores a decimal string', async () => {
      const k = key('inc')
      expect(await store().increment(k, 5n, { ttlMs: longTtl })).toEqual({ applied: true, value: 5n })
      expect(await store().increment(k, -7n, { ttlMs: longTtl })).toEqual({ applied: true, value: -2n })
      expect(await store().increment(k, 0n, { ttlMs: longTtl })).toEqual({ applied: true, value: -2n })
      expect(await store().get(k)).toBe('-2')
      expect(await store().increment(k, 2n, { ttlMs: longTtl })).toEqual({ applied: true, value: 0n })
      expect(await store().get(k)).toBe('0')
    })

    it('continues from a value written with set', async () => {
      const k = key('inc-set')
      await store().set(k, '40', longTtl)
      expect(await store().increment(k, 2n, { ttlMs: longTtl })).toEqual({ applied: true, value: 42n })
    })

    it('applies a result equal to max and refuses one above it, leaving the value unchanged', async () => {
      const k = key('inc-max')
      expect(await store().increment(k, 7n, { ttlMs: longTtl, max: 10n })).toEqual({
        applied: true,
        value: 7n,
      })
      expect(await store().increment(k, 4n, { ttlMs: longTtl, max: 10n })).toEqual({
        applied: false,
        value: 7n,
      })
      expect(await store().get(k)).toBe('7')
      expect(await store().increment(k, 3n, { ttlMs: longTtl, max: 10n })).toEqual({
        applied: true,
        value: 10n,
      })
      expect(await store().increment(k, 1n, { ttlMs: longTtl, max: 10n })).toEqual({
        applied: false,
        value: 10n,
      })
    })

    it('applies a result equal to min and refuses one below it', async () => {
      const k = key('inc-min')
      await store().set(k, '10', longTtl)
      expect(await store().increment(k, -11n, { ttlMs: longTtl, min: 0n })).toEqual({
        applied: false,
        value: 10n,
      })
      expect(await store().increment(k, -10n, { ttlMs: longTtl, min: 0n })).toEqual({
        applied: true,
        value: 0n,
      })
      expect(await store().increment(k, -1n, { ttlMs: longTtl, min: 0n })).toEqual({
        applied: false,
        value: 0n,
      })
      expect(await store().get(k)).toBe('0')
    })

    it('checks both bounds together, including negative bounds', async () => {
      const k = key('inc-both')
      const bounds = { ttlMs: longTtl, min: -5n, max: 5n }
      expect(await store().increment(k, -5n, bounds)).toEqual({ applied: true, value: -5n })
      expect(await store().increment(k, -1n, bounds)).toEqual({ applied: false, value: -5n })
      expect(await store().increment(k, 11n, bounds)).toEqual({ applied: false, value: -5n })
      expect(await store().increment(k, 10n, bounds)).toEqual({ applied: true, value: 5n })
    })

    it('leaves an absent key absent when the first increment is out of bounds', async () => {
      const k = key('inc-absent')
      expect(await store().increment(k, 5n, { ttlMs: longTtl, max: 4n })).toEqual({
        applied: false,
        value: 0n,
      })
      expect(await store().increment(k, -1n, { ttlMs: longTtl, min: 0n })).toEqual({
        applied: false,
        value: 0n,
      })
      expect(await store().get(k)).toBeUndefined()
    })

    it('refreshes the TTL when applied and counts from 0 after expiry', async () => {
      const k = key('inc-ttl')
      await store().increment(k, 1n, { ttlMs: shortTtl })
      await store().increment(k, 1n, { ttlMs: longTtl })
      await sleep(shortTtl * 2)
      expect(await store().get(k)).toBe('2')

      const e = key('inc-expire')
      await store().increment(e, 9n, { ttlMs: shortTtl })
      await sleep(shortTtl * 2)
      expect(await store().get(e)).toBeUndefined()
      expect(await store().increment(e, 1n, { ttlMs: longTtl, max: 1n })).toEqual({
        applied: true,
        value: 1n,
      })
    })

    it.skipIf(!bigIntegers)('is exact beyond 2^53 and beyond 2^64', async () => {
      const k = key('inc-big')
      const big = 2n ** 64n + 1n
      expect(await store().increment(k, big, { ttlMs: longTtl })).toEqual({ applied: true, value: big })
      expect(await store().increment(k, 1n, { ttlMs: longTtl })).toEqual({ applied: true, value: big + 1n })
      expect(await store().get(k)).toBe((big + 1n).toString())
      const huge = 10n ** 40n + 123_456_789n
      expect(await store().increment(k, -huge, { ttlMs: longTtl })).toEqual({
        applied: true,
        value: big + 1n - huge,
      })
      // 2^53 + 1 is the first integer a double cannot hold: the bound must still be exact.
      const edge = key('inc-edge')
      const max = 2n ** 53n + 1n
      expect(await store().increment(edge, 2n ** 53n, { ttlMs: longTtl, max })).toEqual({
        applied: true,
        value: 2n ** 53n,
      })
      expect(await store().increment(edge, 1n, { ttlMs: longTtl, max })).toEqual({
        applied: true,
        value: max,
      })
      expect(await store().increment(edge, 1n, { ttlMs: longTtl, max })).toEqual({
        applied: false,
        value: max,
      })
      const wei = 10n ** 30n
      const balance = key('inc-wei')
      await store().set(balance, wei.toString(), longTtl)
      expect(await store().increment(balance, -(wei - 1n), { ttlMs: longTtl, min: 0n })).toEqual({
        applied: true,
        value: 1n,
      })
      expect(await store().increment(balance, -2n, { ttlMs: longTtl, min: 0n })).toEqual({
        applied: false,
        value: 1n,
      })
    })

    it('rejects with store_invalid_counter when the key holds anything but a decimal integer', async () => {
      // Each of these parses with JavaScript's BigInt or Number ('' → 0, ' 7 ' → 7, '0x10' → 16…);
      // a counter is only ever written as a decimal integer, so every store refuses them alike.
      const values = [
        'not a number',
        '',
        ' 7 ',
        '7\n',
        '+7',
        '0x10',
        '0b11',
        '0o7',
        '1e3',
        '1.5',
        '1_000',
        '--1',
        '-',
        '١٢',
        '７',
      ]
      for (const value of values) {
        const k = key('inc-text')
        await store().set(k, value, longTtl)
        const error = await store()
          .increment(k, 1n, { ttlMs: longTtl })
          .then(
            (result) => ({ value, result }),
            (caught: unknown) => caught,
          )
        // A 500 store-error problem (a retry cannot fix the value), never a 503 that invites retries.
        expect(error, JSON.stringify(value)).toMatchObject({ code: 'store_invalid_counter', status: 500 })
        expect(PaymentError.is(error) && error.toProblem()).toMatchObject({
          type: expect.stringMatching(/store-error$/),
        })
        expect(await store().get(k)).toBe(value)
      }
    })

    it('reads leading zeros and negative zero as decimal integers', async () => {
      for (const [value, next] of [
        ['00042', 43n],
        ['-0', 1n],
        ['-007', -6n],
      ] as const) {
        const k = key('inc-zeros')
        await store().set(k, value, longTtl)
        expect(await store().increment(k, 1n, { ttlMs: longTtl })).toEqual({ applied: true, value: next })
      }
    })
  })
}
