import { createSolanaRpc, generateKeyPairSigner, type KeyPairSigner } from '@solana/kit'
import {
  getSetComputeUnitLimitInstruction,
  getSetComputeUnitPriceInstruction,
} from '@solana-program/compute-budget'
import { getAddMemoInstruction } from '@solana-program/memo'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount, createMint, mintTo } from '../../devnet/src/solana/index.js'
import { craft, transferChecked, transferSol } from './craft.js'
import {
  rpcProxy,
  type SolanaNode,
  serve,
  signerOf,
  startSolana,
  tokenBalance,
  tokenWorld,
} from './helpers.js'

// Each problem the server must answer, with a transaction crafted to have exactly that defect.
let node: SolanaNode
let world: Awaited<ReturnType<typeof tokenWorld>>
const amount = 1000n

beforeAll(async () => {
  node = await startSolana()
  world = await tokenWorld(node)
})
afterAll(async () => {
  await node?.stop()
})

const base = () => ({
  rpcUrl: node.info.rpcUrl,
  network: 'localnet' as const,
  currency: world.mint,
  decimals: 6,
  recipient: world.recipient.address,
})
const problem = async (response: Response) => {
  expect(response.status).toBe(402)
  expect(response.headers.get('www-authenticate')).toMatch(/^Payment /)
  return (await response.json()) as { type: string; reason?: string; detail?: string }
}
const pay = (
  to = world.recipient.address,
  value = amount,
  extra: Partial<Parameters<typeof transferChecked>[0]> = {},
) => transferChecked({ from: world.payer, to, mint: world.mint, amount: value, ...extra })

describe('solana/charge problems (pull)', () => {
  const cases: [string, () => Promise<string>, string][] = [
    [
      'wrong amount',
      async () => craft(node, world.payer, [await pay(undefined, amount - 1n)]),
      'amount-mismatch',
    ],
    [
      'wrong recipient',
      async () => craft(node, world.payer, [await pay((await generateKeyPairSigner()).address)]),
      'recipient-mismatch',
    ],
    [
      'wrong decimals',
      async () => craft(node, world.payer, [await pay(undefined, amount, { decimals: 5 })]),
      'decimals-mismatch',
    ],
    [
      'wrong token program',
      async () =>
        craft(node, world.payer, [
          await pay(undefined, amount, {
            program: 'TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb',
            ataProgram: 'TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA',
          }),
        ]),
      'token-program-mismatch',
    ],
    [
      'wrong mint',
      async () => {
        const other = await createMint(node, { decimals: 6 })
        await mintTo(node, { mint: other.mint, owner: world.payer.address, amount: 10_000n })
        return craft(node, world.payer, [
          await transferChecked({ from: world.payer, to: world.recipient.address, mint: other.mint, amount }),
        ])
      },
      'currency-mismatch',
    ],
    ['missing transfer', async () => craft(node, world.payer, []), 'missing-transfer'],
    [
      'an extra instruction outside the allowlist',
      async () =>
        craft(node, world.payer, [await pay(), transferSol(world.payer, world.recipient.address, 1n)]),
      'unexpected-instruction',
    ],
  ]
  for (const [name, build, reason] of cases)
    it(`${name} → verification-failed (${reason}), nothing sent`, async () => {
      const served = serve(base())
      const before = node.ledger.transactionCount
      const body = await problem(
        await served.submit(await served.challenge(), { type: 'transaction', transaction: await build() }),
      )
      expect(body).toMatchObject({ type: 'https://paymentauth.org/problems/verification-failed', reason })
      expect(served.runs()).toBe(0)
      if (name !== 'wrong mint') expect(node.ledger.transactionCount).toBe(before)
    })

  it('a payer-paid transaction that would fail is refused by preflight; nothing lands', async () => {
    const served = serve(base())
    const broke = await signerOf(await createFundedAccount(node)) // SOL for fees, no tokens
    const count = node.ledger.transactionCount
    const transaction = await craft(node, broke, [
      await transferChecked({ from: broke, to: world.recipient.address, mint: world.mint, amount }),
    ])
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'transaction', transaction }),
    )
    expect(body.reason).toBe('simulation-failed')
    expect(node.ledger.transactionCount).toBe(count)
  })

  it('missing externalId memo binding → missing-memo', async () => {
    const served = serve(base(), { method: 'solana', request: { amount: '1000', externalId: 'order-1' } })
    const body = await problem(
      await served.submit(await served.challenge(), {
        type: 'transaction',
        transaction: await craft(node, world.payer, [await pay()]),
      }),
    )
    expect(body.reason).toBe('missing-memo')
  })

  it('blockhash expired → blockhash-expired, and the signature is not burnt', async () => {
    const served = serve(base())
    const stale = await craft(node, world.payer, [await pay()])
    node.advanceSlots(152)
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'transaction', transaction: stale }),
    )
    expect(body.reason).toBe('blockhash-expired')
  })

  it('the same signed transaction for a second challenge → replayed-signature; paid once', async () => {
    const served = serve(base())
    const before = await tokenBalance(node, world.mint, world.recipient.address)
    const transaction = await craft(node, world.payer, [await pay()])
    expect((await served.submit(await served.challenge(), { type: 'transaction', transaction })).status).toBe(
      200,
    )
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'transaction', transaction }),
    )
    expect(body.reason).toBe('replayed-signature')
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(before + amount)
  })

  it('a landed pull transaction presented again after its signature key expired → transaction-too-old; paid once', async () => {
    // The signature's key lives twice the replay window (2 s here); the landed transaction is public.
    const served = serve({ ...base(), replayWindowSeconds: 1 })
    const before = await tokenBalance(node, world.mint, world.recipient.address)
    const transaction = await craft(node, world.payer, [await pay()])
    expect((await served.submit(await served.challenge(), { type: 'transaction', transaction })).status).toBe(
      200,
    )
    await new Promise((resolve) => setTimeout(resolve, 2300))
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'transaction', transaction }),
    )
    expect(body.reason).toBe('transaction-too-old')
    expect(served.runs()).toBe(1)
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(before + amount)
  })

  it('concurrent double submit of one credential: one settlement', async () => {
    const served = serve(base())
    const before = await tokenBalance(node, world.mint, world.recipient.address)
    const challenge = await served.challenge()
    const transaction = await craft(node, world.payer, [await pay()])
    const responses = await Promise.all(
      Array.from({ length: 8 }, () => served.submit(challenge, { type: 'transaction', transaction })),
    )
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
    expect(responses.some((r) => r.status >= 500 && r.status !== 503)).toBe(false)
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(before + amount)
    expect(served.runs()).toBe(1)
  })

  it('a transaction that lands as its blockhash expires is not refused as expired (a lagging node)', async () => {
    // The server reads status, then blockhash validity, perhaps from different nodes behind one URL: a
    // node not yet aware of the transaction, then one past its blockhash. Refusing then (and releasing
    // the signature) would answer 402 for a payment that landed, and the client would pay again.
    let lag = true
    const lagging = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const body = JSON.parse(String(init?.body)) as { id: number; method: string; params: unknown[] }
      const answer = (result: unknown) => Response.json({ jsonrpc: '2.0', id: body.id, result })
      if (lag && body.method === 'getTransaction') return answer(null)
      if (lag && body.method === 'getSignatureStatuses') {
        lag = false
        return answer({ context: { slot: 1 }, value: [null] })
      }
      if (body.method === 'isBlockhashValid') return answer({ context: { slot: 1 }, value: false })
      return fetch(input, init)
    }) as typeof fetch
    const served = serve({ ...base(), fetch: lagging, recentBlockhash: false })
    const before = await tokenBalance(node, world.mint, world.recipient.address)
    const transaction = await craft(node, world.payer, [await pay()])
    const response = await served.submit(await served.challenge(), { type: 'transaction', transaction })
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(before + amount)
    expect(response.status).toBe(200)
    expect(served.runs()).toBe(1)
  })

  it('RPC refusing connections → 503 + Retry-After; the same credential succeeds after, one transfer', async () => {
    const proxy = await rpcProxy(node.info.rpcUrl)
    try {
      const served = serve({ ...base(), rpcUrl: proxy.url, recentBlockhash: false, timeout: 1000 })
      const before = await tokenBalance(node, world.mint, world.recipient.address)
      const challenge = await served.challenge()
      const transaction = await craft(node, world.payer, [await pay()])
      // The mint and the recipient's account were read for the challenge (cached): the first call of
      // this settlement is the sendTransaction, refused before it was written, so nothing was sent.
      await proxy.set('down')
      const down = await served.submit(challenge, { type: 'transaction', transaction })
      expect(down.status).toBe(503)
      expect(Number(down.headers.get('retry-after'))).toBeGreaterThan(0)
      expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(before)
      await proxy.set('up')
      expect((await served.submit(challenge, { type: 'transaction', transaction })).status).toBe(200)
      expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(before + amount)
    } finally {
      await proxy.close()
    }
  })

  it.each([
    ['the node took the transaction and its answer was lost', 'lost-after-send'],
    ['the send was answered, then the gateway failed before the confirmation', 'errors-after-send'],
  ] as const)(
    '%s → 503 + Retry-After; the same credential, resent, serves once (one transfer)',
    async (_, mode) => {
      // A pull settlement is idempotent per transaction signature: the claim the server already holds makes
      // it ask the node before sending again, so a resend completes the one payment instead of making two.
      const proxy = await rpcProxy(node.info.rpcUrl)
      try {
        const served = serve({ ...base(), rpcUrl: proxy.url, recentBlockhash: false, timeout: 1000 })
        const before = await tokenBalance(node, world.mint, world.recipient.address)
        const challenge = await served.challenge()
        const transaction = await craft(node, world.payer, [await pay()])
        await proxy.set(mode)
        const failed = await served.submit(challenge, { type: 'transaction', transaction })
        expect(failed.status).toBe(503)
        expect(Number(failed.headers.get('retry-after'))).toBeGreaterThan(0)
        expect(served.runs()).toBe(0)
        await proxy.set('up')
        const resent = await served.submit(challenge, { type: 'transaction', transaction })
        expect(resent.status).toBe(200)
        expect(served.runs()).toBe(1)
        expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(before + amount)
        // Used now: the same credential again is refused and moves nothing.
        const again = await served.submit(challenge, { type: 'transaction', transaction })
        expect(again.status).not.toBe(200)
        expect(served.runs()).toBe(1)
        expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(before + amount)
      } finally {
        await proxy.close()
      }
    },
  )
})

describe('solana/charge fee payer protection', () => {
  let feePayer: KeyPairSigner
  beforeAll(async () => {
    feePayer = await signerOf(await createFundedAccount(node))
  })
  const sponsored = () => ({ ...base(), feePayer })

  it('a transaction that also moves the fee payer lamports → fee-payer-at-risk, not co-signed', async () => {
    const served = serve(sponsored())
    const attacker = await generateKeyPairSigner()
    const drain = transferSol(feePayer, attacker.address, 1_000_000n)
    // The client cannot sign for the fee payer: the drain relies on the server's co-signature.
    const transaction = await craft(node, feePayer.address, [
      await pay(),
      { ...drain, accounts: (drain.accounts ?? []).map((a) => ({ address: a.address, role: a.role })) },
    ])
    const before = node.ledger.balance(feePayer.address)
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'transaction', transaction }),
    )
    expect(body.reason).toBe('fee-payer-at-risk')
    expect(node.ledger.balance(attacker.address)).toBe(0n)
    expect(node.ledger.balance(feePayer.address)).toBe(before)
  })

  it('a sponsored transaction that would fail is simulated and refused; the fee payer pays nothing', async () => {
    const served = serve(sponsored())
    const broke = await generateKeyPairSigner() // holds no tokens: the transfer would fail on chain
    const transaction = await craft(node, feePayer.address, [
      await transferChecked({ from: broke, to: world.recipient.address, mint: world.mint, amount }),
    ])
    const before = node.ledger.balance(feePayer.address)
    const count = node.ledger.transactionCount
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'transaction', transaction }),
    )
    expect(body.reason).toBe('simulation-failed')
    expect(node.ledger.balance(feePayer.address)).toBe(before)
    expect(node.ledger.transactionCount).toBe(count)
  })

  it('a priority fee without a compute-unit limit → compute-budget; the runtime default limit cannot exceed maxComputeUnitLimit', async () => {
    // Without SetComputeUnitLimit the runtime reserves 200 000 CU per instruction (here 600 000), and
    // the fee payer pays the priority fee on all of it: above the server's 400 000 CU policy.
    const served = serve(sponsored())
    const transaction = await craft(node, feePayer.address, [
      getSetComputeUnitPriceInstruction({ microLamports: 1_000_000n }),
      await pay(),
      getAddMemoInstruction({ memo: 'a' }),
      getAddMemoInstruction({ memo: 'b' }),
    ])
    const before = node.ledger.balance(feePayer.address)
    const count = node.ledger.transactionCount
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'transaction', transaction }),
    )
    expect(body.reason).toBe('compute-budget')
    expect(node.ledger.balance(feePayer.address)).toBe(before)
    expect(node.ledger.transactionCount).toBe(count)
    // With an explicit limit within the policy, the same payment is co-signed.
    const limited = await craft(node, feePayer.address, [
      getSetComputeUnitLimitInstruction({ units: 400_000 }),
      getSetComputeUnitPriceInstruction({ microLamports: 1_000_000n }),
      await pay(),
      getAddMemoInstruction({ memo: 'a' }),
      getAddMemoInstruction({ memo: 'b' }),
    ])
    expect(
      (await served.submit(await served.challenge(), { type: 'transaction', transaction: limited })).status,
    ).toBe(200)
  })

  it('a sponsored transaction whose payer signature is invalid is refused at simulation, not awaited', async () => {
    // A cluster's RPC forwards a skipPreflight transaction without checking its signatures, and the
    // leader drops it: the server would wait for a transaction that never lands, then answer 503. The
    // node here behaves so for every skipPreflight send.
    const forwarded: string[] = []
    const dropping = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const body = JSON.parse(String(init?.body)) as { id: number; method: string; params: unknown[] }
      if (
        body.method === 'sendTransaction' &&
        (body.params[1] as { skipPreflight?: boolean }).skipPreflight
      ) {
        forwarded.push(String(body.params[0]))
        return Response.json({ jsonrpc: '2.0', id: body.id, result: '1'.repeat(64) })
      }
      return fetch(input, init)
    }) as typeof fetch
    const served = serve({ ...sponsored(), fetch: dropping, confirmTimeout: 1_500 })
    const signed = Buffer.from(await craft(node, feePayer.address, [await pay()]), 'base64')
    // Signatures: [fee payer slot (empty), payer]; flip a byte of the payer's.
    signed[1 + 64 + 10]! ^= 0xff
    const transaction = signed.toString('base64')
    const started = Date.now()
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'transaction', transaction }),
    )
    expect(body.reason).toBe('invalid-signature')
    expect(forwarded).toEqual([])
    expect(Date.now() - started).toBeLessThan(1_500)
  })

  it('a fee payer below minFeePayerLamports is not offered: challenges fall back to client-paid fees', async () => {
    const poor = await signerOf(await createFundedAccount(node, { lamports: 5_000_000n }))
    const served = serve({ ...base(), feePayer: poor })
    const details = (await served.challenge()).request.methodDetails as Record<string, unknown>
    expect(details.feePayer).toBeUndefined()
    expect(details.feePayerKey).toBeUndefined()
    // The client pays its own fees, and the payment goes through.
    const transaction = await craft(node, world.payer, [await pay()])
    expect((await served.submit(await served.challenge(), { type: 'transaction', transaction })).status).toBe(
      200,
    )
    expect(node.ledger.balance(poor.address)).toBe(5_000_000n)
    const rich = serve({ ...base(), feePayer })
    expect((await rich.challenge()).request.methodDetails).toMatchObject({
      feePayer: true,
      feePayerKey: feePayer.address,
    })
  })

  it('a transaction naming another fee payer → fee-payer-mismatch', async () => {
    const served = serve(sponsored())
    const body = await problem(
      await served.submit(await served.challenge(), {
        type: 'transaction',
        transaction: await craft(node, world.payer, [await pay()]),
      }),
    )
    expect(body.reason).toBe('fee-payer-mismatch')
  })

  it('push credential for a fee-sponsored challenge → mode-unsupported', async () => {
    const served = serve(sponsored())
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'signature', signature: '1'.repeat(64) }),
    )
    expect(body.reason).toBe('mode-unsupported')
  })
})

describe('solana/charge problems (push)', () => {
  const send = async (transaction: string, skipPreflight = false) =>
    createSolanaRpc(node.info.rpcUrl)
      .sendTransaction(transaction as never, { encoding: 'base64', skipPreflight })
      .send()

  it('a failed transaction → transaction-failed', async () => {
    const served = serve(base())
    const signature = await send(await craft(node, world.payer, [await pay(undefined, 10n ** 15n)]), true)
    expect(node.ledger.history.get(signature)?.err).not.toBeNull()
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'signature', signature }),
    )
    expect(body.reason).toBe('transaction-failed')
  })

  it('a replayed signature → replayed-signature', async () => {
    const served = serve(base())
    const signature = await send(await craft(node, world.payer, [await pay()]))
    expect((await served.submit(await served.challenge(), { type: 'signature', signature })).status).toBe(200)
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'signature', signature }),
    )
    expect(body.reason).toBe('replayed-signature')
  })

  it('an unknown signature → transaction-not-found', async () => {
    const served = serve(base())
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'signature', signature: '5'.repeat(88) }),
    )
    expect(body.reason).toBe('transaction-not-found')
  })

  it('not yet confirmed → transaction-not-found; accepted once confirmed', async () => {
    const slow = await startSolana({ commitment: { confirmed: 2, finalized: 6 } })
    try {
      const w = await tokenWorld(slow)
      slow.advanceSlots(8)
      const served = serve({
        ...base(),
        rpcUrl: slow.info.rpcUrl,
        currency: w.mint,
        recipient: w.recipient.address,
      })
      const signature = await createSolanaRpc(slow.info.rpcUrl)
        .sendTransaction(
          (await craft(slow, w.payer, [
            await transferChecked({ from: w.payer, to: w.recipient.address, mint: w.mint, amount }),
          ])) as never,
          { encoding: 'base64' },
        )
        .send()
      const challenge = await served.challenge()
      const body = await problem(await served.submit(challenge, { type: 'signature', signature }))
      expect(body.reason).toBe('transaction-not-found')
      slow.advanceSlots(2)
      expect((await served.submit(await served.challenge(), { type: 'signature', signature })).status).toBe(
        200,
      )
    } finally {
      await slow.stop()
    }
  })

  it('a push transaction older than the replay window → transaction-too-old', async () => {
    const served = serve({ ...base(), replayWindowSeconds: 1 })
    const signature = await send(await craft(node, world.payer, [await pay()]))
    await new Promise((resolve) => setTimeout(resolve, 2100))
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'signature', signature }),
    )
    expect(body.reason).toBe('transaction-too-old')
  })
})

describe('solana/charge bad input → a problem, never a 500', () => {
  const payloads: [string, Record<string, unknown>][] = [
    ['base58 garbage signature', { type: 'signature', signature: '0OIl'.repeat(22) }],
    ['oversize transaction', { type: 'transaction', transaction: 'A'.repeat(4000) }],
    ['not base64', { type: 'transaction', transaction: '%%%not-base64%%%' }],
    ['base64url instead of base64', { type: 'transaction', transaction: 'AQ-_'.repeat(10) }],
    [
      'random bytes',
      { type: 'transaction', transaction: Buffer.from('hello solana world').toString('base64') },
    ],
    ['empty', { type: 'transaction', transaction: '' }],
    ['unknown type', { type: 'hash', hash: 'x' }],
    ['bundle (confidential)', { type: 'bundle', transactions: ['AQID'] }],
  ]
  for (const [name, payload] of payloads)
    it(name, async () => {
      const served = serve(base())
      const response = await served.submit(await served.challenge(), payload)
      expect(response.status).toBe(402)
      expect(response.headers.get('content-type')).toMatch(/problem\+json/)
    })

  it('a base58 signature that is not 64 bytes → malformed-credential, before any node is asked', async () => {
    // Agave answers such a signature with -32602 "Invalid param: WrongSize"; it must never become a 503.
    for (const signature of ['z'.repeat(88), '2'.repeat(64)]) {
      const served = serve(base())
      const body = await problem(
        await served.submit(await served.challenge(), { type: 'signature', signature }),
      )
      expect(body.type).toMatch(/malformed-credential$/)
    }
  })

  it('bundle is refused clearly', async () => {
    const served = serve(base())
    const body = await problem(
      await served.submit(await served.challenge(), { type: 'bundle', transactions: ['AQID'] }),
    )
    expect(body.reason).toBe('confidential-unsupported')
  })
})
