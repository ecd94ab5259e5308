import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Challenge, Credential } from '@mppkit/core'
import { create as createClient, PaymentFailedError } from '@mppkit/core/client'
import { toNodeListener } from '@mppkit/core/server'
import { createSolanaRpc, generateKeyPairSigner, type TransactionPartialSigner } from '@solana/kit'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount, createMint, mintTo } from '../../devnet/src/solana/index.js'
import { pay } from '../src/cli.js'
import { chargeClient } from '../src/client/index.js'
import { type SolanaNode, serve, signerOf, startSolana, tokenBalance, tokenWorld } from './helpers.js'

// A hostile server names the paying client's OWN key as `feePayerKey` in a "fee-sponsored" challenge whose
// 8 splits are marked `ataCreationRequired` to fresh owners. Signing it would make the client the fee payer
// and the payer of 8 token accounts (about 16 million lamports of rent) with no cap counting them: the
// client must refuse it before signing anything (draft-solana-charge-00 §"Server-Paid Fees": "The
// client's account is the transfer authority but NOT the fee payer").
let node: SolanaNode
let world: Awaited<ReturnType<typeof tokenWorld>>
let folder: string
beforeAll(async () => {
  node = await startSolana()
  world = await tokenWorld(node)
  folder = await mkdtemp(join(tmpdir(), 'mppkit-solana-own-fee-payer-'))
})
afterAll(async () => {
  await node?.stop()
  await rm(folder, { recursive: true, force: true })
})

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

const listen = async (server: Server) => {
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/r`
}

/**
 * A hostile server: its 402 carries `request` as is, and it broadcasts whatever transaction a credential
 * brings (a fully signed one lands) before answering 200.
 */
async function hostile(request: Record<string, unknown>) {
  let credentials = 0
  const rpc = createSolanaRpc(node.info.rpcUrl)
  const server = createServer(async (req, res) => {
    const authorization = req.headers.authorization
    if (!authorization) {
      const challenge = Challenge.format({
        id: 'hostile-challenge-id',
        realm: 'hostile.test',
        method: 'solana',
        intent: 'charge',
        request,
        expires: new Date(Date.now() + 300_000).toISOString(),
      })
      res.writeHead(402, { 'www-authenticate': challenge, 'content-type': 'application/json' })
      return res.end('{}')
    }
    credentials++
    const { payload } = Credential.parse(authorization) as { payload: { transaction?: string } }
    if (payload.transaction)
      await rpc
        .sendTransaction(payload.transaction as never, { encoding: 'base64' })
        .send()
        .catch(() => undefined)
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end('paid content')
  })
  return { url: await listen(server), credentials: () => credentials }
}

/** What `mppkit pay` prints. */
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

/** 8 splits of 1 base unit to fresh owners, each asking for its token account to be created. */
const freshSplits = () =>
  Promise.all(
    Array.from({ length: 8 }, async () => ({
      recipient: String((await generateKeyPairSigner()).address),
      amount: '1',
      ataCreationRequired: true,
    })),
  )

/** The token challenge of the audit: 9 base units (1 to the recipient, 1 to each split). */
const tokenRequest = async (feePayerKey: string | undefined) => ({
  amount: '9',
  currency: world.mint,
  recipient: String(world.recipient.address),
  methodDetails: {
    network: 'localnet',
    decimals: 6,
    tokenProgram: world.tokenProgram,
    ...(feePayerKey === undefined ? {} : { feePayer: true, feePayerKey }),
    splits: await freshSplits(),
  },
})

/** A signer over `world.payer` that counts the times it is asked to sign. */
const counting = (inner: TransactionPartialSigner) => {
  let signed = 0
  const signer: TransactionPartialSigner = {
    address: inner.address,
    signTransactions: (transactions, config) => {
      signed++
      return inner.signTransactions(transactions, config)
    },
  }
  return { signer, signed: () => signed }
}

describe('a "fee-sponsored" challenge naming the client itself as fee payer', () => {
  it('is refused before anything is signed, even with maxAccountRentLamports: 0n; nothing is spent', async () => {
    const { signer, signed } = counting(world.payer)
    const client = createClient({
      methods: [
        chargeClient({ signer, rpcUrl: node.info.rpcUrl, network: 'localnet', maxAccountRentLamports: 0n }),
      ],
      policy: { maxAmount: { [world.mint]: 9n } },
    })
    // Control: the same splits, the client paying the fees, are refused by the rent cap.
    const unsponsored = await hostile(await tokenRequest(undefined))
    await expect(client.fetch(unsponsored.url)).rejects.toThrow(/maxAccountRentLamports/)

    const self = await hostile(await tokenRequest(String(world.payer.address)))
    const lamports = node.ledger.balance(world.payer.address)
    const tokens = await tokenBalance(node, world.mint, world.payer.address)
    const error = await client.fetch(self.url).then(
      () => undefined,
      (caught: unknown) => caught,
    )
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect((error as Error).message).toMatch(/names this client as its own fee payer/)
    expect((error as PaymentFailedError).mayHaveSettled).toBe(false)
    expect(signed()).toBe(0)
    expect(self.credentials()).toBe(0)
    expect(node.ledger.balance(world.payer.address)).toBe(lamports)
    expect(await tokenBalance(node, world.mint, world.payer.address)).toBe(tokens)
  })

  it('is refused for SOL too (no rent: the client would pay the fees of a "sponsored" transaction)', async () => {
    const { signer, signed } = counting(world.payer)
    const client = createClient({
      methods: [chargeClient({ signer, rpcUrl: node.info.rpcUrl, network: 'localnet' })],
      policy: { maxAmount: { sol: 2_000_000n } },
    })
    const self = await hostile({
      amount: '2000000',
      currency: 'sol',
      recipient: String((await generateKeyPairSigner()).address),
      methodDetails: { network: 'localnet', feePayer: true, feePayerKey: String(world.payer.address) },
    })
    const lamports = node.ledger.balance(world.payer.address)
    await expect(client.fetch(self.url)).rejects.toThrow(/names this client as its own fee payer/)
    expect(signed()).toBe(0)
    expect(self.credentials()).toBe(0)
    expect(node.ledger.balance(world.payer.address)).toBe(lamports)
  })

  it('mppkit pay (no feePayerKeys) refuses it too: exit 1, nothing signed or spent', async () => {
    const payer = await createFundedAccount(node)
    await mintTo(node, { mint: world.mint, owner: payer.address, amount: 1_000n })
    const file = join(folder, 'payer.json')
    await writeFile(file, JSON.stringify(payer.secretKey))
    const self = await hostile(await tokenRequest(payer.address))
    const lamports = node.ledger.balance(payer.address)
    const { out, io } = capture()
    const flags = ['--keypair', file, '--rpc-url', node.info.rpcUrl, '--yes']
    const code = await pay([self.url, ...flags, '--currency', world.mint, '--max-amount', '9'], io)
    expect(code).toBe(1)
    expect(out.stdout).toBe('')
    expect(out.stderr).toMatch(/names this client as its own fee payer/)
    expect(self.credentials()).toBe(0)
    expect(node.ledger.balance(payer.address)).toBe(lamports)
    expect(await tokenBalance(node, world.mint, payer.address)).toBe(1_000n)
  })

  it('a genuinely sponsored challenge (another key) is still paid by mppkit pay, the server paying fees and rent', async () => {
    const payer = await createFundedAccount(node)
    const feePayer = await signerOf(await createFundedAccount(node))
    const { mint } = await createMint(node, { decimals: 6, program: 'token' })
    await mintTo(node, { mint, owner: payer.address, amount: 1_000n })
    await mintTo(node, { mint, owner: world.recipient.address, amount: 0n })
    const split = String((await generateKeyPairSigner()).address)
    const file = join(folder, 'sponsored.json')
    await writeFile(file, JSON.stringify(payer.secretKey))
    const served = serve(
      {
        rpcUrl: node.info.rpcUrl,
        network: 'localnet',
        currency: String(mint),
        decimals: 6,
        recipient: world.recipient.address,
        feePayer,
        splits: [{ recipient: split, amount: '1', ataCreationRequired: true }],
      },
      { method: 'solana', request: { amount: '9' } },
    )
    const url = await listen(createServer(toNodeListener(served.handler)))
    const lamports = node.ledger.balance(payer.address)
    const { out, io } = capture()
    const flags = ['--keypair', file, '--rpc-url', node.info.rpcUrl, '--yes']
    const code = await pay([url, ...flags, '--currency', String(mint), '--max-amount', '9'], io)
    expect(code, out.stderr).toBe(0)
    expect(out.stdout).toBe('paid content')
    expect(served.runs()).toBe(1)
    expect(await tokenBalance(node, String(mint), split)).toBe(1n)
    expect(await tokenBalance(node, String(mint), world.recipient.address)).toBe(8n)
    expect(node.ledger.balance(payer.address)).toBe(lamports)
  })
})
