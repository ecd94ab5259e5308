import {
  appendTransactionMessageInstructions,
  type Blockhash,
  compileTransaction,
  createKeyPairSignerFromBytes,
  createTransactionMessage,
  getBase64EncodedWireTransaction,
  getTransactionEncoder,
  type KeyPairSigner,
  pipe,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
} from '@solana/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount, type SolanaNode, startSolana, systemTransfer } from '../src/solana/index.js'

// The node hands well-formed signed bytes straight to litesvm's native instance and everything else
// through litesvm's kit wrapper, as it always did: these answers are the ones the node gave before.
let node: SolanaNode
let payer: KeyPairSigner
let other: KeyPairSigner

beforeAll(async () => {
  node = await startSolana()
  const signer = async () =>
    createKeyPairSignerFromBytes(new Uint8Array((await createFundedAccount(node)).secretKey))
  payer = await signer()
  other = await signer()
})
afterAll(async () => {
  await node?.stop()
})

const message = (source: KeyPairSigner) =>
  pipe(
    createTransactionMessage({ version: 0 }),
    (m) => setTransactionMessageFeePayerSigner(payer, m),
    (m) => {
      const { blockhash, lastValidBlockHeight } = node.ledger.latestBlockhash()
      return setTransactionMessageLifetimeUsingBlockhash(
        { blockhash: blockhash as Blockhash, lastValidBlockHeight },
        m,
      )
    },
    (m) => appendTransactionMessageInstructions([systemTransfer(source, other.address, 1_000_000n)], m),
  )

async function call(method: string, params: unknown[]) {
  const response = await fetch(node.info.rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  expect(response.headers.get('content-length')).not.toBeNull()
  return (await response.json()) as { result?: unknown; error?: { code: number; message: string } }
}

describe('sendTransaction and simulateTransaction signature handling', () => {
  it('lands a signed transfer, and refuses a tampered signature with -32003 (preflight or not)', async () => {
    const signed = Buffer.from(
      getBase64EncodedWireTransaction(await signTransactionMessageWithSigners(message(payer))),
      'base64',
    )
    const tampered = Buffer.from(signed)
    tampered[5]! ^= 1
    const count = node.ledger.transactionCount
    for (const skipPreflight of [false, true])
      expect(
        (await call('sendTransaction', [tampered.toString('base64'), { encoding: 'base64', skipPreflight }]))
          .error,
      ).toEqual({ code: -32003, message: 'Transaction signature verification failure' })
    const simulated = await call('simulateTransaction', [
      tampered.toString('base64'),
      { encoding: 'base64', sigVerify: true },
    ])
    expect((simulated.result as { value: { err: unknown } }).value.err).toBe('SignatureFailure')
    expect(node.ledger.transactionCount).toBe(count)
    const sent = await call('sendTransaction', [signed.toString('base64'), { encoding: 'base64' }])
    expect(typeof sent.result).toBe('string')
    expect(node.ledger.transactionCount).toBe(count + 1n)
  })

  it('refuses empty signature slots without landing anything; simulation without sigVerify runs', async () => {
    const signed = Buffer.from(
      getBase64EncodedWireTransaction(await signTransactionMessageWithSigners(message(payer))),
      'base64',
    )
    const unsigned = Buffer.from(signed).fill(0, 1, 65)
    // Two signers (fee payer and source), neither signed.
    const partial = Buffer.from(getTransactionEncoder().encode(compileTransaction(message(other))))
    const count = node.ledger.transactionCount
    for (const bytes of [unsigned, partial])
      for (const skipPreflight of [false, true])
        expect(
          (await call('sendTransaction', [bytes.toString('base64'), { encoding: 'base64', skipPreflight }]))
            .error,
        ).toEqual({ code: -32603, message: 'Internal error' })
    expect(node.ledger.transactionCount).toBe(count)
    const simulated = await call('simulateTransaction', [unsigned.toString('base64'), { encoding: 'base64' }])
    expect((simulated.result as { value: { err: unknown } }).value.err).toBeNull()
  })
})
