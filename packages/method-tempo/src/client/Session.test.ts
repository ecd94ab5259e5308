import { createServer as createHttpServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { PolicyError } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, erc20Abi, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoRpc,
  tempoUnavailableReason,
} from '../../../devnet/src/tempo/index.js'
import { escrowAbi } from '../internal/escrow.js'
import { sessionServer } from '../server/index.js'
import { knownEscrows, sessionClient } from './index.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-known-escrows-secret-0123456'
const price = 1_000n
/** mppx's default escrow for Moderato, one of the table's two for chain 42431. */
const moderatoEscrow = '0xe1c4d3dce17bc111181ddf716f75bae49e61a336' as Address

/** A JSON-RPC proxy in front of a node that records the method of every call it forwards. */
async function rpcRecorder(target: string) {
  const methods: string[] = []
  const server: Server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString()
    for (const match of body.matchAll(/"method":"([^"]+)"/g)) methods.push(match[1]!)
    const response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    res.writeHead(response.status, { 'content-type': 'application/json' })
    res.end(await response.text())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    methods,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

describe('knownEscrows', () => {
  it('lists the known escrows of Tempo mainnet and Moderato, read-only', () => {
    expect(knownEscrows).toMatchInlineSnapshot(`
      {
        "4217": [
          "0x33b901018174DDabE4841042ab76ba85D4e24f25",
        ],
        "42431": [
          "0xe1c4d3dce17bc111181ddf716f75bae49e61a336",
          "0x9d136eEa063eDE5418A6BC7bEafF009bBb6CFa70",
        ],
      }
    `)
    expect(Object.isFrozen(knownEscrows)).toBe(true)
    expect(Object.isFrozen(knownEscrows[4217])).toBe(true)
    expect(Object.isFrozen(knownEscrows[42431])).toBe(true)
  })
})

// A server names the escrow its client approves the deposit to. On a devnet whose chain id claims Tempo
// mainnet or Moderato, the devnet's own escrow (a real contract, which the code check alone accepts) is
// not one of that chain's known escrows.
describe.skipIf(!!reason)('sessionClient without escrows on a chain with known escrows', () => {
  let mainnet: TempoDevnet
  let moderato: TempoDevnet
  const rpc: Awaited<ReturnType<typeof rpcRecorder>>[] = []
  beforeAll(async () => {
    ;[mainnet, moderato] = await Promise.all([
      startTempo({ accounts: 3, chainId: 4217 }),
      startTempo({ accounts: 6, chainId: 42431 }),
    ])
    // The devnet escrow's runtime code at mppx's Moderato address (its EIP-712 domain reads address(this)).
    const code = await tempoRpc<Hex>(moderato.info.rpcUrl, 'eth_getCode', [moderato.info.escrow, 'latest'])
    await tempoRpc(moderato.info.rpcUrl, 'anvil_setCode', [moderatoEscrow, code])
  })
  afterAll(async () => {
    await Promise.all(rpc.map((proxy) => proxy.close()))
    await Promise.all([mainnet?.stop(), moderato?.stop()])
  })

  const recorder = async (devnet: TempoDevnet) => {
    const proxy = await rpcRecorder(devnet.info.rpcUrl)
    rpc.push(proxy)
    return proxy
  }
  const payer = (devnet: TempoDevnet, index: number) =>
    privateKeyToAccount(devnet.info.accounts[index]!.privateKey)

  /** Our session server on `devnet`, naming `escrow` (its challenges carry the devnet's chain id). */
  const route = (devnet: TempoDevnet, realm: string, escrow: Address) => {
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: payer(devnet, 0),
      escrow,
      timeout: 5_000,
    })
    const server = createServer({ realm, secrets: [secret], methods: [method] })
    const handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
    let credentials = 0
    const fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      if (request.headers.get('authorization')) credentials++
      return handler(request)
    }) as typeof globalThis.fetch
    return { fetch, credentials: () => credentials }
  }

  const allowance = (devnet: TempoDevnet, owner: Address, spender: Address) =>
    tempoClients(devnet.info).publicClient.readContract({
      address: devnet.info.tokens.pathUsd,
      abi: erc20Abi,
      functionName: 'allowance',
      args: [owner, spender],
    })

  it.each([
    ['Tempo mainnet', 4217],
    ['Moderato', 42431],
  ])(
    'refuses an unknown escrow on %s (chain %i) before reading, signing or approving anything',
    async (_, chainId) => {
      const devnet = chainId === 4217 ? mainnet : moderato
      expect(devnet.info.chainId).toBe(chainId)
      const { escrow, tokens } = devnet.info
      const server = route(devnet, `unknown-${chainId}.test`, escrow)
      const proxy = await recorder(devnet)
      const account = payer(devnet, 1)
      const sessions = sessionClient({
        account,
        rpcUrl: proxy.url,
        deposit: 10n * price,
        fetch: server.fetch,
      })
      const client = createClient({
        methods: [sessions],
        fetch: server.fetch,
        policy: { maxDeposit: { [tokens.pathUsd]: 1_000_000n }, budget: { [tokens.pathUsd]: 1_000_000n } },
      })
      const error = await client.fetch(`https://unknown-${chainId}.test/r`).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(PolicyError)
      expect((error as PolicyError).reason).toBe('escrow')
      expect((error as Error).message).toBe(
        `tempo session: the challenge names escrow ${escrow}, not a known escrow of chain ${chainId}; nothing was signed (pass \`escrows\` to deposit into it)`,
      )
      // Refused before the node was asked anything (no nonce, no code read, nothing signed or sent).
      expect(proxy.methods).toEqual([])
      expect(server.credentials()).toBe(0)
      expect(sessions.channels.size).toBe(0)
      expect(client.ledger.spent(tokens.pathUsd)).toBe(0n)
      expect(await allowance(devnet, account.address, escrow)).toBe(0n)
    },
  )

  it("pays a chain's known escrow without reading its code", async () => {
    const server = route(moderato, 'known.test', moderatoEscrow)
    const proxy = await recorder(moderato)
    const sessions = sessionClient({
      account: payer(moderato, 2),
      rpcUrl: proxy.url,
      deposit: 10n * price,
      fetch: server.fetch,
    })
    const client = createClient({ methods: [sessions], fetch: server.fetch })
    expect((await client.fetch('https://known.test/r')).status).toBe(200)
    expect((await client.fetch('https://known.test/r')).status).toBe(200)
    // The recorder sees the client's calls (the open's nonce), but no code read.
    expect(proxy.methods).toContain('eth_getTransactionCount')
    expect(proxy.methods).not.toContain('eth_getCode')
    const [state] = [...sessions.channels.values()]
    expect(state?.escrow).toBe(moderatoEscrow)
    const channel = await tempoClients(moderato.info).publicClient.readContract({
      address: moderatoEscrow,
      abi: escrowAbi,
      functionName: 'getChannel',
      args: [state!.channelId],
    })
    expect(channel.payer).toBe(payer(moderato, 2).address)
    expect(channel.deposit).toBe(10n * price)
  })

  it('with escrows, pays the escrows named there and only those: the table is not consulted', async () => {
    const { escrow } = moderato.info
    const own = route(moderato, 'own.test', escrow)
    const proxy = await recorder(moderato)
    const sessions = sessionClient({
      account: payer(moderato, 3),
      rpcUrl: proxy.url,
      deposit: 10n * price,
      escrows: [escrow],
      fetch: own.fetch,
    })
    const client = createClient({ methods: [sessions], fetch: own.fetch })
    expect((await client.fetch('https://own.test/r')).status).toBe(200)
    expect(proxy.methods).not.toContain('eth_getCode')
    expect([...sessions.channels.values()][0]?.escrow).toBe(escrow)

    // A known escrow of the chain the list leaves out is refused like any other.
    const known = route(moderato, 'known-elsewhere.test', moderatoEscrow)
    const account = payer(moderato, 4)
    const listed = sessionClient({
      account,
      rpcUrl: proxy.url,
      deposit: 10n * price,
      escrows: [escrow],
      fetch: known.fetch,
    })
    const refusing = createClient({ methods: [listed], fetch: known.fetch })
    const error = await refusing.fetch('https://known-elsewhere.test/r').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(PolicyError)
    expect((error as PolicyError).reason).toBe('escrow')
    expect((error as Error).message).toMatch(/not one of the escrows this client deposits into/)
    expect(known.credentials()).toBe(0)
    expect(await allowance(moderato, account.address, moderatoEscrow)).toBe(0n)
  })

  it('takes a challenge without a chain id for Tempo mainnet (the spec default 4217)', async () => {
    // The refusal needs no node: the client is pointed at the mainnet devnet, with no chainId of its own.
    const proxy = await recorder(mainnet)
    const sessions = sessionClient({ account: payer(mainnet, 2), rpcUrl: proxy.url })
    const request = {
      amount: '1',
      currency: mainnet.info.tokens.pathUsd,
      recipient: mainnet.info.accounts[0]!.address,
      methodDetails: { escrowContract: mainnet.info.escrow },
    }
    expect(() => sessions.quote?.(request as never)).toThrow(PolicyError)
    expect(() =>
      sessions.quote?.({
        ...request,
        methodDetails: { escrowContract: knownEscrows[4217]![0]!.toLowerCase() },
      } as never),
    ).not.toThrow()
    expect(proxy.methods).toEqual([])
  })
})
