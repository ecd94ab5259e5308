// The `permit2`, `transaction` and `hash` credential types of draft-evm-charge-00 on anvil
// (`--network tempo` predeploys Permit2 at its canonical address), paid by our client, refused when
// tampered, replayed or expired, and settled once under concurrent copies.
import { Credential, MemoryStore, type Store } from '@mppkit/core'
import { create as createClient, PaymentFailedError, PolicyError, receipt } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { encodeFunctionData, erc20Abi, type Hex, keccak256 } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { charge as chargeClient } from '../src/client/index.js'
import type { CredentialType } from '../src/Methods.js'
import * as Permit2 from '../src/Permit2.js'
import { charge, type Reader, type Wallet } from '../src/server/index.js'
import { asFetch, balanceOf, walletOf } from './peers.js'
import { approvePermit2, challengeOf, send, url } from './requests.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
let permit2Reason: string | undefined
beforeAll(async () => {
  if (reason) return
  devnet = await startTempo({ accounts: 8 })
  permit2Reason = await approvePermit2(devnet.info, [1, 2, 3])
})
afterAll(async () => {
  await devnet?.stop()
})

function setup(
  types: CredentialType[],
  request: Record<string, unknown> = { amount: '900' },
  options: { hashMaxAgeSeconds?: number; store?: Store; wallet?: Wallet; client?: Reader } = {},
) {
  const info = devnet.info
  const payTo = info.accounts[6]!.address
  const server = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    ...(options.store ? { store: options.store } : {}),
    methods: [
      charge({
        chainId: info.chainId,
        currency: info.eip3009Token,
        recipient: payTo,
        credentialTypes: types,
        wallet: options.wallet ?? walletOf(info, 7),
        ...(options.client ? { client: options.client } : {}),
        decimals: 6,
        ...(options.hashMaxAgeSeconds ? { hashMaxAgeSeconds: options.hashMaxAgeSeconds } : {}),
      }),
    ],
  })
  let runs = 0
  const handler = server.protect({ offers: [{ method: 'evm', request: request as never }] }, () => {
    runs++
    return new Response('paid content')
  })
  const client = (index: number, credentialTypes?: CredentialType[]) =>
    createClient({
      methods: [
        chargeClient({
          account: privateKeyToAccount(info.accounts[index]!.privateKey),
          wallet: walletOf(info, index),
          ...(credentialTypes ? { credentialTypes } : {}),
        }),
      ],
      fetch: asFetch(handler),
    })
  return { info, payTo, handler, client, runs: () => runs }
}

describe.skipIf(reason)('evm charge, type="permit2"', () => {
  it('advertises permit2 first with the Permit2 address and spender; our client pays it; the server pays gas', async (context) => {
    if (permit2Reason) return context.skip(permit2Reason)
    const { info, payTo, handler, client, runs } = setup(['permit2'])
    const challenge = await challengeOf(handler)
    expect((challenge.request as any).methodDetails).toMatchObject({
      chainId: info.chainId,
      credentialTypes: ['permit2'],
      permit2Address: Permit2.permit2Address,
      spender: info.accounts[7]!.address,
    })
    // Our digest is the one Permit2 checks: its DOMAIN_SEPARATOR on this chain equals ours.
    const onChain = await walletOf(info, 0).readContract({
      address: Permit2.permit2Address,
      abi: [
        {
          type: 'function',
          name: 'DOMAIN_SEPARATOR',
          stateMutability: 'view',
          inputs: [],
          outputs: [{ type: 'bytes32' }],
        },
      ] as const,
      functionName: 'DOMAIN_SEPARATOR',
    })
    expect(onChain).toBe(Permit2.domainSeparator(info.chainId))
    const payer = info.accounts[1]!.address
    const [beforePayTo, beforePayer] = [await balanceOf(info, payTo), await balanceOf(info, payer)]
    const gasBefore = await walletOf(info, 0).getBalance({ address: payer })
    const response = await client(1).fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - beforePayTo).toBe(900n)
    expect(beforePayer - (await balanceOf(info, payer))).toBe(900n)
    // The payer signed only; the server's wallet submitted (and paid gas).
    expect(await walletOf(info, 0).getBalance({ address: payer })).toBe(gasBefore)
    expect(receipt(response)).toMatchObject({ method: 'evm', chainId: info.chainId, payer })
    expect(receipt(response)?.reference).toMatch(/^0x[0-9a-f]{64}$/)
  })

  it('pays splits atomically in one batch transfer, in array order', async (context) => {
    if (permit2Reason) return context.skip(permit2Reason)
    const info = devnet.info
    const platform = info.accounts[5]!.address
    const { payTo, client, runs } = setup(['permit2'], {
      amount: '1000',
      // A route's methodDetails replace the method's defaults whole: name the Permit2 fields too.
      methodDetails: {
        chainId: info.chainId,
        credentialTypes: ['permit2'],
        permit2Address: Permit2.permit2Address,
        spender: info.accounts[7]!.address,
        splits: [{ recipient: platform, amount: '150', memo: 'platform fee' }],
      },
    })
    const [beforePayTo, beforePlatform] = [await balanceOf(info, payTo), await balanceOf(info, platform)]
    const response = await client(2).fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - beforePayTo).toBe(850n)
    expect((await balanceOf(info, platform)) - beforePlatform).toBe(150n)
  })

  it('refuses tampering, another challenge, a missing source, an expired deadline; 20 concurrent copies settle once', async (context) => {
    if (permit2Reason) return context.skip(permit2Reason)
    const { info, payTo, handler, runs } = setup(['permit2'])
    const method = chargeClient({ account: privateKeyToAccount(info.accounts[3]!.privateKey) })
    const challenge = await challengeOf(handler)
    const request = challenge.request as never
    const good = await method.createPayload({ challenge, request, url })
    const other = await method.createPayload({ challenge: { ...challenge, id: 'another' }, request, url })
    const payload = good.payload as any
    const tampered = {
      amount: {
        ...payload,
        transferDetails: [{ ...payload.transferDetails[0], requestedAmount: '899' }],
      },
      recipient: {
        ...payload,
        transferDetails: [{ ...payload.transferDetails[0], to: info.accounts[4]!.address }],
      },
      // Same amounts, signed for more: the signature no longer matches what is submitted.
      permitted: {
        ...payload,
        permit: { ...payload.permit, permitted: [{ ...payload.permit.permitted[0], amount: '5000' }] },
      },
      nonce: { ...payload, permit: { ...payload.permit, nonce: '7' } },
    }
    const reasons: Record<string, unknown> = {}
    for (const [name, body] of Object.entries(tampered))
      reasons[name] = (await (await send(handler, challenge, body, good.source)).json()).reason
    // Each failure consumed a fresh challenge: take a new one for the next.
    reasons.otherChallenge = (
      await (await send(handler, await challengeOf(handler), other.payload, good.source)).json()
    ).reason
    const unsourced = await challengeOf(handler)
    const bare = await method.createPayload({ challenge: unsourced, request, url })
    reasons.noSource = (await (await send(handler, unsourced, bare.payload)).json()).reason
    expect(reasons).toMatchInlineSnapshot(`
      {
        "amount": "wrong-amount",
        "noSource": "source-missing",
        "nonce": "invalid-signature",
        "otherChallenge": "witness-mismatch",
        "permitted": "invalid-signature",
        "recipient": "wrong-recipient",
      }
    `)
    // An expired deadline.
    const stale = await challengeOf(handler)
    const expired = await chargeClient({
      account: privateKeyToAccount(info.accounts[3]!.privateKey),
      now: () => Date.now() - 3_600_000,
    }).createPayload({ challenge: { ...stale, expires: undefined as never }, request, url })
    expect((await (await send(handler, stale, expired.payload, expired.source)).json()).reason).toBe(
      'permit-expired',
    )
    expect(runs()).toBe(0)

    // 20 copies of one credential (the same challenge): one settles, the rest are refused.
    const fresh = await challengeOf(handler)
    const paid = await method.createPayload({ challenge: fresh, request, url })
    const before = await balanceOf(info, payTo)
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => send(handler, fresh, paid.payload, paid.source)),
    )
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    // The same permit against a new challenge: the witness binds it to the first.
    const again = await send(handler, await challengeOf(handler), paid.payload, paid.source)
    expect(again.status).toBe(402)
    expect(runs()).toBe(1)
  })

  /** The server's wallet, whose transactions land but whose answers are lost (a dropped connection). */
  const losingWallet = () => {
    const real = walletOf(devnet.info, 7)
    let sent = 0
    const wallet = {
      ...real,
      // The transaction is mined, then the connection drops before its hash comes back.
      sendTransaction: async (args: never) => {
        const hash = await real.sendTransaction(args)
        await real.waitForTransactionReceipt({ hash })
        sent++
        throw new Error('socket hang up')
      },
    }
    return { wallet: wallet as unknown as Wallet, sent: () => sent }
  }

  /** A permit from dev account `index` for a fresh challenge of `handler`, and the recipient's balance now. */
  const permitFor = async (
    handler: (request: Request) => Promise<Response>,
    info: typeof devnet.info,
    payTo: Hex,
    index: number,
  ) => {
    const method = chargeClient({ account: privateKeyToAccount(info.accounts[index]!.privateKey) })
    const challenge = await challengeOf(handler)
    const paid = await method.createPayload({ challenge, request: challenge.request as never, url })
    const before = await balanceOf(info, payTo)
    return { before, present: () => send(handler, challenge, paid.payload, paid.source) }
  }

  it('a submission whose answer is lost after it landed is found on chain: served once, then refused', async (context) => {
    if (permit2Reason) return context.skip(permit2Reason)
    const losing = losingWallet()
    const { info, payTo, handler, runs } = setup(['permit2'], { amount: '900' }, { wallet: losing.wallet })
    const { before, present } = await permitFor(handler, info, payTo, 1)
    const first = await present()
    expect(first.status, await first.clone().text()).toBe(200)
    expect(losing.sent()).toBe(1)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    // The reference is the transaction that carried this permit.
    const reference = receipt(first)!.reference as Hex
    const sent = await walletOf(info, 0).getTransaction({ hash: reference })
    expect(sent.to?.toLowerCase()).toBe(Permit2.permit2Address.toLowerCase())
    // Presented again: refused, nothing submitted, nothing moved.
    const again = await present()
    expect(again.status).toBe(402)
    // (The core refuses the consumed challenge before the method sees it; a new challenge is refused by the witness.)
    expect(((await again.json()) as { type?: string }).type).toMatch(/invalid-challenge$/)
    expect(losing.sent()).toBe(1)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
  })

  it('when the lookup cannot run either, the 503 is followed by a retry that finds the landed permit', async (context) => {
    if (permit2Reason) return context.skip(permit2Reason)
    const losing = losingWallet()
    const base = walletOf(devnet.info, 0)
    let logsDown = true
    const client = {
      ...base,
      getLogs: (args: never) =>
        logsDown
          ? Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
          : base.getLogs(args),
    } as unknown as Reader
    const { info, payTo, handler, runs } = setup(
      ['permit2'],
      { amount: '900' },
      { wallet: losing.wallet, client },
    )
    const { before, present } = await permitFor(handler, info, payTo, 2)
    const first = await present()
    expect(first.status).toBe(503)
    expect(first.headers.get('retry-after')).toBe('1')
    expect(runs()).toBe(0)
    // The permit did land: the payer has paid, and a new submission would revert on its used nonce.
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    logsDown = false
    const retry = await present()
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    // The retry submitted nothing new (the simulation reverted on the used nonce) and nothing moved.
    expect(losing.sent()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    const third = await present()
    expect(third.status).toBe(402)
    expect(runs()).toBe(1)
  })

  it('a permit that never landed is not served by the lookup: the submission failure is the answer', async (context) => {
    if (permit2Reason) return context.skip(permit2Reason)
    const real = walletOf(devnet.info, 7)
    let attempts = 0
    const failing = {
      ...real,
      sendTransaction: async () => {
        attempts++
        throw new Error('socket hang up')
      },
    } as unknown as Wallet
    const { info, payTo, handler, runs } = setup(['permit2'], { amount: '900' }, { wallet: failing })
    const { before, present } = await permitFor(handler, info, payTo, 3)
    const first = await present()
    expect(first.status).toBe(503)
    expect(attempts).toBe(1)
    expect(runs()).toBe(0)
    expect(await balanceOf(info, payTo)).toBe(before)
  })
})

describe.skipIf(reason)('evm charge, type="transaction"', () => {
  it('our client signs a transfer, the server broadcasts it (the client pays gas)', async () => {
    const { info, payTo, client, runs } = setup(['transaction'])
    const payer = info.accounts[4]!.address
    const before = await balanceOf(info, payTo)
    const response = await client(4).fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    expect(receipt(response)).toMatchObject({ method: 'evm', chainId: info.chainId, payer })
    // The payer's own transaction (it pays the gas), broadcast by the server.
    const sent = await walletOf(info, 0).getTransaction({ hash: receipt(response)!.reference as Hex })
    expect(sent.from.toLowerCase()).toBe(payer.toLowerCase())
    expect(sent.to?.toLowerCase()).toBe(info.eip3009Token.toLowerCase())
  })

  it('refuses another amount, recipient, token or chain, a non-transfer call; copies settle once', async () => {
    const { info, payTo, handler, runs } = setup(['transaction'])
    const wallet = walletOf(info, 4)
    const sign = async (change: { to?: Hex; amount?: bigint; token?: Hex; chainId?: number; data?: Hex }) => {
      const request = await wallet.prepareTransactionRequest({
        to: change.token ?? info.eip3009Token,
        data:
          change.data ??
          encodeFunctionData({
            abi: erc20Abi,
            functionName: 'transfer',
            args: [change.to ?? payTo, change.amount ?? 900n],
          }),
        type: 'eip1559',
        gas: 100_000n,
      })
      // Signed by the account itself, so a wrong chain id is signed as given.
      const { account: _account, ...fields } = request as Record<string, unknown>
      return privateKeyToAccount(info.accounts[4]!.privateKey).signTransaction({
        ...fields,
        chainId: change.chainId ?? info.chainId,
      } as never)
    }
    const cases = {
      amount: await sign({ amount: 899n }),
      recipient: await sign({ to: info.accounts[5]!.address }),
      token: await sign({ token: info.tokens.pathUsd }),
      chain: await sign({ chainId: 1 }),
      call: await sign({
        data: encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [payTo, 900n] }),
      }),
      garbage: '0x02deadbeef' as Hex,
    }
    const reasons: Record<string, unknown> = {}
    for (const [name, signature] of Object.entries(cases))
      reasons[name] = (
        await (await send(handler, await challengeOf(handler), { type: 'transaction', signature })).json()
      ).reason
    expect(reasons).toMatchInlineSnapshot(`
      {
        "amount": "wrong-amount",
        "call": "wrong-call",
        "chain": "wrong-chain",
        "garbage": "malformed-transaction",
        "recipient": "wrong-recipient",
        "token": "wrong-asset",
      }
    `)
    // One signed transfer, sent with 10 concurrent copies and then against a new challenge.
    const signature = await sign({})
    const challenge = await challengeOf(handler)
    const before = await balanceOf(info, payTo)
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => send(handler, challenge, { type: 'transaction', signature })),
    )
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
    const again = await send(handler, await challengeOf(handler), { type: 'transaction', signature })
    expect((await again.json()).reason).toBe('transaction-used')
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
  })
})

describe.skipIf(reason)('evm charge, type="hash"', () => {
  it('our client broadcasts the transfer and presents its hash; the hash pays once', async () => {
    const { info, payTo, handler, runs } = setup(['hash'])
    const before = await balanceOf(info, payTo)
    let sent: string | undefined
    const spy = createClient({
      methods: [
        chargeClient({
          account: privateKeyToAccount(info.accounts[5]!.privateKey),
          wallet: walletOf(info, 5),
        }),
      ],
      fetch: asFetch(async (request) => {
        sent ??= request.headers.get('authorization') ?? undefined
        return handler(request)
      }),
    })
    const response = await spy.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    expect(runs()).toBe(1)
    // The hash against a new challenge: already consumed.
    const { payload } = Credential.parse(sent!)
    const again = await send(handler, await challengeOf(handler), payload)
    expect((await again.json()).reason).toBe('transaction-used')
    expect(runs()).toBe(1)
  })

  it('a transfer sent but not confirmed in time stays booked: the retry is refused by the budget, one transfer', async () => {
    const { info, payTo, handler, runs } = setup(['hash'])
    const before = await balanceOf(info, payTo)
    const real = walletOf(info, 5)
    let broadcasts = 0
    // The node takes the transfer (it is mined); the wait for its receipt times out.
    const wallet = Object.assign(Object.create(real), {
      sendRawTransaction: async (args: { serializedTransaction: Hex }) => {
        broadcasts++
        const hash = await real.sendRawTransaction(args)
        await real.waitForTransactionReceipt({ hash })
        return hash
      },
      waitForTransactionReceipt: async () => {
        throw new Error('timed out while waiting for the receipt')
      },
    })
    const client = createClient({
      methods: [chargeClient({ account: privateKeyToAccount(info.accounts[5]!.privateKey), wallet })],
      policy: { budget: { [info.eip3009Token]: 900n } },
      fetch: asFetch(handler),
    })
    const failed = await client.fetch(url).catch((error: unknown) => error)
    expect(failed).toBeInstanceOf(PaymentFailedError)
    expect((failed as PaymentFailedError).mayHaveSettled).toBe(true)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    // The money moved: a second attempt must not pay again.
    expect(await client.fetch(url).catch((error: unknown) => error)).toBeInstanceOf(PolicyError)
    expect(broadcasts).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(900n)
    expect(runs()).toBe(0)
  })

  it('refuses a hash of a transfer to someone else, for less, an unknown hash, and a payer other than the source', async () => {
    const { info, payTo, handler, runs } = setup(['hash'])
    const wallet = walletOf(info, 5)
    const transfer = async (to: Hex, amount: bigint) => {
      const hash = await wallet.writeContract({
        address: info.eip3009Token,
        abi: erc20Abi,
        functionName: 'transfer',
        args: [to, amount],
        gas: 100_000n,
      })
      await wallet.waitForTransactionReceipt({ hash })
      return hash
    }
    const cases = {
      recipient: { hash: await transfer(info.accounts[3]!.address, 900n) },
      amount: { hash: await transfer(payTo, 899n) },
      unknown: { hash: `0x${'ab'.repeat(32)}` },
      source: {
        hash: await transfer(payTo, 900n),
        source: `did:pkh:eip155:${info.chainId}:${info.accounts[2]!.address}`,
      },
    }
    const reasons: Record<string, unknown> = {}
    for (const [name, { hash, ...rest }] of Object.entries(cases))
      reasons[name] = (
        await (
          await send(handler, await challengeOf(handler), { type: 'hash', hash }, (rest as any).source)
        ).json()
      ).reason
    expect(reasons).toMatchInlineSnapshot(`
      {
        "amount": "transfer-mismatch",
        "recipient": "transfer-mismatch",
        "source": "transfer-mismatch",
        "unknown": "transaction-not-found",
      }
    `)
    expect(runs()).toBe(0)
  })
})

describe.skipIf(reason)('evm charge, one transaction presented as both types', () => {
  /** A transfer signed by dev account 4 (not broadcast), and its hash. */
  async function signed(info: TempoDevnet['info'], payTo: Hex) {
    const wallet = walletOf(info, 4)
    const request = await wallet.prepareTransactionRequest({
      to: info.eip3009Token,
      data: encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [payTo, 900n] }),
      type: 'eip1559',
      gas: 100_000n,
    })
    const { account: _account, ...fields } = request as Record<string, unknown>
    const signature = await privateKeyToAccount(info.accounts[4]!.privateKey).signTransaction(fields as never)
    return { signature, hash: keccak256(signature) }
  }

  it('pays once: the hash of a transaction the server broadcast is refused as used, and the other way round', async () => {
    const { info, payTo, handler, runs } = setup(['transaction', 'hash'])
    const before = await balanceOf(info, payTo)
    // Presented as a transaction (the server broadcasts it), then by its hash.
    const first = await signed(info, payTo)
    const paid = await send(handler, await challengeOf(handler), {
      type: 'transaction',
      signature: first.signature,
    })
    expect(paid.status, await paid.clone().text()).toBe(200)
    const byHash = await send(handler, await challengeOf(handler), { type: 'hash', hash: first.hash })
    expect(byHash.status).toBe(402)
    expect((await byHash.json()).reason).toBe('transaction-used')
    // Broadcast by the payer and presented by its hash, then as the signed transaction.
    const second = await signed(info, payTo)
    await walletOf(info, 0).sendRawTransaction({ serializedTransaction: second.signature })
    await walletOf(info, 0).waitForTransactionReceipt({ hash: second.hash })
    const paidByHash = await send(handler, await challengeOf(handler), { type: 'hash', hash: second.hash })
    expect(paidByHash.status, await paidByHash.clone().text()).toBe(200)
    const asTransaction = await send(handler, await challengeOf(handler), {
      type: 'transaction',
      signature: second.signature,
    })
    expect(asTransaction.status).toBe(402)
    expect((await asTransaction.json()).reason).toBe('transaction-used')
    expect(runs()).toBe(2)
    expect((await balanceOf(info, payTo)) - before).toBe(1800n)
  })

  it('refuses a transaction presented again after its claim expired: it is older than hashMaxAgeSeconds', async () => {
    // The claim lasts hashMaxAgeSeconds + 1 min; deleting it stands in for that wait.
    const store = new MemoryStore()
    const claims: string[] = []
    const putIfAbsent = store.putIfAbsent.bind(store)
    store.putIfAbsent = (...args: Parameters<typeof putIfAbsent>) => {
      if (args[0].includes('tx:')) claims.push(args[0])
      return putIfAbsent(...args)
    }
    const { info, payTo, handler, runs } = setup(
      ['transaction'],
      { amount: '900' },
      { hashMaxAgeSeconds: 1, store },
    )
    const { signature } = await signed(info, payTo)
    const paid = await send(handler, await challengeOf(handler), { type: 'transaction', signature })
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(claims).toHaveLength(1)
    await new Promise((resolve) => setTimeout(resolve, 2_100))
    await store.delete(claims[0]!)
    const again = await send(handler, await challengeOf(handler), { type: 'transaction', signature })
    expect(again.status).toBe(402)
    expect((await again.json()).reason).toBe('transaction-too-old')
    expect(runs()).toBe(1)
  })
})

describe.skipIf(reason)('evm charge, negotiation', () => {
  it('refuses a credential type the challenge does not list, and splits without permit2', async () => {
    const { info, handler, runs } = setup(['transaction', 'hash'])
    const challenge = await challengeOf(handler)
    const method = chargeClient({ account: privateKeyToAccount(info.accounts[1]!.privateKey) })
    // An authorization-only client cannot pay a transaction/hash challenge: it refuses before signing.
    await expect(
      method.createPayload({ challenge, request: challenge.request as never, url }),
    ).rejects.toThrow(/none of the offered credential types \(transaction, hash\)/)
    const response = await send(handler, challenge, {
      type: 'permit2',
      permit: {
        permitted: [{ token: info.eip3009Token, amount: '900' }],
        nonce: '1',
        deadline: '9999999999',
      },
      transferDetails: [{ to: info.accounts[6]!.address, requestedAmount: '900' }],
      witness: { challengeHash: `0x${'00'.repeat(32)}` },
      signature: `0x${'11'.repeat(65)}`,
    })
    expect((await response.json()).reason).toBe('credential-type')
    expect(runs()).toBe(0)
  })
})
