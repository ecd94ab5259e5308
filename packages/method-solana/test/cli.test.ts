import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { toNodeListener } from '@mppkit/core/server'
import { generateKeyPairSigner } from '@solana/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount } from '../../devnet/src/solana/index.js'
import { pay } from '../src/cli.js'
import { type SolanaNode, serve, startSolana } from './helpers.js'

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
      expect(JSON.parse(out.stdout).reason).toBe('insufficient-funds-for-rent')
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
    expect(out.stderr).toMatchInlineSnapshot(`
      "--keypair must be a solana-keygen JSON file of 64 numbers
      "
    `)
    const second = capture()
    expect(await pay(['http://x/r', '--keypair', file], second.io)).toBe(2)
    expect(second.out.stderr).toMatch(/^missing --rpc-url/)
  })
})
