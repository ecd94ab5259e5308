import { describe, expect, it } from 'vitest'
import type { AtomicStep } from '../Store.js'
import { atomicOf as atomic, longTtl, type StoreSuite } from './describeStore.js'

/** 64 symbols: each random byte picks one, so a key of them is as random as its bytes. */
const symbols = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** `length` random characters: a key no backend can compress, and whose every part tells it apart. */
function randomText(length: number): string {
  const bytes = new Uint8Array(length)
  // getRandomValues fills at most 65,536 bytes per call.
  for (let offset = 0; offset < length; offset += 65_536)
    globalThis.crypto.getRandomValues(bytes.subarray(offset, Math.min(length, offset + 65_536)))
  return Array.from(bytes, (byte) => symbols[byte & 63]).join('')
}

/** The same text with the character at `index` replaced by another one. */
function twin(text: string, index: number): string {
  const at = index < 0 ? text.length + index : index
  return `${text.slice(0, at)}${text[at] === 'A' ? 'B' : 'A'}${text.slice(at + 1)}`
}

/**
 * Families of keys that differ from each other only in ways a backend may lose: their length (100 KB,
 * more than an index entry or a row of some databases takes), a NUL (which C strings and PostgreSQL
 * `text` cannot hold, and which truncation would turn `a\0b` into `a`), or an unpaired surrogate (which
 * UTF-8 cannot encode: a driver sends U+FFFD, or `?`, instead). Each family starts from a fresh key.
 */
const families: { name: string; keys: (base: string) => string[] }[] = [
  {
    name: '100 KB random keys',
    keys: (base) => {
      const long = `${base}:${randomText(100_000)}`
      // The same 100 KB but for the last character, or for one in the middle.
      return [long, twin(long, -1), twin(long, base.length + 50_000)]
    },
  },
  {
    name: 'keys with NUL',
    keys: (base) =>
      ['a\u0000b', 'a\u0000c', 'a', 'ab', 'a\u0000', '\u0000', '\u0000\u0000'].map((k) => `${base}:${k}`),
  },
  {
    name: 'keys with unpaired surrogates',
    keys: (base) =>
      [
        '\ud800',
        '\udc00',
        '\udbff',
        '\udfff',
        '\ufffd',
        '?',
        '',
        'a\ud800b',
        'a\udc00b',
        'a\ufffdb',
        'x\ud83d',
        'x\ude80',
        'x\ud83d\ude80',
        'x\ude80\ud83d',
        '\ud800\ud800',
        '\ud800\udc00',
        '\udc00\ud800',
      ].map((k) => `${base}:${k}`),
  },
]

/**
 * Registers the cases of the Store contract on keys: distinct strings are distinct keys, whatever their
 * length or content. Keys of 100 KB, keys with NUL and keys with unpaired surrogates each keep their own
 * value through every operation (`putIfAbsent`, `get`, `set`, `compareAndSet`, `increment`, `atomic`,
 * `delete`), also when written on one store instance and read on another.
 *
 * Two keys sharing one record could let a consumed credential be accepted again (or one payer spend
 * another's balance); draft-httpauth-payment-00 §11.6: "Servers MUST ensure that concurrent requests
 * with the same Payment credential result in at most one successful payment settlement and one resource
 * delivery."
 *
 * @example
 * ```ts
 * storeKeyCases(suite)
 * ```
 */
export function storeKeyCases(suite: StoreSuite): void {
  const { store, key, pick } = suite

  describe('keys', () => {
    for (const family of families) {
      describe(family.name, () => {
        it('putIfAbsent and get: each key is created once, on any instance, and keeps its own value', async () => {
          const keys = family.keys(key('keys-put'))
          for (const k of keys) expect(await store().get(k)).toBeUndefined()
          for (const [index, k] of keys.entries())
            expect(await pick(index).putIfAbsent(k, String(index), longTtl), `key ${index}`).toBe(true)
          for (const [index, k] of keys.entries()) {
            expect(await pick(index + 1).putIfAbsent(k, 'again', longTtl), `key ${index}`).toBe(false)
            expect(await pick(index + 2).get(k), `key ${index}`).toBe(String(index))
          }
        })

        it('set, compareAndSet and delete touch only their own key', async () => {
          const keys = family.keys(key('keys-set'))
          for (const [index, k] of keys.entries()) await pick(index).set(k, `v${index}`, longTtl)
          for (const [index, k] of keys.entries())
            expect(await store().get(k), `key ${index}`).toBe(`v${index}`)
          for (const [index, k] of keys.entries()) {
            expect(
              await pick(index).compareAndSet(k, `v${index}`, `w${index}`, longTtl),
              `key ${index}`,
            ).toBe(true)
            expect(await pick(index + 1).compareAndSet(k, undefined, 'x', longTtl), `key ${index}`).toBe(
              false,
            )
          }
          for (const [index, k] of keys.entries())
            expect(await store().get(k), `key ${index}`).toBe(`w${index}`)
          // Deleting one key leaves every other one, and lets only that one be created again.
          for (const [index, k] of keys.entries()) {
            await pick(index).delete(k)
            expect(await store().get(k), `key ${index}`).toBeUndefined()
            for (const [other, o] of keys.entries())
              if (other > index) expect(await store().get(o), `key ${other} after ${index}`).toBe(`w${other}`)
            expect(await store().putIfAbsent(k, `n${index}`, longTtl), `key ${index}`).toBe(true)
            for (const [other, o] of keys.entries())
              if (other > index)
                expect(await store().putIfAbsent(o, 'x', longTtl), `key ${other}`).toBe(false)
          }
          for (const [index, k] of keys.entries())
            expect(await store().get(k), `key ${index}`).toBe(`n${index}`)
        })

        it('increment keeps a counter per key', async () => {
          const keys = family.keys(key('keys-increment'))
          for (const [index, k] of keys.entries()) {
            const delta = BigInt(index + 1)
            expect(
              await pick(index).increment(k, delta, { ttlMs: longTtl, max: delta }),
              `key ${index}`,
            ).toEqual({
              applied: true,
              value: delta,
            })
          }
          for (const [index, k] of keys.entries()) {
            const delta = BigInt(index + 1)
            expect(await store().increment(k, 1n, { ttlMs: longTtl, max: delta }), `key ${index}`).toEqual({
              applied: false,
              value: delta,
            })
            expect(await store().get(k), `key ${index}`).toBe(String(index + 1))
          }
        })

        it('concurrent putIfAbsent of every key on every instance: exactly one winner per key', async () => {
          const keys = family.keys(key('keys-race'))
          const attempts = keys.flatMap((k, index) => Array.from({ length: 4 }, () => ({ k, index })))
          const won = await Promise.all(
            attempts.map(({ k, index }, attempt) =>
              pick(attempt).putIfAbsent(k, `${index}/${attempt}`, longTtl),
            ),
          )
          for (const [index, k] of keys.entries()) {
            const winners = attempts.flatMap((a, attempt) =>
              a.index === index && won[attempt] ? [attempt] : [],
            )
            expect(winners, `key ${index}`).toHaveLength(1)
            expect(await store().get(k), `key ${index}`).toBe(`${index}/${winners[0]}`)
          }
        })

        it('atomic batches hold each key apart (optional capability)', async (context) => {
          if (!store().atomic) {
            console.warn('[skip] this store does not implement the optional atomic() capability')
            context.skip()
          }
          const keys = family.keys(key('keys-atomic'))
          const counters = family.keys(key('keys-atomic-n'))
          // One batch creating every key: each step sees its own key absent.
          expect(
            await atomic(
              store(),
              keys.map((k, index) => ({
                op: 'compareAndSet',
                key: k,
                expected: undefined,
                next: String(index),
                ttlMs: longTtl,
              })),
            ),
          ).toEqual({
            completed: true,
            results: keys.map((_, index) => ({ op: 'compareAndSet', applied: true, value: String(index) })),
          })
          // One batch checking every value, incrementing every counter by its own delta and setting a
          // flag per key from the counter of the next key.
          const flags = family.keys(key('keys-atomic-flag'))
          const steps: AtomicStep[] = [
            ...keys.map((k, index): AtomicStep => ({ op: 'check', key: k, equals: String(index) })),
            ...counters.map(
              (k, index): AtomicStep => ({
                op: 'increment',
                key: k,
                delta: BigInt(index + 1),
                ttlMs: longTtl,
                max: BigInt(index + 1),
              }),
            ),
            ...flags.map(
              (k, index): AtomicStep => ({
                op: 'setIfAtLeast',
                key: k,
                value: `f${index}`,
                ttlMs: longTtl,
                counter: counters[(index + 1) % counters.length]!,
                atLeast: BigInt(((index + 1) % counters.length) + 1),
              }),
            ),
          ]
          expect(await atomic(pick(1), steps)).toEqual({
            completed: true,
            results: [
              ...keys.map((_, index) => ({ op: 'check', applied: true, value: String(index) })),
              ...counters.map((_, index) => ({ op: 'increment', applied: true, value: BigInt(index + 1) })),
              ...flags.map(() => ({ op: 'setIfAtLeast', applied: true })),
            ],
          })
          for (const [index, k] of counters.entries())
            expect(await store().get(k), `counter ${index}`).toBe(String(index + 1))
          for (const [index, k] of flags.entries())
            expect(await store().get(k), `flag ${index}`).toBe(`f${index}`)
          // A batch swapping one key stops at a sibling whose value it expects wrongly, and wrote nothing
          // to the sibling.
          const [first, second] = keys as [string, string]
          expect(
            await atomic(pick(2), [
              { op: 'compareAndSet', key: first, expected: '0', next: 'swapped', ttlMs: longTtl },
              { op: 'compareAndSet', key: second, expected: 'swapped', next: 'wrong', ttlMs: longTtl },
            ]),
          ).toEqual({
            completed: false,
            results: [
              { op: 'compareAndSet', applied: true, value: 'swapped' },
              { op: 'compareAndSet', applied: false, value: '1' },
            ],
          })
          expect([await store().get(first), await store().get(second)]).toEqual(['swapped', '1'])
        })
      })
    }
  })
}
