import { ConfigurationError } from '@mppkit/core'
import { privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { sessionServer, tempo } from './index.js'

const pathUsd = '0x20c0000000000000000000000000000000000000'
const recipient = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'
const charge = { rpcUrl: 'http://127.0.0.1:8545', chainId: 4217, currency: pathUsd, recipient } as const
const payee = privateKeyToAccount(`0x${'11'.repeat(32)}`)
const session = {
  rpcUrl: 'http://127.0.0.1:8545',
  chainId: 4217,
  currency: pathUsd,
  account: payee,
  escrow: '0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0',
} as const

describe('tempo (the charge factory)', () => {
  it('accepts valid options', () => {
    expect(tempo(charge).definition.intent).toBe('charge')
  })

  it('names the bad field at creation: recipient, currency, chain id, RPC URL, splits', () => {
    const error = (options: Record<string, unknown>) => {
      try {
        tempo({ ...charge, ...options } as never)
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigurationError)
        return (e as Error).message
      }
      return 'no error'
    }
    expect(error({ recipient: '0x1234' })).toMatchInlineSnapshot(
      `"tempo: recipient must be the address that receives payments (0x followed by 40 hex digits), got "0x1234""`,
    )
    expect(error({ recipient: undefined })).toMatchInlineSnapshot(
      `"tempo: recipient must be the address that receives payments (0x followed by 40 hex digits), got nothing"`,
    )
    expect(error({ currency: 'AlphaUSD' })).toMatchInlineSnapshot(
      `"tempo: currency must be a TIP-20 token address (0x followed by 40 hex digits), got "AlphaUSD""`,
    )
    expect(error({ chainId: Number('abc') })).toMatchInlineSnapshot(
      `"tempo: chainId must be a positive integer (e.g. 4217 for Tempo mainnet), got NaN"`,
    )
    expect(error({ rpcUrl: undefined })).toMatchInlineSnapshot(
      `"tempo: rpcUrl is required (the JSON-RPC URL of a Tempo node), got nothing"`,
    )
    expect(error({ rpcUrl: 'localhost:8545' })).toMatchInlineSnapshot(
      `"tempo: rpcUrl must be an http(s) URL, got "localhost:8545""`,
    )
    expect(error({ splits: [{ amount: '-1', recipient }] })).toMatchInlineSnapshot(
      `"tempo: splits[0].amount must be a positive amount in base units, got "-1""`,
    )
    expect(error({ supportedModes: ['pul'] })).toMatchInlineSnapshot(
      `"tempo: supportedModes holds pull and/or push, got "pul""`,
    )
  })
})

describe('sessionServer', () => {
  it('accepts valid options (also through tempo.session)', () => {
    expect(sessionServer(session).definition.intent).toBe('session')
    expect(tempo.session(session).definition.intent).toBe('session')
  })

  it('names the bad field at creation, never printing an account', () => {
    const error = (options: Record<string, unknown>) => {
      try {
        tempo.session({ ...session, ...options } as never)
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigurationError)
        return (e as Error).message
      }
      return 'no error'
    }
    expect(error({ escrow: undefined })).toMatchInlineSnapshot(
      `"tempo session: escrow must be the escrow contract address (0x followed by 40 hex digits), got nothing"`,
    )
    expect(error({ account: `0x${'22'.repeat(32)}` })).toMatchInlineSnapshot(
      `"tempo session: account must be a viem account (e.g. privateKeyToAccount(key)), got "…""`,
    )
    expect(error({ chainId: 0 })).toMatchInlineSnapshot(
      `"tempo session: chainId must be a positive integer (e.g. 4217 for Tempo mainnet), got 0"`,
    )
    expect(error({ suggestedDeposit: -5n })).toMatchInlineSnapshot(
      `"tempo session: suggestedDeposit must be a non-negative amount in base units, got -5n"`,
    )
    expect(error({ voucherTimeout: Number.NaN })).toMatchInlineSnapshot(
      `"tempo session: voucherTimeout must be a whole number of milliseconds from 1 to 2147483647, got NaN"`,
    )
  })
})
