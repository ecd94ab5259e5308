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
  const body = async (request: Request) =>
    new Response(`paid ${request.method} ${request.method === 'POST' ? await request.text() : ''}`.trim())
  const small = server.protect({ offers: [{ method: 'lightning', request: { amount: '250' } }] }, body)
  // Above the CLI's default cap of 10,000 sat.
  const big = server.protect({ offers: [{ method: 'lightning', request: { amount: '20000' } }] }, body)
  http = createHttpServer(
    toNodeListener((request) => (new URL(request.url).pathname === '/big' ? big(request) : small(request))),
  )
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
      "mppkit pay: lightning/charge: pay 250 sat (250 base units) (realm cli.test), plus a routing fee of at most 10 sat (--max-fee)
      mppkit pay: lightning: the invoice is for regtest, this client pays on mainnet
      "
    `)
    const usage = capture()
    expect(await pay([`${base}/weather`], usage.io)).toBe(2)
    expect(usage.out.stderr.split('\n')[0]).toMatchInlineSnapshot(
      `"mppkit pay: missing --lnd-socket or MPPKIT_PAYER_LND_SOCKET"`,
    )
    const amount = capture()
    expect(await pay([`${base}/weather`, ...node(), '--max-amount', '1e3'], amount.io)).toBe(2)
    expect(amount.out.stderr.split('\n')[0]).toMatchInlineSnapshot(
      `"mppkit pay: --max-amount takes a whole number of base units (e.g. 1000000), got "1e3""`,
    )
    const typo = capture()
    expect(await pay([`${base}/weather`, ...node(), '--max-fees', '5'], typo.io)).toBe(2)
    expect(typo.out.stderr.split('\n')[0]).toMatchInlineSnapshot(
      `"mppkit pay: unknown option --max-fees (did you mean --max-fee?)"`,
    )
  })

  it('refuses above the default cap of 10,000 sat, and asks above 1,000 sat unless --yes', async () => {
    const capped = capture()
    expect(await pay([`${base}/big`, ...node()], capped.io)).toBe(1)
    expect(capped.out.stdout).toBe('')
    expect(capped.out.stderr).toMatchInlineSnapshot(`
      "mppkit pay: refusing to pay 20000 base units of sat: above the cap of 10000 base units; raise it with --max-amount <base units>
      "
    `)
    const questions: string[] = []
    const declined = capture()
    const no = {
      ...declined.io,
      confirm: async (q: string) => {
        questions.push(q)
        return false
      },
    }
    expect(await pay([`${base}/big`, ...node(), '--max-amount', '20000'], no)).toBe(1)
    expect(questions).toEqual([
      'mppkit pay: lightning/charge: pay 20,000 sat (20000 base units) (realm cli.test), plus a routing fee of at most 200 sat (--max-fee)',
    ])
    expect(declined.out.stdout).toBe('')
    // Below the question's threshold nobody is asked; the line says what was paid.
    const small = capture()
    const never = { ...small.io, confirm: async () => expect.fail('asked below 1,000 sat') }
    expect(await pay([`${base}/weather`, ...node()], never)).toBe(0)
    expect(small.out.stderr.split('\n')[0]).toBe(
      'mppkit pay: lightning/charge: pay 250 sat (250 base units) (realm cli.test), plus a routing fee of at most 10 sat (--max-fee)',
    )
  })
})
