import { ConfigurationError } from '@mppkit/core'
import Stripe from 'stripe'
import { describe, expect, it } from 'vitest'
import { type ChargeOptions, stripe } from '../src/server/index.js'

// `retryAfter` becomes the `Retry-After` header of every 503: a value that is not a whole number of
// seconds (audit: NaN became `Retry-After: NaN`) is refused when the method is created.
describe('stripe server options', () => {
  const client = new Stripe('sk_test_config')
  const make = (options: Partial<ChargeOptions>) => () =>
    stripe({ client, networkId: 'profile_x', ...options })

  it.each([Number.NaN, 0, -1, 1.5, Number.POSITIVE_INFINITY, '5'])('refuses retryAfter %j', (retryAfter) => {
    expect(make({ retryAfter: retryAfter as number })).toThrowError(ConfigurationError)
    expect(make({ retryAfter: retryAfter as number })).toThrowError(/retryAfter/)
  })

  it('accepts a positive whole number of seconds', () => {
    expect(make({})).not.toThrow()
    for (const retryAfter of [1, 30]) expect(make({ retryAfter })).not.toThrow()
  })
})
