import { ConfigurationError } from '@mppkit/core'
import { generateKeyPairSigner } from '@solana/kit'
import { beforeAll, describe, expect, it } from 'vitest'
import { type ChargeOptions, chargeServer } from '../src/server/index.js'

// Options the server would accept and then fail on after the payer paid (audit: each charged the payer
// and answered 503) are refused when the method is created, naming the option.
let base: ChargeOptions
beforeAll(async () => {
  base = {
    rpcUrl: 'http://127.0.0.1:1',
    network: 'localnet',
    currency: 'sol',
    recipient: (await generateKeyPairSigner()).address,
  }
})

const refuses = (extra: Record<string, unknown>, option: string) => {
  let error: unknown
  try {
    chargeServer({ ...base, ...extra } as ChargeOptions)
  } catch (caught) {
    error = caught
  }
  expect(error).toBeInstanceOf(ConfigurationError)
  expect((error as Error).message).toContain(option)
}

describe('solana server options', () => {
  it.each([
    ['processed', 'commitment'],
    ['recent', 'commitment'],
    ['', 'commitment'],
  ])('refuses commitment %j', (commitment, option) => refuses({ commitment }, option))

  it.each([Number.NaN, 0, -1, 1.5, Number.POSITIVE_INFINITY, '60'])(
    'refuses replayWindowSeconds %j',
    (replayWindowSeconds) => refuses({ replayWindowSeconds }, 'replayWindowSeconds'),
  )

  it.each([0, -1, Number.NaN, 1.5, 2 ** 31, Number.POSITIVE_INFINITY, '1000'])(
    'refuses timeout and confirmTimeout %j',
    (value) => {
      refuses({ timeout: value }, 'timeout')
      refuses({ confirmTimeout: value }, 'confirmTimeout')
    },
  )

  it('accepts the documented values', () => {
    for (const extra of [
      {},
      { commitment: 'confirmed' },
      { commitment: 'finalized' },
      { replayWindowSeconds: 1 },
      { replayWindowSeconds: 86_400 },
      { timeout: 1, confirmTimeout: 1 },
      { timeout: 2 ** 31 - 1, confirmTimeout: 2 ** 31 - 1 },
    ])
      expect(() => chargeServer({ ...base, ...extra } as ChargeOptions)).not.toThrow()
  })
})
