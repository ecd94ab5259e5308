import { PolicyError } from '@mppkit/core'
import { create as createClient, mayHaveSettled, PaymentFailedError } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { sessionClient } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-recovery-secret-0123456789'
const price = 1_000n

const payloadOf = (request: Request) => {
  const header = request.headers.get('authorization')
  if (!header) return undefined
  const json = Buffer.from(header.slice('Payment '.length), 'base64url').toString()
  return JSON.parse(json).payload as { action: string; cumulativeAmount?: string }
}

// The session client recovers from a voucher sent outside a request and from a side request whose
// answer is lost, without signing below what it authorized or paying past its policy.
describe.skipIf(!!reason)('tempo/session client recovery', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 4 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const handlerFor = (realm: string) => {
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
      escrow: devnet.info.escrow,
      timeout: 5_000,
    })
    const server = createServer({ realm, secrets: [secret], methods: [method] })
    return server.protect(
      {
        offers: [
          { method: 'tempo', intent: 'session', request: { amount: String(price), unitType: 'request' } },
        ],
      },
      () => new Response('ok'),
    )
  }

  it('with voucherAhead, keeps paying at the highest cumulative after voucher()', async () => {
    const handler = handlerFor('ahead.test')
    const sent: bigint[] = []
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const payload = payloadOf(request)
      if (payload?.cumulativeAmount) sent.push(BigInt(payload.cumulativeAmount))
      return handler(request)
    }) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[1]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 100_000n,
      voucherAhead: 3,
      fetch: fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    const url = 'https://ahead.test/r'
    expect((await client.fetch(url)).status).toBe(200)
    expect((await sessions.voucher(url, 10_000n)).status).toBe(200)
    for (let i = 0; i < 3; i++) expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.channels.values()][0]!
    expect(state.cumulative).toBe(10_000n)
    expect(state.spent).toBe(4_000n)
    // Never a voucher below one already signed.
    for (let i = 1; i < sent.length; i++) expect(sent[i]! >= sent[i - 1]!).toBe(true)
    expect((await sessions.close(url)).status).toBe(200)
  })

  it('a top-up whose answer is lost is not sent again past maxDeposit', async () => {
    const handler = handlerFor('topup.test')
    let lose = 1
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      const action = payloadOf(request)?.action
      const response = await handler(request)
      if (action === 'topUp' && lose-- > 0) throw new TypeError('fetch failed')
      return response
    }) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[2]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 2_000n,
      topUp: 2_000n,
      fetch: fetcher,
    })
    const token = devnet.info.tokens.pathUsd
    const client = createClient({
      methods: [sessions],
      fetch: fetcher,
      policy: { maxDeposit: { [token]: 4_000n } },
    })
    const url = 'https://topup.test/r'
    expect((await client.fetch(url)).status).toBe(200)
    expect((await client.fetch(url)).status).toBe(200)
    const lost = await client.fetch(url).then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(lost).toBeInstanceOf(PaymentFailedError)
    expect(mayHaveSettled(lost)).toBe(true)
    // The next requests find the top-up on-chain and pay within the deposit.
    expect((await client.fetch(url)).status).toBe(200)
    expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.channels.values()][0]!
    expect(state.deposit).toBe(4_000n)
    // A further top-up would pass maxDeposit.
    await expect(client.fetch(url)).rejects.toBeInstanceOf(PolicyError)
    expect((await readChannel(devnet.info, state.channelId)).deposit).toBe(4_000n)
  })
  it('drops a channel whose open never reached the server and opens a new one', async () => {
    const handler = handlerFor('lost.test')
    let drop = true
    const fetcher = (async (input: RequestInfo, init?: RequestInit) => {
      const request = new Request(input, init)
      if (drop && request.headers.get('authorization')) {
        drop = false
        throw new TypeError('fetch failed')
      }
      return handler(request)
    }) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(devnet.info.accounts[3]!.privateKey),
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 100_000n,
      fetch: fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher })
    const url = 'https://lost.test/r'
    await expect(client.fetch(url)).rejects.toThrow()
    const lost = [...sessions.channels.values()][0]!.channelId
    for (let i = 0; i < 3; i++) expect((await client.fetch(url)).status).toBe(200)
    const state = [...sessions.channels.values()][0]!
    expect(sessions.channels.size).toBe(1)
    expect(state.channelId).not.toBe(lost)
    expect(state.spent).toBe(3_000n)
    expect((await readChannel(devnet.info, state.channelId)).deposit).toBe(100_000n)
  })
})
