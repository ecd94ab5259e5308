import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { create as createClient, PaymentFailedError, PolicyError } from '@mppkit/core/client'
import { generateKeyPairSigner } from '@solana/kit'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount } from '../../devnet/src/solana/index.js'
import { chargeClient } from '../src/client/index.js'
import { type SolanaNode, serve, signerOf, startSolana } from './helpers.js'

// Push mode against the devnet SVM (2 000 000 lamports: a new account's rent-exempt minimum) through an RPC proxy that lets transactions through but never
// reports them confirmed (a lagging node): the transfer lands, the client's wait times out.
let node: SolanaNode
beforeAll(async () => {
  node = await startSolana({ commitment: { confirmed: 1, finalized: 4 }, slotTimeMs: 20 })
})
afterAll(async () => {
  await node?.stop()
})

const proxies: Server[] = []
afterEach(async () => {
  for (const proxy of proxies.splice(0)) {
    proxy.closeAllConnections()
    await new Promise((resolve) => proxy.close(resolve))
  }
})

/** Forwards JSON-RPC to the node, but answers every status query "not seen yet"; counts sends. */
async function laggingRpc(target: string) {
  let sends = 0
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString()
    const { id, method } = JSON.parse(body) as { id: number; method: string }
    res.writeHead(200, { 'content-type': 'application/json' })
    if (method === 'getSignatureStatuses')
      return res.end(JSON.stringify({ jsonrpc: '2.0', id, result: { context: { slot: 1 }, value: [null] } }))
    if (method === 'sendTransaction') sends++
    const answer = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    res.end(await answer.text())
  })
  proxies.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sends: () => sends }
}

describe('solana/charge push, sent but not confirmed in time', () => {
  it('stays booked against the budget: the retry is refused before a second transfer', async () => {
    const payer = await signerOf(await createFundedAccount(node))
    const recipient = (await generateKeyPairSigner()).address
    const rpc = await laggingRpc(node.info.rpcUrl)
    const served = serve(
      { rpcUrl: node.info.rpcUrl, network: 'localnet', currency: 'sol', recipient },
      { method: 'solana', request: { amount: '2000000' } },
    )
    const client = createClient({
      methods: [
        chargeClient({
          signer: payer,
          rpcUrl: rpc.url,
          network: 'localnet',
          mode: 'push',
          confirmTimeout: 300,
        }),
      ],
      policy: { budget: { sol: 2_000_000n } },
      fetch: served.fetch,
    })
    const error = await client.fetch('https://solana.test/r').catch((e) => e)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.message).toMatch(/was not confirmed in time/)
    expect(error.mayHaveSettled).toBe(true)
    // The transfer did land: the booking it kept is real money.
    expect(node.ledger.balance(recipient)).toBe(2_000_000n)
    expect(client.ledger.spent('sol')).toBe(2_000_000n)
    const retry = await client.fetch('https://solana.test/r').catch((e) => e)
    expect(retry).toBeInstanceOf(PolicyError)
    expect(retry.reason).toBe('budget')
    expect(rpc.sends()).toBe(1)
    expect(node.ledger.balance(recipient)).toBe(2_000_000n)
  })

  it('is released when the node refused the transaction (nothing was sent)', async () => {
    // A payer without lamports: the node's preflight refuses the transaction.
    const payer = await generateKeyPairSigner()
    const recipient = (await generateKeyPairSigner()).address
    const rpc = await laggingRpc(node.info.rpcUrl)
    const served = serve(
      { rpcUrl: node.info.rpcUrl, network: 'localnet', currency: 'sol', recipient },
      { method: 'solana', request: { amount: '2000000' } },
    )
    const client = createClient({
      methods: [
        chargeClient({
          signer: payer,
          rpcUrl: rpc.url,
          network: 'localnet',
          mode: 'push',
          confirmTimeout: 300,
        }),
      ],
      policy: { budget: { sol: 2_000_000n } },
      fetch: served.fetch,
    })
    const error = await client.fetch('https://solana.test/r').catch((e) => e)
    expect(error).toBeInstanceOf(PaymentFailedError)
    expect(error.mayHaveSettled).toBe(false)
    expect(client.ledger.spent('sol')).toBe(0n)
    expect(node.ledger.balance(recipient)).toBe(0n)
  })
})
