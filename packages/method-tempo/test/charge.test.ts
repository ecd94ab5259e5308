import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Challenge, Credential, Receipt } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer, type Offer } from '@mppkit/core/server'
import { type Address, createPublicClient, custom, encodeFunctionData, erc20Abi, type Hex, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { Abis, Transaction } from 'viem/tempo'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  fundTip20,
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { chargeClient } from '../src/client/index.js'
import { Attribution } from '../src/index.js'
import { tempoChain } from '../src/internal/rpc.js'
import { chargeServer } from '../src/server/index.js'
import { rpcProxy } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-charge-test-secret-0123456789abcdef'
const realm = 'tempo.test'
let devnet: TempoDevnet

async function balance(token: Address, owner: Address): Promise<bigint> {
  const { publicClient } = tempoClients(devnet.info)
  return publicClient.readContract({
    address: token,
    abi: erc20Abi,
    functionName: 'balanceOf',
    args: [owner],
  })
}

function setup(
  options: { server?: Partial<Parameters<typeof chargeServer>[0]>; offer?: Offer; now?: () => number } = {},
) {
  const { info } = devnet
  const method = chargeServer({
    rpcUrl: info.rpcUrl,
    chainId: info.chainId,
    currency: info.tokens.pathUsd,
    recipient: info.accounts[0]!.address,
    timeout: 3_000,
    ...options.server,
  })
  const server = createServer({
    realm,
    secrets: [secret],
    methods: [method],
    ...(options.now ? { now: options.now } : {}),
  })
  let runs = 0
  const handler = server.protect(
    { offers: [options.offer ?? { method: 'tempo', request: { amount: '1000' } }] },
    () => {
      runs++
      return new Response('paid content')
    },
  )
  const challenge = async () => {
    const response = await handler(new Request('https://tempo.test/r'))
    expect(response.status).toBe(402)
    return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
  }
  const submit = (challenge: Challenge.Challenge, payload: Record<string, unknown>, source?: string) =>
    handler(
      new Request('https://tempo.test/r', {
        headers: { authorization: Credential.format({ challenge, payload, ...(source ? { source } : {}) }) },
      }),
    )
  return { handler, challenge, submit, runs: () => runs }
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

describe.skipIf(!!reason)('tempo/charge on anvil', () => {
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 10 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  it('pull: signs a transferWithMemo the server broadcasts; receipt reference is the tx hash', async () => {
    const { handler, runs } = setup()
    const recipient = devnet.info.accounts[0]!.address
    const before = await balance(devnet.info.tokens.pathUsd, recipient)
    const local = createClient({
      methods: [payer(1, { mode: 'pull' })],
      fetch: ((i: RequestInfo, n?: RequestInit) => handler(new Request(i, n))) as typeof fetch,
    })
    const paid = await local.fetch('https://tempo.test/r')
    expect(paid.status).toBe(200)
    expect(await paid.text()).toBe('paid content')
    const receipt = Receipt.parse(paid.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ method: 'tempo', status: 'success' })
    expect(receipt.reference).toMatch(/^0x[0-9a-f]{64}$/)
    expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 1000n)
    const { publicClient } = tempoClients(devnet.info)
    const onChain = await publicClient.getTransactionReceipt({ hash: receipt.reference as Hex })
    expect(onChain.status).toBe('success')
    expect(runs()).toBe(1)
  })

  it('concurrent pull and push payments from one account all settle (random 2D nonce keys)', async () => {
    const { handler, runs } = setup()
    const recipient = devnet.info.accounts[0]!.address
    const payerAddress = devnet.info.accounts[9]!.address
    const before = await balance(devnet.info.tokens.pathUsd, recipient)
    const payerBefore = await balance(devnet.info.tokens.pathUsd, payerAddress)
    const fetchLocal = ((i: RequestInfo, n?: RequestInit) => handler(new Request(i, n))) as typeof fetch
    const pull = createClient({ methods: [payer(9, { mode: 'pull' })], fetch: fetchLocal })
    const push = createClient({ methods: [payer(9, { mode: 'push' })], fetch: fetchLocal })
    const responses = await Promise.all([
      ...Array.from({ length: 4 }, () => pull.fetch('https://tempo.test/r')),
      ...Array.from({ length: 2 }, () => push.fetch('https://tempo.test/r')),
    ])
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200])
    const references = responses.map((r) => Receipt.parse(r.headers.get('payment-receipt')!).reference)
    expect(new Set(references).size).toBe(6)
    expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 6000n)
    // The payer also paid its own fees in PathUSD, so it lost at least the six payments.
    expect(await balance(devnet.info.tokens.pathUsd, payerAddress)).toBeLessThanOrEqual(payerBefore - 6000n)
    expect(runs()).toBe(6)
  })

  for (const mode of ['push', 'pull'] as const)
    it(`fixed memo, ${mode}: a credential is not accepted again after its hash leaves the replay window`, async () => {
      const memo = `0x${'ab'.repeat(32)}` as Hex
      // Push with a fixed memo is opt-in (see charge-safety.test.ts).
      const { challenge, submit, runs } = setup({
        server: { memo, replayTtlSeconds: 2, supportedModes: ['pull', 'push'] },
      })
      const client = payer(mode === 'push' ? 7 : 8, { mode })
      const recipient = devnet.info.accounts[0]!.address
      const before = await balance(devnet.info.tokens.pathUsd, recipient)
      const first = await challenge()
      const { payload, source } = await client.createPayload({
        challenge: first,
        request: first.request as never,
        url: 'https://tempo.test/r',
      })
      expect((await submit(first, payload as never, source)).status).toBe(200)
      const replay = await submit(await challenge(), payload as never, source)
      expect(replay.status).toBe(402)
      // The consumed hash is forgotten after 2 s; the transaction's age still refuses it.
      await new Promise((resolve) => setTimeout(resolve, 3_500))
      const late = await submit(await challenge(), payload as never, source)
      expect(late.status).toBe(402)
      expect((await problem(late)).reason).toBe('transaction-too-old')
      expect(runs()).toBe(1)
      expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 1000n)
    })

  it('push: broadcasts itself and sends the hash', async () => {
    const { handler } = setup()
    const client = createClient({
      methods: [payer(2, { mode: 'push' })],
      fetch: ((i: RequestInfo, n?: RequestInit) => handler(new Request(i, n))) as typeof fetch,
    })
    const before = await balance(devnet.info.tokens.pathUsd, devnet.info.accounts[0]!.address)
    for (let i = 0; i < 2; i++) {
      const paid = await client.fetch('https://tempo.test/r')
      expect(paid.status).toBe(200)
    }
    expect(await balance(devnet.info.tokens.pathUsd, devnet.info.accounts[0]!.address)).toBe(before + 2000n)
  })

  it('sponsored pull: the fee payer co-signs (0x78) and pays the fee', async () => {
    const sponsor = privateKeyToAccount(devnet.info.accounts[3]!.privateKey)
    const { handler, challenge } = setup({
      server: {
        currency: devnet.info.tokens.alphaUsd,
        feePayer: sponsor,
        feeToken: devnet.info.tokens.pathUsd,
        // anvil drops expiring-nonce transactions after the first from an account (DESIGN §5): use the
        // protocol lane here; the default policy (expiring lane required) is covered by the vectors.
        sponsorPolicy: { requireExpiringNonce: false },
      },
    })
    const issued = await challenge()
    expect(issued.request.methodDetails).toEqual({
      chainId: devnet.info.chainId,
      feePayer: true,
      supportedModes: ['pull'],
    })
    const payerAddress = devnet.info.accounts[4]!.address
    const feeBefore = await balance(devnet.info.tokens.pathUsd, payerAddress)
    const sponsorBefore = await balance(devnet.info.tokens.pathUsd, sponsor.address)
    const client = createClient({
      methods: [payer(4, { nonceKey: 0n })],
      fetch: ((i: RequestInfo, n?: RequestInit) => handler(new Request(i, n))) as typeof fetch,
    })
    for (let i = 0; i < 2; i++) {
      const paid = await client.fetch('https://tempo.test/r')
      expect(paid.status, await paid.clone().text()).toBe(200)
    }
    expect(await balance(devnet.info.tokens.pathUsd, payerAddress)).toBe(feeBefore)
    expect(await balance(devnet.info.tokens.pathUsd, sponsor.address)).toBeLessThan(sponsorBefore)
  })

  it('rejects wrong amount, recipient, token and memo with stable reasons', async () => {
    const { challenge, submit, runs } = setup()
    const client = payer(7, { mode: 'pull' })
    const cases: [string, (r: any, c: Challenge.Challenge) => [any, Challenge.Challenge]][] = [
      ['amount-mismatch', (r, c) => [{ ...r, amount: '999' }, c]],
      ['recipient-mismatch', (r, c) => [{ ...r, recipient: devnet.info.accounts[8]!.address }, c]],
      ['token-mismatch', (r, c) => [{ ...r, currency: devnet.info.tokens.betaUsd }, c]],
      ['memo-mismatch', (r, c) => [r, { ...c, id: `${c.id}x` }]],
    ]
    for (const [expected, mutate] of cases) {
      const issued = await challenge()
      const [request, signedFor] = mutate(issued.request, issued)
      const { payload, source } = await client.createPayload({
        challenge: signedFor,
        request,
        url: 'https://tempo.test/r',
      })
      const response = await submit(issued, payload, source)
      expect(response.status, expected).toBe(402)
      const body = await problem(response)
      expect(body.type).toBe('https://paymentauth.org/problems/verification-failed')
      expect(body.reason).toBe(expected)
    }
    expect(runs()).toBe(0)
  })

  it('rejects a replayed transaction hash for a new challenge', async () => {
    const { challenge, submit, runs } = setup()
    const client = payer(2, { mode: 'push' })
    const first = await challenge()
    const { payload, source } = await client.createPayload({
      challenge: first,
      request: first.request as any,
      url: '',
    })
    expect((await submit(first, payload, source)).status).toBe(200)
    const second = await challenge()
    const replay = await submit(second, payload, source)
    expect(replay.status).toBe(402)
    // The attribution memo binds the first challenge: a different challenge never matches it.
    expect((await problem(replay)).reason).toBe('memo-mismatch')
    expect(runs()).toBe(1)
  })

  it('rejects a hash already consumed, even when its memo would bind (fixed server memo)', async () => {
    const memo = `0x${'ab'.repeat(32)}` as Hex
    const { challenge, submit, runs } = setup({ server: { memo, supportedModes: ['pull', 'push'] } })
    const client = payer(2, { mode: 'push' })
    const first = await challenge()
    expect(first.request.methodDetails).toMatchObject({ memo })
    const { payload, source } = await client.createPayload({
      challenge: first,
      request: first.request as any,
      url: '',
    })
    expect((await submit(first, payload, source)).status).toBe(200)
    const replay = await submit(await challenge(), payload, source)
    expect(replay.status).toBe(402)
    expect((await problem(replay)).reason).toBe('replayed-transaction')
    expect(runs()).toBe(1)
  })

  it('rejects an expired challenge with payment-expired', async () => {
    let clock = Date.now()
    const { challenge, submit } = setup({ now: () => clock })
    const issued = await challenge()
    const { payload, source } = await payer(7).createPayload({
      challenge: issued,
      request: issued.request as any,
      url: '',
    })
    clock += 3_600_000
    const response = await submit(issued, payload, source)
    expect(response.status).toBe(402)
    expect((await problem(response)).type).toBe('https://paymentauth.org/problems/payment-expired')
  })

  it('answers payment-insufficient when the payer cannot cover the amount', async () => {
    const poor = privateKeyToAccount(generatePrivateKey())
    await fundTip20({
      rpcUrl: devnet.info.rpcUrl,
      from: devnet.info.faucet,
      token: devnet.info.tokens.pathUsd,
      to: poor.address,
      amount: 500n,
    })
    const { challenge, submit } = setup()
    const issued = await challenge()
    const client = chargeClient({
      account: poor,
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      mode: 'pull',
    })
    const { payload, source } = await client.createPayload({
      challenge: issued,
      request: issued.request as any,
      url: '',
    })
    const response = await submit(issued, payload, source)
    expect(response.status).toBe(402)
    const body = await problem(response)
    expect(body.type).toBe('https://paymentauth.org/problems/payment-insufficient')
    expect(body.reason).toBe('insufficient-balance')
  })

  it('rejects the hash of a reverted transaction', async () => {
    const { challenge, submit } = setup()
    const issued = await challenge()
    // A transfer of a token the sender does not hold (it only holds the fee token) is mined and reverts.
    const key = generatePrivateKey()
    const reverting = tempoClients({ ...devnet.info, privateKey: key })
    await fundTip20({
      rpcUrl: devnet.info.rpcUrl,
      from: devnet.info.faucet,
      token: devnet.info.tokens.pathUsd,
      to: reverting.account.address,
      amount: 1_000_000n,
    })
    const memo = Attribution.encode({ challengeId: issued.id, realm })
    const receipt = await reverting.walletClient.sendTransactionSync({
      gas: 300_000n,
      nonceKey: 0n,
      nonce: 0,
      calls: [
        {
          to: devnet.info.tokens.alphaUsd,
          data: encodeFunctionData({
            abi: Abis.tip20,
            functionName: 'transferWithMemo',
            args: [devnet.info.accounts[0]!.address, 1000n, memo],
          }),
        },
      ],
    } as never)
    expect(receipt.status).toBe('reverted')
    const response = await submit(issued, { type: 'hash', hash: receipt.transactionHash })
    expect(response.status).toBe(402)
    expect((await problem(response)).reason).toBe('transaction-reverted')
  })

  it('RPC down: 503 + Retry-After, then the same credential settles exactly once; a lost answer is looked up', async () => {
    const proxy = await rpcProxy(devnet.info.rpcUrl)
    try {
      const { challenge, submit, runs } = setup({ server: { rpcUrl: proxy.url, timeout: 2_000 } })
      const recipient = devnet.info.accounts[0]!.address
      const before = await balance(devnet.info.tokens.pathUsd, recipient)
      const client = payer(5, { mode: 'pull' })

      // Down before anything moved.
      let issued = await challenge()
      let { payload, source } = await client.createPayload({
        challenge: issued,
        request: issued.request as any,
        url: '',
      })
      proxy.set('down')
      let response = await submit(issued, payload, source)
      expect(response.status).toBe(503)
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0)
      expect((await problem(response)).type).toBe('https://paymentauth.org/problems/service-unavailable')
      proxy.set('up')
      response = await submit(issued, payload, source)
      expect(response.status).toBe(200)

      // The node receives the transaction but the answer is lost: the server finds its receipt and
      // serves the payment at once; the credential is spent, so sending it again pays nothing twice.
      issued = await challenge()
      ;({ payload, source } = await client.createPayload({
        challenge: issued,
        request: issued.request as any,
        url: '',
      }))
      proxy.set('lose-send')
      response = await submit(issued, payload, source)
      expect(response.status, await response.clone().text()).toBe(200)
      proxy.set('up')
      response = await submit(issued, payload, source)
      expect(response.status).toBe(402)
      expect((await problem(response)).type).toBe('https://paymentauth.org/problems/invalid-challenge')
      expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 2000n)
      expect(runs()).toBe(2)
    } finally {
      await proxy.close()
    }
  })

  it('a transaction the node already holds pending is waited for, never refused with a challenge to pay twice', async () => {
    const { challenge, submit, runs } = setup()
    const recipient = devnet.info.accounts[0]!.address
    const before = await balance(devnet.info.tokens.pathUsd, recipient)
    const client = payer(6, { mode: 'pull' })
    const { publicClient } = tempoClients(devnet.info)
    const rpc = (method: string, params: unknown[] = []) =>
      publicClient.request({ method: method as never, params: params as never })
    // The payer (or anyone who saw its signed transaction) sent it first, and no block has taken it yet.
    const sentFirst = async () => {
      const issued = await challenge()
      const { payload, source } = await client.createPayload({
        challenge: issued,
        request: issued.request as any,
        url: '',
      })
      await rpc('eth_sendRawTransaction', [(payload as { signature: Hex }).signature])
      return { issued, payload, source }
    }
    await rpc('evm_setAutomine', [false])
    try {
      // Mined while the server waits for it: served, paid once.
      const first = await sentFirst()
      const mine = setTimeout(() => void rpc('evm_mine'), 300)
      const served = await submit(first.issued, first.payload, first.source)
      clearTimeout(mine)
      expect(served.status, await served.clone().text()).toBe(200)
      expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 1000n)

      // Still pending when the wait ends: the outcome is unknown, so the challenge stays used (no
      // Retry-After, no fresh challenge to pay again) and the transaction, once mined, pays once.
      const second = await sentFirst()
      const unknown = await submit(second.issued, second.payload, second.source)
      expect(unknown.status).toBe(503)
      expect(unknown.headers.get('retry-after')).toBeNull()
      expect((await problem(unknown)).reason).toBe('outcome-unknown')
      await rpc('evm_mine')
      expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 2000n)
      const again = await submit(second.issued, second.payload, second.source)
      expect((await problem(again)).type).toBe('https://paymentauth.org/problems/invalid-challenge')
      expect(runs()).toBe(1)
    } finally {
      await rpc('evm_setAutomine', [true])
    }
  })

  it('a broadcast refused before it reached the node stays retryable: 503 + Retry-After, then settles once', async () => {
    // A real "connection refused" (a port nothing listens on) for the server's broadcast only: every
    // other call, the balance check before it included, reaches the devnet.
    const closed = createHttpServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`
    await new Promise((resolve) => closed.close(resolve))
    const via = (url: string) => http(url, { retryCount: 0 })({ retryCount: 0 }).request
    const live = via(devnet.info.rpcUrl)
    const dead = via(deadUrl)
    let refuse = true
    let refused = 0
    const client = createPublicClient({
      chain: tempoChain({ chainId: devnet.info.chainId, rpcUrl: devnet.info.rpcUrl }),
      transport: custom(
        {
          request: (args: { method: string; params?: unknown }) => {
            if (!refuse || args.method !== 'eth_sendRawTransactionSync') return live(args as never)
            refused++
            return dead(args as never)
          },
        },
        { retryCount: 0 },
      ),
    })
    const { challenge, submit, runs } = setup({ server: { client: client as never } })
    const recipient = devnet.info.accounts[0]!.address
    const before = await balance(devnet.info.tokens.pathUsd, recipient)
    const issued = await challenge()
    const { payload, source } = await payer(8, { mode: 'pull' }).createPayload({
      challenge: issued,
      request: issued.request as any,
      url: '',
    })
    const down = await submit(issued, payload, source)
    expect(down.status).toBe(503)
    expect(Number(down.headers.get('retry-after'))).toBeGreaterThan(0)
    expect((await problem(down)).reason).toBe('rpc-unavailable')
    expect(refused).toBe(1)
    expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before)
    refuse = false
    const up = await submit(issued, payload, source)
    expect(up.status, await up.clone().text()).toBe(200)
    expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 1000n)
    expect(runs()).toBe(1)
  })

  it('bad input gets a typed problem, never a 500', async () => {
    const { challenge, submit } = setup()
    const inputs: Record<string, unknown>[] = [
      { type: 'transaction', signature: '0x1234' },
      { type: 'transaction', signature: '0x76deadbeef' },
      { type: 'hash', hash: `0x${'00'.repeat(32)}` },
      { type: 'hash', hash: '0x12' },
      { type: 'proof', signature: '0x00' },
      { type: 'nope' },
      {},
    ]
    for (const payload of inputs) {
      const response = await submit(await challenge(), payload)
      expect(response.status, JSON.stringify(payload)).toBeLessThan(500)
      expect([400, 402]).toContain(response.status)
    }
    // A valid 0x76 transaction with a non-transfer call is refused before broadcast.
    const issued = await challenge()
    const { walletClient } = tempoClients({ ...devnet.info, privateKey: devnet.info.accounts[7]!.privateKey })
    const prepared = await walletClient.prepareTransactionRequest({
      calls: [
        {
          to: devnet.info.tokens.pathUsd,
          data: encodeFunctionData({
            abi: erc20Abi,
            functionName: 'approve',
            args: [devnet.info.accounts[0]!.address, 1000n],
          }),
        },
      ],
      gas: 200_000n,
      nonceKey: 0n,
      nonce: 0,
    } as never)
    const signed = await walletClient.signTransaction(prepared as never)
    expect(Transaction.deserialize(signed)).toBeDefined()
    const response = await submit(issued, { type: 'transaction', signature: signed })
    expect(response.status).toBe(402)
    expect((await problem(response)).reason).toBe('unexpected-call')
  })

  it('zero amount: an EIP-712 proof bound to the challenge; reference is the challenge id', async () => {
    const { challenge, submit } = setup({ offer: { method: 'tempo', request: { amount: '0' } } })
    const issued = await challenge()
    const client = payer(6)
    const { payload, source } = await client.createPayload({
      challenge: issued,
      request: issued.request as any,
      url: '',
    })
    expect(payload.type).toBe('proof')
    const response = await submit(issued, payload, source)
    expect(response.status).toBe(200)
    expect(Receipt.parse(response.headers.get('payment-receipt')!).reference).toBe(issued.id)
    // Someone else's source with this signature does not verify.
    const other = await challenge()
    const forged = await client.createPayload({ challenge: other, request: other.request as any, url: '' })
    const wrong = await submit(
      other,
      forged.payload,
      `did:pkh:eip155:${devnet.info.chainId}:${devnet.info.accounts[5]!.address}`,
    )
    expect(wrong.status).toBe(402)
    expect((await problem(wrong)).reason).toBe('invalid-signature')
  })
})
