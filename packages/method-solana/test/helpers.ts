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

/** A JSON-RPC proxy in front of the node, to simulate outages: `up` forwards, `down` resets. */
export async function rpcProxy(target: string) {
  let mode: 'up' | 'down' = 'up'
  let requests = 0
  const server: Server = createServer(async (req, res) => {
    requests++
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    if (mode === 'down') {
      req.socket.destroy()
      return
    }
    const response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: Buffer.concat(chunks).toString(),
    })
    res.writeHead(response.status, { 'content-type': 'application/json' })
    res.end(await response.text())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    set(next: typeof mode) {
      mode = next
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
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
