import { create as createClient, Protocol, receipt } from '@mppkit/core/client'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { charge, x402 } from '../src/client/index.js'
import * as Wire from '../src/Wire.js'
import { asFetch, balanceOf, facilitator, honoV2Server } from './peers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet

beforeAll(async () => {
  if (!reason) devnet = await startTempo({ accounts: 6 })
})
afterAll(async () => {
  await devnet?.stop()
})

describe.skipIf(reason)('x402 (client) against an @x402/hono v2 server', () => {
  const setup = (payerIndex: number, policy = {}) => {
    const info = devnet.info
    const fac = facilitator(info, 5)
    const payTo = info.accounts[4]!.address
    const server = honoV2Server(info, { facilitator: fac.client, payTo, amount: '1000' })
    const skipped: string[] = []
    const client = createClient({
      methods: [charge({ account: privateKeyToAccount(info.accounts[payerIndex]!.privateKey) })],
      protocols: [
        Protocol.mpp,
        x402({ decimals: { [info.eip3009Token]: 6 }, onSkip: ({ reason }) => skipped.push(reason) }),
      ],
      policy,
      fetch: asFetch(server.fetch),
    })
    return { info, fac, payTo, server, client, skipped }
  }

  it('pays a v2 route: PAYMENT-SIGNATURE sent, the token moves, PAYMENT-RESPONSE is the receipt', async () => {
    const { info, fac, payTo, server, client } = setup(1)
    const before = await balanceOf(info, payTo)
    const response = await client.fetch('http://localhost/paid')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('paid content')
    expect(server.runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
    const paid = receipt(response)
    expect(paid).toMatchObject({ status: 'success', method: 'evm', network: `eip155:${info.chainId}` })
    expect(paid?.reference).toMatch(/^0x[0-9a-f]{64}$/)
    expect(client.ledger).toBeDefined()
  })

  it('pays twice with two distinct authorizations (nonces never repeat)', async () => {
    const { info, payTo, client } = setup(2)
    const before = await balanceOf(info, payTo)
    expect((await client.fetch('http://localhost/paid')).status).toBe(200)
    expect((await client.fetch('http://localhost/paid')).status).toBe(200)
    expect((await balanceOf(info, payTo)) - before).toBe(2000n)
  })

  it('applies the spend policy to x402 offers (decimals from the option)', async () => {
    const { server, client } = setup(3, { maxAmount: 999n })
    await expect(client.fetch('http://localhost/paid')).rejects.toThrowErrorMatchingInlineSnapshot(
      `[PolicyError: amount 1000 eip155:31337:0x82b769500e34362a76df81150e12c746093d954f exceeds the per-request maximum 999]`,
    )
    expect(server.runs()).toBe(0)
  })

  it('a replayed PAYMENT-SIGNATURE is refused by the peer (settles once)', async () => {
    const { info, fac, server } = setup(3)
    let sent: string | undefined
    const client = createClient({
      methods: [charge({ account: privateKeyToAccount(info.accounts[3]!.privateKey) })],
      protocols: [x402()],
      fetch: asFetch(async (request) => {
        sent ??= request.headers.get(Wire.headers.paymentSignature) ?? undefined
        return server.fetch(request)
      }),
    })
    expect((await client.fetch('http://localhost/paid')).status).toBe(200)
    expect(sent).toBeDefined()
    const replay = await server.fetch(
      new Request('http://localhost/paid', { headers: { [Wire.headers.paymentSignature]: sent! } }),
    )
    expect(replay.status).toBe(402)
    expect(server.runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
  })
})
