import { create as createClient, Protocol, receipt } from '@mppkit/core/client'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { charge, x402 } from '../src/client/index.js'
import * as Wire from '../src/Wire.js'
import { asFetch, balanceOf, facilitator } from './peers.js'

const reason = tempoUnavailableReason()
const mppxServer = await import('mppx/server').catch(() => undefined)
const mppxEvm = await import('mppx/evm/server').catch(() => undefined)
const skip =
  reason ??
  (mppxServer && mppxEvm ? undefined : 'mppx@0.11.0 (mppx/server, mppx/evm/server) is not installed')
if (skip) console.warn(`[skip] ${skip}`)

let devnet: TempoDevnet
beforeAll(async () => {
  if (!skip) devnet = await startTempo({ accounts: 5 })
})
afterAll(async () => {
  await devnet?.stop()
})

const url = 'https://interop.test/paid'

describe.skipIf(skip)('our client against an mppx@0.11.0 dual-stack (MPP evm + x402) server', () => {
  const setup = () => {
    const info = devnet.info
    const payTo = info.accounts[4]!.address
    const fac = facilitator(info, 3)
    const mppx = mppxServer!.Mppx.create({
      realm: 'interop.test',
      secretKey: 'x402-compat-interop-secret-0123456789abcdef',
      methods: [
        mppxEvm!.charge({
          currency: info.eip3009Token,
          recipient: payTo,
          chainId: info.chainId,
          decimals: 6,
          authorization: { name: info.eip3009.name, version: info.eip3009.version },
          x402: { facilitator: fac.client as never },
        }),
      ],
    })
    const route = (mppx as any)['evm/charge']({ amount: '0.0012' })
    const handler = async (request: Request) => {
      const result = await route(request)
      if (result.status === 402) return result.challenge as Response
      return result.withReceipt(Response.json({ paid: true })) as Response
    }
    return { info, payTo, fac, handler }
  }

  it('pays it natively (evm charge, nonce = challenge hash), the domain from configuration', async () => {
    const { info, payTo, handler } = setup()
    const before = await balanceOf(info, payTo)
    const client = createClient({
      methods: [
        charge({
          account: privateKeyToAccount(info.accounts[1]!.privateKey),
          domains: { [info.eip3009Token]: { name: info.eip3009.name, version: info.eip3009.version } },
        }),
      ],
      protocols: [Protocol.mpp],
      fetch: asFetch(handler),
    })
    const response = await client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect((await balanceOf(info, payTo)) - before).toBe(1200n)
    expect(receipt(response)?.reference).toMatch(/^0x[0-9a-f]{64}$/)
  })

  it('pays it through its x402 face (PAYMENT-SIGNATURE) when the client speaks only x402', async () => {
    const { info, payTo, fac, handler } = setup()
    const unpaid = await handler(new Request(url))
    expect(unpaid.headers.get(Wire.headers.paymentRequired)).toBeTruthy()
    const before = await balanceOf(info, payTo)
    const client = createClient({
      methods: [charge({ account: privateKeyToAccount(info.accounts[2]!.privateKey) })],
      protocols: [x402()],
      fetch: asFetch(handler),
    })
    const response = await client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1200n)
  })
})
