// Option checks of the Tempo server factories for durations and intervals (audit 2026-12, config):
// `stateTtlSeconds: 0` made a paid voucher credential resent five times serve five more times;
// `timeout: 0` turned viem's RPC timeout off (a stalled node held the request past 15 s) and
// `timeout: 3e9` overflowed the timer (every RPC failed within 10 ms); `settleInterval` 0 or 3e9 ran
// ~430 settlement batches in 500 ms. Each is now a `ConfigurationError` naming the option.
import { createServer as tcp } from 'node:net'
import { Challenge, ConfigurationError, Credential } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sessionServer, tempo } from '../src/server/index.js'

const pathUsd = '0x20c0000000000000000000000000000000000000'
const recipient = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'
const charge = { rpcUrl: 'http://127.0.0.1:8545', chainId: 4217, currency: pathUsd, recipient } as const
const session = {
  rpcUrl: 'http://127.0.0.1:8545',
  chainId: 4217,
  currency: pathUsd,
  account: privateKeyToAccount(`0x${'11'.repeat(32)}`),
  escrow: '0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0',
} as const

const message = (create: () => unknown): string => {
  try {
    create()
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError)
    return (error as Error).message
  }
  return 'no error'
}
const sessionError = (options: Record<string, unknown>) =>
  message(() => sessionServer({ ...session, ...options } as never))
const chargeError = (options: Record<string, unknown>) =>
  message(() => tempo({ ...charge, ...options } as never))

describe('tempo session: state lifetime', () => {
  it('refuses a stateTtlSeconds under 900 s (a forgotten voucher is served again)', () => {
    expect(sessionError({ stateTtlSeconds: 0 })).toMatchInlineSnapshot(
      `"tempo session: stateTtlSeconds must be a whole number of seconds from 900 to 1000000000 (what vouchers paid for must be remembered until it is settled), got 0"`,
    )
    for (const stateTtlSeconds of [1, 60, 899, 899.5, -1, Number.NaN, Number.POSITIVE_INFINITY, 1e10, '3600'])
      expect(sessionError({ stateTtlSeconds })).toMatch(/^tempo session: stateTtlSeconds must be/)
  })

  it('accepts 900 s up to 1e9 s, and the default', () => {
    for (const stateTtlSeconds of [900, 86_400, 1_000_000_000, undefined])
      expect(sessionError({ stateTtlSeconds })).toBe('no error')
  })

  it('refuses a settleInterval not shorter than the state lifetime (forgotten before it is settled)', () => {
    expect(sessionError({ stateTtlSeconds: 900, settleInterval: 900_000 })).toMatchInlineSnapshot(
      `"tempo session: settleInterval (900000 ms) must be shorter than stateTtlSeconds (900 s): served vouchers would be forgotten before they are settled"`,
    )
    expect(sessionError({ stateTtlSeconds: 900, settleInterval: 899_999 })).toBe('no error')
  })
})

describe('tempo session: timers', () => {
  it('refuses 0, fractions and values past 2^31 − 1 ms for settleInterval, voucherTimeout, timeout', () => {
    for (const field of ['settleInterval', 'voucherTimeout', 'timeout'])
      for (const value of [0, -1, 0.5, 1.5, 2_147_483_648, 3e9, Number.NaN, Number.POSITIVE_INFINITY, '1000'])
        expect(sessionError({ [field]: value })).toMatch(
          new RegExp(`^tempo session: ${field} must be a whole number of milliseconds from 1 to 2147483647`),
        )
    expect(sessionError({ settleInterval: 0 })).toMatchInlineSnapshot(
      `"tempo session: settleInterval must be a whole number of milliseconds from 1 to 2147483647, got 0"`,
    )
    expect(sessionError({ timeout: 3e9 })).toMatchInlineSnapshot(
      `"tempo session: timeout must be a whole number of milliseconds from 1 to 2147483647, got 3000000000"`,
    )
  })

  it('refuses a channelStateTtl of 0 or not below the 15-minute close grace period', () => {
    expect(sessionError({ channelStateTtl: 900_000 })).toMatchInlineSnapshot(
      `"tempo session: channelStateTtl must be a whole number of milliseconds from 1 to 899999 (below the escrow's 15-minute close grace period), got 900000"`,
    )
    for (const channelStateTtl of [0, -1, 0.5, 3e9, Number.NaN])
      expect(sessionError({ channelStateTtl })).toMatch(/^tempo session: channelStateTtl must be/)
  })

  it('accepts 1 ms up to 2^31 − 1 ms, and the values the repository uses', () => {
    for (const value of [1, 25, 1_000, 10_000, 3_600_000, 2_147_483_647])
      for (const field of ['settleInterval', 'voucherTimeout', 'timeout'])
        expect(sessionError({ [field]: value })).toBe('no error')
    for (const channelStateTtl of [1, 200, 60_000, 899_999])
      expect(sessionError({ channelStateTtl })).toBe('no error')
    // The unit count stays a non-negative integer: 0 is how a handler meters itself.
    expect(sessionError({ unitsPerRequest: 0 })).toBe('no error')
  })
})

describe('tempo charge: timeout and replayTtlSeconds', () => {
  it('refuses a timeout of 0 or past 2^31 − 1 ms', () => {
    expect(chargeError({ timeout: 0 })).toMatchInlineSnapshot(
      `"tempo: timeout must be a whole number of milliseconds from 1 to 2147483647, got 0"`,
    )
    for (const timeout of [3e9, 2_147_483_648, 0.5, -1, Number.NaN])
      expect(chargeError({ timeout })).toMatch(/^tempo: timeout must be a whole number of milliseconds/)
    for (const timeout of [1, 2_000, 10_000, 2_147_483_647]) expect(chargeError({ timeout })).toBe('no error')
  })

  it('refuses a replayTtlSeconds of 0 (every payment refused after its payer paid)', () => {
    expect(chargeError({ replayTtlSeconds: 0 })).toMatchInlineSnapshot(
      `"tempo: replayTtlSeconds must be a whole number of seconds from 1 to 1000000000, got 0"`,
    )
    for (const replayTtlSeconds of [1, 2, 7 * 86_400])
      expect(chargeError({ replayTtlSeconds })).toBe('no error')
  })
})

// The audit's probe, kept: against a node that accepts connections and never answers, a charge with the
// default timeout answers 503 after it; `timeout: 0` (no timeout) and 3e9 (overflowed) no longer start.
describe('tempo charge on a stalled node', () => {
  const sockets: { destroy(): void }[] = []
  const hole = tcp((socket) => {
    sockets.push(socket)
  })
  let url = ''
  beforeAll(async () => {
    await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', () => resolve()))
    url = `http://127.0.0.1:${(hole.address() as { port: number }).port}`
  })
  afterAll(() => {
    for (const socket of sockets) socket.destroy()
    hole.close()
  })

  it('a 300 ms timeout answers 503 after about 300 ms; 0 and 3e9 are refused at creation', async () => {
    for (const timeout of [0, 3e9])
      expect(() => tempo({ ...charge, rpcUrl: url, timeout })).toThrow(ConfigurationError)
    const method = tempo({ ...charge, rpcUrl: url, timeout: 300 })
    const server = createServer({ realm: 't', secrets: ['s'.repeat(32)], methods: [method], logger: false })
    const handler = server.protect(
      { offers: [{ method: 'tempo', request: { amount: '1000' } }] },
      () => new Response('ok'),
    )
    const unpaid = await handler(new Request('https://t/x'))
    const challenge = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)[0]!
    const authorization = Credential.format({
      challenge,
      payload: { type: 'hash', hash: `0x${'ab'.repeat(32)}` },
    } as never)
    const started = Date.now()
    const answer = await handler(new Request('https://t/x', { headers: { authorization } }))
    expect(answer.status).toBe(503)
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
    expect(Date.now() - started).toBeLessThan(5_000)
    await server.close()
  })
})
