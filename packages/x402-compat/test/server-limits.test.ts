// Limits of the x402 server adapter and the evm charge method that need no chain: a request body is
// read no further than maxBodyBytes, and an authorization or permit valid far into the future is
// refused rather than claimed in the Store for ever; an Idempotency-Key retry gets its paid response
// back, with the x402 settlement header of the first answer. A fake facilitator settles.
import { type Challenge, Challenge as CoreChallenge, Credential, type Store } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { encodeAbiParameters, type Hex, keccak256, pad, toHex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { challengeHash, typedData } from '../src/Authorization.js'
import { charge as chargeClient } from '../src/client/index.js'
import type { EvmChargeRequest, Permit2Payload } from '../src/Methods.js'
import { charge, x402 } from '../src/server/index.js'
import { verifyPermit2 } from '../src/server/Permit2.js'
import * as Wire from '../src/Wire.js'

const url = 'http://localhost/paid'
const token = '0x1111111111111111111111111111111111111111' as const
const payTo = '0x2222222222222222222222222222222222222222' as const
const chainId = 84532
const domain = { name: 'USD Coin', version: '2' }
const account = privateKeyToAccount(generatePrivateKey())
const nowSeconds = () => Math.floor(Date.now() / 1000)

function setup(
  options: {
    maxBodyBytes?: number
    store?: Store
    serve?: () => Response | Promise<Response>
    v1?: boolean
  } = {},
) {
  const counts = { settle: 0, runs: 0 }
  const facilitator = {
    verify: async () => ({ isValid: true }),
    settle: async () => {
      counts.settle++
      return { success: true, transaction: toHex(crypto.getRandomValues(new Uint8Array(32))) }
    },
  }
  const server = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    methods: [charge({ chainId, currency: token, recipient: payTo, domain, facilitator })],
    onError: () => {},
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
    ...(options.store ? { store: options.store } : {}),
  })
  const handler = x402(server, { v1: options.v1 ?? false }).protect(
    { offers: [{ method: 'evm', request: { amount: '1000' } }] },
    () => {
      counts.runs++
      return options.serve ? options.serve() : new Response('paid content')
    },
  )
  return { handler, counts }
}

async function requirementOf(handler: (request: Request) => Promise<Response>) {
  const response = await handler(new Request(url))
  return (
    Wire.decode(response.headers.get(Wire.headers.paymentRequired)!).accepts as Record<string, any>[]
  )[0]!
}

async function paymentSignature(requirement: Record<string, any>, change: Record<string, string> = {}) {
  const authorization = {
    from: account.address,
    to: requirement.payTo,
    value: requirement.amount,
    validAfter: '0',
    validBefore: String(nowSeconds() + 60),
    nonce: toHex(crypto.getRandomValues(new Uint8Array(32))) as Hex,
    ...change,
  }
  const signature = await account.signTypedData(
    typedData({ ...domain, chainId, token }, authorization as never),
  )
  return Wire.encode({
    x402Version: 2,
    resource: { url },
    accepted: requirement,
    payload: { signature, authorization },
  })
}

/** A chunked body of `chunks` × 64 KiB that counts the bytes the server pulls from it. */
function countedBody(chunks: number, pulled: { bytes: number }) {
  const chunk = new Uint8Array(64 * 1024)
  let sent = 0
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ >= chunks) return controller.close()
      pulled.bytes += chunk.byteLength
      controller.enqueue(chunk)
    },
  })
}

describe('x402: request bodies', () => {
  it('a chunked body over maxBodyBytes is a 413 read no further than the limit, nothing settled', async () => {
    const { handler, counts } = setup({ maxBodyBytes: 100 * 1024 })
    const header = await paymentSignature(await requirementOf(handler))
    const pulled = { bytes: 0 }
    // 64 MiB offered, no content-length: only the bounded reader can stop it.
    const response = await handler(
      new Request(url, {
        method: 'POST',
        body: countedBody(1024, pulled),
        headers: { [Wire.headers.paymentSignature]: header },
        duplex: 'half',
      } as RequestInit),
    )
    expect(response.status).toBe(413)
    expect((await response.json()).reason).toBe('body-too-large')
    // The limit plus what the stream had queued ahead of the reader: far from the 64 MiB offered.
    expect(pulled.bytes).toBeLessThanOrEqual(1024 * 1024)
    expect(counts).toEqual({ settle: 0, runs: 0 })
  })

  it('a body within maxBodyBytes is paid as before', async () => {
    const { handler, counts } = setup({ maxBodyBytes: 100 * 1024 })
    const header = await paymentSignature(await requirementOf(handler))
    const response = await handler(
      new Request(url, {
        method: 'POST',
        body: countedBody(1, { bytes: 0 }),
        headers: { [Wire.headers.paymentSignature]: header },
        duplex: 'half',
      } as RequestInit),
    )
    expect(response.status).toBe(200)
    expect(counts).toEqual({ settle: 1, runs: 1 })
  })
})

describe('evm charge: validity windows', () => {
  it('refuses an authorization valid far past the challenge (402, nothing claimed or settled)', async () => {
    const ttls: number[] = []
    const store: Store = {
      get: async () => undefined,
      put: async () => {},
      delete: async () => {},
      putIfAbsent: async (_key: string, _value: string, ttlMs: number) => {
        ttls.push(ttlMs)
        return true
      },
    } as unknown as Store
    const { handler, counts } = setup({ store })
    // A 20-digit validBefore (the schema allows it): its claim TTL would be past what Redis takes.
    const header = await paymentSignature(await requirementOf(handler), {
      validBefore: '99999999999999999999',
    })
    const response = await handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))
    expect(response.status).toBe(402)
    expect((await response.json()).reason).toBe('validity-too-long')
    expect(counts).toEqual({ settle: 0, runs: 0 })
    expect(ttls.filter((ttl) => ttl > 2 * 3_600_000)).toEqual([])
  })

  it('takes an authorization valid for up to an hour', async () => {
    const { handler, counts } = setup()
    const header = await paymentSignature(await requirementOf(handler), {
      validBefore: String(nowSeconds() + 3_500),
    })
    const response = await handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))
    expect(response.status).toBe(200)
    expect(counts).toEqual({ settle: 1, runs: 1 })
  })

  it('refuses validAfter equal to now (EIP-3009: now > validAfter)', async () => {
    const { handler, counts } = setup()
    const header = await paymentSignature(await requirementOf(handler), { validAfter: String(nowSeconds()) })
    const response = await handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))
    expect(response.status).toBe(402)
    expect((await response.json()).reason).toBe('not-yet-valid')
    expect(counts.settle).toBe(0)
  })

  it('refuses a Permit2 deadline far past the challenge before anything else is read', async () => {
    const challenge: Challenge.Challenge = {
      id: 'permit2-deadline-test',
      realm: 'localhost',
      method: 'evm',
      intent: 'charge',
      request: {},
      expires: new Date(Date.now() + 300_000).toISOString(),
    }
    const request = {
      amount: '1000',
      currency: token,
      recipient: payTo,
      methodDetails: { chainId },
    } as EvmChargeRequest
    const payload = (deadline: string): Permit2Payload => ({
      type: 'permit2',
      permit: { permitted: [{ token, amount: '1000' }], nonce: '1', deadline },
      transferDetails: [{ to: payTo, requestedAmount: '1000' }],
      witness: { challengeHash: challengeHash(challenge) },
      signature: '0x00',
    })
    const context = {
      reader: {} as never,
      wallet: {} as never,
      permit2: '0x000000000022D473030F116dDEE9F6B43aC78BA3' as const,
      timeout: 1_000,
      minValidity: 6,
      maxValidity: 3_600,
      now: () => Date.now(),
    }
    const reason = (deadline: string) =>
      verifyPermit2(context, { challenge, request, payload: payload(deadline) }).then(
        () => 'accepted',
        (error: { reason?: string }) => error.reason,
      )
    expect(await reason('99999999999999999999')).toBe('validity-too-long')
    expect(await reason(String(nowSeconds() + 7_200))).toBe('validity-too-long')
    // Within the window, the next check (the source naming the signer) is what refuses it.
    expect(await reason(String(nowSeconds() + 300))).toBe('source-missing')
  })
})

describe('x402: Idempotency-Key retries', () => {
  const send = (handler: (request: Request) => Promise<Response>, header: string, key: string) =>
    handler(
      new Request(url, { headers: { [Wire.headers.paymentSignature]: header, 'idempotency-key': key } }),
    )

  it('a retry with the same key and PAYMENT-SIGNATURE gets the paid response again, settled once', async () => {
    const { handler, counts } = setup()
    const header = await paymentSignature(await requirementOf(handler))
    const first = await send(handler, header, 'order-1')
    expect(first.status).toBe(200)
    const retry = await send(handler, header, 'order-1')
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('paid content')
    expect(retry.headers.get('payment-receipt')).toBe(first.headers.get('payment-receipt'))
    // The replay carries the settlement the first answer carried, and no v1 header beside it.
    expect(first.headers.get(Wire.headers.paymentResponse)).toBeTruthy()
    expect(retry.headers.get(Wire.headers.paymentResponse)).toBe(
      first.headers.get(Wire.headers.paymentResponse),
    )
    expect(retry.headers.get(Wire.headers.v1PaymentResponse)).toBeNull()
    expect(counts).toEqual({ settle: 1, runs: 1 })
    // Another key is another request: the authorization is used.
    const other = await send(handler, header, 'order-2')
    expect(other.status).toBe(402)
    expect(counts).toEqual({ settle: 1, runs: 1 })
  })

  it('a v1 retry (same key and X-PAYMENT) gets X-PAYMENT-RESPONSE again, as the first answer had it', async () => {
    const { handler, counts } = setup({ v1: true })
    const requirement = await requirementOf(handler)
    const document = Wire.decode(await paymentSignature(requirement))
    const header = Wire.encode({
      x402Version: 1,
      scheme: 'exact',
      network: 'base-sepolia',
      payload: document.payload,
    })
    const sendV1 = () =>
      handler(
        new Request(url, { headers: { [Wire.headers.v1Payment]: header, 'idempotency-key': 'order-v1' } }),
      )
    const first = await sendV1()
    expect(first.status).toBe(200)
    const retry = await sendV1()
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('paid content')
    const settled = first.headers.get(Wire.headers.v1PaymentResponse)
    expect(Wire.decode(settled!)).toMatchObject({
      success: true,
      network: 'base-sepolia',
      payer: account.address,
    })
    expect(retry.headers.get(Wire.headers.v1PaymentResponse)).toBe(settled)
    expect(retry.headers.get(Wire.headers.paymentResponse)).toBeNull()
    expect(counts).toEqual({ settle: 1, runs: 1 })
  })

  it('a replay speaks the dialect of the retry: a v2 payment retried as v1 gets X-PAYMENT-RESPONSE', async () => {
    const { handler, counts } = setup({ v1: true })
    const header = await paymentSignature(await requirementOf(handler))
    const first = await send(handler, header, 'order-both')
    expect(first.status).toBe(200)
    const v2 = Wire.decode(first.headers.get(Wire.headers.paymentResponse)!)
    const asV1 = Wire.encode({
      x402Version: 1,
      scheme: 'exact',
      network: 'base-sepolia',
      payload: Wire.decode(header).payload,
    })
    const retry = await handler(
      new Request(url, { headers: { [Wire.headers.v1Payment]: asV1, 'idempotency-key': 'order-both' } }),
    )
    expect(retry.status).toBe(200)
    expect(retry.headers.get(Wire.headers.paymentResponse)).toBeNull()
    expect(Wire.decode(retry.headers.get(Wire.headers.v1PaymentResponse)!)).toEqual({
      ...v2,
      network: 'base-sepolia',
    })
    expect(counts).toEqual({ settle: 1, runs: 1 })
  })

  it('after a handler failure, the retry its 500 asks for is served without settling again', async () => {
    let fail = true
    const { handler, counts } = setup({
      serve: () => {
        if (fail) {
          fail = false
          throw new TypeError('boom')
        }
        return new Response('ok')
      },
    })
    const header = await paymentSignature(await requirementOf(handler))
    const first = await send(handler, header, 'order-3')
    expect(first.status).toBe(500)
    expect((await first.json()).detail).toContain('retry with the same Idempotency-Key')
    // The 500 says what was settled, as the retry's 200 does.
    const settled = first.headers.get('payment-response')
    expect(settled).toBeTruthy()
    const retry = await send(handler, header, 'order-3')
    expect(retry.status).toBe(200)
    expect(retry.headers.get('payment-response')).toBe(settled)
    expect(await retry.text()).toBe('ok')
    expect(counts).toEqual({ settle: 1, runs: 2 })
  })
})

describe('evm charge: an authorization the server’s own wallet settles', () => {
  const transferTopic = keccak256(toHex('Transfer(address,address,uint256)'))
  const word = (address: string) => pad(address as Hex, { size: 32 })

  /** A server settling from a wallet whose receipts `answer` makes, and an authorization for it. */
  async function setupWallet(answer: (hash: Hex) => Record<string, unknown>) {
    const sent: Hex[] = []
    const wallet = {
      account: { address: '0x3333333333333333333333333333333333333333' as const },
      sendTransaction: async () => {
        const hash = toHex(crypto.getRandomValues(new Uint8Array(32)))
        sent.push(hash)
        return hash
      },
      waitForTransactionReceipt: async ({ hash }: { hash: Hex }) => answer(hash) as never,
    }
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [charge({ chainId, currency: token, recipient: payTo, domain, wallet })],
      onError: () => {},
    })
    let runs = 0
    const handler = server.protect({ offers: [{ method: 'evm', request: { amount: '1000' } }] }, () => {
      runs++
      return new Response('paid content')
    })
    const unpaid = await handler(new Request(url))
    const challenge = CoreChallenge.parseAll(unpaid.headers.get('www-authenticate')!)[0]!
    const paid = await chargeClient({ account }).createPayload({
      challenge,
      request: challenge.request as never,
      url,
    })
    const response = await handler(
      new Request(url, { headers: { authorization: Credential.format({ challenge, ...paid }) } }),
    )
    return { response, sent, runs: () => runs }
  }
  const transfer = (value: bigint) => ({
    address: token,
    topics: [transferTopic, word(account.address), word(payTo)],
    data: encodeAbiParameters([{ type: 'uint256' }], [value]),
  })

  it('serves a receipt of this very transaction holding the Transfer', async () => {
    const { response, runs } = await setupWallet((hash) => ({
      status: 'success',
      transactionHash: hash,
      logs: [transfer(1000n)],
    }))
    expect(response.status, await response.clone().text()).toBe(200)
    expect(runs()).toBe(1)
  })

  it('refuses the receipt of a replacement (viem answers a replaced transaction with it)', async () => {
    const { response, runs } = await setupWallet(() => ({
      status: 'success',
      transactionHash: toHex(crypto.getRandomValues(new Uint8Array(32))),
      logs: [transfer(1000n)],
    }))
    expect(response.status).toBe(402)
    expect((await response.json()).reason).toBe('transaction-replaced')
    expect(runs()).toBe(0)
  })

  it('refuses a successful receipt without the expected Transfer (step 10)', async () => {
    const { response, runs } = await setupWallet((hash) => ({
      status: 'success',
      transactionHash: hash,
      logs: [transfer(999n)],
    }))
    expect(response.status).toBe(402)
    expect((await response.json()).reason).toBe('transfer-mismatch')
    expect(runs()).toBe(0)
  })
})

describe('evm charge: a permit2 payload with integers past uint256', () => {
  it('is a 402 (malformed), never a 503 from the encoder', async () => {
    const spender = privateKeyToAccount(generatePrivateKey())
    const chainFree = {
      account: spender,
      sendTransaction: async () => '0x' as Hex,
      waitForTransactionReceipt: async () => ({ status: 'success' as const }),
      readContract: async () => 10n ** 30n,
      getTransactionReceipt: async () => undefined,
    }
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [
        charge({
          chainId,
          currency: token,
          recipient: payTo,
          credentialTypes: ['permit2'],
          wallet: chainFree as never,
        }),
      ],
      onError: () => {},
    })
    const handler = server.protect(
      { offers: [{ method: 'evm', request: { amount: '1000' } }] },
      () => new Response('paid content'),
    )
    const statuses: Record<string, number> = {}
    const big = (2n ** 256n).toString()
    for (const [name, change] of Object.entries({
      nonce: { nonce: big },
      permitted: { permitted: [{ token, amount: big }] },
    })) {
      const unpaid = await handler(new Request(url))
      const challenge = CoreChallenge.parseAll(unpaid.headers.get('www-authenticate')!)[0]!
      const payload = {
        type: 'permit2',
        permit: {
          permitted: [{ token, amount: '1000' }],
          nonce: '1',
          deadline: String(nowSeconds() + 120),
          ...change,
        },
        transferDetails: [{ to: payTo, requestedAmount: '1000' }],
        witness: { challengeHash: challengeHash(challenge) },
        signature: `0x${'11'.repeat(65)}`,
      }
      const response = await handler(
        new Request(url, {
          headers: {
            authorization: Credential.format({
              challenge,
              payload: payload as never,
              source: `did:pkh:eip155:${chainId}:${account.address}`,
            }),
          },
        }),
      )
      statuses[name] = response.status
    }
    expect(statuses).toEqual({ nonce: 402, permitted: 402 })
  })
})
