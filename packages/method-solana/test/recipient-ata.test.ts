import { Credential } from '@mppkit/core'
import { create as createServerCore } from '@mppkit/core/server'
import { address, generateKeyPairSigner } from '@solana/kit'
import { getCreateAssociatedTokenIdempotentInstruction } from '@solana-program/token'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount, findAssociatedTokenAddress } from '../../devnet/src/solana/index.js'
import { chargeServer } from '../src/server/index.js'
import { craft, transferChecked } from './craft.js'
import {
  realm,
  type SolanaNode,
  secret,
  serve,
  signerOf,
  startSolana,
  tokenBalance,
  tokenWorld,
} from './helpers.js'

// "If the top-level recipient's ATA does not exist, the server MUST NOT issue a challenge that requires
// creating it", and ATA creation is allowed only for split recipients (draft-solana-charge-00
// §"Split Recipient ATA Creation"): a payment to a token account that does not exist and that the
// transaction does not create is refused before anything is signed or sent.
let node: SolanaNode
let world: Awaited<ReturnType<typeof tokenWorld>>

beforeAll(async () => {
  node = await startSolana()
  world = await tokenWorld(node)
})
afterAll(async () => {
  await node?.stop()
})

const base = () => ({
  rpcUrl: node.info.rpcUrl,
  network: 'localnet' as const,
  currency: world.mint,
  decimals: 6,
  recipient: world.recipient.address,
})
const pay = (to: string, amount: bigint) =>
  transferChecked({ from: world.payer, to, mint: world.mint, amount })
const createAta = async (owner: string, payer = world.payer) =>
  getCreateAssociatedTokenIdempotentInstruction({
    payer,
    ata: await findAssociatedTokenAddress({ owner, mint: world.mint, tokenProgram: world.tokenProgram }),
    owner: address(owner),
    mint: address(world.mint),
  })

describe('recipient token accounts', () => {
  it('a split whose ATA does not exist, not created by the transaction → recipient-account-missing, nothing sent', async () => {
    const split = (await generateKeyPairSigner()).address
    const served = serve({ ...base(), splits: [{ recipient: split, amount: '100' }] })
    const transaction = await craft(node, world.payer, [
      await pay(world.recipient.address, 900n),
      await pay(split, 100n),
    ])
    const before = node.ledger.transactionCount
    const response = await served.submit(await served.challenge(), { type: 'transaction', transaction })
    expect(response.status).toBe(402)
    expect(await response.json()).toMatchObject({
      type: 'https://paymentauth.org/problems/verification-failed',
      reason: 'recipient-account-missing',
    })
    expect(node.ledger.transactionCount).toBe(before)
    expect(served.runs()).toBe(0)
  })

  it('fee-sponsored: the same transaction is refused before co-signing; the fee payer pays nothing', async () => {
    const feePayer = await signerOf(await createFundedAccount(node))
    const split = (await generateKeyPairSigner()).address
    const served = serve({ ...base(), feePayer, splits: [{ recipient: split, amount: '100' }] })
    const transaction = await craft(node, feePayer.address, [
      await pay(world.recipient.address, 900n),
      await pay(split, 100n),
    ])
    const lamports = node.ledger.balance(feePayer.address)
    const response = await served.submit(await served.challenge(), { type: 'transaction', transaction })
    expect(await response.json()).toMatchObject({ reason: 'recipient-account-missing' })
    expect(node.ledger.balance(feePayer.address)).toBe(lamports)
  })

  it('payer-paid: a split ATA the transaction creates is accepted and paid', async () => {
    const split = (await generateKeyPairSigner()).address
    const served = serve({ ...base(), splits: [{ recipient: split, amount: '100' }] })
    const transaction = await craft(node, world.payer, [
      await createAta(split),
      await pay(world.recipient.address, 900n),
      await pay(split, 100n),
    ])
    const response = await served.submit(await served.challenge(), { type: 'transaction', transaction })
    expect(response.status).toBe(200)
    expect(await tokenBalance(node, world.mint, split)).toBe(100n)
  })

  it('a split ATA created after its transfer → unexpected-instruction, nothing sent', async () => {
    const split = (await generateKeyPairSigner()).address
    const served = serve({ ...base(), splits: [{ recipient: split, amount: '100' }] })
    const transaction = await craft(node, world.payer, [
      await pay(world.recipient.address, 900n),
      await pay(split, 100n),
      await createAta(split),
    ])
    const before = node.ledger.transactionCount
    const response = await served.submit(await served.challenge(), { type: 'transaction', transaction })
    expect(await response.json()).toMatchObject({ reason: 'unexpected-instruction' })
    expect(node.ledger.transactionCount).toBe(before)
  })

  it('a top-level recipient without a token account gets no challenge (reported to the operator)', async () => {
    const stranger = (await generateKeyPairSigner()).address
    const errors: unknown[] = []
    const server = createServerCore({
      realm,
      secrets: [secret],
      methods: [chargeServer({ ...base(), recipient: stranger })],
      onError: (error) => errors.push(error),
    })
    const handler = server.protect(
      { offers: [{ method: 'solana', request: { amount: '1000' } }] },
      () => new Response('ok'),
    )
    const response = await handler(new Request('https://solana.test/r'))
    expect(response.status).toBe(503)
    expect(response.headers.get('www-authenticate') ?? '').not.toMatch(/Payment /)
    expect(String(errors[0])).toMatch(/recipient's token account .* does not exist/)
  })

  it("a top-level recipient's ATA closed after the challenge → recipient-account-missing on another instance", async () => {
    const local = await tokenWorld(node)
    const options = { ...base(), currency: local.mint, recipient: local.recipient.address }
    const issuing = serve(options)
    const challenge = await issuing.challenge()
    const { getCloseAccountInstruction } = await import('@solana-program/token')
    const { submit } = await import('../../devnet/src/solana/index.js')
    const ata = await findAssociatedTokenAddress({
      owner: local.recipient.address,
      mint: local.mint,
      tokenProgram: local.tokenProgram,
    })
    await submit(node, local.recipient, [
      getCloseAccountInstruction({
        account: ata,
        destination: local.recipient.address,
        owner: local.recipient,
      }),
    ])
    expect(node.ledger.account(ata)).toBeUndefined()
    // A second instance (same realm and secret, its own caches) verifies the credential.
    const verifying = serve(options)
    const transaction = await craft(node, local.payer, [
      await transferChecked({
        from: local.payer,
        to: local.recipient.address,
        mint: local.mint,
        amount: 1000n,
      }),
    ])
    const payload = { type: 'transaction', transaction }
    const before = node.ledger.transactionCount
    await expect(
      verifying.method.verify({ challenge, request: challenge.request, payload } as never),
    ).rejects.toMatchObject({ reason: 'recipient-account-missing' })
    // Over HTTP the refusal is a 503: no fresh challenge can be issued while the account is missing.
    const response = await verifying.handler(
      new Request('https://solana.test/r', {
        headers: { authorization: Credential.format({ challenge, payload }) },
      }),
    )
    expect(response.status).toBe(503)
    expect(node.ledger.transactionCount).toBe(before)
  })
})
