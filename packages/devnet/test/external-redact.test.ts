import { describe, expect, it } from 'vitest'
import { readExternalNodes, redactExternal } from '../src/external.js'
import type { DevnetInfo } from '../src/index.js'

// What `npm run devnet` prints (cli.ts writes `redactExternal(devnet.info)`) for external nodes.
describe('redactExternal', () => {
  const key = `0x${'11'.repeat(32)}` as const
  const info = (): DevnetInfo => ({
    tempo: {
      source: 'external',
      rpcUrl: 'https://rpc.example:8545/v1/PATHKEY123?key=APIKEY123',
      chainId: 42431,
      accounts: [{ address: '0x0000000000000000000000000000000000000001', privateKey: key }],
    },
    solana: {
      source: 'external',
      rpcUrl: 'https://solana.example/?api-key=SOLKEY123',
      wsUrl: 'wss://solana.example/?api-key=SOLKEY123',
    },
  })

  it('prints only the origin of external URLs and says the path and query are hidden', () => {
    const printed = redactExternal(info())
    const line = JSON.stringify(printed)
    for (const secret of ['PATHKEY123', 'APIKEY123', 'SOLKEY123', '11'.repeat(32)])
      expect(line).not.toContain(secret)
    expect(printed.tempo?.rpcUrl).toBe('https://rpc.example:8545 (path and query hidden)')
    expect(printed.solana?.rpcUrl).toBe('https://solana.example (path and query hidden)')
    expect(printed.solana?.wsUrl).toBe('wss://solana.example (path and query hidden)')
  })

  it('keeps a bare external URL usable (its origin) and leaves the devnet itself untouched', () => {
    const bare = info()
    if (bare.tempo?.source === 'external') bare.tempo.rpcUrl = 'http://127.0.0.1:8545/'
    expect(redactExternal(bare).tempo?.rpcUrl).toBe('http://127.0.0.1:8545')
    const original = info()
    redactExternal(original)
    expect(original).toEqual(info())
  })
})

describe('readExternalNodes with credentials in a URL', () => {
  const refusals: [string, Record<string, string>][] = [
    ['MPPKIT_TEMPO_RPC_URL', { MPPKIT_TEMPO_RPC_URL: 'http://rpcuser:SuperSecretPw@127.0.0.1:8545/' }],
    ['MPPKIT_SOLANA_RPC_URL', { MPPKIT_SOLANA_RPC_URL: 'https://rpcuser:SuperSecretPw@solana.example/' }],
    [
      'MPPKIT_SOLANA_WS_URL',
      {
        MPPKIT_SOLANA_RPC_URL: 'https://solana.example/',
        MPPKIT_SOLANA_WS_URL: 'wss://rpcuser:SuperSecretPw@solana.example/',
      },
    ],
    [
      'a user without a password in MPPKIT_TEMPO_RPC_URL',
      { MPPKIT_TEMPO_RPC_URL: 'http://rpcuser@127.0.0.1:8545/' },
    ],
  ]
  for (const [name, env] of refusals)
    it(`refuses ${name} with credentials, without echoing them`, () => {
      let message = ''
      try {
        readExternalNodes(env)
      } catch (error) {
        message = (error as Error).message
        expect((error as { code?: string }).code).toBe('devnet_configuration')
      }
      expect(message).toMatch(/must not contain user:password credentials/)
      expect(message).not.toContain('SuperSecretPw')
      expect(message).not.toContain('rpcuser')
    })
})
