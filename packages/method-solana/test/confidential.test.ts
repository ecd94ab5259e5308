import { create as createServerCore } from '@mppkit/core/server'
import { generateKeyPairSigner } from '@solana/kit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chargeClient } from '../src/client/index.js'
import { chargeServer } from '../src/server/index.js'
import { realm, type SolanaNode, secret, startSolana } from './helpers.js'

// "Confidential charges MUST use type="bundle"" and need the ZK ElGamal proof program, which the devnet
// SVM lacks: neither side takes part in one (the server's refusal of a bundle credential is in
// problems.test.ts).
let node: SolanaNode

beforeAll(async () => {
  node = await startSolana()
})
afterAll(async () => {
  await node?.stop()
})

describe('confidential (bundle) charges', () => {
  it('a route asking for a confidential charge gets no challenge (reported to the operator)', async () => {
    const errors: unknown[] = []
    const server = createServerCore({
      realm,
      secrets: [secret],
      methods: [
        chargeServer({
          rpcUrl: node.info.rpcUrl,
          network: 'localnet',
          currency: 'sol',
          recipient: (await generateKeyPairSigner()).address,
        }),
      ],
      onError: (error) => errors.push(error),
    })
    const handler = server.protect(
      { offers: [{ method: 'solana', request: { amount: '1000', methodDetails: { confidential: true } } }] },
      () => new Response('ok'),
    )
    const response = await handler(new Request('https://solana.test/r'))
    expect(response.status).toBe(503)
    expect(response.headers.get('www-authenticate') ?? '').not.toMatch(/Payment /)
    expect(String(errors[0])).toMatch(/confidential \(bundle\) charges are not supported/)
  })

  it('the client refuses a confidential challenge before signing anything', async () => {
    const signer = await generateKeyPairSigner()
    let signed = 0
    const client = chargeClient({
      rpcUrl: node.info.rpcUrl,
      network: 'localnet',
      signer: {
        ...signer,
        signTransactions: async (transactions) => {
          signed++
          return signer.signTransactions(transactions)
        },
      },
    })
    const request = {
      amount: '1000',
      currency: 'sol',
      recipient: (await generateKeyPairSigner()).address,
      methodDetails: { network: 'localnet', confidential: true },
    }
    await expect(client.createPayload({ request } as never)).rejects.toThrow(
      /confidential charges are not supported/,
    )
    expect(signed).toBe(0)
  })
})
