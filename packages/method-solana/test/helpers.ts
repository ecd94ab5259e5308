import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Challenge, Credential } from '@mppkit/core'
import { create as createServerCore, type Offer } from '@mppkit/core/server'
import { createKeyPairSignerFromBytes, type KeyPairSigner } from '@solana/kit'
import { expect } from 'vitest'
import {
  createFundedAccount,
  createMint,
  findAssociatedTokenAddress,
  mintTo,
  type SolanaNode,
  startSolana,
} from '../../devnet/src/solana/index.js'
import { type ChargeOptions, chargeServer } from '../src/server/index.js'

export const realm = 'solana.test'
export const secret = 'solana-charge-test-secret-0123456789abcdef'

/**
 * How the {@link rpcProxy} treats the calls it gets:
 * - `up` forwards them;
 * - `down` refuses connections (nothing listens on its port: no call reaches the node);
 * - `lost-after-send` forwards calls until a `sendTransaction` reached the node, then resets that call's
 *   connection instead of answering, and every later call too (the node went away with the transaction);
 * - `errors-after-send` forwards calls until a `sendTransaction` was answered, then answers every later
 *   call with HTTP 502 (the node's gateway fails before the confirmation is known).
 */
export type ProxyMode = 'up' | 'down' | 'lost-after-send' | 'errors-after-send'

/**
 * A JSON-RPC proxy in front of the node, to simulate outages (see {@link ProxyMode}) and slow methods
 * (`hold`), and to count the calls of each method (`calls`).
 */
export async function rpcProxy(target: string) {
  let mode: ProxyMode = 'up'
  let sent = false
  let requests = 0
  const calls = new Map<string, number>()
  const held = new Map<string, number>()
  const server: Server = createServer(async (req, res) => {
    requests++
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString()
    const called = String((JSON.parse(body) as { method?: unknown }).method)
    calls.set(called, (calls.get(called) ?? 0) + 1)
    const hold = held.get(called)
    if (hold) await new Promise((resolve) => setTimeout(resolve, hold))
    if (sent && mode === 'lost-after-send') return req.socket.destroy()
    if (sent && mode === 'errors-after-send') {
      res.writeHead(502, { 'content-type': 'text/plain' })
      return res.end('bad gateway')
    }
    const response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    const text = await response.text()
    if (mode !== 'up' && (JSON.parse(body) as { method?: string }).method === 'sendTransaction') {
      sent = true
      if (mode === 'lost-after-send') return req.socket.destroy()
    }
    res.writeHead(response.status, { 'content-type': 'application/json' })
    res.end(text)
  })
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  await listen(0)
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    /** How many calls of a JSON-RPC method reached the proxy. */
    calls: (method: string) => calls.get(method) ?? 0,
    /** Holds the calls of `method` this long before forwarding them (0: no longer). */
    hold(method: string, ms: number) {
      held.set(method, ms)
    },
    /** Switches the mode; `down` closes the port (and every connection), leaving `down` opens it again. */
    async set(next: ProxyMode) {
      if (next === 'down' && mode !== 'down') await stop()
      if (next !== 'down' && mode === 'down') await listen(port)
      mode = next
      sent = false
      // A macrotask: the server's RPC client sees its kept-alive connections close before its next call.
      await new Promise((resolve) => setTimeout(resolve, 10))
    },
    close: () => (mode === 'down' ? Promise.resolve() : stop()),
  }
}

export const signerOf = (keypair: { secretKey: number[] }): Promise<KeyPairSigner> =>
  createKeyPairSignerFromBytes(new Uint8Array(keypair.secretKey))

/** A funded payer holding `amount` of a fresh mint, and a recipient whose ATA exists. */
export async function tokenWorld(
  node: SolanaNode,
  options: { program?: 'token' | 'token-2022'; decimals?: number; amount?: bigint } = {},
) {
  const decimals = options.decimals ?? 6
  const { mint, tokenProgram } = await createMint(node, { decimals, program: options.program ?? 'token' })
  const payer = await signerOf(await createFundedAccount(node))
  const recipient = await signerOf(await createFundedAccount(node))
  await mintTo(node, { mint, owner: payer.address, amount: options.amount ?? 1_000_000_000n })
  await mintTo(node, { mint, owner: recipient.address, amount: 0n })
  return { mint: String(mint), tokenProgram: String(tokenProgram), decimals, payer, recipient }
}

/** The token balance of an owner's ATA (0 when it does not exist). */
export async function tokenBalance(node: SolanaNode, mint: string, owner: string): Promise<bigint> {
  const tokenProgram = node.ledger.account(mint)!.owner
  const ata = await findAssociatedTokenAddress({ owner, mint, tokenProgram })
  const account = node.ledger.account(ata)
  if (!account) return 0n
  return new DataView(account.data.buffer, account.data.byteOffset).getBigUint64(64, true)
}

/** A server with one protected route, and helpers to get a challenge and submit a credential. */
export function serve(
  options: ChargeOptions,
  offer: Offer = { method: 'solana', request: { amount: '1000' } },
) {
  const method = chargeServer(options)
  const server = createServerCore({ realm, secrets: [secret], methods: [method] })
  let runs = 0
  const handler = server.protect({ offers: [offer] }, () => {
    runs++
    return new Response('paid content')
  })
  const fetchLocal = ((input: RequestInfo, init?: RequestInit) =>
    handler(new Request(input, init))) as typeof fetch
  const challenge = async () => {
    const response = await handler(new Request('https://solana.test/r'))
    expect(response.status).toBe(402)
    return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
  }
  const submit = (challenge: Challenge.Challenge, payload: Record<string, unknown>) =>
    handler(
      new Request('https://solana.test/r', {
        headers: { authorization: Credential.format({ challenge, payload }) },
      }),
    )
  return { method, server, handler, fetch: fetchLocal, challenge, submit, runs: () => runs }
}

export type { SolanaNode }
export { startSolana }
