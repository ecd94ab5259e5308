import { describe, expect, it } from 'vitest'
import { clusterOf, isSolanaNetwork, solanaCaip2Of, solanaNetworks, v1NameOf } from './Networks.js'

describe('Solana networks', () => {
  it('maps v1 names and CAIP-2 ids, and only those it knows', () => {
    expect(solanaCaip2Of('solana-devnet')).toBe(solanaNetworks.devnet)
    expect(solanaCaip2Of('solana')).toBe(solanaNetworks.mainnet)
    expect(solanaCaip2Of(solanaNetworks.testnet)).toBe(solanaNetworks.testnet)
    expect(solanaCaip2Of('solana-localnet')).toBeUndefined()
    expect(solanaCaip2Of('solana:11111111111111111111111111111111')).toBeUndefined()
    expect(solanaCaip2Of('solana-localnet', { 'solana-localnet': solanaNetworks.devnet })).toBe(
      solanaNetworks.devnet,
    )
    // A caller's table cannot map to something that is not a Solana CAIP-2 id.
    expect(solanaCaip2Of('solana-x', { 'solana-x': 'eip155:1' })).toBeUndefined()
  })

  it('names clusters and v1 names back', () => {
    expect(clusterOf(solanaNetworks.devnet)).toBe('devnet')
    expect(v1NameOf(solanaNetworks.devnet)).toBe('solana-devnet')
    expect(isSolanaNetwork('solana-devnet')).toBe(true)
    expect(isSolanaNetwork('solanax')).toBe(false)
    expect(isSolanaNetwork('eip155:1')).toBe(false)
  })
})
