import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Challenge, Credential, MemoryStore } from '@mppkit/core'
import { create as createServerCore } from '@mppkit/core/server'
import { getBase58Decoder, getTransactionDecoder, type KeyPairSigner } from '@solana/kit'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount, mintTo } from '../../devnet/src/solana/index.js'
import { chargeServer } from '../src/server/index.js'
import { craft, transferChecked } from './craft.js'
import { realm, type SolanaNode, secret, signerOf, startSolana, tokenBalance, tokenWorld } from './helpers.js'

// Fee-sponsored pull, the same credential retried after an outage: the first attempt's sendTransaction
// reached the node but its answer was lost (503, the signature's key kept), and the payment landed. On
// the retry the claim is not fresh, so the server asks `getSignatureStatuses`; a node that is behind
// answers null, and the server simulates the landed transaction again, which fails (`AlreadyProcessed`
// on the devnet; on a cluster, possibly the payer's tokens being gone). That failure must not release
// the key and refuse a payer who paid: the status is read again first, and `AlreadyProcessed` is looked
// up, never refused. A transaction that really fails is still refused (402), its key released.
let node: SolanaNode
let world: Awaited<ReturnType<typeof tokenWorld>>
beforeAll(async () => {
  node = await startSolana()
  world = await tokenWorld(node)
})
afterAll(async () => {
  await node?.stop()
})

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

/**
 * A JSON-RPC proxy in front of the node that can lose the answer of the next `sendTransaction` (the call
 * reaches the node, its connection is reset), answer the next status reads "not seen" (a node that is
 * behind), and answer the simulation of a landed transaction as a cluster node may (the payer's tokens are
 * gone: the token program's InsufficientFunds) instead of the devnet's `AlreadyProcessed`.
 */
async function rpcProxy(target: string) {
  let loseSendAnswer = 0
  let lagStatuses = 0
  let clusterSimulation = false
  const calls = new Map<string, number>()
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString()
    const { id, method } = JSON.parse(body) as { id: number; method: string }
    calls.set(method, (calls.get(method) ?? 0) + 1)
    if (method === 'getSignatureStatuses' && lagStatuses > 0) {
      lagStatuses--
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify({ jsonrpc: '2.0', id, result: { context: { slot: 1 }, value: [null] } }))
    }
    const answer = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    let text = await answer.text()
    if (method === 'sendTransaction' && loseSendAnswer > 0) {
      loseSendAnswer--
      return req.socket.destroy()
    }
    if (method === 'simulateTransaction' && clusterSimulation) {
      const parsed = JSON.parse(text) as { result?: { value?: { err?: unknown } } }
      if (parsed.result?.value?.err === 'AlreadyProcessed') {
        parsed.result.value.err = { InstructionError: [2, { Custom: 1 }] }
        text = JSON.stringify(parsed)
      }
    }
    res.writeHead(answer.status, { 'content-type': 'application/json' })
    res.end(text)
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    // twice: the server's RPC client sends once more on a new connection when a reused one is reset
    loseNextSendAnswer: () => {
      loseSendAnswer = 2
    },
    lagNextStatuses: (count: number) => {
      lagStatuses = count
    },
    simulateAsCluster: () => {
      clusterSimulation = true
    },
    calls: (method: string) => calls.get(method) ?? 0,
  }
}

/** A sponsored server on `rpcUrl` with one route, its store at hand. */
async function sponsoredServer(rpcUrl: string) {
  const feePayer = await signerOf(await createFundedAccount(node))
  const store = new MemoryStore()
  // The signature keys the server claimed (the core prefixes a method's keys with its name and intent).
  const claimed: string[] = []
  const putIfAbsent = store.putIfAbsent.bind(store)
  store.putIfAbsent = (key, value, ttl) => {
    if (key.includes(':sig:')) claimed.push(key)
    return putIfAbsent(key, value, ttl)
  }
  /** The challenge id holding a signature's claim, if any. */
  const claimOf = (signature: string) => store.get(`mppkit:m:solana/charge:sig:${signature}`)
  const method = chargeServer({
    rpcUrl,
    network: 'localnet',
    currency: world.mint,
    decimals: 6,
    recipient: world.recipient.address,
    feePayer,
    recentBlockhash: false,
  })
  const server = createServerCore({ realm, secrets: [secret], methods: [method], store })
  let runs = 0
  const handler = server.protect({ offers: [{ method: 'solana', request: { amount: '1000' } }] }, () => {
    runs++
    return new Response('paid content')
  })
  const challenge = async () => {
    const response = await handler(new Request('https://solana.test/r'))
    expect(response.status).toBe(402)
    return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
  }
  const submit = (challenge: Challenge.Challenge, transaction: string) =>
    handler(
      new Request('https://solana.test/r', {
        headers: {
          authorization: Credential.format({ challenge, payload: { type: 'transaction', transaction } }),
        },
      }),
    )
  return { feePayer, claimed, claimOf, challenge, submit, runs: () => runs }
}

/** A payment of 1000 base units by `payer`, partially signed, with `feePayer` as fee payer. */
async function payment(payer: KeyPairSigner, feePayer: KeyPairSigner) {
  const transaction = await craft(node, feePayer.address, [
    await transferChecked({ from: payer, to: world.recipient.address, mint: world.mint, amount: 1000n }),
  ])
  // The signature the server's co-signed transaction carries first (the fee payer's; ed25519 is
  // deterministic): the key of its claim, `sig:<signature>`.
  const decoded = getTransactionDecoder().decode(Buffer.from(transaction, 'base64'))
  const [signatures] = await feePayer.signTransactions([decoded as never])
  const signature = getBase58Decoder().decode(signatures![feePayer.address]!)
  return { transaction, signature }
}

/** A payer holding `amount` base units of the world's mint. */
async function payerWith(amount: bigint) {
  const payer = await signerOf(await createFundedAccount(node))
  await mintTo(node, { mint: world.mint, owner: payer.address, amount })
  return payer
}

describe('sponsored pull retried after a lost send answer, one status read lagging', () => {
  it('the landed payment is served once on the retry (503, then 200), as a cluster node simulates it', async () => {
    const rpc = await rpcProxy(node.info.rpcUrl)
    const served = await sponsoredServer(rpc.url)
    const payer = await payerWith(1000n) // exactly one payment: once it landed, a simulation fails
    const { transaction, signature } = await payment(payer, served.feePayer)
    const challenge = await served.challenge()
    const received = await tokenBalance(node, world.mint, world.recipient.address)

    rpc.loseNextSendAnswer()
    const first = await served.submit(challenge, transaction)
    expect(first.status).toBe(503)
    expect(await served.claimOf(signature)).toBe(challenge.id)
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(received + 1000n) // landed

    rpc.simulateAsCluster() // the landed transaction's simulation fails as the payer's tokens are gone
    rpc.lagNextStatuses(1) // the retry's first status read comes from a node that is behind
    const statuses = rpc.calls('getSignatureStatuses')
    const retry = await served.submit(challenge, transaction)
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(await retry.text()).toBe('paid content')
    expect(rpc.calls('getSignatureStatuses') - statuses).toBe(2) // read again before any release
    expect(await served.claimOf(signature)).toBe(challenge.id)
    const again = await served.submit(challenge, transaction)
    expect(again.status).not.toBe(200)
    expect(served.runs()).toBe(1)
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(received + 1000n)
  })

  it('`AlreadyProcessed` is looked up, never refused, even when the status read after it lags too', async () => {
    const rpc = await rpcProxy(node.info.rpcUrl)
    const served = await sponsoredServer(rpc.url)
    const payer = await payerWith(1000n)
    const { transaction } = await payment(payer, served.feePayer)
    const challenge = await served.challenge()
    const received = await tokenBalance(node, world.mint, world.recipient.address)

    rpc.loseNextSendAnswer()
    expect((await served.submit(challenge, transaction)).status).toBe(503)
    rpc.lagNextStatuses(2) // both status reads of the retry come from a node that is behind
    const sends = rpc.calls('sendTransaction')
    const retry = await served.submit(challenge, transaction)
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(rpc.calls('sendTransaction')).toBe(sends) // not sent again
    expect((await served.submit(challenge, transaction)).status).not.toBe(200)
    expect(served.runs()).toBe(1)
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(received + 1000n)
  })

  it('a sponsored transaction that really fails is still refused (402) and its key released', async () => {
    const rpc = await rpcProxy(node.info.rpcUrl)
    const served = await sponsoredServer(rpc.url)
    const payer = await payerWith(999n) // one base unit short
    const { transaction, signature } = await payment(payer, served.feePayer)
    const challenge = await served.challenge()
    const received = await tokenBalance(node, world.mint, world.recipient.address)
    const statuses = rpc.calls('getSignatureStatuses')
    const refused = await served.submit(challenge, transaction)
    expect(refused.status).toBe(402)
    expect(await refused.text()).toMatch(/simulation-failed|insufficient-balance/)
    expect(rpc.calls('getSignatureStatuses') - statuses).toBe(1) // asked before releasing
    expect(rpc.calls('sendTransaction')).toBe(0)
    expect(served.claimed).toEqual([`mppkit:m:solana/charge:sig:${signature}`]) // claimed, then
    expect(await served.claimOf(signature)).toBeUndefined() // released
    expect(served.runs()).toBe(0)
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(received)
    expect(await tokenBalance(node, world.mint, payer.address)).toBe(999n)
  })
})
