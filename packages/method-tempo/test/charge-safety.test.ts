import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Challenge, Credential } from '@mppkit/core'
import { PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, createPublicClient, custom, erc20Abi, type Hex, keccak256 } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { chargeClient } from '../src/client/index.js'
import { tempoChain } from '../src/internal/rpc.js'
import { type ChargeOptions, chargeServer } from '../src/server/index.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const realm = 'tempo.test'
let devnet: TempoDevnet

const balance = (token: Address, owner: Address) =>
  tempoClients(devnet.info).publicClient.readContract({
    address: token,
    abi: erc20Abi,
    functionName: 'balanceOf',
    args: [owner],
  })

/**
 * A node connection whose answers a test may rewrite: `answer(method, params)` returns a replacement
 * result, or `undefined` to forward the call to the devnet unchanged.
 */
function rewritingClient(
  answer: (method: string, params: readonly unknown[]) => Promise<unknown> | undefined,
) {
  const forward = async (method: string, params: readonly unknown[]) => {
    const response = await fetch(devnet.info.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    })
    const body = (await response.json()) as { result?: unknown; error?: { code: number; message: string } }
    if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code })
    return body.result
  }
  return createPublicClient({
    chain: tempoChain({ chainId: devnet.info.chainId, rpcUrl: devnet.info.rpcUrl }),
    transport: custom({
      request: async ({ method, params }: { method: string; params?: readonly unknown[] }) =>
        (await answer(method, params ?? [])) ?? forward(method, params ?? []),
    }),
  }) as unknown as NonNullable<ChargeOptions['client']>
}

function setup(server: Partial<ChargeOptions> = {}, request: Record<string, unknown> = { amount: '1000' }) {
  const { info } = devnet
  let runs = 0
  const handler = createServer({
    realm,
    secrets: ['tempo-charge-safety-secret-0123456789abcdef'],
    methods: [
      chargeServer({
        rpcUrl: info.rpcUrl,
        chainId: info.chainId,
        currency: info.tokens.pathUsd,
        recipient: info.accounts[0]!.address,
        timeout: 3_000,
        ...server,
      }),
    ],
  }).protect({ offers: [{ method: 'tempo', request }] }, () => {
    runs++
    return new Response('paid content')
  })
  const challenge = async () => {
    const response = await handler(new Request('https://tempo.test/r'))
    expect(response.status).toBe(402)
    return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
  }
  const submit = (challenge: Challenge.Challenge, payload: unknown, source?: string) =>
    handler(
      new Request('https://tempo.test/r', {
        headers: {
          authorization: Credential.format({
            challenge,
            payload: payload as Record<string, unknown>,
            ...(source ? { source } : {}),
          }),
        },
      }),
    )
  return { challenge, submit, runs: () => runs }
}

const payer = (index: number, extra: Partial<Parameters<typeof chargeClient>[0]> = {}) =>
  chargeClient({
    account: privateKeyToAccount(devnet.info.accounts[index]!.privateKey),
    rpcUrl: devnet.info.rpcUrl,
    chainId: devnet.info.chainId,
    timeout: 5_000,
    ...extra,
  })

const problem = async (response: Response) => (await response.json()) as { type: string; reason?: string }

/** A raw (JSON-RPC) receipt of a mined transaction. */
const rawReceipt = (hash: Hex) =>
  tempoClients(devnet.info).publicClient.request({ method: 'eth_getTransactionReceipt', params: [hash] })

describe.skipIf(!!reason)('tempo/charge: a receipt of another transaction never pays', () => {
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 6 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  it('pull: the node answers the broadcast with a replacement receipt: refused, not paid', async () => {
    // The node answers the server's broadcast of T1 with the receipt of T2 (another transaction of the
    // payer, as a node or proxy that follows replacements does): T1 was not what executed.
    let replacement: Hex | undefined
    const sent: Hex[] = []
    const client = rewritingClient((method, params) => {
      if (method !== 'eth_sendRawTransactionSync' || !replacement) return undefined
      sent.push(keccak256(params[0] as Hex))
      return rawReceipt(replacement)
    })
    const { challenge, submit, runs } = setup({ client })
    const issued = await challenge()
    const context = { challenge: issued, request: issued.request as never, url: '' }
    // T2 pays this very challenge (push), so every check of its logs passes.
    const pushed = await payer(1, { mode: 'push' }).createPayload(context)
    replacement = (pushed.payload as { hash: Hex }).hash
    const pulled = await payer(1, { mode: 'pull' }).createPayload(context)
    const response = await submit(issued, pulled.payload, pulled.source)
    expect(sent).toEqual([keccak256((pulled.payload as { signature: Hex }).signature)])
    expect(response.status).toBe(402)
    expect(await problem(response)).toMatchObject({
      type: 'https://paymentauth.org/problems/verification-failed',
      reason: 'receipt-mismatch',
    })
    expect(runs()).toBe(0)
  })

  it('push: a receipt answered for another hash is refused, and that hash is not consumed', async () => {
    let asked: Hex | undefined
    let answered: Hex | undefined
    const client = rewritingClient((method, params) => {
      if (method !== 'eth_getTransactionReceipt' || !asked || params[0] !== asked || !answered)
        return undefined
      return rawReceipt(answered)
    })
    const { challenge, submit, runs } = setup({ client })
    const issued = await challenge()
    const paid = await payer(2, { mode: 'push' }).createPayload({
      challenge: issued,
      request: issued.request as never,
      url: '',
    })
    answered = (paid.payload as { hash: Hex }).hash
    asked = `0x${'5a'.repeat(32)}`
    const response = await submit(issued, { type: 'hash', hash: asked }, paid.source)
    expect(response.status).toBe(402)
    expect((await problem(response)).reason).toBe('receipt-mismatch')
    // The real hash still pays its challenge.
    const recipient = devnet.info.accounts[0]!.address
    const before = await balance(devnet.info.tokens.pathUsd, recipient)
    expect((await submit(issued, paid.payload, paid.source)).status).toBe(200)
    expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before)
    expect(runs()).toBe(1)
  })
})

describe.skipIf(!!reason)(
  'tempo/charge with a fixed memo: a mined hash cannot be claimed by an onlooker',
  () => {
    beforeAll(async () => {
      devnet = await startTempo({ accounts: 6 })
    })
    afterAll(async () => {
      await devnet?.stop()
    })

    // With a fixed `methodDetails.memo` nothing in a transfer names the challenge it pays, and a hash
    // credential's `source` is not signed: whoever submits a mined hash first is served with it, and its
    // payer is then refused as `replayed-transaction` after paying.
    const memo = `0x${'ab'.repeat(32)}` as Hex

    /** The victim pays the fixed memo on chain itself; returns the mined hash. */
    const victimPays = async (issued: Challenge.Challenge) => {
      const details = { chainId: devnet.info.chainId, memo }
      const { payload } = await payer(3, { mode: 'push' }).createPayload({
        challenge: issued,
        request: { ...(issued.request as object), methodDetails: details } as never,
        url: '',
      })
      return (payload as { hash: Hex }).hash
    }

    it('the server memo: challenges offer pull only, and a hash is refused', async () => {
      const { challenge, submit, runs } = setup({ memo })
      const victims = await challenge()
      expect(victims.request.methodDetails).toEqual({
        chainId: devnet.info.chainId,
        memo,
        supportedModes: ['pull'],
      })
      const hash = await victimPays(victims)
      const onlooker = await submit(await challenge(), { type: 'hash', hash })
      expect(onlooker.status).toBe(402)
      expect((await problem(onlooker)).reason).toBe('mode-unsupported')
      expect(runs()).toBe(0)
    })

    it("an offer's memo: a hash is refused unless the server opted in to push", async () => {
      const offer = { amount: '1000', methodDetails: { chainId: devnet.info.chainId, memo } }
      // Without `supportedModes`, such an offer would advertise a push it refuses: a configuration error.
      const refused = await Promise.resolve()
        .then(() => setup({}, offer).challenge())
        .catch((error: unknown) => error)
      expect(refused).toBeInstanceOf(Error)
      expect((refused as Error).message).toMatch(/add supportedModes: \['pull'\]/)
      const pullOnly = {
        ...offer,
        methodDetails: { ...offer.methodDetails, supportedModes: ['pull'] },
      }
      const { challenge, submit, runs } = setup({}, pullOnly)
      const victims = await challenge()
      expect(victims.request.methodDetails).toMatchObject({ supportedModes: ['pull'] })
      const hash = await victimPays(victims)
      const onlooker = await submit(await challenge(), { type: 'hash', hash })
      expect(onlooker.status).toBe(402)
      expect((await problem(onlooker)).reason).toBe('mode-unsupported')
      expect(runs()).toBe(0)
      // Opted in (`supportedModes` names push): the operator accepts that risk.
      const opted = setup({ supportedModes: ['pull', 'push'] }, offer)
      const paid = await opted.submit(await opted.challenge(), { type: 'hash', hash })
      expect(paid.status).toBe(200)
    })
  },
)

describe.skipIf(!!reason)('tempo/charge push client: the receipt must be its own transaction', () => {
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 6 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  it('a receipt of another transaction is not sent as the hash; the payment may have settled', async () => {
    const { challenge, runs } = setup()
    const first = await challenge()
    const earlier = await payer(4, { mode: 'push' }).createPayload({
      challenge: first,
      request: first.request as never,
      url: '',
    })
    const other = (earlier.payload as { hash: Hex }).hash
    // An RPC endpoint that answers every send with the receipt of `other` (an earlier payment).
    const proxy = createHttpServer(async (req, res) => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { id: number; method: string }
      const forwarded = await fetch(devnet.info.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      let answer = (await forwarded.json()) as Record<string, unknown>
      if (body.method === 'eth_sendRawTransactionSync')
        answer = { jsonrpc: '2.0', id: body.id, result: await rawReceipt(other) }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(answer))
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    try {
      const rpcUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`
      const second = await challenge()
      const error = await payer(4, { mode: 'push', rpcUrl })
        .createPayload({ challenge: second, request: second.request as never, url: '' })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect((error as PaymentFailedError).mayHaveSettled).toBe(true)
      expect(runs()).toBe(0)
    } finally {
      proxy.closeAllConnections()
      await new Promise<void>((resolve) => proxy.close(() => resolve()))
    }
  })
})
