// Option checks of the Tempo client factories (audit 2026-12, config): `chargeClient` and
// `sessionClient` accepted a missing `account`, `chainId: '4217'`, `mode: 'Push'` and session
// `deposit: 0n` / `-5n` / `topUp: 0n`. A deposit of 0n failed every request; a top-up of 0n served one
// request then refused every top-up, the deposit locked in the channel until close. Each bad option is
// now a `ConfigurationError` naming it, thrown when the client is created.
import { ConfigurationError } from '@mppkit/core'
import { privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { chargeClient, sessionClient, tempo } from '../src/client/index.js'

const account = privateKeyToAccount(`0x${'22'.repeat(32)}`)
const escrow = '0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0'
const charge = { account, rpcUrl: 'http://127.0.0.1:8545', chainId: 4217 }
const session = { account, rpcUrl: 'http://127.0.0.1:8545', chainId: 4217 }

const message = (create: () => unknown): string => {
  try {
    create()
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError)
    return (error as Error).message
  }
  return 'no error'
}
const chargeError = (options: Record<string, unknown>) =>
  message(() => chargeClient({ ...charge, ...options } as never))
const sessionError = (options: Record<string, unknown>) =>
  message(() => sessionClient({ ...session, ...options } as never))

describe('tempo charge client options', () => {
  it('refuses a missing or non-signing account, never showing it', () => {
    expect(chargeError({ account: undefined })).toMatch(/^tempo client: account must be .* got nothing$/)
    expect(chargeError({ account: account.address })).toMatch(/account must be a viem local account/)
    const { signTransaction: _, ...noSigning } = account
    expect(chargeError({ account: noSigning })).toMatch(/account .* got an account without signTransaction$/)
    expect(message(() => tempo({ rpcUrl: charge.rpcUrl } as never))).toMatch(/account/)
  })

  it('refuses a chainId that is not a positive integer, a mode other than pull/push', () => {
    expect(chargeError({ chainId: '4217' })).toMatchInlineSnapshot(
      `"tempo client: chainId must be a positive integer (e.g. 4217 for Tempo mainnet), got "4217""`,
    )
    expect(chargeError({ chainId: Number.NaN })).toMatch(/chainId .* got NaN/)
    expect(chargeError({ chainId: 0 })).toMatch(/chainId/)
    expect(chargeError({ mode: 'Push' })).toMatchInlineSnapshot(
      `"tempo client: mode must be one of "pull", "push", got "Push""`,
    )
  })

  it('refuses an rpcUrl that is not http(s), without echoing it', () => {
    expect(chargeError({ rpcUrl: 'ws://user:hunter2@node.example' })).toMatchInlineSnapshot(
      `"tempo client: rpcUrl must be an http(s) URL of a Tempo node, got a ws: URL"`,
    )
    expect(chargeError({ rpcUrl: 'node.example/key-abc' })).toMatch(/got a string that is not a URL$/)
    expect(chargeError({ rpcUrl: '' })).toMatch(/rpcUrl/)
  })

  it('refuses bad timeouts and other charge options', () => {
    for (const timeout of [0, -1, 1.5, 3e9, Number.NaN, '10000'])
      expect(chargeError({ timeout })).toMatch(
        /^tempo client: timeout must be a whole number of milliseconds/,
      )
    expect(chargeError({ feeToken: '0x1234' })).toMatch(/feeToken/)
    expect(chargeError({ nonceKey: 1n })).toMatch(/nonceKey/)
    expect(chargeError({ validFor: 0 })).toMatch(/validFor/)
    expect(chargeError({ gasPerTransfer: 0n })).toMatch(/gasPerTransfer/)
    expect(chargeError({ proofVersion: 4 })).toMatch(/proofVersion/)
  })

  it('accepts the configurations the examples and tests use', () => {
    expect(chargeError({})).toBe('no error')
    expect(message(() => chargeClient({ account }))).toBe('no error') // zero-amount proofs need no RPC
    expect(chargeError({ rpcUrl: undefined })).toBe('no error')
    expect(chargeError({ rpcUrl: 'https://user:pass@rpc.example/v1/key', mode: 'push', timeout: 300 })).toBe(
      'no error',
    )
    expect(chargeError({ mode: 'pull', nonceKey: 0n, feeToken: escrow, validFor: 60, proofVersion: 1 })).toBe(
      'no error',
    )
    expect(message(() => tempo.charge(charge))).toBe('no error')
  })
})

describe('tempo session client options', () => {
  it('refuses a deposit or topUp that is not a positive bigint (0n failed every request)', () => {
    expect(sessionError({ deposit: 0n })).toMatchInlineSnapshot(
      `"tempo session: deposit must be a positive bigint amount in base units (e.g. 1_000_000n), got 0n"`,
    )
    expect(sessionError({ deposit: -5n })).toMatch(/deposit .* got -5n$/)
    expect(sessionError({ deposit: 1000 })).toMatch(/deposit .* got 1000$/)
    expect(sessionError({ deposit: '1000' })).toMatch(/deposit/)
    expect(sessionError({ topUp: 0n })).toMatch(/^tempo session: topUp must be a positive bigint/)
  })

  it('refuses a missing account, a non-signing signer, a bad rpcUrl or chainId', () => {
    expect(sessionError({ account: undefined })).toMatch(/^tempo session: account must be .* got nothing$/)
    expect(sessionError({ signer: { address: account.address } })).toMatch(
      /signer .* got an account without signTypedData$/,
    )
    expect(sessionError({ rpcUrl: undefined })).toMatch(/rpcUrl must be an http\(s\) URL .* got nothing$/)
    expect(sessionError({ rpcUrl: 'wss://node.example' })).toMatch(/rpcUrl/)
    expect(sessionError({ chainId: '4217' })).toMatch(/^tempo session: chainId must be a positive integer/)
  })

  it('refuses bad voucherAhead, timeout, escrows and fetch', () => {
    for (const voucherAhead of [0, -1, 1.5, Number.NaN, '2'])
      expect(sessionError({ voucherAhead })).toMatch(/^tempo session: voucherAhead must be/)
    expect(sessionError({ timeout: 0 })).toMatch(/timeout/)
    expect(sessionError({ timeout: 2 ** 31 })).toMatch(/timeout/)
    expect(sessionError({ escrows: escrow })).toMatch(/escrows must be a non-empty array of addresses/)
    expect(sessionError({ escrows: [] })).toMatch(/escrows must be a non-empty array/)
    expect(sessionError({ escrows: [escrow, '0x12'] })).toMatch(/escrows\[1\] must be an address/)
    expect(sessionError({ fetch: 'https://x' })).toMatch(/fetch must be a function/)
    expect(sessionError({ beforeTopUp: true })).toMatch(/beforeTopUp must be a function, got boolean/)
    expect(sessionError({ channelStore: { load() {} } })).toMatch(
      /channelStore must be an object with load, save and delete/,
    )
  })

  it('accepts the configurations the examples and tests use', () => {
    expect(sessionError({})).toBe('no error')
    expect(
      sessionError({
        signer: privateKeyToAccount(`0x${'33'.repeat(32)}`),
        deposit: 10_000n,
        topUp: 1n,
        voucherAhead: 4,
        timeout: 5_000,
        escrows: [escrow, escrow.toLowerCase()],
        fetch: globalThis.fetch,
      }),
    ).toBe('no error')
    expect(message(() => tempo.session({ account, rpcUrl: 'https://rpc.example' }))).toBe('no error')
  })
})
