import { createHash, randomBytes } from 'node:crypto'
import { Challenge, ConfigurationError } from '@mppkit/core/client'
import { describe, expect, it } from 'vitest'
import { checkSessionStore, parseSaved, type SavedSession } from './Saved.js'

const preimage = randomBytes(32).toString('hex')
const hash = (hex: string) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')
const record = (overrides: Partial<SavedSession> = {}): SavedSession => ({
  v: 1,
  network: 'regtest',
  sessionId: hash(preimage),
  preimage,
  realm: 'api.example',
  deposit: '10',
  spent: '2',
  price: '1',
  url: 'https://api.example/r',
  opened: true,
  ...overrides,
})
const topUpChallenge = (paymentHash: string) =>
  Challenge.format({
    id: 'x',
    realm: 'api.example',
    method: 'lightning',
    intent: 'session',
    request: { amount: '1', currency: 'sat', paymentHash },
  })

describe('parseSaved', () => {
  it('accepts a record under its URL origin, or under realm:<realm> for a URL without one', () => {
    expect(parseSaved('https://api.example', record())).toEqual(record())
    const tool = record({ url: 'tool:generate' })
    expect(parseSaved('realm:api.example', tool)).toEqual(tool)
    const topUp = randomBytes(32).toString('hex')
    const pending = record({
      pendingTopUp: { challenge: topUpChallenge(hash(topUp)), preimage: topUp, sats: '10' },
    })
    expect(parseSaved('https://api.example', pending)).toEqual(pending)
  })

  it('refuses by key, never printing a preimage: a URL elsewhere, a preimage not the session’s or its top-up’s', () => {
    const other = randomBytes(32).toString('hex')
    for (const [key, bad, pattern] of [
      ['https://api.example', record({ url: 'https://evil.example/r' }), /url: not of its key's origin/],
      ['realm:other', record({ url: 'tool:generate' }), /url: not of its key's origin/],
      ['https://api.example', record({ preimage: other }), /holds a preimage that is not its session's/],
      [
        'https://api.example',
        record({ pendingTopUp: { challenge: topUpChallenge(hash(preimage)), preimage: other, sats: '1' } }),
        /pending top-up whose preimage is not its challenge's/,
      ],
      ['https://api.example', { ...record(), deposit: 10 }, /is not a valid record \(deposit\)/],
      ['https://api.example', { ...record(), challenge: 'Bearer x' }, /is not a valid record \(challenge\)/],
    ] as const) {
      const error = (() => {
        try {
          parseSaved(key, bad)
        } catch (caught) {
          return caught
        }
      })()
      expect(error).toBeInstanceOf(ConfigurationError)
      expect((error as Error).message).toMatch(pattern)
      expect((error as Error).message).toContain(JSON.stringify(key))
      expect((error as Error).message).not.toContain(preimage)
      expect((error as Error).message).not.toContain(other)
    }
  })

  it('checkSessionStore accepts undefined and a store, refuses anything else', () => {
    expect(() => checkSessionStore(undefined)).not.toThrow()
    expect(() => checkSessionStore({ load() {}, save() {}, delete() {} })).not.toThrow()
    expect(() => checkSessionStore({ load() {} })).toThrow(ConfigurationError)
  })
})
