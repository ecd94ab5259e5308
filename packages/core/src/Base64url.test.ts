import fc from 'fast-check'
import { describe, expect, it, vi } from 'vitest'
import * as Base64url from './Base64url.js'
import type { ParseError } from './Errors.js'

// The browser path: the module loaded afresh and called while `globalThis.Buffer` is hidden, as in a
// browser (so neither a load-time nor a call-time use of Buffer goes unnoticed).
const bufferProperty = Object.getOwnPropertyDescriptor(globalThis, 'Buffer')!
const withoutBuffer = <T>(fn: () => T): T => {
  Reflect.deleteProperty(globalThis, 'Buffer')
  try {
    expect((globalThis as { Buffer?: unknown }).Buffer).toBeUndefined()
    return fn()
  } finally {
    Object.defineProperty(globalThis, 'Buffer', bufferProperty)
  }
}
vi.resetModules()
Reflect.deleteProperty(globalThis, 'Buffer')
const loaded = await import('./Base64url.js').finally(() =>
  Object.defineProperty(globalThis, 'Buffer', bufferProperty),
)
expect(loaded).not.toBe(Base64url)
const Browser: typeof Base64url = {
  encode: (value) => withoutBuffer(() => loaded.encode(value)),
  decode: (text) => withoutBuffer(() => loaded.decode(text)),
  decodeText: (text) => withoutBuffer(() => loaded.decodeText(text)),
}

const paths = [
  ['node (Buffer)', Base64url],
  ['browser (no Buffer)', Browser],
] as const

const outcome = (fn: () => unknown) => {
  try {
    return { value: fn() }
  } catch (error) {
    // (The browser copy has its own Errors module, so its ParseError is another class of that name.)
    expect([(error as ParseError).name, (error as ParseError).kind]).toEqual(['ParseError', 'encoding_error'])
    return { error: (error as ParseError).message }
  }
}

describe.each(paths)('encode, %s', (_, codec) => {
  it('encodes strings as UTF-8 and bytes as they are, without padding', () => {
    expect(codec.encode('abc')).toBe('YWJj')
    expect(codec.encode('ab')).toBe('YWI')
    expect(codec.encode('☕ €')).toBe('4piVIOKCrA')
    expect(codec.encode(new Uint8Array([0xfb, 0xff, 0xbf]))).toBe('-_-_')
    expect(codec.encode(new Uint8Array([1, 2, 3, 4, 5]).subarray(1, 3))).toBe('AgM')
    expect(codec.encode('')).toBe('')
  })
  it('agrees with the other path on every byte string and text (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 80 }),
        fc.string({ unit: 'binary', maxLength: 40 }),
        (bytes, text) => {
          expect(codec.encode(bytes)).toBe(Buffer.from(bytes).toString('base64url'))
          expect(codec.encode(text)).toBe(Buffer.from(text, 'utf8').toString('base64url'))
        },
      ),
      { numRuns: 1000 },
    )
  })
})

describe.each(paths)('decode, %s', (_, codec) => {
  it.each([
    ['YWJj=', 'impossible length'],
    ['YW=j', 'characters outside the URL-safe alphabet'],
    ['YW+j', 'characters outside the URL-safe alphabet'],
    ['YW j', 'characters outside the URL-safe alphabet'],
    ['YW☕', 'non-canonical encoding'],
    ['YR', 'non-canonical encoding'],
    // Node's own decoder reads only the low byte of these code units (0x2146 as 'F', 0x012B as '+').
    ['\u2146\u2146\u2146\u2146', 'characters outside the URL-safe alphabet'],
    ['YWJj\ud846\udd2bYW', 'characters outside the URL-safe alphabet'],
    ['YWK', 'non-canonical encoding'],
  ])('refuses %j (%s)', (text, reason) => {
    expect(() => codec.decode(text)).toThrowError(`invalid base64url: ${reason}`)
  })
  it('round-trips every byte string, and answers like the other path on any text (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        expect([...codec.decode(codec.encode(bytes))]).toEqual([...bytes])
      }),
      { numRuns: 1000 },
    )
    const textish = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.stringMatching(/^[A-Za-z0-9_\-+/= ]{0,40}$/),
      fc.string({ unit: 'binary', maxLength: 20 }),
    )
    fc.assert(
      fc.property(textish, (text) => {
        const mine = outcome(() => [...codec.decode(text)])
        const other = outcome(() => [...(codec === Browser ? Base64url : Browser).decode(text)])
        expect(mine).toEqual(other)
      }),
      { numRuns: 2000 },
    )
  })
})

describe.each(paths)('decodeText, %s', (_, codec) => {
  it('decodes UTF-8, keeping a BOM and a real U+FFFD, and refuses invalid UTF-8', () => {
    expect(codec.decodeText('SGVsbG8')).toBe('Hello')
    expect(codec.decodeText(codec.encode('\uFEFFbom ☕ \uFFFD 🚀'))).toBe('\uFEFFbom ☕ \uFFFD 🚀')
    for (const bytes of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0x61, 0xe2, 0x82]])
      expect(() => codec.decodeText(codec.encode(new Uint8Array(bytes)))).toThrowErrorMatchingInlineSnapshot(
        `[ParseError: invalid base64url: not UTF-8]`,
      )
  })
  it('answers like the other path on any bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const text = Buffer.from(bytes).toString('base64url')
        const other = codec === Browser ? Base64url : Browser
        expect(outcome(() => codec.decodeText(text))).toEqual(outcome(() => other.decodeText(text)))
      }),
      { numRuns: 2000 },
    )
  })
})
