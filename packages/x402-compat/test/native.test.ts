import { Challenge, Credential } from '@mppkit/core'
import { create as createClient, receipt } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { charge as chargeClient } from '../src/client/index.js'
import { charge } from '../src/server/index.js'
import { asFetch, balanceOf, walletOf } from './peers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
beforeAll(async () => {
  if (!reason) devnet = await startTempo({ accounts: 4 })
})
afterAll(async () => {
  await devnet?.stop()
})

const url = 'http://localhost/paid'

describe.skipIf(reason)('charge (server) settling with its own wallet', () => {
  const setup = () => {
    const info = devnet.info
    const payTo = info.accounts[3]!.address
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [
        charge({
          chainId: info.chainId,
          currency: info.eip3009Token,
          recipient: payTo,
          domain: { name: info.eip3009.name, version: info.eip3009.version },
          wallet: walletOf(info, 2),
        }),
      ],
    })
    let runs = 0
    const handler = server.protect({ offers: [{ method: 'evm', request: { amount: '700' } }] }, () => {
      runs++
      return new Response('paid content')
    })
    return { info, payTo, handler, runs: () => runs }
  }

  it('an MPP client pays; the server broadcasts transferWithAuthorization and returns a receipt', async () => {
    const { info, payTo, handler, runs } = setup()
    const before = await balanceOf(info, payTo)
    const client = createClient({
      methods: [chargeClient({ account: privateKeyToAccount(info.accounts[1]!.privateKey) })],
      fetch: asFetch(handler),
    })
    const response = await client.fetch(url)
    expect(response.status).toBe(200)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(700n)
    expect(receipt(response)).toMatchObject({
      method: 'evm',
      network: `eip155:${info.chainId}`,
      payer: info.accounts[1]!.address,
    })
  })

  it('refuses an authorization whose nonce is not the challenge hash, and a source that is not the payer', async () => {
    const { info, handler, runs } = setup()
    const challenge = Challenge.parseAll(
      (await handler(new Request(url))).headers.get('www-authenticate')!,
    )[0]!
    const method = chargeClient({ account: privateKeyToAccount(info.accounts[1]!.privateKey) })
    const request = challenge.request as never
    const other = await method.createPayload({ challenge: { ...challenge, id: 'another' }, request, url })
    const own = await method.createPayload({ challenge, request, url })
    const send = (payload: unknown, source?: string) =>
      handler(
        new Request(url, {
          headers: {
            authorization: Credential.format({
              challenge,
              payload: payload as never,
              ...(source ? { source } : {}),
            }),
          },
        }),
      )
    const nonce = await send(other.payload)
    const source = await send(own.payload, `did:pkh:eip155:${info.chainId}:${info.accounts[2]!.address}`)
    expect([(await nonce.json()).reason, (await source.json()).reason]).toEqual([
      'nonce-mismatch',
      'source-mismatch',
    ])
    expect(runs()).toBe(0)
  })
})
