// A pull payment that landed is served, whatever the RPC does after the broadcast: with a fixed memo no
// block read follows the broadcast (its outage answered a landed payment 503 + Retry-After, "nothing was
// charged"), since a transaction mined before is looked up, and its age checked, before broadcasting; a
// credential whose transaction is already mined goes to its receipt instead of being refused for the
// balance that payment already spent; a refused broadcast whose lookups fail is not refused as rejected.
import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Challenge, Credential } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, erc20Abi, type Hex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  fundTip20,
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
const memo = `0x${'cd'.repeat(32)}` as Hex
const secrets = ['charge-fixed-memo-landed-secret-0123456789']

const balance = (owner: Address) =>
  tempoClients(devnet.info).publicClient.readContract({
    address: devnet.info.tokens.pathUsd,
    abi: erc20Abi,
    functionName: 'balanceOf',
    args: [owner],
  })

/**
 * Forwards JSON-RPC to the node; the next `count` calls whose body matches `pattern` (`failNext`) get
 * their connection reset (an outage of the server's RPC). Counts transaction submissions; with
 * `refuseSends`, answers them as a node refusing a transaction it already executed does ("nonce too
 * low"; anvil answers a known transaction with its receipt instead).
 */
async function flakyRpc(target: string) {
  let failing = 0
  let pattern = /eth_getBlockBy/
  let sends = 0
  let refuseSends = false
  const server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString()
    if (failing > 0 && pattern.test(body)) {
      failing--
      req.socket.destroy()
      return
    }
    if (/eth_sendRawTransaction/.test(body)) {
      sends++
      if (refuseSends) {
        const { id } = JSON.parse(body) as { id: number }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32003, message: 'nonce too low' } }))
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
    failNext(calls: RegExp, count: number) {
      pattern = calls
      failing = count
    },
    refuseSends() {
      refuseSends = true
    },
    /** Calls still to fail. */
    failing: () => failing,
    sends: () => sends,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

describe.skipIf(!!reason)('tempo/charge fixed memo pull: a landed payment is served', () => {
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  /** A fixed-memo charge server behind `rpcUrl`, its 1 USD route and a payer holding 1.5 USD. */
  async function setup(
    rpcUrl: string,
    fixedMemo: Hex | null = memo,
    funding = 1_500_000n,
    replayTtlSeconds?: number,
  ) {
    const { info } = devnet
    const method = chargeServer({
      rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      recipient: info.accounts[0]!.address,
      ...(fixedMemo ? { memo: fixedMemo } : {}),
      ...(replayTtlSeconds ? { replayTtlSeconds } : {}),
      timeout: 3_000,
    })
    const server = createServer({ realm: 'tempo.test', secrets, methods: [method] })
    let runs = 0
    const handler = server.protect({ offers: [{ method: 'tempo', request: { amount: '1000000' } }] }, () => {
      runs++
      return new Response('paid content')
    })
    // 1.5 USD for a 1 USD charge (fees in pathUSD too): after it, the payer cannot cover it again.
    const payer = privateKeyToAccount(generatePrivateKey())
    await fundTip20({
      rpcUrl: info.rpcUrl,
      from: info.faucet,
      token: info.tokens.pathUsd,
      to: payer.address,
      amount: funding,
    })
    const issued = Challenge.parseAll(
      (await handler(new Request('https://t/r'))).headers.get('www-authenticate')!,
    )[0]!
    const { payload, source } = await chargeClient({
      account: payer,
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
    }).createPayload({ challenge: issued, request: issued.request as never, url: '' })
    const authorization = Credential.format({ challenge: issued, payload, ...(source ? { source } : {}) })
    const submit = () => handler(new Request('https://t/r', { headers: { authorization } }))
    const challenge = async () =>
      Challenge.parseAll((await handler(new Request('https://t/r'))).headers.get('www-authenticate')!)[0]!
    const submitTo = (fresh: Challenge.Challenge) =>
      handler(
        new Request('https://t/r', {
          headers: {
            authorization: Credential.format({ challenge: fresh, payload, ...(source ? { source } : {}) }),
          },
        }),
      )
    return { handler, submit, submitTo, challenge, payer, runs: () => runs }
  }

  it('serves a broadcast whose block the RPC cannot read afterwards: 200 at once, charged once', async () => {
    const { info } = devnet
    const proxy = await flakyRpc(info.rpcUrl)
    try {
      const { submit, runs } = await setup(proxy.url)
      const recipientBefore = await balance(info.accounts[0]!.address)
      // Every block read from here on fails (the outage the send's receipt used to be checked through).
      proxy.failNext(/eth_getBlockBy/, Number.POSITIVE_INFINITY)
      const first = await submit()
      expect({ status: first.status, retryAfter: first.headers.get('retry-after') }).toEqual({
        status: 200,
        retryAfter: null,
      })
      expect(await first.text()).toBe('paid content')
      expect(first.headers.get('payment-receipt')).not.toBeNull()
      expect({ runs: runs(), sends: proxy.sends() }).toEqual({ runs: 1, sends: 1 })
      expect((await balance(info.accounts[0]!.address)) - recipientBefore).toBe(1_000_000n)
      // The same credential again is refused as used: nothing is sent or charged a second time.
      proxy.failNext(/eth_getBlockBy/, 0)
      const again = await submit()
      expect(again.status).toBe(402)
      expect({ runs: runs(), sends: proxy.sends() }).toEqual({ runs: 1, sends: 1 })
      expect((await balance(info.accounts[0]!.address)) - recipientBefore).toBe(1_000_000n)
    } finally {
      await proxy.close()
    }
  })

  it('a mined transaction whose balance is spent goes to its receipt, across a 503 retried by the client', async () => {
    const { info } = devnet
    const proxy = await flakyRpc(info.rpcUrl)
    try {
      const { handler, payer, runs } = await setup(proxy.url)
      const recipientBefore = await balance(info.accounts[0]!.address)
      const answers: number[] = []
      const client = createClient({
        methods: [chargeClient({ account: payer, rpcUrl: info.rpcUrl, chainId: info.chainId })],
        fetch: (async (input: RequestInfo, init?: RequestInit) => {
          const request = new Request(input, init)
          const header = request.headers.get('authorization')
          if (header && answers.length === 0) {
            // The payer broadcasts the very transaction of its pull credential itself first: mined, its
            // balance (1.5 USD) no longer covers the 1 USD charge.
            const signed = Credential.parse(header).payload.signature as Hex
            const own = await tempoClients(info).publicClient.sendRawTransactionSync({
              serializedTransaction: signed,
            })
            expect(own.status).toBe('success')
            // Then the server's first block read fails: 503 + Retry-After before it sends anything
            // (the hash stays claimed by this challenge); the core client resends the same credential.
            proxy.failNext(/eth_getBlockBy/, 1)
          }
          const response = await handler(request)
          if (header) answers.push(response.status)
          return response
        }) as typeof fetch,
      })
      const response = await client.fetch('https://t/r')
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('paid content')
      expect(answers).toEqual([503, 200])
      expect(proxy.failing()).toBe(0)
      // Served once, nothing sent by the server (the transaction was mined), charged once.
      expect({ runs: runs(), sends: proxy.sends() }).toEqual({ runs: 1, sends: 0 })
      expect((await balance(info.accounts[0]!.address)) - recipientBefore).toBe(1_000_000n)
    } finally {
      await proxy.close()
    }
  })

  it('a broadcast refused as already executed, then an RPC outage: 503, and the resent credential is served', async () => {
    const { info } = devnet
    const proxy = await flakyRpc(info.rpcUrl)
    try {
      // No memo, funded for two charges: the balance check passes, the server broadcasts.
      const { handler, payer, runs } = await setup(proxy.url, null, 3_000_000n)
      const recipientBefore = await balance(info.accounts[0]!.address)
      const answers: number[] = []
      const client = createClient({
        methods: [chargeClient({ account: payer, rpcUrl: info.rpcUrl, chainId: info.chainId })],
        fetch: (async (input: RequestInfo, init?: RequestInit) => {
          const request = new Request(input, init)
          const header = request.headers.get('authorization')
          if (header && answers.length === 0) {
            // The payer broadcasts its pull transaction itself first: the node refuses the server's
            // broadcast (already executed), and both lookups after it (receipt, transaction) fail.
            const signed = Credential.parse(header).payload.signature as Hex
            const own = await tempoClients(info).publicClient.sendRawTransactionSync({
              serializedTransaction: signed,
            })
            expect(own.status).toBe('success')
            proxy.refuseSends()
            proxy.failNext(/eth_getTransaction(Receipt|ByHash)/, 2)
          }
          const response = await handler(request)
          if (header) answers.push(response.status)
          // The outage is over by the time the client resends.
          proxy.failNext(/eth_getTransaction(Receipt|ByHash)/, 0)
          return response
        }) as typeof fetch,
      })
      const response = await client.fetch('https://t/r')
      // Not refused `transaction-rejected` (its hash released): the same credential resumes.
      expect(answers).toEqual([503, 200])
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('paid content')
      expect(runs()).toBe(1)
      expect((await balance(info.accounts[0]!.address)) - recipientBefore).toBe(1_000_000n)
    } finally {
      await proxy.close()
    }
  })

  it('still refuses an old transaction whose hash was forgotten, though the node answers its re-send with its receipt', async () => {
    const { info } = devnet
    const proxy = await flakyRpc(info.rpcUrl)
    try {
      // Hashes remembered 2 s; funded for several charges so the balance check passes every time.
      const { submit, submitTo, challenge, runs } = await setup(proxy.url, memo, 5_000_000n, 2)
      const recipientBefore = await balance(info.accounts[0]!.address)
      expect((await submit()).status).toBe(200)
      expect(proxy.sends()).toBe(1)
      await new Promise((resolve) => setTimeout(resolve, 3_500))
      // Its hash forgotten, the same transaction for a new challenge: looked up before any broadcast,
      // too old (anvil would answer a re-send with the old receipt, which pays the fixed memo).
      const late = await submitTo(await challenge())
      expect(late.status).toBe(402)
      expect(((await late.json()) as { reason?: string }).reason).toBe('transaction-too-old')
      expect({ runs: runs(), sends: proxy.sends() }).toEqual({ runs: 1, sends: 1 })
      expect((await balance(info.accounts[0]!.address)) - recipientBefore).toBe(1_000_000n)
    } finally {
      await proxy.close()
    }
  })
})
