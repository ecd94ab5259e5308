import { createHash, randomBytes } from 'node:crypto'
import { Challenge, ConfigurationError } from '@mppkit/core/client'
import { describe, expect, it } from 'vitest'
import { checkSaved, checkSessionStore, type SavedSession } from './Saved.js'

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

describe('checkSaved', () => {
  it('accepts a record under its URL origin, or under realm:<realm> for a URL without one', () => {
    expect(checkSaved('https://api.example', record())).toEqual({ ok: true, saved: record() })
    const tool = record({ url: 'tool:generate' })
    expect(checkSaved('realm:api.example', tool)).toEqual({ ok: true, saved: tool })
    const topUp = randomBytes(32).toString('hex')
    const pending = record({
      pendingTopUp: { challenge: topUpChallenge(hash(topUp)), preimage: topUp, sats: '10' },
    })
    expect(checkSaved('https://api.example', pending)).toEqual({ ok: true, saved: pending })
  })

  it('names what is wrong, never a value: a URL elsewhere, a preimage not the session’s or its top-up’s, a wrong shape or version', () => {
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
      // Broken JSON text where a record belongs (a crash, a hand edit), holding the preimage.
      ['https://api.example', `{"v":1,"preimage":"${preimage}`, /^is not a valid record \(record\)$/],
      ['https://api.example', { ...record(), v: 2 }, /^is a record of version 2, which this client/],
      ['https://api.example', { ...record(), v: '1' }, /^is not a valid record \(v\)$/],
    ] as const) {
      const checked = checkSaved(key, bad)
      expect(checked.ok).toBe(false)
      const { problem } = checked as { problem: string }
      expect(problem).toMatch(pattern)
      expect(problem).not.toContain(preimage)
      expect(problem).not.toContain(other)
    }
  })

  it('checkSessionStore accepts undefined and a store, refuses anything else', () => {
    expect(() => checkSessionStore(undefined)).not.toThrow()
    expect(() => checkSessionStore({ load() {}, save() {}, delete() {} })).not.toThrow()
    expect(() => checkSessionStore({ load() {} })).toThrow(ConfigurationError)
  })
})
