import { hashTypedData, recoverTypedDataAddress } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import * as X402Eip2612 from './X402Eip2612.js'

const account = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d')
const permit = {
  from: account.address,
  asset: '0x036cbd53842c5426634e7929541ec2318f3dcf7e',
  spender: '0x000000000022D473030F116dDEE9F6B43aC78BA3',
  amount: '10000',
  nonce: '3',
  deadline: '1767225660',
} as const

describe('declaration', () => {
  it('is an info without a permit, and a schema requiring every field a permit carries', () => {
    expect(X402Eip2612.permitOf({ [X402Eip2612.extensionKey]: X402Eip2612.declaration })).toBeUndefined()
    expect(X402Eip2612.declaration.info.version).toBe('1')
    expect(X402Eip2612.declaration.schema.required).toMatchInlineSnapshot(`
      [
        "from",
        "asset",
        "spender",
        "amount",
        "nonce",
        "deadline",
        "signature",
        "version",
      ]
    `)
  })
})

describe('typedData', () => {
  it('is EIP-2612’s Permit under the token’s domain (owner = from, value = amount)', async () => {
    const data = X402Eip2612.typedData(84532, { name: 'USDC', version: '2' }, permit)
    expect(data.domain).toEqual({
      name: 'USDC',
      version: '2',
      chainId: 84532,
      verifyingContract: '0x036CbD53842c5426634e7929541eC2318f3dCF7e',
    })
    expect(data.message).toEqual({
      owner: account.address,
      spender: permit.spender,
      value: 10000n,
      nonce: 3n,
      deadline: 1767225660n,
    })
    const signature = await account.signTypedData(data)
    expect(await recoverTypedDataAddress({ ...data, signature })).toBe(account.address)
    // Another domain version is another digest: a permit signed for one token is no other's.
    expect(hashTypedData(X402Eip2612.typedData(84532, { name: 'USDC', version: '1' }, permit))).not.toBe(
      hashTypedData(data),
    )
  })
})

describe('permitOf', () => {
  it('finds a permit in the info (any of its fields), not an echoed declaration or anything else', () => {
    const key = X402Eip2612.extensionKey
    expect(X402Eip2612.permitOf(undefined)).toBeUndefined()
    expect(X402Eip2612.permitOf({ [key]: 'yes' })).toBeUndefined()
    expect(X402Eip2612.permitOf({ [key]: { info: [permit] } })).toBeUndefined()
    expect(X402Eip2612.permitOf({ [key]: { info: { description: 'x', version: '1' } } })).toBeUndefined()
    expect(X402Eip2612.permitOf({ other: { info: permit } })).toBeUndefined()
    expect(X402Eip2612.permitOf({ [key]: { info: { version: '1', nonce: '3' } } })).toEqual({
      version: '1',
      nonce: '3',
    })
    expect(X402Eip2612.permitOf({ [key]: { info: permit } })).toBe(permit)
  })
})

describe('withPermit', () => {
  it('echoes every extension and adds the permit to the declaration’s info, its fields winning', () => {
    const signed = { ...permit, signature: '0xab', version: '1' as const }
    const advertised = {
      [X402Eip2612.extensionKey]: { info: { description: 'd', version: '1', amount: '1' }, schema: { s: 1 } },
      other: { info: { x: 1 } },
    }
    expect(X402Eip2612.withPermit(advertised, signed)).toEqual({
      [X402Eip2612.extensionKey]: { info: { description: 'd', ...signed }, schema: { s: 1 } },
      other: { info: { x: 1 } },
    })
    expect(X402Eip2612.withPermit(undefined, signed)).toEqual({
      [X402Eip2612.extensionKey]: { info: signed },
    })
  })
})
