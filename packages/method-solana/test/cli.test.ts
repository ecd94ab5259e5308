import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { toNodeListener } from '@mppkit/core/server'
import { generateKeyPairSigner } from '@solana/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount, createMint, mintTo } from '../../devnet/src/solana/index.js'
import { defaults, pay } from '../src/cli.js'
import { type SolanaNode, serve, startSolana, tokenBalance } from './helpers.js'

let node: SolanaNode
let folder: string
beforeAll(async () => {
  node = await startSolana()
  folder = await mkdtemp(join(tmpdir(), 'mppkit-solana-cli-'))
})
afterAll(async () => {
  await node?.stop()
  await rm(folder, { recursive: true, force: true })
})

const capture = () => {
  const out = { stdout: '', stderr: '' }
  const io = {
    stdout: (text: string) => {
      out.stdout += text
    },
    stderr: (text: string) => {
      out.stderr += text
    },
  }
  return { out, io }
}

describe('pay (mppkit pay for Solana)', () => {
  it('caps wrapped SOL as SOL (0.01 SOL, a question above 0.001), not as 1.00 of a token', () => {
    const wrapped = { amount: 0n, currency: 'So11111111111111111111111111111111111111112', decimals: 9 }
    expect([defaults.cap(wrapped), defaults.confirmAbove(wrapped)]).toEqual([10_000_000n, 1_000_000n])
    const token = { amount: 0n, currency: '4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU', decimals: 6 }
    expect([defaults.cap(token), defaults.confirmAbove(token)]).toEqual([1_000_000n, 100_000n])
  })

  it('caps 1.00 of a dollar stablecoin by default, and no other mint (a unit of an unknown token may be worth anything)', () => {
    const usdc = { amount: 0n, currency: 'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v', decimals: 6 }
    expect(defaults.cap(usdc)).toBe(1_000_000n)
    // Wrapped bitcoin (8 decimals): "1.00" would be one bitcoin.
    const wrappedBitcoin = {
      amount: 0n,
      currency: '3NZ9JMVBmGAqocybic2c7LQCJScmgsAZ6vQqTDzcqmJh',
      decimals: 8,
    }
    expect(defaults.cap(wrappedBitcoin)).toBeUndefined()
    expect(
      defaults.cap({ amount: 0n, currency: 'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v' }),
    ).toBeUndefined()
  })

  it('refuses an SPL charge of an unknown mint until --currency and --max-amount name a cap, then pays it', async () => {
    const payer = await createFundedAccount(node)
    const recipient = await createFundedAccount(node)
    const { mint } = await createMint(node, { decimals: 6, program: 'token' })
    await mintTo(node, { mint, owner: payer.address, amount: 5_000_000n })
    await mintTo(node, { mint, owner: recipient.address, amount: 0n })
    const file = join(folder, 'spl.json')
    await writeFile(file, JSON.stringify(payer.secretKey))
    const served = serve(
      {
        rpcUrl: node.info.rpcUrl,
        network: 'localnet',
        currency: String(mint),
        decimals: 6,
        recipient: recipient.address,
      },
      { method: 'solana', request: { amount: '250000' } },
    )
    const http = createServer(toNodeListener(served.handler))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/r`
      const flags = ['--keypair', file, '--rpc-url', node.info.rpcUrl, '--yes']
      const refused = capture()
      expect(await pay([url, ...flags], refused.io)).toBe(1)
      expect(refused.out.stderr).toBe(
        `mppkit pay: refusing to pay 250000 base units of ${mint}: no default cap for this currency; ` +
          `give one with --currency ${mint} --max-amount <base units>\n`,
      )
      expect(served.runs()).toBe(0)
      expect(await tokenBalance(node, String(mint), recipient.address)).toBe(0n)
      const paid = capture()
      expect(await pay([url, ...flags, '--currency', String(mint), '--max-amount', '250000'], paid.io)).toBe(
        0,
      )
      expect(paid.out.stdout).toBe('paid content')
      expect(await tokenBalance(node, String(mint), recipient.address)).toBe(250_000n)
    } finally {
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
    }
  })

  // The audit's case: `--max-amount 250000 --yes`, meant for a 6-decimal mint (0.25), paid 250,000 whole
  // tokens of a 0-decimal mint the server offered instead.
  it('reads --max-amount in the base units of --currency only: refused without it, and other mints are not paid', async () => {
    const payer = await createFundedAccount(node)
    const recipient = await createFundedAccount(node)
    const { mint: cheap } = await createMint(node, { decimals: 6, program: 'token' })
    const { mint: dear } = await createMint(node, { decimals: 0, program: 'token' })
    await mintTo(node, { mint: cheap, owner: payer.address, amount: 5_000_000n })
    await mintTo(node, { mint: dear, owner: payer.address, amount: 1_000_000n })
    await mintTo(node, { mint: dear, owner: recipient.address, amount: 0n })
    const file = join(folder, 'mints.json')
    await writeFile(file, JSON.stringify(payer.secretKey))
    const served = serve(
      {
        rpcUrl: node.info.rpcUrl,
        network: 'localnet',
        currency: String(dear),
        decimals: 0,
        recipient: recipient.address,
      },
      { method: 'solana', request: { amount: '250000' } },
    )
    const http = createServer(toNodeListener(served.handler))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/r`
      const flags = ['--keypair', file, '--rpc-url', node.info.rpcUrl, '--max-amount', '250000', '--yes']
      const bare = capture()
      expect(await pay([url, ...flags], bare.io)).toBe(2)
      expect(bare.out.stderr.split('\n')[0]).toBe(
        "mppkit pay: --max-amount counts base units, whose size differs between this rail's currencies: " +
          'name the currency it is in with --currency <id>',
      )
      const other = capture()
      expect(await pay([url, ...flags, '--currency', String(cheap)], other.io)).toBe(1)
      expect(other.out.stderr).toBe(
        `mppkit pay: refusing to pay 250000 base units of ${dear}: only ${cheap} is paid (--currency)\n`,
      )
      expect(served.runs()).toBe(0)
      expect(await tokenBalance(node, String(dear), recipient.address)).toBe(0n)
    } finally {
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
    }
  })

  it('pays a SOL charge over HTTP with a keygen file and prints body and receipt', async () => {
    const payer = await createFundedAccount(node)
    const file = join(folder, 'id.json')
    await writeFile(file, JSON.stringify(payer.secretKey))
    const recipient = (await generateKeyPairSigner()).address
    const served = serve(
      { rpcUrl: node.info.rpcUrl, network: 'localnet', currency: 'sol', recipient },
      { method: 'solana', request: { amount: '1000000' } },
    )
    const http = createServer(toNodeListener(served.handler))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/r`
      for (const mode of ['pull', 'push']) {
        const { out, io } = capture()
        const code = await pay([url, '--keypair', file, '--rpc-url', node.info.rpcUrl, '--mode', mode], io)
        expect(code, out.stderr + out.stdout).toBe(0)
        expect(out.stdout).toBe('paid content')
        expect(out.stderr).toMatch(/"method": "solana"/)
      }
      expect(node.ledger.balance(recipient)).toBe(2_000_000n)
    } finally {
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
    }
  })

  it('a transfer that would leave the recipient below rent → insufficient-funds-for-rent, exit 1', async () => {
    const payer = await createFundedAccount(node)
    const file = join(folder, 'rent.json')
    await writeFile(file, JSON.stringify(payer.secretKey))
    const served = serve({
      rpcUrl: node.info.rpcUrl,
      network: 'localnet',
      currency: 'sol',
      recipient: (await generateKeyPairSigner()).address,
    })
    const http = createServer(toNodeListener(served.handler))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    try {
      const { out, io } = capture()
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/r`
      expect(await pay([url, '--keypair', file, '--rpc-url', node.info.rpcUrl], io)).toBe(1)
      expect(out.stdout).toBe('')
      expect(out.stderr).toMatch(/still asks for payment \(402\): .*\(insufficient-funds-for-rent\)/)
    } finally {
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
    }
  })

  it('refuses bad arguments without echoing the key file', async () => {
    const file = join(folder, 'bad.json')
    await writeFile(file, '"secret-looking-content"')
    const { out, io } = capture()
    expect(await pay(['http://x/r', '--keypair', file, '--rpc-url', 'http://127.0.0.1:1'], io)).toBe(2)
    expect(out.stderr.split('\n')[0]).toMatchInlineSnapshot(
      `"mppkit pay: --keypair must be a solana-keygen JSON file of 64 numbers"`,
    )
    expect(out.stderr).not.toContain('secret-looking-content')
    const second = capture()
    expect(await pay(['http://x/r', '--keypair', file], second.io)).toBe(2)
    expect(second.out.stderr).toMatch(/^mppkit pay: missing --rpc-url/)
    const typo = capture()
    expect(await pay(['http://x/r', '--keypair', file, '--rpcurl', 'http://127.0.0.1:1'], typo.io)).toBe(2)
    expect(typo.out.stderr.split('\n')[0]).toMatchInlineSnapshot(
      `"mppkit pay: unknown option --rpcurl (did you mean --rpc-url?)"`,
    )
  })

  it('refuses above the default cap of 0.01 SOL, asks above 0.001 SOL, pays with --max-amount --yes', async () => {
    const payer = await createFundedAccount(node)
    const file = join(folder, 'cap.json')
    await writeFile(file, JSON.stringify(payer.secretKey))
    const recipient = (await generateKeyPairSigner()).address
    const served = serve(
      { rpcUrl: node.info.rpcUrl, network: 'localnet', currency: 'sol', recipient },
      { method: 'solana', request: { amount: '20000000' } },
    )
    const http = createServer(toNodeListener(served.handler))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/r`
      const flags = ['--keypair', file, '--rpc-url', node.info.rpcUrl]
      const capped = capture()
      expect(await pay([url, ...flags], capped.io)).toBe(1)
      expect(capped.out.stderr).toMatchInlineSnapshot(`
        "mppkit pay: refusing to pay 20000000 base units of sol: above the cap of 10000000 base units; raise it with --currency sol --max-amount <base units>
        "
      `)
      const questions: string[] = []
      const declined = capture()
      const no = {
        ...declined.io,
        confirm: async (q: string) => {
          questions.push(q)
          return false
        },
      }
      expect(await pay([url, ...flags, '--currency', 'sol', '--max-amount', '20000000'], no)).toBe(1)
      expect(questions).toEqual([
        `mppkit pay: solana/charge: pay 0.02 SOL (20000000 base units) to ${recipient} (realm solana.test)`,
      ])
      expect(node.ledger.balance(recipient)).toBe(0n)
      expect(served.runs()).toBe(0)
      const paid = capture()
      const never = { ...paid.io, confirm: async () => expect.fail('asked despite --yes') }
      expect(
        await pay([url, ...flags, '--currency', 'SOL', '--max-amount', '20000000', '--yes'], never),
      ).toBe(0)
      expect(paid.out.stdout).toBe('paid content')
      expect(node.ledger.balance(recipient)).toBe(20_000_000n)
    } finally {
      http.closeAllConnections()
      await new Promise((resolve) => http.close(resolve))
    }
  })
})
