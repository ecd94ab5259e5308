import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server, toNodeListener } from '@mppkit/core/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { pay } from '../src/cli.js'
import { chargeServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

// `pay` of @mppkit/method-lightning/cli (what `mppkit pay` can run for Lightning) against a real HTTP
// server on loopback and the LND simulator.

let network: Lightning
let http: HttpServer
let base: string
beforeAll(async () => {
  network = await startLightning()
  const server = Server.create({
    realm: 'cli.test',
    secrets: ['lightning-cli-test-secret-0123456789abcdef'],
    methods: [chargeServer({ lnd: lndFor(network.info.nodes.payee) })],
  })
  const handler = server.protect(
    { offers: [{ method: 'lightning', request: { amount: '250' } }] },
    async (request) =>
      new Response(`paid ${request.method} ${request.method === 'POST' ? await request.text() : ''}`.trim()),
  )
  http = createHttpServer(toNodeListener(handler))
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
})
afterAll(async () => {
  http?.closeAllConnections()
  await new Promise((resolve) => http?.close(resolve))
  await network?.stop()
})

function capture() {
  const out = { stdout: '', stderr: '' }
  return {
    out,
    io: { stdout: (t: string) => (out.stdout += t), stderr: (t: string) => (out.stderr += t) },
  }
}
const node = () => {
  const { socket, cert, macaroon } = network.info.nodes.payer
  return ['--lnd-socket', socket, '--lnd-cert', cert, '--lnd-macaroon', macaroon, '--network', 'regtest']
}

describe('pay', () => {
  it('pays a charge and prints the body and the receipt (payment hash as reference, no macaroon)', async () => {
    const { out, io } = capture()
    expect(await pay([`${base}/weather`, ...node(), '-X', 'POST', '-d', 'hello'], io)).toBe(0)
    expect(out.stdout).toBe('paid POST hello')
    expect(out.stderr).toMatch(/"method": "lightning"/)
    expect(out.stderr).toMatch(/"reference": "[0-9a-f]{64}"/)
    expect(out.stderr).not.toContain(network.info.nodes.payer.macaroon)
  })

  it('refuses a charge above --max-amount without paying', async () => {
    const { out, io } = capture()
    expect(await pay([`${base}/weather`, ...node(), '--max-amount', '100'], io)).toBe(1)
    expect(out.stderr).toMatch(/^mppkit pay: /)
    expect(out.stdout).toBe('')
  })

  it('refuses another network and bad usage with a message', async () => {
    const wrong = capture()
    expect(await pay([`${base}/weather`, ...node().slice(0, -2), '--network', 'mainnet'], wrong.io)).toBe(1)
    expect(wrong.out.stderr).toMatchInlineSnapshot(`
      "mppkit pay: lightning: the invoice is for regtest, this client pays on mainnet
      "
    `)
    const usage = capture()
    expect(await pay([`${base}/weather`], usage.io)).toBe(2)
    expect(usage.out.stderr.split('\n')[0]).toMatchInlineSnapshot(
      `"missing --lnd-socket or MPPKIT_PAYER_LND_SOCKET"`,
    )
    const amount = capture()
    expect(await pay([`${base}/weather`, ...node(), '--max-amount', '1e3'], amount.io)).toBe(2)
    expect(amount.out.stderr).toMatchInlineSnapshot(`
      "--max-amount must be an integer number of satoshis
      "
    `)
  })
})
