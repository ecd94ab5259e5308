import { Receipt } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { generateKeyPairSigner } from '@solana/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount } from '../../devnet/src/solana/index.js'
import { type ChargeClientOptions, chargeClient } from '../src/client/index.js'
import type { ChargeOptions } from '../src/server/index.js'
import { type SolanaNode, serve, signerOf, startSolana, tokenBalance, tokenWorld } from './helpers.js'

// Happy paths on a devnet whose transactions go processed → confirmed (1 slot) → finalized (4 slots)
// under a 20 ms slot clock, so the server's commitment wait is exercised, not assumed.
let node: SolanaNode

beforeAll(async () => {
  node = await startSolana({ commitment: { confirmed: 1, finalized: 4 }, slotTimeMs: 20 })
})
afterAll(async () => {
  await node?.stop()
})

const pay = async (
  server: Partial<ChargeOptions> & Pick<ChargeOptions, 'currency' | 'recipient'>,
  client: Partial<ChargeClientOptions> & Pick<ChargeClientOptions, 'signer'>,
  amount = '1000',
) => {
  const served = serve(
    { rpcUrl: node.info.rpcUrl, network: 'localnet', ...server },
    { method: 'solana', request: { amount } },
  )
  const paying = createClient({
    methods: [chargeClient({ rpcUrl: node.info.rpcUrl, network: 'localnet', ...client })],
    fetch: served.fetch,
  })
  const response = await paying.fetch('https://solana.test/r')
  if (response.status !== 200) expect(await response.text()).toBe('a 200')
  const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
  expect(receipt).toMatchObject({ method: 'solana', status: 'success' })
  // "The receipt reference is the transaction signature."
  const landed = node.ledger.history.get(receipt.reference)
  expect(landed?.err).toBeNull()
  expect(served.runs()).toBe(1)
  return { receipt, landed: landed!, served }
}

const lamports = (owner: string) => node.ledger.balance(owner)

describe('solana/charge on the devnet SVM', () => {
  for (const mode of ['pull', 'push'] as const) {
    it(`${mode}, SPL Token: exact TransferChecked to the recipient ATA`, async () => {
      const world = await tokenWorld(node)
      await pay(
        { currency: world.mint, decimals: 6, recipient: world.recipient.address },
        { signer: world.payer, mode },
      )
      expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(1000n)
    })

    it(`${mode}, native SOL: a System transfer of the lamports`, async () => {
      const payer = await signerOf(await createFundedAccount(node))
      const recipient = (await generateKeyPairSigner()).address
      await pay({ currency: 'sol', recipient }, { signer: payer, mode }, '2000000')
      expect(lamports(recipient)).toBe(2_000_000n)
    })
  }

  it('pull, Token-2022 mint, with the token program read from the mint', async () => {
    const world = await tokenWorld(node, { program: 'token-2022', decimals: 2 })
    const { served } = await pay(
      { currency: world.mint, decimals: 2, recipient: world.recipient.address },
      { signer: world.payer },
    )
    const challenge = await served.challenge()
    expect((challenge.request.methodDetails as { tokenProgram: string }).tokenProgram).toBe(
      world.tokenProgram,
    )
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(1000n)
  })

  it('fee-sponsored pull with splits: the server co-signs, the payer spends no SOL, splits are paid', async () => {
    const world = await tokenWorld(node)
    const feePayer = await signerOf(await createFundedAccount(node))
    const platform = await generateKeyPairSigner()
    const fresh = await generateKeyPairSigner() // no ATA yet: ataCreationRequired
    const payerLamports = lamports(world.payer.address)
    const sponsorLamports = lamports(feePayer.address)
    const { landed } = await pay(
      {
        currency: world.mint,
        decimals: 6,
        recipient: world.recipient.address,
        feePayer,
        splits: [
          { recipient: platform.address, amount: '100', ataCreationRequired: true, memo: 'platform fee' },
          { recipient: fresh.address, amount: '50', ataCreationRequired: true },
        ],
      },
      { signer: world.payer, feePayerKeys: [feePayer.address] },
    )
    expect(landed.accountKeys[0]).toBe(feePayer.address)
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(850n)
    expect(await tokenBalance(node, world.mint, platform.address)).toBe(100n)
    expect(await tokenBalance(node, world.mint, fresh.address)).toBe(50n)
    expect(lamports(world.payer.address)).toBe(payerLamports)
    expect(lamports(feePayer.address)).toBeLessThan(sponsorLamports)
  })

  it('payer-paid fees with split token accounts to create: the rent is bounded by maxAccountRentLamports', async () => {
    const world = await tokenWorld(node)
    const split = { amount: '50', ataCreationRequired: true }
    const server = {
      currency: world.mint,
      decimals: 6,
      recipient: world.recipient.address,
      splits: [
        { ...split, recipient: (await generateKeyPairSigner()).address },
        { ...split, recipient: (await generateKeyPairSigner()).address },
      ],
    }
    // A limit below two accounts' rent: refused before anything is signed; nothing moves.
    const served = serve(
      { rpcUrl: node.info.rpcUrl, network: 'localnet', ...server },
      { method: 'solana', request: { amount: '1000' } },
    )
    const strict = createClient({
      methods: [
        chargeClient({
          rpcUrl: node.info.rpcUrl,
          network: 'localnet',
          signer: world.payer,
          maxAccountRentLamports: 3_000_000n,
        }),
      ],
      fetch: served.fetch,
    })
    const before = lamports(world.payer.address)
    await expect(strict.fetch('https://solana.test/r')).rejects.toThrow(
      /fund 2 token account\(s\).*maxAccountRentLamports/,
    )
    expect(lamports(world.payer.address)).toBe(before)
    expect(served.runs()).toBe(0)
    // The default (0.01 SOL) covers them: paid, the payer funding both accounts.
    await pay(server, { signer: world.payer })
    for (const { recipient } of server.splits)
      expect(await tokenBalance(node, world.mint, recipient)).toBe(50n)
    expect(before - lamports(world.payer.address)).toBeGreaterThan(2n * 2_000_000n)
  })

  it('SOL splits, payer-paid fees: each leg is its own transfer', async () => {
    const payer = await signerOf(await createFundedAccount(node))
    const recipient = (await generateKeyPairSigner()).address
    const split = (await generateKeyPairSigner()).address
    await pay(
      { currency: 'sol', recipient, splits: [{ recipient: split, amount: '1000000' }] },
      { signer: payer },
      '3000000',
    )
    expect(lamports(recipient)).toBe(2_000_000n)
    expect(lamports(split)).toBe(1_000_000n)
  })

  it('commitment finalized: the receipt comes only once the transaction is finalized', async () => {
    const world = await tokenWorld(node)
    const { landed } = await pay(
      { currency: world.mint, decimals: 6, recipient: world.recipient.address, commitment: 'finalized' },
      { signer: world.payer },
    )
    expect(node.ledger.commitmentOf(landed)).toBe('finalized')
  })

  it('externalId rides in a memo', async () => {
    const world = await tokenWorld(node)
    const served = serve(
      {
        rpcUrl: node.info.rpcUrl,
        network: 'localnet',
        currency: world.mint,
        decimals: 6,
        recipient: world.recipient.address,
      },
      { method: 'solana', request: { amount: '10', externalId: 'order-42' } },
    )
    const paying = createClient({
      methods: [chargeClient({ signer: world.payer, rpcUrl: node.info.rpcUrl })],
      fetch: served.fetch,
    })
    const response = await paying.fetch('https://solana.test/r')
    if (response.status !== 200) expect(await response.text()).toBe('a 200')
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    expect(receipt.externalId).toBe('order-42')
    expect(node.ledger.history.get(receipt.reference)?.logMessages.join('\n')).toMatch(/order-42/)
  })

  it('a client without a configured network pays only challenges for the cluster its RPC node serves', async () => {
    // "Clients MUST reject challenges whose network does not match their configured cluster": a server
    // naming devnet must not be paid from a client whose node is another cluster (here a local one),
    // where a devnet allowance of the spend policy would otherwise let real funds through.
    const payer = await signerOf(await createFundedAccount(node))
    const recipient = (await generateKeyPairSigner()).address
    const served = serve(
      { rpcUrl: node.info.rpcUrl, network: 'devnet', currency: 'sol', recipient },
      { method: 'solana', request: { amount: '2000000' } },
    )
    const paying = createClient({
      methods: [chargeClient({ rpcUrl: node.info.rpcUrl, signer: payer })],
      policy: { maxAmount: { 'solana:devnet:sol': 10n ** 12n } },
      fetch: served.fetch,
    })
    const before = lamports(payer.address)
    await expect(paying.fetch('https://solana.test/r')).rejects.toThrow(
      /the challenge is for devnet, this client pays on localnet/,
    )
    expect(lamports(payer.address)).toBe(before)
    expect(lamports(recipient)).toBe(0n)
    expect(served.runs()).toBe(0)
    // A challenge for its own cluster (unknown genesis: a local node) is paid.
    const local = serve(
      { rpcUrl: node.info.rpcUrl, network: 'localnet', currency: 'sol', recipient },
      { method: 'solana', request: { amount: '2000000' } },
    )
    const client = createClient({
      methods: [chargeClient({ rpcUrl: node.info.rpcUrl, signer: payer })],
      fetch: local.fetch,
    })
    expect((await client.fetch('https://solana.test/r')).status).toBe(200)
    expect(lamports(recipient)).toBe(2_000_000n)
  })
})
