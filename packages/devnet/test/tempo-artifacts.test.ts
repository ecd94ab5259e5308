import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import * as artifacts from '../src/tempo/artifacts.js'

// The devnet deploys committed bytecode so it starts in milliseconds; this test recompiles
// contracts/*.sol with the pinned solc-js and fails if the committed artifact is stale.
// Regenerate with: node packages/devnet/scripts/compile-contracts.mjs --write
const reason = (() => {
  try {
    createRequire(import.meta.url).resolve('solc')
    return undefined
  } catch {
    return 'solc (solc-js) is not installed'
  }
})()
if (reason) console.warn(`[skip] ${reason}`)

describe('tempo contract artifacts', () => {
  it.skipIf(!!reason)('equal a fresh solc compile of the in-repo Solidity', async () => {
    // @ts-expect-error: a plain .mjs build script without type declarations.
    const { compileContracts } = await import('../scripts/compile-contracts.mjs')
    const fresh = compileContracts()
    expect(fresh.solcVersion).toBe(artifacts.solcVersion)
    expect(fresh.solcVersion).toMatch(/^0\.8\.37\+/)
    expect(fresh.settings).toEqual(artifacts.compilerSettings)
    expect(fresh.contracts.StreamChannelEscrow.abi).toEqual(artifacts.streamChannelEscrowAbi)
    expect(fresh.contracts.StreamChannelEscrow.bytecode).toBe(artifacts.streamChannelEscrowBytecode)
    expect(fresh.contracts.Eip3009Token.abi).toEqual(artifacts.eip3009TokenAbi)
    expect(fresh.contracts.Eip3009Token.bytecode).toBe(artifacts.eip3009TokenBytecode)
    expect(fresh.contracts.Eip2612Token.abi).toEqual(artifacts.eip2612TokenAbi)
    expect(fresh.contracts.Eip2612Token.bytecode).toBe(artifacts.eip2612TokenBytecode)
    expect(fresh.contracts.X402ExactPermit2Proxy.abi).toEqual(artifacts.x402ExactPermit2ProxyAbi)
    expect(fresh.contracts.X402ExactPermit2Proxy.bytecode).toBe(artifacts.x402ExactPermit2ProxyBytecode)
  })

  it('exposes the escrow ABI session clients call (draft-tempo-session-00 §"Contract Functions")', () => {
    const signatures = artifacts.streamChannelEscrowAbi
      .filter((item) => item.type === 'function')
      .map((item) => `${item.name}(${item.inputs.map((input) => input.type).join(',')})`)
    expect(signatures).toEqual(
      expect.arrayContaining([
        'open(address,address,uint128,bytes32,address)',
        'settle(bytes32,uint128,bytes)',
        'topUp(bytes32,uint256)',
        'close(bytes32,uint128,bytes)',
        'requestClose(bytes32)',
        'withdraw(bytes32)',
        'getChannel(bytes32)',
        'getChannelsBatch(bytes32[])',
        'computeChannelId(address,address,address,bytes32,address)',
        'getVoucherDigest(bytes32,uint128)',
        'domainSeparator()',
        'CLOSE_GRACE_PERIOD()',
        'VOUCHER_TYPEHASH()',
      ]),
    )
  })
})
