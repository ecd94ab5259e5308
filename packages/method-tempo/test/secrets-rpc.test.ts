// Errors from the Tempo RPC never carry its credentials or a signed transaction (audit 2026-12, "raw
// viem errors as `cause`"): viem keeps the full RPC URL (`user:password@…`) in `RpcRequestError.url` and
// the JSON-RPC request body (for a broadcast, the signed transaction) in its messages. What reaches
// onError, a background `report` or the payer's app is only a summary.
import { createServer as createHttp } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import { Challenge, Credential } from '@mppkit/core'
import { PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Hex, RpcRequestError } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { chargeClient } from '../src/client/index.js'
import { TempoRpcError } from '../src/internal/rpcErrors.js'
import { chargeServer } from '../src/server/index.js'
import { createSettlementSchedule } from '../src/server/session/Settlement.js'
import { rpcProxy } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const password = 'SuperSecretPw'
const withCredentials = (url: string) => url.replace('http://', `http://rpcuser:${password}@`)

/** Everything a log line or an error tracker could print of an error and its cause chain. */
function dump(error: unknown): string {
  const json: string[] = []
  for (let e: unknown = error, depth = 0; e && depth < 10; e = (e as { cause?: unknown }).cause, depth++)
    json.push(
      JSON.stringify(e, (_key, value) => (typeof value === 'bigint' ? String(value) : value)) ?? '',
      String((e as { message?: unknown }).message),
    )
  return `${inspect(error, { depth: 10 })}\n${json.join('\n')}`
}

function expectNoSecrets(error: unknown, signed: string) {
  const text = dump(error)
  expect(text).not.toContain(password)
  expect(text.toLowerCase()).not.toContain(signed.slice(2, 80).toLowerCase())
  // No signed Tempo transaction at all (0x76…, hundreds of hex digits).
  expect(text).not.toMatch(/0x7[68][0-9a-f]{100}/i)
}

describe('background settlement reports', () => {
  it('hands a summary of a viem error to report, never the error', async () => {
    const signed = `0x76${'ab'.repeat(200)}` as Hex
    const error = new RpcRequestError({
      body: { method: 'eth_sendRawTransactionSync', params: [signed] },
      error: { code: -32000, message: 'nonce too low' },
      url: withCredentials('http://127.0.0.1:8545/v1/api-key'),
    })
    expect(inspect(error, { depth: 10 })).toContain(password)
    const reported: unknown[] = []
    const controller = new AbortController()
    const schedule = createSettlementSchedule(() => Promise.reject(error), 60_000)
    const store = {} as never
    schedule.attach({ store, report: (e) => reported.push(e), signal: controller.signal })
    schedule.settleSoon(store, `0x${'00'.repeat(32)}`)
    await schedule.close()
    expect(reported).toHaveLength(2)
    for (const e of reported) {
      expect(e).toBeInstanceOf(TempoRpcError)
      expect((e as TempoRpcError).message).toBe(
        'Tempo RPC request failed at http://127.0.0.1:8545: RPC Request failed. nonce too low',
      )
      expect((e as TempoRpcError).cause).toMatchObject({ code: -32000, rpcOrigin: 'http://127.0.0.1:8545' })
      expect(dump(e)).not.toContain('api-key')
      expectNoSecrets(e, signed)
    }
  })
})

let devnet: TempoDevnet

describe.skipIf(!!reason)('tempo/charge RPC errors on anvil', () => {
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 4 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  it('reports an outcome-unknown settlement to onError without the RPC password or the signed transaction', async () => {
    const { info } = devnet
    const proxy = await rpcProxy(info.rpcUrl)
    try {
      const errors: unknown[] = []
      const server = createServer({
        realm: 'r',
        secrets: ['tempo-charge-test-secret-0123456789abcdef'],
        methods: [
          chargeServer({
            rpcUrl: withCredentials(proxy.url),
            chainId: info.chainId,
            currency: info.tokens.pathUsd,
            recipient: info.accounts[0]!.address,
            timeout: 3_000,
          }),
        ],
        onError: (error) => errors.push(error),
      })
      const handler = server.protect({ offers: [{ method: 'tempo', request: { amount: '1000' } }] }, () =>
        Response.json('ok'),
      )
      const issued = Challenge.parseAll(
        (await handler(new Request('https://t/r'))).headers.get('www-authenticate')!,
      )[0]!
      const client = chargeClient({
        account: privateKeyToAccount(info.accounts[2]!.privateKey),
        rpcUrl: info.rpcUrl,
        chainId: info.chainId,
        mode: 'pull',
      })
      const { payload, source } = await client.createPayload({
        challenge: issued,
        request: issued.request as never,
        url: '',
      })
      const signed = (payload as { signature: Hex }).signature
      // The broadcast reaches the node, its answer is lost and the node is unreachable afterwards.
      proxy.set('send-then-down')
      const response = await handler(
        new Request('https://t/r', {
          headers: {
            authorization: Credential.format({ challenge: issued, payload, ...(source ? { source } : {}) }),
          },
        }),
      )
      expect(response.status).toBe(503)
      expect(await response.json()).toMatchObject({ reason: 'outcome-unknown' })
      expect(errors).toHaveLength(1)
      expect(errors[0]).toMatchObject({ reason: 'outcome-unknown' })
      expect((errors[0] as Error).cause).toMatchObject({ rpcOrigin: proxy.url })
      expectNoSecrets(errors[0], signed)
    } finally {
      await proxy.close()
    }
  })

  it('fails a push payment the node refuses without the RPC password or the signed transaction', async () => {
    const { info } = devnet
    let signed: string | undefined
    // Forwards to anvil, except broadcasts: refused with a JSON-RPC error (the transaction is never mined).
    const proxy = createHttp(async (req, res) => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const body = Buffer.concat(chunks).toString()
      if (/eth_sendRawTransaction/.test(body)) {
        const { id, params } = JSON.parse(body) as { id: number; params: string[] }
        signed = params[0]
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ jsonrpc: '2.0', id, error: { code: -32000, message: 'txpool is full' } }))
        return
      }
      const forwarded = await fetch(info.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      })
      res.writeHead(forwarded.status, { 'content-type': 'application/json' })
      res.end(await forwarded.text())
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    try {
      const origin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
      const server = createServer({
        realm: 'r',
        secrets: ['tempo-charge-test-secret-0123456789abcdef'],
        methods: [
          chargeServer({
            rpcUrl: info.rpcUrl,
            chainId: info.chainId,
            currency: info.tokens.pathUsd,
            recipient: info.accounts[0]!.address,
          }),
        ],
      })
      const unpaid = await server.protect(
        { offers: [{ method: 'tempo', request: { amount: '1000' } }] },
        () => Response.json('ok'),
      )(new Request('https://t/r'))
      const challenge = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)[0]!
      const client = chargeClient({
        account: privateKeyToAccount(info.accounts[2]!.privateKey),
        rpcUrl: withCredentials(origin),
        chainId: info.chainId,
        timeout: 5_000,
        mode: 'push',
      })
      const error = await client
        .createPayload({ challenge, request: challenge.request as never, url: '' })
        .then(
          () => undefined,
          (e: unknown) => e,
        )
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect((error as PaymentFailedError).message).toBe(
        'tempo: the payment transaction was sent, but the node did not confirm it',
      )
      expect((error as Error).cause).toMatchObject({
        code: -32000,
        details: 'txpool is full',
        rpcOrigin: origin,
      })
      expect(signed).toMatch(/^0x76/)
      expectNoSecrets(error, signed!)
    } finally {
      proxy.closeAllConnections()
      await new Promise((resolve) => proxy.close(resolve))
    }
  })
})
