import { create as createClient, Protocol, receipt } from '@mppkit/core/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { settle, verify } from 'x402/facilitator'
import { decodePayment } from 'x402/schemes'
import { settleResponseHeader } from 'x402/types'
import { createFundedAccount, type SolanaNode, startSolana } from '../../devnet/src/solana/index.js'
import { chargeClient as methodSolanaClient } from '../../method-solana/src/client/index.js'
import { svm, x402 } from '../src/client/index.js'
import * as Wire from '../src/Wire.js'
import { asFetch } from './peers.js'
import { honoSvmServer, network, signerOf, svmFacilitator, tokenBalance, world } from './svm-peers.js'

// Our client pays an @x402/hono v2 server selling for x402 `exact` on Solana, settled by the in-process
// @x402/svm facilitator on the devnet's LiteSVM RPC (standing in for Solana devnet, whose CAIP-2 id it uses).
let node: SolanaNode
beforeAll(async () => {
  node = await startSolana()
})
afterAll(async () => {
  await node?.stop()
})

async function setup(options: { policy?: Record<string, unknown>; plug?: x402.Options } = {}) {
  const w = await world(node)
  const fac = await svmFacilitator(node)
  const server = honoSvmServer({
    facilitator: fac.client,
    payTo: w.recipient.address,
    mint: w.mint,
    amount: '1000',
  })
  const skipped: string[] = []
  const sent: string[] = []
  const client = createClient({
    methods: [svm({ signer: w.payer, rpcUrl: node.info.rpcUrl })],
    protocols: [
      Protocol.mpp,
      x402({
        svm: { rpcUrl: node.info.rpcUrl },
        onSkip: ({ reason }) => skipped.push(reason),
        ...options.plug,
      }),
    ],
    policy: options.policy ?? {},
    fetch: asFetch(async (request) => {
      const header = request.headers.get(Wire.headers.paymentSignature)
      if (header) sent.push(header)
      return server.fetch(request)
    }),
  })
  return { w, fac, server, client, skipped, sent }
}

describe('x402 (client) pays an @x402/hono v2 server with exact on Solana', () => {
  it('pays: a partially signed transaction with the facilitator as fee payer, the tokens move, PAYMENT-RESPONSE is the receipt', async () => {
    const { w, fac, server, client, sent } = await setup()
    const response = await client.fetch('http://localhost/paid')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('paid content')
    expect(server.runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
    const paid = receipt(response)
    expect(paid).toMatchObject({ status: 'success', method: 'solana', network })
    // The reference is the landed transaction's signature, and the facilitator paid its fee.
    const landed = node.ledger.history.get(paid!.reference)
    expect(landed?.err).toBeNull()
    const document = Wire.decode(sent[0]!)
    expect(document).toMatchObject({ x402Version: 2, accepted: { network, asset: w.mint } })
    expect(Object.keys(document.payload as object)).toEqual(['transaction'])
  })

  it("@mppkit/method-solana's client (its kit signer, pull mode) pays the same x402 offer through the plug", async () => {
    const w = await world(node)
    const fac = await svmFacilitator(node)
    const server = honoSvmServer({
      facilitator: fac.client,
      payTo: w.recipient.address,
      mint: w.mint,
      amount: '1000',
    })
    const client = createClient({
      methods: [methodSolanaClient({ signer: w.payer, rpcUrl: node.info.rpcUrl, network: 'devnet' })],
      protocols: [x402({ svm: { rpcUrl: node.info.rpcUrl } })],
      fetch: asFetch(server.fetch),
    })
    const response = await client.fetch('http://localhost/paid')
    expect(response.status).toBe(200)
    expect(fac.counts.settled).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
  })

  it('pays twice with two distinct transactions (a random memo each time)', async () => {
    const { w, client, sent } = await setup()
    expect((await client.fetch('http://localhost/paid')).status).toBe(200)
    expect((await client.fetch('http://localhost/paid')).status).toBe(200)
    expect(sent).toHaveLength(2)
    expect(sent[0]).not.toBe(sent[1])
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(2000n)
  })

  it('applies the spend policy with decimals read from the mint account', async () => {
    const { server, client } = await setup({ policy: { maxAmount: 999n } })
    await expect(client.fetch('http://localhost/paid')).rejects.toThrow(/exceeds the per-request maximum 999/)
    expect(server.runs()).toBe(0)
  })

  it('takes decimals from the explicit option (no RPC for the plug) and prices with them', async () => {
    const explicit = await setup({
      plug: { svm: {}, decimals: {} },
      policy: {},
    })
    // Without the RPC and without a table entry, the decimals are unknown: the offer is skipped, never guessed.
    expect((await explicit.client.fetch('http://localhost/paid')).status).toBe(402)
    expect(explicit.skipped.some((reason) => /decimals of mint .* are unknown/.test(reason))).toBe(true)
    expect(explicit.server.runs()).toBe(0)
    const named = await setup({ plug: { svm: {}, decimals: {} } })
    const withTable = createClient({
      methods: [svm({ signer: named.w.payer, rpcUrl: node.info.rpcUrl })],
      protocols: [x402({ decimals: { [`${network}:${named.w.mint}`]: 6 } })],
      fetch: asFetch(named.server.fetch),
    })
    expect((await withTable.fetch('http://localhost/paid')).status).toBe(200)
    expect(named.server.runs()).toBe(1)
  })

  it('refuses to pay when the explicit decimals disagree with the mint (no mispriced policy)', async () => {
    const { w, server } = await setup()
    const client = createClient({
      methods: [svm({ signer: w.payer, rpcUrl: node.info.rpcUrl })],
      protocols: [x402({ decimals: { [w.mint]: 2 } })],
      fetch: asFetch(server.fetch),
    })
    await expect(client.fetch('http://localhost/paid')).rejects.toThrow(/the mint has 6 decimals/)
    expect(server.runs()).toBe(0)
  })

  it('a replayed PAYMENT-SIGNATURE is refused by the peer (settles once)', async () => {
    const { fac, server, client, sent } = await setup()
    expect((await client.fetch('http://localhost/paid')).status).toBe(200)
    const replay = await server.fetch(
      new Request('http://localhost/paid', { headers: { [Wire.headers.paymentSignature]: sent[0]! } }),
    )
    expect(replay.status).toBe(402)
    // (@x402/hono runs its handler before it settles, so only the settlement count proves "once".)
    expect(fac.counts.settle).toBe(2)
    expect(fac.counts.settled).toBe(1)
  })

  it('skips unknown Solana networks with a visible reason', async () => {
    const { w } = await setup()
    const skipped: string[] = []
    const offer = {
      x402Version: 2,
      resource: { url: 'http://localhost/paid' },
      accepts: [
        {
          scheme: 'exact',
          network: 'solana:11111111111111111111111111111111',
          amount: '1000',
          asset: w.mint,
          payTo: w.recipient.address,
          maxTimeoutSeconds: 60,
          extra: { feePayer: w.recipient.address },
        },
        {
          scheme: 'exact',
          network: 'solana-localnet',
          maxAmountRequired: '1000',
          asset: w.mint,
          payTo: w.recipient.address,
          maxTimeoutSeconds: 60,
          extra: { feePayer: w.recipient.address },
        },
      ],
    }
    const plug = x402({ svm: { rpcUrl: node.info.rpcUrl }, onSkip: ({ reason }) => skipped.push(reason) })
    const found = await plug.challenges(
      new Response('{}', { status: 402, headers: { [Wire.headers.paymentRequired]: Wire.encode(offer) } }),
    )
    expect(found).toEqual([])
    expect(skipped).toEqual([
      'network solana:11111111111111111111111111111111 is not a known Solana network',
      'network solana-localnet is not a known Solana network',
    ])
    // The caller's own table makes a v1 name usable.
    const mapped = await x402({
      svm: { rpcUrl: node.info.rpcUrl, networks: { 'solana-localnet': network } },
    }).challenges(
      new Response(JSON.stringify({ x402Version: 1, accepts: [offer.accepts[1]] }), {
        status: 402,
        headers: { 'content-type': 'application/json' },
      }),
    )
    expect(mapped).toHaveLength(1)
    expect(mapped[0]).toMatchObject({
      method: 'solana',
      intent: 'charge',
      request: {
        amount: '1000',
        currency: w.mint,
        methodDetails: { caip2: network, decimals: 6, feePayer: true },
      },
    })
  })
})

describe('x402 (client) pays an x402@1.2.0 v1 server with exact on solana-devnet', () => {
  it('pays: X-PAYMENT with three instructions (no memo), settled by x402@1.2.0, X-PAYMENT-RESPONSE is the receipt', async () => {
    const w = await world(node)
    const feePayer = await signerOf(await createFundedAccount(node))
    const config = { svmConfig: { rpcUrl: node.info.rpcUrl } }
    const requirement = {
      scheme: 'exact' as const,
      network: 'solana-devnet' as const,
      maxAmountRequired: '1000',
      resource: 'http://localhost/paid',
      description: 'a paid thing',
      mimeType: 'text/plain',
      payTo: w.recipient.address,
      maxTimeoutSeconds: 120,
      asset: w.mint,
      extra: { feePayer: feePayer.address },
    }
    let runs = 0
    // An x402 v1 server built from x402@1.2.0's own pieces: its 402 body, decodePayment, verify, settle.
    const server = async (request: Request) => {
      const header = request.headers.get('x-payment')
      const required = (error: string) =>
        Response.json({ x402Version: 1, error, accepts: [requirement] }, { status: 402 })
      if (!header) return required('X-PAYMENT header is required')
      const payment = decodePayment(header)
      const verified = await verify(feePayer as never, payment, requirement, config)
      if (!verified.isValid) return required(verified.invalidReason ?? 'invalid')
      const settled = await settle(feePayer as never, payment, requirement, config)
      if (!settled.success) return required(settled.errorReason ?? 'settle failed')
      runs++
      return new Response('paid content', {
        headers: { 'X-PAYMENT-RESPONSE': settleResponseHeader(settled) },
      })
    }
    const client = createClient({
      methods: [svm({ signer: w.payer, rpcUrl: node.info.rpcUrl })],
      protocols: [x402({ svm: { rpcUrl: node.info.rpcUrl } })],
      fetch: asFetch(server),
    })
    const response = await client.fetch('http://localhost/paid')
    if (response.status !== 200) expect(await response.text()).toBe('a 200')
    expect(runs).toBe(1)
    expect(await tokenBalance(node, w.mint, w.recipient.address)).toBe(1000n)
    expect(receipt(response)).toMatchObject({ status: 'success', method: 'solana', network: 'solana-devnet' })
  })
})
