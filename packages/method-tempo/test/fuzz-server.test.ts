// End-to-end fuzz of a real charge + session server on a local Tempo node: random and mutated
// credentials must be refused with a typed problem (never a 500, never a 503 from an untyped error
// escaping the rail, never a Payment-Receipt on an error), and must never move funds.
import { Challenge, Credential } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import fc from 'fast-check'
import { type Address, erc20Abi, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { Transaction } from 'viem/tempo'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { chargeClient, sessionClient } from '../src/client/index.js'
import { charge, session } from '../src/index.js'
import { chargeServer, sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-fuzz-test-secret-0123456789abcdef00'
const realm = 'fuzz.test'
const price = 1_000n

const hexOf = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((b) => `0x${Buffer.from(b).toString('hex')}` as Hex)
/** Truncations, nibble flips and inserted bytes of a real serialized transaction. */
const mutationsOf = (base: Hex) =>
  fc.oneof(
    fc.nat({ max: (base.length - 4) / 2 }).map((n) => base.slice(0, 2 + 2 * n) as Hex),
    fc.tuple(fc.nat({ max: base.length - 3 }), fc.integer({ min: 1, max: 15 })).map(([at, delta]) => {
      const digit = ((Number.parseInt(base[2 + at]!, 16) + delta) % 16).toString(16)
      return `${base.slice(0, 2 + at)}${digit}${base.slice(3 + at)}` as Hex
    }),
    fc
      .tuple(fc.nat({ max: (base.length - 2) / 2 }), hexOf(1, 6))
      .map(([at, h]) => `${base.slice(0, 2 + 2 * at)}${h.slice(2)}${base.slice(2 + 2 * at)}` as Hex),
    fc
      .tuple(fc.nat({ max: (base.length - 4) / 2 }), fc.integer({ min: 1, max: 4 }))
      .map(([at, n]) => `${base.slice(0, 2 + 2 * at)}${base.slice(2 + 2 * (at + n))}` as Hex),
  )

describe.skipIf(!!reason)('fuzz: tempo charge and session server on anvil', () => {
  let devnet: TempoDevnet
  let chargeHandler: (request: Request) => Promise<Response>
  let sessionHandler: (request: Request) => Promise<Response>
  let freeHandler: (request: Request) => Promise<Response>
  const untyped: unknown[] = []
  let recipient: Address
  const balance = (owner: Address) =>
    tempoClients(devnet.info).publicClient.readContract({
      address: devnet.info.tokens.pathUsd,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [owner],
    })
  const onChain = (channelId: Hex) => readChannel(devnet.info, channelId)

  beforeAll(async () => {
    devnet = await startTempo({ accounts: 5 })
    const { info } = devnet
    recipient = info.accounts[0]!.address
    const sessions = sessionServer({
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      account: privateKeyToAccount(info.accounts[0]!.privateKey),
      escrow: info.escrow,
      timeout: 5_000,
    })
    const server = createServer({
      realm,
      secrets: [secret],
      methods: [
        chargeServer({
          rpcUrl: info.rpcUrl,
          chainId: info.chainId,
          currency: info.tokens.pathUsd,
          recipient,
          timeout: 5_000,
        }),
        sessions,
      ],
      // Anything reported here escaped the rail untyped (the core answers it with a 503).
      onError: (error) => untyped.push(error),
    })
    chargeHandler = server.protect(
      { offers: [{ method: 'tempo', request: { amount: String(price) } }] },
      () => new Response('paid'),
    )
    freeHandler = server.protect(
      { offers: [{ method: 'tempo', request: { amount: '0' } }] },
      () => new Response('free'),
    )
    sessionHandler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('metered'),
    )
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const challengeOf = async (handler: (request: Request) => Promise<Response>) => {
    const response = await handler(new Request('http://fuzz.test/r'))
    expect(response.status).toBe(402)
    return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
  }
  const submit = (
    handler: (request: Request) => Promise<Response>,
    challenge: Challenge.Challenge,
    payload: unknown,
    source?: string,
  ) =>
    handler(
      new Request('http://fuzz.test/r', {
        headers: {
          authorization: Credential.format({
            challenge,
            payload: payload as Record<string, unknown>,
            ...(source !== undefined ? { source } : {}),
          }),
        },
      }),
    )
  /** A refused credential: a 4xx problem, no receipt, nothing reported as an unexpected error. */
  const expectRefused = async (response: Response, what: unknown) => {
    const body = await response.text()
    const context = `${JSON.stringify(what, (_k, v) => (typeof v === 'bigint' ? String(v) : v)).slice(0, 400)} → ${response.status} ${body.slice(0, 300)}`
    expect(response.status, context).toBeGreaterThanOrEqual(400)
    expect(response.status, context).toBeLessThan(500)
    expect(response.headers.get('payment-receipt'), context).toBeNull()
    expect(untyped, context).toEqual([])
  }

  it('charge: random, mutated and wrongly signed credentials never settle; the real one does, once', async () => {
    const { info } = devnet
    const before = await balance(recipient)
    const payerAccount = privateKeyToAccount(info.accounts[1]!.privateKey)
    const payerBefore = await balance(payerAccount.address)
    const challenge = await challengeOf(chargeHandler)
    const request = charge.request.parse(challenge.request)
    const payer = chargeClient({
      account: payerAccount,
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      mode: 'pull',
    })
    const real = await payer.createPayload({ challenge, request, url: 'http://fuzz.test/r' })
    const signed = (real.payload as { signature: Hex }).signature
    const source = real.source

    // Mutations of the real signed transaction, on the very challenge it is bound to.
    await fc.assert(
      fc.asyncProperty(mutationsOf(signed), fc.boolean(), async (mutated, withSource) => {
        const response = await submit(
          chargeHandler,
          challenge,
          { type: 'transaction', signature: mutated },
          withSource ? source : undefined,
        )
        await expectRefused(response, { mutated })
      }),
      { numRuns: 60 },
    )

    // Properly signed by the funded payer, but wrong: another chain id, amount, recipient or memo.
    const decoded = Transaction.deserialize(signed) as Record<string, unknown> & {
      calls: { to: Address; data: Hex }[]
    }
    const { signature: _signature, from: _from, hash: _hash, ...unsigned } = decoded
    const resign = (changes: Record<string, unknown>) =>
      payerAccount.signTransaction({ ...unsigned, ...changes } as never, {
        serializer: Transaction.serialize as never,
      }) as Promise<Hex>
    const other = await payer.createPayload({
      challenge: await challengeOf(chargeHandler),
      request,
      url: 'http://fuzz.test/r',
    })
    const data = decoded.calls[0]!.data
    const wrong = {
      chain: await resign({ chainId: info.chainId + 1 }),
      amount: await resign({
        calls: [{ ...decoded.calls[0], data: data.replace(/3e8(?=[0-9a-f]{64}$)/, '3e7') }],
      }),
      recipient: await resign({
        calls: [
          {
            ...decoded.calls[0],
            data: data.replace(
              recipient.slice(2).toLowerCase(),
              info.accounts[2]!.address.slice(2).toLowerCase(),
            ),
          },
        ],
      }),
      otherChallenge: (other.payload as { signature: Hex }).signature,
      // Found by this fuzz: the same signed transaction with bytes after its RLP list was broadcast.
      trailingBytes: `${signed}9e07fe` as Hex,
      // Found by this fuzz (seed -1259577971): the node took a signature `v` byte of 0xdc for 0x1c.
      malleableV:
        `${signed.slice(0, -2)}${(Number.parseInt(signed.slice(-2), 16) | 0xc0).toString(16)}` as Hex,
      // The EIP-2 mirror of the signature (s → n − s, parity flipped) recovers the same sender.
      highS: await (async () => {
        const sig = (decoded.signature as { signature: { r: bigint; s: bigint; yParity: number } }).signature
        const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
        return (await Transaction.serialize(
          unsigned as never,
          { type: 'secp256k1', signature: { r: sig.r, s: n - sig.s, yParity: 1 - sig.yParity } } as never,
        )) as Hex
      })(),
    }
    expect(wrong.malleableV).not.toBe(signed)
    expect((Transaction.deserialize(wrong.highS) as { from?: unknown }).from).toBe(decoded.from)
    expect(wrong.amount).not.toBe(signed)
    expect(wrong.recipient).not.toBe(signed)
    for (const [what, signature] of Object.entries(wrong))
      await expectRefused(
        await submit(chargeHandler, challenge, { type: 'transaction', signature }, source),
        what,
      )

    // Random payloads of every type, random hex of any length, random sources and garbage headers.
    const payload = fc.oneof(
      fc.record({ type: fc.constant('hash'), hash: fc.oneof(hexOf(32, 32), hexOf(0, 40)) }),
      fc.record({
        type: fc.constant('transaction'),
        signature: fc.oneof(
          hexOf(0, 300),
          hexOf(1, 40).map((h) => `0x76${h.slice(2)}`),
        ),
      }),
      fc.record({ type: fc.constant('proof'), signature: hexOf(60, 70) }),
      fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.constant(null))),
    )
    const sourceArb = fc.option(
      fc.oneof(
        fc.string(),
        fc.constant(source),
        hexOf(20, 20).map((a) => `did:pkh:eip155:${info.chainId}:${a}`),
        fc.nat().map((c) => `did:pkh:eip155:${c}:${payerAccount.address}`),
      ),
      { nil: undefined },
    )
    await fc.assert(
      fc.asyncProperty(payload, sourceArb, async (p, s) => {
        await expectRefused(await submit(chargeHandler, challenge, p, s), p)
      }),
      { numRuns: 60 },
    )
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `Payment ${s}`),
        ),
        async (header) => {
          const response = await chargeHandler(
            new Request('http://fuzz.test/r', { headers: { authorization: header } }),
          )
          expect(response.status).toBeGreaterThanOrEqual(400)
          expect(response.status).toBeLessThan(500)
          expect(response.headers.get('payment-receipt')).toBeNull()
        },
      ),
      { numRuns: 30 },
    )
    expect(await balance(recipient)).toBe(before)
    expect(await balance(payerAccount.address)).toBe(payerBefore)

    // The unmodified credential still pays (the failures above released the challenge), exactly once.
    const paid = await submit(chargeHandler, challenge, real.payload, source)
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(paid.headers.get('payment-receipt')).not.toBeNull()
    expect(await balance(recipient)).toBe(before + price)
    const receipt = JSON.parse(Buffer.from(paid.headers.get('payment-receipt')!, 'base64url').toString()) as {
      reference: Hex
    }
    // Its hash on another challenge: replayed (or unbound), never paid twice.
    const again = await challengeOf(chargeHandler)
    await expectRefused(
      await submit(chargeHandler, again, { type: 'hash', hash: receipt.reference }, source),
      'replay',
    )
    await expectRefused(await submit(chargeHandler, challenge, real.payload, source), 'reuse')
    expect(await balance(recipient)).toBe(before + price)
  })

  it('charge: zero-amount proofs with random signatures and sources are refused', async () => {
    const challenge = await challengeOf(freeHandler)
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(hexOf(0, 80), hexOf(64, 65)),
        fc.option(
          fc.oneof(
            fc.string(),
            hexOf(20, 20).map((a) => `did:pkh:eip155:${devnet.info.chainId}:${a}`),
          ),
          { nil: undefined },
        ),
        async (signature, source) => {
          await expectRefused(await submit(freeHandler, challenge, { type: 'proof', signature }, source), {
            signature,
            source,
          })
        },
      ),
      { numRuns: 40 },
    )
  })

  it('session: random open/voucher/topUp/close credentials never open, settle or close a channel', async () => {
    const { info } = devnet
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      sessionHandler(new Request(input, init))) as typeof fetch
    // One real channel (payer 2), opened through the unmodified client.
    const sessions = sessionClient({
      account: privateKeyToAccount(info.accounts[2]!.privateKey),
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      deposit: 10n * price,
      fetch: fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher, policy: { maxDeposit: 100n * price } })
    const opened = await client.fetch('http://127.0.0.1/r')
    expect(opened.status, await opened.clone().text()).toBe(200)
    const channelId = [...sessions.channels.values()][0]!.channelId
    const channelBefore = await onChain(channelId)
    expect(channelBefore.deposit).toBe(10n * price)

    // A valid, never-broadcast open credential of payer 3: the base of the mutations.
    const payer3 = privateKeyToAccount(info.accounts[3]!.privateKey)
    const fresh = sessionClient({
      account: payer3,
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      deposit: 5n * price,
    })
    const challenge = await challengeOf(sessionHandler)
    const request = session.request.parse(challenge.request)
    const open = (await fresh.createPayload({ challenge, request, url: 'http://fuzz.test/r' })).payload as {
      action: 'open'
      channelId: Hex
      transaction: Hex
      signature: Hex
      cumulativeAmount: string
    }
    expect(open.action).toBe('open')
    const payee = recipient
    const payeeBefore = await balance(payee)
    const payer3Before = await balance(payer3.address)

    const channelIds = fc.oneof(hexOf(32, 32), fc.constant(channelId), fc.constant(open.channelId))
    const signatures = fc.oneof(hexOf(0, 70), hexOf(65, 65), mutationsOf(open.signature))
    const amounts = fc.oneof(
      fc.bigInt({ min: 0n, max: 1n << 130n }).map(String),
      fc.constantFrom('0', '1000', '2000', String(10n * price), String(10n * price + 1n)),
    )
    const transactions = fc.oneof(hexOf(0, 200), mutationsOf(open.transaction))
    const action = fc.oneof(
      fc.record({
        action: fc.constant('open'),
        type: fc.constant('transaction'),
        channelId: channelIds,
        transaction: fc.oneof(transactions, fc.constant(open.transaction)),
        cumulativeAmount: amounts,
        signature: signatures,
        authorizedSigner: fc.option(hexOf(20, 20), { nil: undefined }),
      }),
      fc.record({
        action: fc.constant('voucher'),
        channelId: channelIds,
        cumulativeAmount: amounts,
        signature: signatures,
      }),
      fc.record({
        action: fc.constant('topUp'),
        type: fc.constant('transaction'),
        channelId: channelIds,
        transaction: transactions,
        additionalDeposit: amounts,
      }),
      fc.record({
        action: fc.constant('close'),
        channelId: channelIds,
        cumulativeAmount: amounts,
        signature: signatures,
      }),
      fc.dictionary(fc.string(), fc.oneof(fc.string(), hexOf(0, 40), fc.integer())),
    )
    await fc.assert(
      fc.asyncProperty(action, fc.boolean(), async (payload, head) => {
        // Never the exact valid open credential.
        fc.pre(
          !(
            (payload as { action?: string }).action === 'open' &&
            (payload as { transaction?: Hex }).transaction === open.transaction &&
            (payload as { channelId?: Hex }).channelId === open.channelId &&
            (payload as { signature?: Hex }).signature === open.signature &&
            (payload as { cumulativeAmount?: string }).cumulativeAmount === open.cumulativeAmount
          ),
        )
        const response = await sessionHandler(
          new Request('http://fuzz.test/r', {
            method: head ? 'HEAD' : 'GET',
            headers: {
              authorization: Credential.format({ challenge, payload: payload as Record<string, unknown> }),
            },
          }),
        )
        await expectRefused(response, payload)
      }),
      { numRuns: 80 },
    )

    const channelAfter = await onChain(channelId)
    expect(channelAfter).toMatchObject({
      deposit: channelBefore.deposit,
      settled: channelBefore.settled,
      finalized: false,
      closeRequestedAt: 0n,
    })
    expect((await onChain(open.channelId)).payer).toBe('0x0000000000000000000000000000000000000000')
    expect(await balance(payee)).toBe(payeeBefore)
    expect(await balance(payer3.address)).toBe(payer3Before)

    // The unmodified open credential is accepted: the mutations above were refused for being wrong.
    const accepted = await submit(sessionHandler, challenge, open)
    expect(accepted.status, await accepted.clone().text()).toBe(200)
    expect((await onChain(open.channelId)).deposit).toBe(5n * price)
    expect(untyped).toEqual([])
  })
})
