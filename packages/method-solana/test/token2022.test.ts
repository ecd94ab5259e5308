import { AccountRole, address, generateKeyPairSigner, getAddressEncoder, type Instruction } from '@solana/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount, mintTo, solanaPrograms, submit } from '../../devnet/src/solana/index.js'
import { craft, transferChecked } from './craft.js'
import { type SolanaNode, serve, signerOf, startSolana, tokenBalance } from './helpers.js'

// A real Token-2022 mint with the TransferFeeConfig extension (1% fee) on the devnet SVM: the recipient
// would receive less than the transfer amount, so the server refuses the mint before anything is sent.
let node: SolanaNode
beforeAll(async () => {
  node = await startSolana()
})
afterAll(async () => {
  await node?.stop()
})

const u16 = (v: number) => new Uint8Array(new Uint16Array([v]).buffer)
const u64 = (v: bigint) => new Uint8Array(new BigUint64Array([v]).buffer)
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]))

async function transferFeeMint(bps: number) {
  const mint = await generateKeyPairSigner()
  const payer = node.payer
  const space = 278n // 82 mint + 83 padding + 1 account type + 4 TLV header + 108 TransferFeeConfig
  const encode = (a: string) => new Uint8Array(getAddressEncoder().encode(address(a)))
  const token2022 = address(solanaPrograms.token2022)
  const create: Instruction = {
    programAddress: address(solanaPrograms.system),
    accounts: [
      { address: payer.address, role: AccountRole.WRITABLE_SIGNER, signer: payer } as never,
      { address: mint.address, role: AccountRole.WRITABLE_SIGNER, signer: mint } as never,
    ],
    data: concat(
      new Uint8Array([0, 0, 0, 0]),
      u64(node.ledger.svm.minimumBalanceForRentExemption(space)),
      u64(space),
      encode(token2022),
    ),
  }
  // TransferFeeExtension (26) / InitializeTransferFeeConfig (0): two optional authorities, bps, maximum fee.
  const initFee: Instruction = {
    programAddress: token2022,
    accounts: [{ address: mint.address, role: AccountRole.WRITABLE }],
    data: concat(
      new Uint8Array([26, 0, 1]),
      encode(payer.address),
      new Uint8Array([1]),
      encode(payer.address),
      u16(bps),
      u64(1_000_000n),
    ),
  }
  const initMint: Instruction = {
    programAddress: token2022,
    accounts: [{ address: mint.address, role: AccountRole.WRITABLE }],
    data: concat(new Uint8Array([20, 6]), encode(payer.address), new Uint8Array([0])),
  }
  await submit(node, payer, [create, initFee, initMint])
  return String(mint.address)
}

describe('Token-2022 mints with a transfer fee', () => {
  it('a non-zero transfer fee → unsupported-mint, nothing sent', async () => {
    const mint = await transferFeeMint(100)
    const payer = await signerOf(await createFundedAccount(node))
    const recipient = await generateKeyPairSigner()
    await mintTo(node, { mint, owner: payer.address, amount: 1_000_000n })
    await mintTo(node, { mint, owner: recipient.address, amount: 0n })
    const served = serve({
      rpcUrl: node.info.rpcUrl,
      network: 'localnet',
      currency: mint,
      decimals: 6,
      recipient: recipient.address,
    })
    // The 402 itself cannot be issued with a token program read from this mint.
    const response = await served.handler(new Request('https://solana.test/r'))
    expect(response.status).toBe(402)
    const served2 = serve({
      rpcUrl: node.info.rpcUrl,
      network: 'localnet',
      currency: mint,
      decimals: 6,
      tokenProgram: solanaPrograms.token2022,
      recipient: recipient.address,
    })
    const transaction = await craft(node, payer, [
      await transferChecked({
        from: payer,
        to: recipient.address,
        mint,
        amount: 1000n,
        program: solanaPrograms.token2022,
      }),
    ])
    const refused = await served2.submit(await served2.challenge(), { type: 'transaction', transaction })
    expect(refused.status).toBe(402)
    expect(((await refused.json()) as { reason: string }).reason).toBe('unsupported-mint')
    expect(await tokenBalance(node, mint, recipient.address)).toBe(0n)
  })
})
