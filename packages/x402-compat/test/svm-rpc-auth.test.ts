import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import { ConfigurationError, MemoryStore } from '@mppkit/core'
import { create as createClient, Protocol, receipt } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { ExactSvmScheme } from '@x402/svm/exact/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SolanaNode, startSolana } from '../../devnet/src/solana/index.js'
import { svm as svmClient, x402 as x402Plug } from '../src/client/index.js'
import { rpcFetch } from '../src/internal/rpcFetch.js'
import type { Facilitator } from '../src/server/index.js'
import { svm, x402 } from '../src/server/index.js'
import { landedTransaction } from '../src/svm/Landed.js'
import * as Wire from '../src/Wire.js'
import { basicAuthRpc } from './basic-auth-rpc.js'
import { asFetch } from './peers.js'
import { honoSvmServer, network, svmFacilitator, tokenBalance, world } from './svm-peers.js'

// A Solana RPC behind Basic auth (a local proxy in front of the devnet's LiteSVM RPC), reached through an
// rpcUrl with `user:password@`: fetch refuses such a URL (quoting it), so before the fix the server's
// lookup of a settlement whose answer was lost was silently off, and the client could read nothing.
const user = 'rpc-user'
const password = 'p@ss:wörd-Secret' // percent-encoded in the URL; the header carries it decoded
let node: SolanaNode
let proxy: Awaited<ReturnType<typeof basicAuthRpc>>
let authUrl: string
const seen = () => proxy.seen

beforeAll(async () => {
  node = await startSolana()
  proxy = await basicAuthRpc(node.info.rpcUrl, user, password)
  authUrl = `http://${user}:${encodeURIComponent(password)}@127.0.0.1:${proxy.port}`
})
afterAll(async () => {
  await proxy?.close()
  await node?.stop()
})

const url = 'http://localhost/paid'

/** A facilitator that settles for real (broadcast and confirmed), then drops the connection before answering. */
const losingAnswers = (real: Facilitator): Facilitator => ({
  verify: (payload, requirements) => real.verify(payload, requirements),
  settle: async (payload, requirements) => {
    await real.settle(payload, requirements).catch(() => undefined)
    throw new TypeError('fetch failed')
  },
})

/** A closed port: nothing answers there. */
async function closedPort(): Promise<number> {
  const server = createHttpServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

const leaks = (value: unknown) => {
  const text = inspect(value, { depth: 10 })
  return text.includes('Secret') || text.includes(encodeURIComponent(password))
}

describe('x402 svm: an RPC URL with user:password@ is sent as Basic auth', () => {
  it('server: a settlement whose answer is lost is found on chain through the authenticated RPC, served once', async () => {
    const w = await world(node)
    const fac = await svmFacilitator(node)
    let runs = 0
    const handler = x402(
      createServer({
        realm: 'localhost',
        secrets: ['x402-compat-svm-test-secret-0123456789abcdef'],
        store: new MemoryStore(),
        methods: [
          svm({
            network,
            currency: w.mint,
            decimals: w.decimals,
            recipient: w.recipient.address,
            feePayer: fac.feePayer,
            facilitator: losingAnswers(fac.client),
            rpcUrl: authUrl,
          }),
        ],
      }),
      { maxTimeoutSeconds: 120 },
    ).protect({ offers: [{ method: 'solana', request: { amount: '1000' } }] }, () => {
      runs++
      return new Response('paid content')
    })
    const challenge = await handler(new Request(url))
    const accepted = (
      Wire.decode(challenge.headers.get(Wire.headers.paymentRequired)!).accepts as Record<string, unknown>[]
    )[0]!
    const scheme = new ExactSvmScheme(w.payer as never, { rpcUrl: node.info.rpcUrl })
    const { payload } = await scheme.createPaymentPayload(2, accepted as never)
    const header = Wire.encode({ x402Version: 2, resource: { url }, accepted, payload })

    const from = seen().length
    const response = await handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))
    expect(response.status, await response.clone().text()).toBe(200)
    expect(runs).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
    const reference = receipt(response)!.reference
    expect(node.ledger.history.get(reference)?.err).toBeNull()
    // The lookup went through the proxy, authenticated, and never with the credentials in the URL.
    const lookup = seen().slice(from)
    expect(lookup.map((call) => call.method)).toContain('getSignaturesForAddress')
    expect(lookup.map((call) => call.method)).toContain('getTransaction')
    expect(lookup.every((call) => call.authorized)).toBe(true)
    const transaction = (payload as { transaction: string }).transaction
    expect(await landedTransaction(authUrl, transaction, 5_000)).toBe(reference)
    // Served once.
    const again = await handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))
    expect(again.status).toBe(402)
    expect(runs).toBe(1)
  })

  it('client: the mint and latest blockhash reads go through the authenticated RPC, and the payment settles', async () => {
    const w = await world(node)
    const fac = await svmFacilitator(node)
    const server = honoSvmServer({
      facilitator: fac.client,
      payTo: w.recipient.address,
      mint: w.mint,
      amount: '1000',
    })
    const client = createClient({
      methods: [svmClient({ signer: w.payer, rpcUrl: authUrl })],
      protocols: [Protocol.mpp, x402Plug({ svm: {}, decimals: { [w.mint]: w.decimals } })],
      fetch: asFetch((request) => server.fetch(request)),
    })
    const from = seen().length
    const response = await client.fetch(url)
    expect(response.status).toBe(200)
    expect(server.runs()).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
    const calls = seen().slice(from)
    expect(calls.map((call) => call.method)).toEqual(['getAccountInfo', 'getLatestBlockhash'])
    expect(calls.every((call) => call.authorized)).toBe(true)
  })

  it('no error carries the credentials: an RPC that does not answer, and a URL that does not parse', async () => {
    const down = `http://${user}:${encodeURIComponent(password)}@127.0.0.1:${await closedPort()}`
    const w = await world(node)
    // A well-formed partially signed transaction to look up.
    const fac = await svmFacilitator(node)
    const method = svmClient({ signer: w.payer, rpcUrl: down, timeout: 2_000 })
    const request = {
      amount: '1000',
      currency: w.mint,
      recipient: w.recipient.address,
      methodDetails: { feePayerKey: fac.feePayer, decimals: w.decimals, caip2: network },
    }
    const refused = await Promise.resolve(method.createPayload({ request } as never)).catch((error) => error)
    expect(refused).toMatchObject({ name: 'PaymentFailedError' })
    expect(leaks(refused)).toBe(false)

    const sample = await svmClient({ signer: w.payer, rpcUrl: authUrl }).createPayload({ request } as never)
    const transaction = (sample.payload as { transaction: string }).transaction
    const failed = await landedTransaction(down, transaction, 2_000).catch((error) => error)
    expect(failed).toBeInstanceOf(Error)
    expect(leaks(failed)).toBe(false)

    const unparsable = `http://${user}:${encodeURIComponent(password)}@[::1`
    const broken = await landedTransaction(unparsable, transaction, 2_000).catch((error) => error)
    expect(broken).toBeInstanceOf(ConfigurationError)
    expect(leaks(broken)).toBe(false)
    const malformed = await rpcFetch(`http://${user}:%zzSecret@127.0.0.1:1`, {}).catch((error) => error)
    expect(malformed).toBeInstanceOf(ConfigurationError)
    expect(malformed.message).toContain('http://127.0.0.1:1')
    expect(leaks(malformed)).toBe(false)
  })
})
