import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Receipt } from '@mppkit/core'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { pay } from '../src/cli.js'
import { chargeServer, sessionServer } from '../src/server/index.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

describe.skipIf(!!reason)('mppkit pay (tempo)', () => {
  let devnet: TempoDevnet
  let http: HttpServer
  let base: string
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
    const { info } = devnet
    const payee = privateKeyToAccount(info.accounts[0]!.privateKey)
    const server = createServer({
      realm: 'cli.test',
      secrets: ['tempo-cli-test-secret-0123456789abcdefghij'],
      methods: [
        chargeServer({
          rpcUrl: info.rpcUrl,
          chainId: info.chainId,
          currency: info.tokens.pathUsd,
          recipient: payee.address,
        }),
        sessionServer({
          rpcUrl: info.rpcUrl,
          chainId: info.chainId,
          currency: info.tokens.pathUsd,
          account: payee,
          escrow: info.escrow,
        }),
      ],
    })
    const charge = server.protect(
      { offers: [{ method: 'tempo', request: { amount: '1234' } }] },
      () => new Response('charged body'),
    )
    const session = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: '100' } }] },
      () => new Response('session body'),
    )
    http = createHttpServer(
      toNodeListener((request: Request) =>
        new URL(request.url).pathname === '/session' ? session(request) : charge(request),
      ),
    )
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    http?.closeAllConnections()
    await new Promise((resolve) => http?.close(resolve))
    await devnet?.stop()
  })

  const run = async (args: string[], env: Record<string, string> = {}) => {
    let stdout = ''
    let stderr = ''
    const saved = { ...process.env }
    Object.assign(process.env, env)
    try {
      const code = await pay(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) })
      return { code, stdout, stderr }
    } finally {
      process.env = saved
    }
  }

  it('pays a charge with flags: body on stdout, decoded receipt on stderr', async () => {
    const { code, stdout, stderr } = await run([
      `${base}/charge`,
      '--key',
      devnet.info.accounts[1]!.privateKey,
      '--rpc',
      devnet.info.rpcUrl,
    ])
    expect(code).toBe(0)
    expect(stdout).toBe('charged body')
    const receipt = JSON.parse(stderr.slice(stderr.indexOf('{'))) as Receipt.Receipt
    expect(receipt).toMatchObject({ method: 'tempo', status: 'success' })
    expect(receipt.reference).toMatch(/^0x[0-9a-f]{64}$/)
  })

  it('pays a session from env, then closes the channel', async () => {
    const { code, stdout, stderr } = await run([`${base}/session`, '--deposit', '5000'], {
      MPPKIT_PRIVATE_KEY: devnet.info.accounts[2]!.privateKey,
      MPPKIT_RPC_URL: devnet.info.rpcUrl,
    })
    expect(code, stderr).toBe(0)
    expect(stdout).toBe('session body')
    expect(stderr).toContain('"intent": "session"')
    expect(stderr).toContain('close receipt')
    expect(stderr).toMatch(/"txHash": "0x[0-9a-f]{64}"/)
  })

  it('explains missing configuration with exit code 2', async () => {
    const { code, stderr } = await run([`${base}/charge`], { MPPKIT_PRIVATE_KEY: '', MPPKIT_RPC_URL: '' })
    expect(code).toBe(2)
    expect(stderr).toContain('missing --key')
    expect((await run(['--help'])).code).toBe(0)
  })
})
