// The `evm` client confirms on chain the `decimals` a challenge names (what a cross-rail budget priced the
// payment with) before it signs anything, on anvil with the devnet's 6-decimal EIP-3009 token.
import net from 'node:net'
import { create as createClient, PolicyError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import {
  type Address,
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
  publicActions,
  toFunctionSelector,
} from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { charge as chargeClient } from '../src/client/index.js'
import { charge } from '../src/server/index.js'
import { asFetch, balanceOf, chainOf, walletOf } from './peers.js'
import { url } from './requests.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
beforeAll(async () => {
  if (!reason) devnet = await startTempo({ accounts: 8 })
})
afterAll(async () => {
  await devnet?.stop()
})

const decimalsSelector = toFunctionSelector('decimals()')

/** The JSON-RPC methods a viem transport sent (`decimals()` calls named apart), for counting reads. */
function recorder() {
  const calls: string[] = []
  const onFetchRequest = async (request: Request) => {
    const body = (await request.clone().json()) as
      | { method: string; params?: unknown[] }
      | { method: string; params?: unknown[] }[]
    for (const { method, params } of Array.isArray(body) ? body : [body]) {
      const data = (params?.[0] as { data?: Hex; input?: Hex } | undefined) ?? {}
      const input = data.data ?? data.input
      calls.push(method === 'eth_call' && input?.startsWith(decimalsSelector) ? 'decimals()' : method)
    }
  }
  return { calls, onFetchRequest }
}

/** A wallet client with public actions for dev account `index`, recording its RPC calls. */
function countedWallet(index: number) {
  const { calls, onFetchRequest } = recorder()
  const wallet = createWalletClient({
    account: privateKeyToAccount(devnet.info.accounts[index]!.privateKey),
    chain: chainOf(devnet.info),
    transport: http(devnet.info.rpcUrl, { timeout: 10_000, onFetchRequest }),
  }).extend(publicActions)
  return { wallet, calls }
}

/** Dev account `index` as a payer whose typed-data signatures are counted. */
function countedAccount(index: number) {
  const account = privateKeyToAccount(devnet.info.accounts[index]!.privateKey)
  const signed = { count: 0 }
  return {
    signed,
    account: {
      ...account,
      signTypedData: (async (data: Parameters<typeof account.signTypedData>[0]) => {
        signed.count++
        return account.signTypedData(data)
      }) as typeof account.signTypedData,
    },
  }
}

/**
 * An mppkit server selling `amount` of `currency` (default the devnet's EIP-3009 token) to dev account 6
 * as an `authorization`, naming `decimals` in its challenge, settled by dev account 7; it counts the
 * requests that carried a credential and the handler's runs.
 */
function server(options: { amount: string; decimals: number; currency?: Address }) {
  const info = devnet.info
  const payTo = info.accounts[6]!.address
  const methods = [
    charge({
      chainId: info.chainId,
      currency: options.currency ?? info.eip3009Token,
      recipient: payTo,
      credentialTypes: ['authorization'],
      domain: { name: info.eip3009.name, version: info.eip3009.version },
      decimals: options.decimals,
      wallet: walletOf(info, 7),
    }),
  ]
  const mpp = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    methods,
  })
  let runs = 0
  const handler = mpp.protect({ offers: [{ method: 'evm', request: { amount: options.amount } }] }, () => {
    runs++
    return new Response('paid content')
  })
  const credentials = { count: 0 }
  const fetch = asFetch(async (request) => {
    if (request.headers.has('authorization')) credentials.count++
    return handler(request)
  })
  return { payTo, fetch, credentials, runs: () => runs }
}

/**
 * A cross-rail budget of one whole token (USD-like): a quote is priced by the decimals it carries, which
 * is what a lying server's 18 decimals would shrink 10^12 times. Every priced quote is recorded.
 */
function crossRail(token: Address) {
  const priced: { decimals: number | undefined }[] = []
  return {
    priced,
    policy: {
      crossRail: {
        unit: 'USD',
        budget: 1,
        price: (quote: { amount: bigint; currency: string; decimals?: number }) => {
          priced.push({ decimals: quote.decimals })
          return quote.currency.toLowerCase() === token.toLowerCase() && quote.decimals !== undefined
            ? { numerator: quote.amount, denominator: 10n ** BigInt(quote.decimals) }
            : undefined
        },
      },
    },
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on (the OS picks it, then it is closed). */
async function closedPort(): Promise<number> {
  const listener = net.createServer()
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve))
  const { port } = listener.address() as net.AddressInfo
  await new Promise<void>((resolve) => listener.close(() => resolve()))
  return port
}

describe.skipIf(reason)('evm client: the challenge’s decimals are confirmed on chain before signing', () => {
  it('a challenge naming 18 decimals for the 6-decimal token is refused before anything is signed or sent', async () => {
    const info = devnet.info
    // Two whole tokens: over the one-token budget at 6 decimals, 2·10^-12 of it at the 18 the server names.
    const paid = server({ amount: '2000000', decimals: 18 })
    const { wallet, calls } = countedWallet(1)
    const { account, signed } = countedAccount(1)
    const { priced, policy } = crossRail(info.eip3009Token)
    const client = createClient({ methods: [chargeClient({ account, wallet })], policy, fetch: paid.fetch })
    const payer = await balanceOf(info, account.address)
    const payee = await balanceOf(info, paid.payTo)

    const refused = await client.fetch(url).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(PolicyError)
    expect((refused as PolicyError).reason).toBe('decimals')
    expect((refused as PolicyError).message).toBe(
      `evm: the challenge names 18 decimals for ${info.eip3009Token}, the chain says 6`,
    )
    // The quote was priced (and booked) with the challenge's 18 decimals, then released with nothing sent.
    expect(priced).toEqual([{ decimals: 18 }])
    expect(client.ledger.spentTotal.numerator).toBe(0n)
    expect(client.ledger.spent(info.eip3009Token)).toBe(0n)
    expect(signed.count).toBe(0)
    expect(calls).toEqual(['decimals()'])
    expect(paid.credentials.count).toBe(0)
    expect(paid.runs()).toBe(0)
    expect(await balanceOf(info, account.address)).toBe(payer)
    expect(await balanceOf(info, paid.payTo)).toBe(payee)
  })

  it('the token’s own decimals pay normally, with one read of decimals() for the token (then cached)', async () => {
    const info = devnet.info
    const paid = server({ amount: '900', decimals: 6 })
    const { wallet, calls } = countedWallet(2)
    const { account, signed } = countedAccount(2)
    const { priced, policy } = crossRail(info.eip3009Token)
    const client = createClient({ methods: [chargeClient({ account, wallet })], policy, fetch: paid.fetch })
    const before = await balanceOf(info, paid.payTo)

    for (const _ of [1, 2]) {
      const response = await client.fetch(url)
      expect(response.status, await response.clone().text()).toBe(200)
    }
    expect(paid.runs()).toBe(2)
    expect(signed.count).toBe(2)
    expect((await balanceOf(info, paid.payTo)) - before).toBe(1800n)
    expect(priced).toEqual([{ decimals: 6 }, { decimals: 6 }])
    expect(client.ledger.spent(info.eip3009Token)).toBe(1800n)
    expect(calls).toEqual(['decimals()'])
  })

  it('with a decimals table entry for the token, nothing is read on chain (and the table still refuses 18)', async () => {
    const info = devnet.info
    const { wallet, calls } = countedWallet(3)
    const { account, signed } = countedAccount(3)
    const table = { [`eip155:${info.chainId}:${info.eip3009Token}`]: 6 }
    const right = server({ amount: '900', decimals: 6 })
    const { policy } = crossRail(info.eip3009Token)
    const client = createClient({
      methods: [chargeClient({ account, wallet, decimals: table })],
      policy,
      fetch: right.fetch,
    })
    const response = await client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(right.runs()).toBe(1)

    const lying = server({ amount: '2000000', decimals: 18 })
    const refused = createClient({
      methods: [chargeClient({ account, wallet, decimals: table })],
      policy,
      fetch: lying.fetch,
    })
    const error = await refused.fetch(url).catch((failure: unknown) => failure)
    expect(error).toBeInstanceOf(PolicyError)
    expect((error as PolicyError).message).toMatch(/this client knows 6$/)
    expect(lying.credentials.count).toBe(0)
    expect(signed.count).toBe(1)
    // The settlement was the server's: this client's transport carried no call at all.
    expect(calls).toEqual([])
  })

  it('a token address with no code: the challenge’s decimals cannot be confirmed, and nothing is signed', async () => {
    const info = devnet.info
    const token = privateKeyToAccount(generatePrivateKey()).address
    const paid = server({ amount: '900', decimals: 6, currency: token })
    const { calls, onFetchRequest } = recorder()
    // A public client that names no chain: the chain it reads is asked first (eth_chainId).
    const reader = createPublicClient({ transport: http(info.rpcUrl, { timeout: 10_000, onFetchRequest }) })
    const { account, signed } = countedAccount(4)
    const { policy } = crossRail(token)
    const client = createClient({
      methods: [chargeClient({ account, client: reader })],
      policy,
      fetch: paid.fetch,
    })

    const refused = await client.fetch(url).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(PolicyError)
    expect((refused as PolicyError).reason).toBe('decimals')
    expect((refused as PolicyError).message).toBe(
      `evm: could not confirm the 6 decimals the challenge names for ${token}: the chain did not answer decimals() on chain ${info.chainId}`,
    )
    expect(calls).toEqual(['eth_chainId', 'decimals()'])
    expect(signed.count).toBe(0)
    expect(paid.credentials.count).toBe(0)
    expect(client.ledger.spent(token)).toBe(0n)
    // A failed read is not remembered: the next payment reads again (and is refused again).
    await expect(client.fetch(url)).rejects.toThrow(/could not confirm/)
    expect(calls).toEqual(['eth_chainId', 'decimals()', 'decimals()'])
  })

  it('an RPC that does not answer: unconfirmed, refused, and the error names no URL', async () => {
    const info = devnet.info
    const paid = server({ amount: '900', decimals: 6 })
    const rpcUrl = `http://user:secret-pw@127.0.0.1:${await closedPort()}`
    const reader = createPublicClient({ chain: chainOf(info), transport: http(rpcUrl, { retryCount: 0 }) })
    const { account, signed } = countedAccount(4)
    const { policy } = crossRail(info.eip3009Token)
    const client = createClient({
      methods: [chargeClient({ account, client: reader })],
      policy,
      fetch: paid.fetch,
    })
    const refused = await client.fetch(url).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(PolicyError)
    expect((refused as PolicyError).message).toMatch(/^evm: could not confirm the 6 decimals/)
    expect(JSON.stringify({ ...(refused as object), message: (refused as Error).message })).not.toMatch(
      /secret-pw|127\.0\.0\.1/,
    )
    expect((refused as Error).cause).toBeUndefined()
    expect(signed.count).toBe(0)
    expect(paid.credentials.count).toBe(0)
  })

  it('without a reader on the challenge’s chain nothing is read and the challenge’s decimals are taken (the documented gap)', async () => {
    const info = devnet.info
    const paid = server({ amount: '900', decimals: 18 })
    const { account } = countedAccount(5)
    const { priced, policy } = crossRail(info.eip3009Token)
    let reads = 0
    const elsewhere = {
      chain: { id: info.chainId + 1 },
      readContract: async () => {
        reads++
        return 6
      },
    }
    for (const options of [{ account }, { account, client: elsewhere }]) {
      const client = createClient({ methods: [chargeClient(options)], policy, fetch: paid.fetch })
      const response = await client.fetch(url)
      expect(response.status, await response.clone().text()).toBe(200)
    }
    expect(reads).toBe(0)
    expect(paid.runs()).toBe(2)
    expect(priced).toEqual([{ decimals: 18 }, { decimals: 18 }])
  })
})
