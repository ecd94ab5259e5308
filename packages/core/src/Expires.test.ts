import { describe, expect, it, vi } from 'vitest'

/** Fresh copies of the modules: Expires' memo of the last parsed value as it is when a process starts. */
async function fresh() {
  vi.resetModules()
  const [Expires, { ParseError }] = await Promise.all([import('./Expires.js'), import('./Errors.js')])
  return { Expires, ParseError }
}

describe('Expires.parse', () => {
  it('refuses an empty string before anything was parsed (the memo never matches it)', async () => {
    const { Expires, ParseError } = await fresh()
    expect(() => Expires.parse('')).toThrow(ParseError)
    expect(Expires.isExpired('')).toBe(true)
    // And after a value was parsed and remembered.
    expect(Expires.parse('2025-01-15T12:05:00Z')).toBe(1736942700000)
    expect(Expires.parse('2025-01-15T12:05:00Z')).toBe(1736942700000)
    expect(() => Expires.parse('')).toThrow(ParseError)
  })
})
