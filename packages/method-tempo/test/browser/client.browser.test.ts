import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import { chromium } from 'playwright-core'
import { erc20Abi, type Hex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../../devnet/src/tempo/index.js'
import { chargeServer } from '../../src/server/index.js'
import { bundleForBrowser } from './bundle.js'
import type { PayInput } from './page.js'

// Debian's chromium (CI installs it: .ci/run); a browser is never downloaded.
const executablePath = process.env.MPPKIT_CHROMIUM ?? '/usr/bin/chromium'
const entry = fileURLToPath(new URL('./page.ts', import.meta.url))
const browserReason = existsSync(executablePath)
  ? tempoUnavailableReason()
  : `${executablePath} is absent (apt-get install -y --no-install-recommends chromium)`
if (browserReason) console.warn(`[skip] browser payment: ${browserReason}`)

describe('bundleForBrowser', () => {
  it('bundles @mppkit/core/client and @mppkit/method-tempo/client for the browser, without server code', async () => {
    // platform: 'browser' fails the build on any node: import reachable from the client entries.
    const { code, inputs } = await bundleForBrowser(entry)
    expect(code.length).toBeGreaterThan(0)
    const ours = inputs.filter((file) => file.includes('packages/'))
    expect(ours.some((file) => file.endsWith('core/src/client/Client.ts'))).toBe(true)
    expect(ours.some((file) => file.endsWith('method-tempo/src/client/Charge.ts'))).toBe(true)
    // The root entry (HMAC binding, digests, stores) and every server module stay out of the bundle.
    expect(
      ours.filter((file) => /\/server\/|core\/src\/(index|Binding|Digest|IdempotencyCache)\.ts$/.test(file)),
    ).toEqual([])
  })
})

describe.skipIf(!!browserReason)('a Tempo charge paid from Chromium', () => {
  let devnet: TempoDevnet
  let web: http.Server
  let origin: string
  let userDataDir: string
  let browser: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined
  const amount = 1_000n

  beforeAll(async () => {
    devnet = await startTempo({ accounts: 2 })
    const { code } = await bundleForBrowser(entry)
    const server = createServer({
      realm: 'browser.test',
      secrets: ['browser-test-secret-0123456789abcdefghij'],
      methods: [
        chargeServer({
          rpcUrl: devnet.info.rpcUrl,
          chainId: devnet.info.chainId,
          currency: devnet.info.tokens.pathUsd,
          recipient: devnet.info.accounts[0]!.address,
        }),
      ],
    })
    const paid = toNodeListener(
      server.protect({ offers: [{ method: 'tempo', request: { amount: String(amount) } }] }, () =>
        Response.json({ paid: true, served: 'from node, paid from the browser' }),
      ),
    )
    // One origin serves the page, the bundle and the paid route; the page talks to anvil's RPC
    // cross-origin (anvil answers CORS preflights with `access-control-allow-origin: *`).
    web = http.createServer((request, response) => {
      if (request.url === '/') {
        response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        response.end('<!doctype html><title>mppkit</title><script type="module" src="/bundle.js"></script>')
      } else if (request.url === '/bundle.js') {
        response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' })
        response.end(code)
      } else paid(request, response)
    })
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(web.address() as AddressInfo).port}`
    userDataDir = mkdtempSync(join(tmpdir(), 'mppkit-chromium-'))
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-dev-shm-usage',
      ],
    })
  }, 120_000)

  afterAll(async () => {
    await browser?.close().catch(() => {})
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true })
    await new Promise((resolve) => web?.close(resolve))
    await devnet?.stop()
  })

  const balance = (owner: Hex) =>
    tempoClients(devnet.info).publicClient.readContract({
      address: devnet.info.tokens.pathUsd,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [owner],
    })

  it.each(['pull', 'push'] as const)(
    'pays in %s mode: 200, and the receipt names a mined transfer',
    async (mode) => {
      const page = await browser!.newPage()
      const errors: string[] = []
      page.on('pageerror', (error) => errors.push(String(error)))
      await page.goto(`${origin}/`)
      await page.waitForFunction(
        () => typeof (globalThis as { payInBrowser?: unknown }).payInBrowser === 'function',
      )
      const payee = devnet.info.accounts[0]!.address
      const before = await balance(payee)
      const input: PayInput = {
        privateKey: devnet.info.accounts[1]!.privateKey,
        rpcUrl: devnet.info.rpcUrl,
        chainId: devnet.info.chainId,
        currency: devnet.info.tokens.pathUsd,
        path: `${origin}/paid`,
        mode,
      }
      const result = await page.evaluate(
        (value) =>
          (
            globalThis as unknown as { payInBrowser(input: PayInput): Promise<Record<string, any>> }
          ).payInBrowser(value),
        input,
      )
      await page.close()
      expect(errors).toEqual([])
      expect(result.runtime.process).toBe('undefined')
      expect(result.runtime.userAgent).toMatch(/Chrome\//)
      expect(result.status).toBe(200)
      expect(JSON.parse(result.body)).toEqual({ paid: true, served: 'from node, paid from the browser' })
      expect(result.spent).toBe(String(amount))
      expect(result.receipt).toMatchObject({ status: 'success', method: 'tempo' })
      const reference = result.receipt.reference as Hex
      expect(reference).toMatch(/^0x[0-9a-f]{64}$/)
      const mined = await tempoClients(devnet.info).publicClient.getTransactionReceipt({ hash: reference })
      expect(mined.status).toBe('success')
      expect(mined.from.toLowerCase()).toBe(devnet.info.accounts[1]!.address.toLowerCase())
      expect((await balance(payee)) - before).toBe(amount)
    },
    60_000,
  )
})
