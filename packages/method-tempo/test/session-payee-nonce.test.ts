// Several server processes sharing one payee key (a service scaled out) send the payee's transactions
// (closes, settlements) from one account: their nonces must not collide. Two session server instances
// with the same payee key close two channels at the same moment, on anvil.

import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { sessionClient } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-payee-nonce-secret-0123456'
const price = 1_000n

describe.skipIf(!!reason)('tempo/session: server instances sharing one payee key', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 4 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  /** One server instance (its own sessionServer, as another process would have) for `realm`; payee: account 0. */
  const instance = (realm: string) => {
    const { info } = devnet
    const method = sessionServer({
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      account: privateKeyToAccount(info.accounts[0]!.privateKey),
      escrow: info.escrow,
      timeout: 5_000,
    })
    const server = createServer({ realm, secrets: [secret], methods: [method] })
    return server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
  }

  it('two instances closing at once both close (no nonce taken twice)', async () => {
    const { info } = devnet
    const handlers = new Map([
      ['one.test', instance('one.test')],
      ['two.test', instance('two.test')],
    ])
    const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      return handlers.get(new URL(request.url).hostname)!(request)
    }) as typeof fetch
    for (const payer of [1, 2]) {
      const sessions = sessionClient({
        account: privateKeyToAccount(info.accounts[payer]!.privateKey),
        rpcUrl: info.rpcUrl,
        chainId: info.chainId,
        deposit: 100n * price,
        fetch: fetcher,
      })
      const client = createClient({ methods: [sessions], fetch: fetcher })
      for (const host of handlers.keys()) {
        expect((await client.fetch(`https://${host}/resource`)).status).toBe(200)
        expect((await client.fetch(`https://${host}/resource`)).status).toBe(200)
      }
      const channels = [...sessions.channels.values()].map((state) => state.channelId)
      expect(channels).toHaveLength(2)
      const results = await sessions.closeAll()
      expect(
        results.map((result) => ({ ok: result.ok, status: result.response?.status })),
        String(results.map((result) => (result.error as Error | undefined)?.message)),
      ).toEqual([
        { ok: true, status: 200 },
        { ok: true, status: 200 },
      ])
      for (const channelId of channels) {
        const channel = await readChannel(info, channelId)
        expect(channel.finalized).toBe(true)
        expect(channel.settled).toBe(2n * price)
      }
    }
  })
})
