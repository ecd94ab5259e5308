import { generateKeyPairSigner } from '@solana/kit'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createFundedAccount } from '../../devnet/src/solana/index.js'
import { craft, transferChecked } from './craft.js'
import {
  rpcProxy,
  type SolanaNode,
  serve,
  signerOf,
  startSolana,
  tokenBalance,
  tokenWorld,
} from './helpers.js'

// What unauthenticated clients can make the server ask its RPC node: concurrent 402s share one recent
// blockhash and one lookup of each token account, and a slow node does not hold a 402 for its hints.
let node: SolanaNode
let world: Awaited<ReturnType<typeof tokenWorld>>
let proxy: Awaited<ReturnType<typeof rpcProxy>>

beforeAll(async () => {
  node = await startSolana()
  world = await tokenWorld(node)
})
afterAll(async () => {
  await node?.stop()
})
afterEach(async () => {
  await proxy?.close()
})

const base = () => ({
  rpcUrl: proxy.url,
  network: 'localnet' as const,
  currency: world.mint,
  decimals: 6,
  recipient: world.recipient.address,
})
const blockhashOf = (challenge: { request: { methodDetails?: unknown } }) =>
  (challenge.request.methodDetails as { recentBlockhash?: string }).recentBlockhash
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('reads shared by concurrent 402s', () => {
  it('20 concurrent 402s: one getLatestBlockhash and one lookup of the recipient account; the blockhash pays', async () => {
    proxy = await rpcProxy(node.info.rpcUrl)
    const served = serve(base())
    const challenges = await Promise.all(Array.from({ length: 20 }, () => served.challenge()))
    expect(proxy.calls('getLatestBlockhash')).toBe(1)
    expect(proxy.calls('getMultipleAccounts')).toBe(1)
    expect(proxy.calls('getAccountInfo')).toBe(1)
    const blockhash = blockhashOf(challenges[0]!)
    expect(blockhash).toMatch(/^[1-9A-HJ-NP-Za-km-z]{32,44}$/)
    expect(new Set(challenges.map(blockhashOf))).toEqual(new Set([blockhash]))
    // The shared blockhash is one the node accepts: a transaction built on it lands and is served.
    const before = await tokenBalance(node, world.mint, world.recipient.address)
    const transaction = await craft(
      node,
      world.payer,
      [
        await transferChecked({
          from: world.payer,
          to: world.recipient.address,
          mint: world.mint,
          amount: 1000n,
        }),
      ],
      blockhash,
    )
    const response = await served.submit(challenges[7]!, { type: 'transaction', transaction })
    expect(response.status).toBe(200)
    expect(await tokenBalance(node, world.mint, world.recipient.address)).toBe(before + 1000n)
  })

  it('the blockhash is not kept once answered: consecutive payments of one payer are distinct transactions', async () => {
    // Two payments of one payer for one charge on the same blockhash would be the identical transaction
    // (the second refused as already processed); the node's blockhash moves with each transaction.
    proxy = await rpcProxy(node.info.rpcUrl)
    const served = serve(base())
    const pay = async () => {
      const challenge = await served.challenge()
      const transaction = await craft(
        node,
        world.payer,
        [
          await transferChecked({
            from: world.payer,
            to: world.recipient.address,
            mint: world.mint,
            amount: 1000n,
          }),
        ],
        blockhashOf(challenge),
      )
      return (await served.submit(challenge, { type: 'transaction', transaction })).status
    }
    expect(await pay()).toBe(200)
    expect(await pay()).toBe(200)
    expect(proxy.calls('getLatestBlockhash')).toBe(2)
  })

  it('concurrent first lookups of a missing top-level token account: one getMultipleAccounts, every 402 refused', async () => {
    proxy = await rpcProxy(node.info.rpcUrl)
    const stranger = (await generateKeyPairSigner()).address
    const served = serve({ ...base(), recipient: stranger })
    const handler = served.handler
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => handler(new Request('https://solana.test/r'))),
    )
    // "If the top-level recipient's ATA does not exist, the server MUST NOT issue a challenge".
    expect(responses.map((response) => response.status)).toEqual(Array(20).fill(503))
    expect(
      responses.some((response) => /Payment /.test(response.headers.get('www-authenticate') ?? '')),
    ).toBe(false)
    expect(proxy.calls('getMultipleAccounts')).toBe(1)
  })

  it('concurrent verifications paying a missing split account: one getMultipleAccounts, all refused', async () => {
    proxy = await rpcProxy(node.info.rpcUrl)
    const split = (await generateKeyPairSigner()).address
    const served = serve({ ...base(), splits: [{ recipient: split, amount: '100' }] })
    const challenge = await served.challenge()
    const lookups = proxy.calls('getMultipleAccounts')
    const pay = (to: string, amount: bigint) =>
      transferChecked({ from: world.payer, to, mint: world.mint, amount })
    const transaction = await craft(node, world.payer, [
      await pay(world.recipient.address, 900n),
      await pay(split, 100n),
    ])
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        served.method.verify({
          challenge,
          request: challenge.request,
          payload: { type: 'transaction', transaction },
        } as never),
      ),
    )
    for (const result of results)
      expect(result).toMatchObject({ status: 'rejected', reason: { reason: 'recipient-account-missing' } })
    expect(proxy.calls('getMultipleAccounts')).toBe(lookups + 1)
  })
})

describe('a slow RPC node', () => {
  it('does not hold a 402 for the blockhash, mint and account hints; the late mint and account answers serve the next 402s', async () => {
    proxy = await rpcProxy(node.info.rpcUrl)
    for (const method of ['getLatestBlockhash', 'getAccountInfo', 'getMultipleAccounts'])
      proxy.hold(method, 3_000)
    // The token program is configured: the recipient's account is looked up beside the mint, not after it.
    const served = serve({ ...base(), tokenProgram: world.tokenProgram, timeout: 10_000 })
    const started = Date.now()
    const challenges = await Promise.all(Array.from({ length: 5 }, () => served.challenge()))
    expect(Date.now() - started).toBeLessThan(2_000)
    for (const challenge of challenges) expect(blockhashOf(challenge)).toBeUndefined()
    // A 402 meanwhile joins the reads in flight instead of sending its own.
    await served.challenge()
    expect(proxy.calls('getLatestBlockhash')).toBe(1)
    // The reads went on: once answered, the mint and the account serve the next 402s without asking again
    // (a blockhash is kept a second only: one answered 3 s ago is read again).
    for (const method of ['getLatestBlockhash', 'getAccountInfo', 'getMultipleAccounts'])
      proxy.hold(method, 0)
    await sleep(3_300)
    const again = Date.now()
    const later = await served.challenge()
    expect(Date.now() - again).toBeLessThan(500)
    expect(blockhashOf(later)).toBeDefined()
    expect(proxy.calls('getLatestBlockhash')).toBe(2)
    expect(proxy.calls('getAccountInfo')).toBe(1)
    expect(proxy.calls('getMultipleAccounts')).toBe(1)
  })

  it('answering in 0.6 s: the mint and the recipient account are read side by side, a missing account still refused', {
    retry: 2,
  }, async () => {
    proxy = await rpcProxy(node.info.rpcUrl)
    for (const method of ['getAccountInfo', 'getMultipleAccounts']) proxy.hold(method, 600)
    const stranger = (await generateKeyPairSigner()).address
    const served = serve({ ...base(), tokenProgram: world.tokenProgram, recipient: stranger })
    const response = await served.handler(new Request('https://solana.test/r'))
    expect(response.status).toBe(503)
    expect(response.headers.get('www-authenticate') ?? '').not.toMatch(/Payment /)
    // Timed (0.6 s reads against the 1 s hint wait): retried on a loaded machine, where one pause can
    // push two side-by-side reads past the wait.
  })

  it('a fee payer balance re-read slower than the hint wait: the 402 goes by the previous answer', async () => {
    proxy = await rpcProxy(node.info.rpcUrl)
    const feePayer = await signerOf(await createFundedAccount(node))
    const served = serve({ ...base(), feePayer })
    expect((await served.challenge()).request.methodDetails).toMatchObject({ feePayer: true })
    expect(proxy.calls('getBalance')).toBe(1)
    // The balance is re-read after 5 s; that read now takes 3 s.
    proxy.hold('getBalance', 3_000)
    await sleep(5_100)
    const started = Date.now()
    const challenge = await served.challenge()
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(proxy.calls('getBalance')).toBe(2)
    expect(challenge.request.methodDetails).toMatchObject({ feePayer: true, feePayerKey: feePayer.address })
  }, 15_000)
})
