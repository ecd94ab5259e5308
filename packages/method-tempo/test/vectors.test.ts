import { readFileSync } from 'node:fs'
import { VerificationFailedError } from '@mppkit/core'
import { type Hex, maxUint256 } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { Transaction } from 'viem/tempo'
import { describe, expect, it } from 'vitest'
import { Attribution, Proof } from '../src/index.js'
import { cosign, verifyChargeReceipt } from '../src/server/index.js'

// Conformance vectors (copied into ./fixtures, see fixtures/README.md), run as fixtures.
const load = (name: string) =>
  JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as {
    scenarios: { name: string; input: any; expected: any }[]
  }

describe('tempo.receipt.verify / tempo.transaction.verify vectors', () => {
  for (const file of ['tempo-receipt-verification.json', 'tempo-transaction-verification.json']) {
    for (const scenario of load(file).scenarios) {
      it(`${file}: ${scenario.name}`, () => {
        const { credential, receipt } = scenario.input
        const run = () =>
          verifyChargeReceipt({
            challenge: credential.challenge,
            request: credential.challenge.request,
            receipt,
          })
        if (scenario.expected.ok) expect(run()).toEqual(scenario.expected.value)
        else expect(run).toThrow(VerificationFailedError)
      })
    }
  }
})

describe('Attribution', () => {
  it('encodes the memo the vectors carry for challenge-123 at api.example.com', () => {
    expect(Attribution.encode({ challengeId: 'challenge-123', realm: 'api.example.com' })).toBe(
      '0xef1ed712011ece072f76bd8b82350e00000000000000000000eb18f2d4402269',
    )
    const memo = Attribution.encode({ challengeId: 'c', realm: 'r', clientId: 'app' })
    expect(Attribution.decode(memo)?.client).toMatch(/^0x[0-9a-f]{20}$/)
    expect(Attribution.isBound(memo, { challengeId: 'c', realm: 'r' })).toBe(true)
    expect(Attribution.isBound(memo, { challengeId: 'd', realm: 'r' })).toBe(false)
    expect(Attribution.isBound(memo, { challengeId: 'c', realm: 's' })).toBe(false)
    expect(Attribution.decode(`0x${'00'.repeat(32)}`)).toBeUndefined()
  })
})

describe('tempo.proof.typed_data vector', () => {
  for (const scenario of load('tempo-proof.json').scenarios) {
    it(scenario.name, () => {
      const { chainId, challengeId, realm } = scenario.input
      const typed = Proof.typedData({
        version: 2,
        chainId,
        challengeId,
        realm,
        account: `0x${'11'.repeat(20)}`,
      })
      expect(JSON.parse(JSON.stringify(typed))).toEqual(scenario.expected.value)
    })
  }
})

describe('tempo.fee_payer.cosign vectors', () => {
  for (const scenario of load('tempo-fee-payer-cosign.json').scenarios) {
    it(scenario.name, async () => {
      const { input } = scenario
      const payer = privateKeyToAccount(input.payerPrivateKey)
      const feePayer = privateKeyToAccount(input.feePayerPrivateKey)
      const now = Math.floor(Date.now() / 1000)
      const tx = input.transaction
      const transaction: Record<string, unknown> = {
        type: 'tempo',
        chainId: tx.chainId,
        maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas),
        maxFeePerGas: BigInt(tx.maxFeePerGas),
        gas: BigInt(tx.gasLimit),
        calls: tx.calls.map((call: any) => ({ to: call.to, value: BigInt(call.value), data: call.data })),
        accessList: tx.accessList.map(([address, storageKeys]: [string, string[]]) => ({
          address,
          storageKeys,
        })),
        nonceKey: tx.nonceKey === 'max' ? maxUint256 : BigInt(tx.nonceKey),
        nonce: tx.nonce,
        validBefore: now + Number(String(tx.validBefore).replace('now+', '')),
        from: payer.address,
      }
      // A client that names a fee token signs a self-paying envelope; otherwise it signs for a sponsor.
      if (tx.feeToken) transaction.feeToken = tx.feeToken
      else transaction.feePayer = true
      const signed = (await payer.signTransaction(transaction as never, {
        serializer: Transaction.serialize as never,
      })) as Hex
      const run = () =>
        cosign({
          serializedTransaction: signed,
          feePayer,
          feeToken: input.feeToken,
          check: { request: input.request, challenge: input.challenge, nowSeconds: now },
        })
      if (!scenario.expected.ok) {
        const error = await run().then(
          () => undefined,
          (e: unknown) => e,
        )
        if (!(error instanceof VerificationFailedError)) console.error(error)
        expect(error).toBeInstanceOf(VerificationFailedError)
        expect((error as Error).message + String((error as VerificationFailedError).detail)).toContain(
          scenario.expected.error.messageContains,
        )
        return
      }
      const ready = await run()
      const decoded = Transaction.deserialize(ready) as any
      expect({
        type: ready.slice(0, 4),
        feeToken: decoded.feeToken,
        feePayerSignaturePresent: !!decoded.feePayerSignature,
        accessListLength: decoded.accessList?.length ?? 0,
        callCount: decoded.calls.length,
      }).toEqual(scenario.expected.value)
      expect(decoded.from.toLowerCase()).toBe(payer.address.toLowerCase())
    })
  }
})
