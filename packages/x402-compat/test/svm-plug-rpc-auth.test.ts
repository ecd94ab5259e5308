import { inspect } from 'node:util'
import { type Challenge, create as createClient, type Method } from '@mppkit/core/client'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { type SolanaNode, startSolana } from '../../devnet/src/solana/index.js'
import { svm as svmClient, x402 as x402Plug } from '../src/client/index.js'
import { basicAuthRpc } from './basic-auth-rpc.js'
import { asFetch } from './peers.js'
import { honoSvmServer, network, svmFacilitator, world } from './svm-peers.js'

// The x402 plug's decimals lookup (the mint account, read with `getAccountInfo` on `svm.rpcUrl`) through a
// Solana RPC behind Basic auth: a local proxy in front of the devnet's LiteSVM RPC that answers 401 to a
// request without the right `Authorization: Basic`. The URL carries `user:password@`, which fetch refuses
// (quoting the URL whole): the lookup must send it as the header, and when the RPC refuses it, skip the
// offer with its documented reason (decimals unknown, never guessed) without naming the credentials.
const user = 'rpc-user'
const password = 'p@ss:wörd-Secret' // percent-encoded in the URL; the header carries it decoded
const wrongPassword = 'wrong-Guess-pw'
let node: SolanaNode
let proxy: Awaited<ReturnType<typeof basicAuthRpc>>
const seen = () => proxy.seen

const urlWith = (userinfo: string) => `http://${userinfo}127.0.0.1:${proxy.port}`
const authUrl = () => urlWith(`${user}:${encodeURIComponent(password)}@`)

beforeAll(async () => {
  node = await startSolana()
  proxy = await basicAuthRpc(node.info.rpcUrl, user, password)
})
afterAll(async () => {
  await proxy?.close()
  await node?.stop()
})
afterEach(() => {
  vi.restoreAllMocks()
})

const url = 'http://localhost/paid'

/** Whether any text of `value` carries a password (raw or percent-encoded) or the URL's userinfo. */
const leaks = (value: unknown) => {
  const text = inspect(value, { depth: 10 })
  return [
    password,
    encodeURIComponent(password),
    'Secret',
    wrongPassword,
    `${user}:`,
    `${user}@`,
    '@127.0.0.1',
  ].some((secret) => text.includes(secret))
}

/** Everything written to the console while `run` runs. */
async function consoleOf<T>(run: () => Promise<T>): Promise<{ result: T; lines: unknown[][] }> {
  const lines: unknown[][] = []
  for (const name of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const)
    vi.spyOn(console, name).mockImplementation((...args: unknown[]) => {
      lines.push(args)
    })
  const result = await run()
  vi.restoreAllMocks()
  return { result, lines }
}

/**
 * A paying client whose only RPC for decimals is `rpcUrl` (the plug has no decimals table), with a
 * cross-rail budget that prices a quote by its decimals and records every quote it is asked to price.
 * The method's own reads go straight to the devnet: the proxy sees only the plug's lookup.
 */
async function setup(rpcUrl: string, decimals = 4) {
  const w = await world(node, { decimals })
  const fac = await svmFacilitator(node)
  const server = honoSvmServer({
    facilitator: fac.client,
    payTo: w.recipient.address,
    mint: w.mint,
    amount: '1000',
  })
  const skipped: { reason: string; requirement: unknown }[] = []
  const priced: Method.Quote[] = []
  const options: x402Plug.Options = {
    svm: { rpcUrl },
    onSkip: ({ reason, requirement }) => skipped.push({ reason, requirement }),
  }
  const client = createClient({
    methods: [svmClient({ signer: w.payer, rpcUrl: node.info.rpcUrl })],
    protocols: [x402Plug(options)],
    policy: {
      crossRail: {
        unit: 'TOKEN',
        budget: 1,
        // One whole token is one unit: a price only with the mint's decimals, never a guess.
        price: (quote) => {
          priced.push(quote)
          return quote.currency === w.mint && quote.decimals !== undefined
            ? { numerator: quote.amount, denominator: 10n ** BigInt(quote.decimals) }
            : undefined
        },
      },
    },
    fetch: asFetch((request) => server.fetch(request)),
  })
  return { w, fac, server, client, skipped, priced, plug: x402Plug(options) }
}

describe('x402 plug: the mint decimals lookup through an RPC URL with user:password@', () => {
  it('reads the decimals through the authenticated RPC (Basic auth, never the URL), prices the quote with them, and pays', async () => {
    const { w, fac, server, client, skipped, priced, plug } = await setup(authUrl(), 4)
    // The plug alone: the challenge carries the mint's decimals, read through the proxy.
    let from = seen().length
    const [challenge] = (await plug.challenges(await server.fetch(new Request(url)))) as Challenge.Challenge[]
    expect(challenge).toMatchObject({
      method: 'solana',
      request: { currency: w.mint, methodDetails: { caip2: network, decimals: 4 } },
    })
    expect(seen().slice(from)).toEqual([{ method: 'getAccountInfo', authorized: true, status: 200 }])

    // Through the client: the cross-rail budget prices 1000 base units at 4 decimals, and the payment settles.
    from = seen().length
    const { result: response, lines } = await consoleOf(() => client.fetch(url))
    expect(response.status, await response.clone().text()).toBe(200)
    expect(server.runs()).toBe(1)
    expect(fac.counts.settled).toBe(1)
    expect(skipped).toEqual([])
    expect(priced.map((quote) => quote.decimals)).toEqual([4])
    expect(seen().slice(from)).toEqual([{ method: 'getAccountInfo', authorized: true, status: 200 }])
    expect(leaks(lines)).toBe(false)
  })

  it.each([
    ['a wrong password', () => urlWith(`${user}:${encodeURIComponent(wrongPassword)}@`)],
    ['a wrong user', () => urlWith(`someone-else:${encodeURIComponent(password)}@`)],
    ['no credentials', () => urlWith('')],
  ])(
    '%s: the RPC answers 401, the offer is skipped as decimals unknown (never guessed), and nothing names the credentials',
    async (_, rpcUrl) => {
      const { fac, server, client, skipped, priced, plug } = await setup(rpcUrl(), 4)
      let from = seen().length
      const { result: challenges, lines: plugLines } = await consoleOf(async () =>
        plug.challenges(await server.fetch(new Request(url))),
      )
      expect(challenges).toEqual([])
      // The lookup did reach the RPC (it was not refused by fetch before leaving) and was refused there.
      expect(seen().slice(from)).toEqual([{ method: 'getAccountInfo', authorized: false, status: 401 }])

      from = seen().length
      const { result: response, lines } = await consoleOf(() => client.fetch(url))
      // No offer the client can price: the 402 comes back unpaid, nothing was priced, signed or settled.
      expect(response.status).toBe(402)
      expect(priced).toEqual([])
      expect(server.runs()).toBe(0)
      expect(fac.counts.verify).toBe(0)
      expect(seen().slice(from)).toEqual([{ method: 'getAccountInfo', authorized: false, status: 401 }])
      expect(skipped).toHaveLength(2)
      for (const { reason } of skipped)
        expect(reason).toMatch(
          /^decimals of mint [1-9A-HJ-NP-Za-km-z]{32,44} are unknown: svm\.rpcUrl did not give them \(a refusal, no answer, or not a token mint there\); name them in the decimals option$/,
        )
      expect(leaks(skipped)).toBe(false)
      expect(leaks(plugLines)).toBe(false)
      expect(leaks(lines)).toBe(false)
      expect(leaks(await response.text())).toBe(false)
    },
  )

  it('credentials that are not valid percent-encoding: no request is sent, the offer is skipped, nothing names them', async () => {
    const { server, client, skipped, priced } = await setup(urlWith(`${user}:%zz-Secret@`), 4)
    const from = seen().length
    const { result: response, lines } = await consoleOf(() => client.fetch(url))
    expect(response.status).toBe(402)
    expect(priced).toEqual([])
    expect(server.runs()).toBe(0)
    expect(seen().slice(from)).toEqual([])
    expect(skipped.map(({ reason }) => reason)).toEqual([
      expect.stringMatching(/^decimals of mint .* are unknown/),
    ])
    expect(leaks(skipped)).toBe(false)
    expect(leaks(lines)).toBe(false)
  })
})
