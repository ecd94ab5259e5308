// Push: the payer's node has mined the transfer, the server's node lags behind and has no receipt yet.
// The server looks the receipt up for a short while, then answers 402 `transaction-not-found` with
// Retry-After, which the core client resends the same credential on: paid once, served once.
import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, erc20Abi } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { chargeClient } from '../src/client/index.js'
import { chargeServer } from '../src/server/index.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
const secrets = ['charge-push-lagging-node-secret-0123456789']

const balance = (owner: Address) =>
  tempoClients(devnet.info).publicClient.readContract({
    address: devnet.info.tokens.pathUsd,
    abi: erc20Abi,
    functionName: 'balanceOf',
    args: [owner],
  })

/**
 * A node lagging behind the real one: a receipt read answers null until `lagMs` after the first read of
 * its hash (the real node had it all along). Everything else is forwarded.
 */
async function laggingNode(target: string, lagMs: number) {
  const firstRead = new Map<string, number>()
  let nullReceipts = 0
  const server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString()
    const parsed = JSON.parse(body) as { id: number; method: string; params: string[] }
    if (parsed.method === 'eth_getTransactionReceipt') {
      const hash = String(parsed.params[0]).toLowerCase()
      const first = firstRead.get(hash) ?? Date.now()
      firstRead.set(hash, first)
      if (Date.now() - first < lagMs) {
        nullReceipts++
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ jsonrpc: '2.0', id: parsed.id, result: null }))
        return
      }
    }
    const response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    res.writeHead(response.status, { 'content-type': 'application/json' })
    res.end(await response.text())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    nullReceipts: () => nullReceipts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

describe.skipIf(!!reason)('tempo/charge push on a server node lagging behind the payer', () => {
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  /** Pays 1000 in push mode through the core client against a server whose node lags `lagMs`. */
  async function payThroughLaggingNode(lagMs: number, payerIndex: number) {
    const { info } = devnet
    const node = await laggingNode(info.rpcUrl, lagMs)
    try {
      const method = chargeServer({
        rpcUrl: node.url,
        chainId: info.chainId,
        currency: info.tokens.pathUsd,
        recipient: info.accounts[0]!.address,
      })
      const server = createServer({ realm: 'tempo.test', secrets, methods: [method] })
      let runs = 0
      const handler = server.protect({ offers: [{ method: 'tempo', request: { amount: '1000' } }] }, () => {
        runs++
        return new Response('paid content')
      })
      const answers: { status: number; retryAfter: string | null }[] = []
      const client = createClient({
        methods: [
          chargeClient({
            account: privateKeyToAccount(info.accounts[payerIndex]!.privateKey),
            rpcUrl: info.rpcUrl,
            chainId: info.chainId,
            mode: 'push',
          }),
        ],
        fetch: (async (input: RequestInfo, init?: RequestInit) => {
          const request = new Request(input, init)
          const response = await handler(request)
          if (request.headers.has('authorization'))
            answers.push({ status: response.status, retryAfter: response.headers.get('retry-after') })
          return response
        }) as typeof fetch,
      })
      const before = await balance(info.accounts[0]!.address)
      const response = await client.fetch('https://tempo.test/r')
      return {
        status: response.status,
        body: await response.text(),
        answers,
        runs,
        moved: (await balance(info.accounts[0]!.address)) - before,
        nullReceipts: node.nullReceipts(),
      }
    } finally {
      await node.close()
    }
  }

  it('looks the receipt up for a short while: a node one read behind is served at once', async () => {
    const result = await payThroughLaggingNode(300, 1)
    expect(result.nullReceipts).toBeGreaterThan(0)
    expect(result).toMatchObject({ status: 200, body: 'paid content', runs: 1, moved: 1000n })
    expect(result.answers).toEqual([{ status: 200, retryAfter: null }])
  })

  it('answers 402 with Retry-After while the node has no receipt: the client resends and is served', async () => {
    const result = await payThroughLaggingNode(1_500, 2)
    expect(result).toMatchObject({ status: 200, body: 'paid content', runs: 1, moved: 1000n })
    expect(result.answers).toEqual([
      { status: 402, retryAfter: '2' },
      { status: 200, retryAfter: null },
    ])
  })
})
