import { create as createClient } from '@mppkit/core/client'
import { create as createServerCore } from '@mppkit/core/server'
import { AccountRole, address, generateKeyPairSigner, getAddressEncoder, type Instruction } from '@solana/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount, mintTo, solanaPrograms, submit } from '../../devnet/src/solana/index.js'
import { chargeClient } from '../src/client/index.js'
import { chargeServer } from '../src/server/index.js'
import { craft, transferChecked } from './craft.js'
import { realm, type SolanaNode, secret, serve, signerOf, startSolana, tokenBalance } from './helpers.js'

// A real Token-2022 mint with the TransferFeeConfig extension (1% fee) on the devnet SVM: the recipient
// would receive less than the transfer amount, so the server refuses the mint before anything is sent:
// it issues no challenge for it, and refuses a credential if the fee appeared after the challenge.
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

/** TransferFeeExtension (26) / SetTransferFee (5), signed by the fee authority (the node payer). */
async function setTransferFee(mint: string, bps: number) {
  const payer = node.payer
  await submit(node, payer, [
    {
      programAddress: address(solanaPrograms.token2022),
      accounts: [
        { address: address(mint), role: AccountRole.WRITABLE },
        { address: payer.address, role: AccountRole.READONLY_SIGNER, signer: payer } as never,
      ],
      data: concat(new Uint8Array([26, 5]), u16(bps), u64(1_000_000n)),
    },
  ])
}

describe('Token-2022 mints with a transfer fee', () => {
  it('a non-zero transfer fee → no challenge (reported to the operator); a push client pays nothing', async () => {
    // A challenge for a mint the server refuses at verification would be paid by a push client (it sends
    // before presenting the signature), then refused: the server issues none.
    const mint = await transferFeeMint(100)
    const payer = await signerOf(await createFundedAccount(node))
    const recipient = await generateKeyPairSigner()
    await mintTo(node, { mint, owner: payer.address, amount: 1_000_000n })
    await mintTo(node, { mint, owner: recipient.address, amount: 0n })
    for (const tokenProgram of [undefined, solanaPrograms.token2022]) {
      const errors: unknown[] = []
      const server = createServerCore({
        realm,
        secrets: [secret],
        methods: [
          chargeServer({
            rpcUrl: node.info.rpcUrl,
            network: 'localnet',
            currency: mint,
            decimals: 6,
            ...(tokenProgram ? { tokenProgram } : {}),
            recipient: recipient.address,
          }),
        ],
        onError: (error) => errors.push(error),
      })
      const handler = server.protect(
        { offers: [{ method: 'solana', request: { amount: '1000' } }] },
        () => new Response('paid content'),
      )
      const client = createClient({
        methods: [
          chargeClient({ signer: payer, rpcUrl: node.info.rpcUrl, network: 'localnet', mode: 'push' }),
        ],
        fetch: ((input: RequestInfo, init?: RequestInit) =>
          handler(new Request(input, init))) as typeof fetch,
      })
      const response = await client.fetch('https://solana.test/r')
      expect(response.status).toBe(503)
      expect(response.headers.get('www-authenticate') ?? '').not.toMatch(/Payment /)
      expect(String(errors[0])).toMatch(/transfer fee/)
      expect(await tokenBalance(node, mint, recipient.address)).toBe(0n)
      expect(await tokenBalance(node, mint, payer.address)).toBe(1_000_000n)
    }
  })

  it('a fee set after the challenge was issued → unsupported-mint at verification (503 over HTTP), nothing sent', async () => {
    const mint = await transferFeeMint(0)
    const payer = await signerOf(await createFundedAccount(node))
    const recipient = await generateKeyPairSigner()
    await mintTo(node, { mint, owner: payer.address, amount: 1_000_000n })
    await mintTo(node, { mint, owner: recipient.address, amount: 0n })
    const options = {
      rpcUrl: node.info.rpcUrl,
      network: 'localnet' as const,
      currency: mint,
      decimals: 6,
      tokenProgram: solanaPrograms.token2022,
      recipient: recipient.address,
    }
    const challenge = await serve(options).challenge()
    await setTransferFee(mint, 100)
    // Another instance (no cached mint) verifies the credential.
    const served = serve(options)
    const transaction = await craft(node, payer, [
      await transferChecked({
        from: payer,
        to: recipient.address,
        mint,
        amount: 1000n,
        program: solanaPrograms.token2022,
      }),
    ])
    const payload = { type: 'transaction', transaction }
    await expect(
      served.method.verify({ challenge, request: challenge.request, payload } as never),
    ).rejects.toMatchObject({ reason: 'unsupported-mint' })
    // Over HTTP the refusal is a 503: no fresh challenge can be issued for this mint any more.
    const refused = await served.submit(challenge, payload)
    expect(refused.status).toBe(503)
    expect(await tokenBalance(node, mint, recipient.address)).toBe(0n)
    expect(await tokenBalance(node, mint, payer.address)).toBe(1_000_000n)
  })
})
