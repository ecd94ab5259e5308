import {
  type Address,
  address,
  appendTransactionMessageInstructions,
  createKeyPairSignerFromBytes,
  createSolanaRpc,
  createSolanaRpcSubscriptions,
  createTransactionMessage,
  getBase64EncodedWireTransaction,
  getSignatureFromTransaction,
  type Instruction,
  isSolanaError,
  type KeyPairSigner,
  lamports,
  pipe,
  type Rpc,
  SOLANA_ERROR__INSTRUCTION_ERROR__CUSTOM,
  SOLANA_ERROR__JSON_RPC__SERVER_ERROR_SEND_TRANSACTION_PREFLIGHT_FAILURE,
  SOLANA_ERROR__JSON_RPC__SERVER_ERROR_TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
  SOLANA_ERROR__TRANSACTION_ERROR__ALREADY_PROCESSED,
  SOLANA_ERROR__TRANSACTION_ERROR__BLOCKHASH_NOT_FOUND,
  type SolanaRpcApi,
  sendAndConfirmTransactionFactory,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
} from '@solana/kit'
import { getAddMemoInstruction } from '@solana-program/memo'
import {
  findAssociatedTokenPda,
  getCreateAssociatedTokenIdempotentInstruction,
  getTransferCheckedInstruction,
} from '@solana-program/token'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  airdrop,
  createFundedAccount,
  createMint,
  mintTo,
  type SolanaNode,
  startSolana,
} from '../src/solana/index.js'

// Everything below talks to the node through unmodified @solana/kit clients and the
// @solana-program/token and @solana-program/memo instruction builders.

let node: SolanaNode
let rpc: Rpc<SolanaRpcApi>
let sendAndConfirm: ReturnType<typeof sendAndConfirmTransactionFactory>
let rpcSubscriptions: ReturnType<typeof createSolanaRpcSubscriptions>

beforeAll(async () => {
  node = await startSolana()
  rpc = createSolanaRpc(node.info.rpcUrl)
  rpcSubscriptions = createSolanaRpcSubscriptions(node.info.wsUrl)
  sendAndConfirm = sendAndConfirmTransactionFactory({ rpc, rpcSubscriptions })
})

afterAll(async () => {
  await node?.stop()
})

async function buildSigned(feePayer: KeyPairSigner, instructions: Instruction[]) {
  const { value: latest } = await rpc.getLatestBlockhash().send()
  const message = pipe(
    createTransactionMessage({ version: 0 }),
    (draft) => setTransactionMessageFeePayerSigner(feePayer, draft),
    (draft) => setTransactionMessageLifetimeUsingBlockhash(latest, draft),
    (draft) => appendTransactionMessageInstructions(instructions, draft),
  )
  return signTransactionMessageWithSigners(message)
}

const signerOf = async (keypair: { secretKey: number[] }) =>
  createKeyPairSignerFromBytes(new Uint8Array(keypair.secretKey))

describe('startSolana', () => {
  it('answers the basic node methods with JSON-serializable info', async () => {
    expect(JSON.parse(JSON.stringify(node.info))).toEqual(node.info)
    expect(await rpc.getHealth().send()).toBe('ok')
    expect((await rpc.getVersion().send())['solana-core']).toMatch(/^\d+\.\d+\.\d+$/)
    const slot = await rpc.getSlot().send()
    expect(await rpc.getBlockHeight().send()).toBe(slot)
    const { value: latest } = await rpc.getLatestBlockhash().send()
    expect(latest.lastValidBlockHeight).toBeGreaterThan(slot)
    expect((await rpc.isBlockhashValid(latest.blockhash).send()).value).toBe(true)
    const rent = await rpc.getMinimumBalanceForRentExemption(165n).send()
    expect(rent).toBe(2_039_280n)
  })

  it('airdrops through requestAirdrop and reports the balance', async () => {
    const { address: recipient } = await createFundedAccount(node, { lamports: 1_000_000n })
    const before = (await rpc.getBalance(address(recipient)).send()).value
    const signature = await rpc.requestAirdrop(address(recipient), lamports(2_500_000_000n)).send()
    const { value: statuses } = await rpc.getSignatureStatuses([signature]).send()
    expect(statuses[0]).toMatchObject({ confirmationStatus: 'finalized', err: null, status: { Ok: null } })
    expect((await rpc.getBalance(address(recipient)).send()).value).toBe(before + 2_500_000_000n)
    const transaction = await rpc
      .getTransaction(signature, { encoding: 'jsonParsed', maxSupportedTransactionVersion: 0 })
      .send()
    expect(transaction?.transaction.message.instructions[0]).toMatchObject({
      program: 'system',
      parsed: { type: 'transfer', info: { destination: recipient, lamports: 2_500_000_000n } },
    })
  })

  it('advances blockhashes per transaction and expires them after 150 blocks', async () => {
    const { value: first } = await rpc.getLatestBlockhash().send()
    await airdrop(node, { address: node.info.payer.address, lamports: 1n })
    const { value: second } = await rpc.getLatestBlockhash().send()
    expect(second.blockhash).not.toBe(first.blockhash)
    expect((await rpc.isBlockhashValid(first.blockhash).send()).value).toBe(true)
    node.advanceSlots(151)
    expect((await rpc.isBlockhashValid(first.blockhash).send()).value).toBe(false)
  })
})

for (const program of ['token', 'token-2022'] as const) {
  describe(`SPL transferChecked with a memo (${program})`, () => {
    let mint: Address
    let tokenProgram: Address
    let alice: KeyPairSigner
    let bob: KeyPairSigner
    let aliceAta: Address
    let bobAta: Address

    beforeAll(async () => {
      ;({ mint, tokenProgram } = await createMint(node, { decimals: 6, program }))
      alice = await signerOf(await createFundedAccount(node))
      bob = await signerOf(await createFundedAccount(node))
      ;({ tokenAccount: aliceAta } = await mintTo(node, { mint, owner: alice.address, amount: 10_000_000n }))
      ;[bobAta] = await findAssociatedTokenPda({ owner: bob.address, mint, tokenProgram })
    })

    it('shows mint and token account as jsonParsed', async () => {
      const { value: mintInfo } = await rpc.getAccountInfo(mint, { encoding: 'jsonParsed' }).send()
      expect(mintInfo?.owner).toBe(tokenProgram)
      expect(mintInfo?.data).toMatchObject({
        program: program === 'token' ? 'spl-token' : 'spl-token-2022',
        parsed: {
          type: 'mint',
          info: { decimals: 6, supply: '10000000', mintAuthority: node.info.payer.address },
        },
      })
      const { value: account } = await rpc.getAccountInfo(aliceAta, { encoding: 'jsonParsed' }).send()
      expect(account?.data).toMatchObject({
        parsed: {
          type: 'account',
          info: {
            mint,
            owner: alice.address,
            state: 'initialized',
            tokenAmount: { amount: '10000000', uiAmountString: '10' },
          },
        },
      })
      const { value: raw } = await rpc.getAccountInfo(aliceAta, { encoding: 'base64' }).send()
      expect(raw?.data[1]).toBe('base64')
      expect((await rpc.getTokenAccountBalance(aliceAta).send()).value).toEqual({
        amount: '10000000',
        decimals: 6,
        uiAmount: 10,
        uiAmountString: '10',
      })
    })

    it('sends and confirms through sendAndConfirmTransactionFactory; getTransaction shows it', async () => {
      const memo = `order-${program}-42`
      const transaction = await buildSigned(alice, [
        getCreateAssociatedTokenIdempotentInstruction({
          payer: alice,
          ata: bobAta,
          owner: bob.address,
          mint,
          tokenProgram,
        }),
        getTransferCheckedInstruction(
          { source: aliceAta, mint, destination: bobAta, authority: alice, amount: 1_500_000n, decimals: 6 },
          { programAddress: tokenProgram },
        ),
        // Memo v2 (MemoSq4…), the address payment memos use today.
        getAddMemoInstruction({ memo }, { programAddress: address(node.info.programs.memo) }),
      ])
      await sendAndConfirm(transaction as Parameters<typeof sendAndConfirm>[0], { commitment: 'confirmed' })
      const signature = getSignatureFromTransaction(transaction)

      const { value: statuses } = await rpc.getSignatureStatuses([signature]).send()
      expect(statuses[0]?.confirmationStatus).toBe('finalized')
      expect(statuses[0]?.err).toBeNull()

      const result = await rpc
        .getTransaction(signature, { encoding: 'jsonParsed', maxSupportedTransactionVersion: 0 })
        .send()
      if (!result) throw new Error('transaction not found')
      const { meta } = result
      expect(meta?.err).toBeNull()
      expect(meta?.fee).toBe(5000n)
      expect(result.transaction.signatures[0]).toBe(signature)
      const instructions = result.transaction.message.instructions
      expect(instructions[1]).toEqual({
        program: program === 'token' ? 'spl-token' : 'spl-token-2022',
        programId: tokenProgram,
        parsed: {
          type: 'transferChecked',
          info: {
            source: aliceAta,
            mint,
            destination: bobAta,
            authority: alice.address,
            // kit upcasts numbers inside parsed instructions too.
            tokenAmount: { amount: '1500000', decimals: 6n, uiAmount: 1.5, uiAmountString: '1.5' },
          },
        },
        stackHeight: null,
      })
      expect(instructions[2]).toMatchObject({ program: 'spl-memo', parsed: memo })
      expect(meta?.logMessages?.some((line) => line.includes(memo))).toBe(true)
      // Fee payer alice: 5000 lamports fee plus the rent of bob's new token account.
      const rent = await rpc.getMinimumBalanceForRentExemption(BigInt(program === 'token' ? 165 : 170)).send()
      expect((meta?.preBalances[0] ?? 0n) - (meta?.postBalances[0] ?? 0n)).toBe(5000n + rent)
      type Row = { accountIndex: number; uiTokenAmount: { amount: string }; owner?: string; mint: string }
      const byAccount = (list: readonly Row[] | undefined) =>
        Object.fromEntries(
          (list ?? []).map((row) => [
            result.transaction.message.accountKeys[row.accountIndex]?.pubkey,
            { amount: row.uiTokenAmount.amount, owner: row.owner, mint: row.mint },
          ]),
        )
      expect(byAccount(meta?.preTokenBalances)).toEqual({
        [aliceAta]: { amount: '10000000', owner: alice.address, mint },
      })
      expect(byAccount(meta?.postTokenBalances)).toEqual({
        [aliceAta]: { amount: '8500000', owner: alice.address, mint },
        [bobAta]: { amount: '1500000', owner: bob.address, mint },
      })
      expect(meta?.postTokenBalances?.[0]?.programId).toBe(tokenProgram)
      // The ATA program's account creation runs as inner instructions (CPI into System and Token).
      expect(meta?.innerInstructions?.[0]?.index).toBe(0)

      const json = await rpc
        .getTransaction(signature, { encoding: 'json', maxSupportedTransactionVersion: 0 })
        .send()
      expect(json?.transaction.message.accountKeys[0]).toBe(alice.address)
      expect(json?.version).toBe(0)
    })

    it('lands a failed transfer (insufficient funds) with err when skipPreflight, and refuses it at preflight', async () => {
      const transaction = await buildSigned(alice, [
        getTransferCheckedInstruction(
          {
            source: aliceAta,
            mint,
            destination: bobAta,
            authority: alice,
            amount: 999_000_000n,
            decimals: 6,
          },
          { programAddress: tokenProgram },
        ),
      ])
      const wire = getBase64EncodedWireTransaction(transaction)
      const preflight = await rpc
        .sendTransaction(wire, { encoding: 'base64' })
        .send()
        .catch((error: unknown) => error)
      expect(
        isSolanaError(preflight, SOLANA_ERROR__JSON_RPC__SERVER_ERROR_SEND_TRANSACTION_PREFLIGHT_FAILURE),
      ).toBe(true)
      // Token program error 1 = InsufficientFunds, as kit decodes the preflight `err`.
      expect(isSolanaError((preflight as Error).cause, SOLANA_ERROR__INSTRUCTION_ERROR__CUSTOM)).toBe(true)
      expect(((preflight as Error).cause as { context: { code: unknown } }).context.code).toBe(1)
      // The refused transaction did not land.
      expect(
        (await rpc.getSignatureStatuses([getSignatureFromTransaction(transaction)]).send()).value,
      ).toEqual([null])

      const signature = await rpc.sendTransaction(wire, { encoding: 'base64', skipPreflight: true }).send()
      expect(signature).toBe(getSignatureFromTransaction(transaction))
      const { value: statuses } = await rpc.getSignatureStatuses([signature]).send()
      // kit upcasts every number of a response to bigint, error tuples included.
      expect(statuses[0]?.err).toEqual({ InstructionError: [0n, { Custom: 1n }] })
      const result = await rpc
        .getTransaction(signature, { encoding: 'jsonParsed', maxSupportedTransactionVersion: 0 })
        .send()
      expect(result?.meta?.err).toEqual({ InstructionError: [0n, { Custom: 1n }] })
      expect(result?.meta?.fee).toBe(5000n)
      expect(result?.meta?.logMessages?.join('\n')).toMatch(/insufficient funds/i)
      // The fee is charged, the token balances are unchanged.
      expect((result?.meta?.preBalances[0] ?? 0n) - (result?.meta?.postBalances[0] ?? 0n)).toBe(5000n)
      expect(result?.meta?.postTokenBalances?.map((row) => row.uiTokenAmount.amount)).toEqual(
        result?.meta?.preTokenBalances?.map((row) => row.uiTokenAmount.amount),
      )
    })
  })
}

describe('sendTransaction', () => {
  it('rejects a duplicate signature and accepts base58 encoding', async () => {
    const payer = await signerOf(await createFundedAccount(node))
    const target = await createFundedAccount(node, { lamports: 1_000_000n })
    const transaction = await buildSigned(payer, [getAddMemoInstruction({ memo: 'once' })])
    const { getBase58Decoder, getTransactionEncoder } = await import('@solana/kit')
    const base58 = getBase58Decoder().decode(getTransactionEncoder().encode(transaction))
    const signature = await rpc.sendTransaction(base58 as never).send()
    expect(signature).toBe(getSignatureFromTransaction(transaction))
    const again = await rpc
      .sendTransaction(getBase64EncodedWireTransaction(transaction), {
        encoding: 'base64',
        skipPreflight: true,
      })
      .send()
      .catch((error: unknown) => error)
    expect(isSolanaError(again)).toBe(true)
    expect(
      isSolanaError(again, SOLANA_ERROR__JSON_RPC__SERVER_ERROR_SEND_TRANSACTION_PREFLIGHT_FAILURE),
    ).toBe(true)
    expect(isSolanaError((again as Error).cause, SOLANA_ERROR__TRANSACTION_ERROR__ALREADY_PROCESSED)).toBe(
      true,
    )
    expect(target.address).toBeTruthy()
  })

  it('reports unknown signatures as null and a bad signature as a verification failure', async () => {
    const payer = await signerOf(await createFundedAccount(node))
    const transaction = await buildSigned(payer, [getAddMemoInstruction({ memo: 'tampered' })])
    const { value: statuses } = await rpc
      .getSignatureStatuses([getSignatureFromTransaction(transaction)])
      .send()
    expect(statuses).toEqual([null])
    const bytes = Buffer.from(getBase64EncodedWireTransaction(transaction), 'base64')
    // Byte 0 is the signature count; flip a bit of the fee payer's signature.
    bytes[1] = (bytes[1] ?? 0) ^ 0x01
    const tampered = await rpc
      .sendTransaction(bytes.toString('base64') as never, { encoding: 'base64' })
      .send()
      .catch((error: unknown) => error)
    expect(
      isSolanaError(
        tampered,
        SOLANA_ERROR__JSON_RPC__SERVER_ERROR_TRANSACTION_SIGNATURE_VERIFICATION_FAILURE,
      ),
    ).toBe(true)
  })

  it('simulates without signatures and estimates the fee of a message', async () => {
    const payer = await signerOf(await createFundedAccount(node))
    const transaction = await buildSigned(payer, [getAddMemoInstruction({ memo: 'simulate me' })])
    const { value } = await rpc
      .simulateTransaction(getBase64EncodedWireTransaction(transaction), {
        encoding: 'base64',
        sigVerify: false,
        replaceRecentBlockhash: true,
      })
      .send()
    expect(value.err).toBeNull()
    expect(value.logs?.join('\n')).toContain('simulate me')
    expect(value.unitsConsumed).toBeGreaterThan(0n)
    const { value: fee } = await rpc
      .getFeeForMessage(Buffer.from(transaction.messageBytes).toString('base64') as never)
      .send()
    expect(fee).toBe(5000n)
  })
})

describe('fees, memos and history', () => {
  const computeUnitPrice = (microLamports: bigint): Instruction => {
    const data = new Uint8Array(9)
    data[0] = 3
    new DataView(data.buffer).setBigUint64(1, microLamports, true)
    return { programAddress: address(node.info.programs.computeBudget), data }
  }
  const computeUnitLimit = (units: number): Instruction => {
    const data = new Uint8Array(5)
    data[0] = 2
    new DataView(data.buffer).setUint32(1, units, true)
    return { programAddress: address(node.info.programs.computeBudget), data }
  }

  it('charges exactly the reported fee, priority fee included', async () => {
    const payer = await signerOf(await createFundedAccount(node))
    for (const instructions of [
      // Default limit: 3,000 units per builtin instruction, 200,000 per other program.
      [computeUnitPrice(1_000_000n), getAddMemoInstruction({ memo: 'priority' })],
      [computeUnitPrice(2_500n), computeUnitLimit(50_000), getAddMemoInstruction({ memo: 'limited' })],
    ]) {
      const transaction = await buildSigned(payer, instructions)
      const signature = await rpc
        .sendTransaction(getBase64EncodedWireTransaction(transaction), { encoding: 'base64' })
        .send()
      const result = await rpc
        .getTransaction(signature, { encoding: 'json', maxSupportedTransactionVersion: 0 })
        .send()
      const charged = (result?.meta?.preBalances[0] ?? 0n) - (result?.meta?.postBalances[0] ?? 0n)
      expect(result?.meta?.fee).toBe(charged)
      expect(charged).toBeGreaterThan(5000n)
    }
  })

  it('parses memos of Memo v1, v2 and v4 and lists them in getSignaturesForAddress', async () => {
    const payer = await signerOf(await createFundedAccount(node))
    const ids = [node.info.programs.memoV1, node.info.programs.memo, node.info.programs.memoV4]
    const transaction = await buildSigned(
      payer,
      ids.map((id, index) =>
        getAddMemoInstruction({ memo: `memo-${index}` }, { programAddress: address(id) }),
      ),
    )
    const signature = await rpc
      .sendTransaction(getBase64EncodedWireTransaction(transaction), { encoding: 'base64' })
      .send()
    const result = await rpc
      .getTransaction(signature, { encoding: 'jsonParsed', maxSupportedTransactionVersion: 0 })
      .send()
    expect(result?.transaction.message.instructions).toEqual(
      ids.map((id, index) => ({
        program: 'spl-memo',
        programId: id,
        parsed: `memo-${index}`,
        stackHeight: null,
      })),
    )
    const history = await rpc.getSignaturesForAddress(payer.address).send()
    expect(history[0]).toMatchObject({ signature, err: null, confirmationStatus: 'finalized' })
    expect(history[0]?.memo).toContain('memo-1')
  })

  it('refuses a transaction whose blockhash expired', async () => {
    const payer = await signerOf(await createFundedAccount(node))
    const transaction = await buildSigned(payer, [getAddMemoInstruction({ memo: 'late' })])
    node.advanceSlots(151)
    const error = await rpc
      .sendTransaction(getBase64EncodedWireTransaction(transaction), {
        encoding: 'base64',
        skipPreflight: true,
      })
      .send()
      .catch((caught: unknown) => caught)
    expect(isSolanaError((error as Error).cause, SOLANA_ERROR__TRANSACTION_ERROR__BLOCKHASH_NOT_FOUND)).toBe(
      true,
    )
  })

  it('answers JSON-RPC batches and lists token accounts by owner', async () => {
    const { mint } = await createMint(node, { decimals: 2 })
    const owner = await createFundedAccount(node, { lamports: 1_000_000n })
    const { tokenAccount } = await mintTo(node, { mint, owner: owner.address, amount: 12_345n })
    const { value } = await rpc
      .getTokenAccountsByOwner(address(owner.address), { mint }, { encoding: 'jsonParsed' })
      .send()
    expect(value.map((entry) => entry.pubkey)).toEqual([tokenAccount])
    expect(value[0]?.account.data.parsed.info.tokenAmount.uiAmountString).toBe('123.45')
    const response = await fetch(node.info.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'getSlot' },
        { jsonrpc: '2.0', id: 2, method: 'noSuchMethod' },
        // Names every object inherits are not methods either.
        { jsonrpc: '2.0', id: 3, method: 'constructor' },
        { jsonrpc: '2.0', id: 4, method: 'toString' },
        { jsonrpc: '2.0', id: 5, method: '__proto__' },
      ]),
    })
    const batch = (await response.json()) as { id: number; result?: unknown; error?: { code: number } }[]
    expect(batch[0]?.result).toEqual(expect.any(Number))
    for (const answer of batch.slice(1)) expect(answer.error?.code).toBe(-32601)
  })
})
