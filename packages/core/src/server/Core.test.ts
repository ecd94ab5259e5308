import { describe, expect, it } from 'vitest'
import { ConfigurationError } from '../Errors.js'
import * as Expires from '../Expires.js'
import { createTestRail } from '../testing/TestMethod.js'
import { createCore, type Options } from './Core.js'

const base = { realm: 'api.test', secrets: ['core-test-secret-0123456789abcdefghijklmn'] }

const core = (options: Partial<Options>) =>
  createCore({ ...base, methods: [createTestRail().server()], ...options })

describe('createCore duration options', () => {
  it('refuses a string, NaN, infinite, negative or zero duration with a ConfigurationError, keeps others', () => {
    for (const name of ['expiresIn', 'idempotencyTtl', 'idempotencyLease'] as const)
      for (const value of ['300', Number.NaN, Number.POSITIVE_INFINITY, -5, 0, 1e12])
        expect(() => core({ [name]: value as number }), `${name}: ${String(value)}`).toThrow(
          ConfigurationError,
        )
    expect(() => core({ expiresIn: '300' as unknown as number })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: expiresIn must be a number of seconds, at least 1 and at most 1000000000 (got a string)]`,
    )
    expect(() => core({ idempotencyTtl: Number.NaN })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: idempotencyTtl must be a number of seconds, more than 0 and at most 1000000000 (got NaN)]`,
    )
    // `expires` has whole seconds: under one second, every challenge would be expired when issued.
    expect(() => core({ expiresIn: 0.5 })).toThrow(ConfigurationError)
    // The defaults, and positive numbers (a fraction of a second for a TTL), are kept as they are.
    expect(core({})).toMatchObject({
      expiresIn: Expires.defaultTtlSeconds,
      idempotencyTtlMs: 86_400_000,
      leaseMs: 300_000,
    })
    expect(core({ expiresIn: 1, idempotencyTtl: 1.5, idempotencyLease: 10 })).toMatchObject({
      expiresIn: 1,
      idempotencyTtlMs: 1500,
      leaseMs: 10_000,
    })
  })
})

describe('createCore idempotencyTtl', () => {
  it('refuses an idempotencyTtl shorter than expiresIn (both in seconds)', () => {
    // A paid retry with the same Idempotency-Key 1.5 s later got a 402: the record was gone.
    expect(() => core({ idempotencyTtl: 1 })).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: idempotencyTtl (1 s) must be at least expiresIn (300 s): a paid retry with the same Idempotency-Key would be refused once the response is dropped]`,
    )
    expect(() => core({ expiresIn: 600, idempotencyTtl: 599 })).toThrow(ConfigurationError)
    expect(core({ expiresIn: 600, idempotencyTtl: 600 })).toMatchObject({ idempotencyTtlMs: 600_000 })
    expect(() => core({ expiresIn: 86_401 })).toThrow(/idempotencyTtl \(86400 s\) must be at least/)
  })
})
