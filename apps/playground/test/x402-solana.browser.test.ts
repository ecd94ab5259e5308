import { join } from 'node:path'
import { type RunningDevnet, startDevnet } from '@mppkit/devnet'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error: build.mjs is plain JavaScript
import { buildPage } from '../build.mjs'
import { readPage } from '../src/server/page.js'
import { type Playground, startPlayground } from '../src/server/playground.js'
import type { X402SolanaPageConfig } from '../src/server/x402-solana.js'
import { chromiumUnavailableReason, launch, outputDirectory, watchedPage } from './chromium.js'

if (chromiumUnavailableReason)
  console.warn(`[skip] x402 Solana views in Chromium: ${chromiumUnavailableReason}`)

type Landed = {
  meta: { err: unknown; fee: number; preBalances: number[]; postBalances: number[] }
  transaction: { message: { accountKeys: string[] } }
}

describe.skipIf(!!chromiumUnavailableReason)('the x402 views on Solana in Chromium', () => {
  let devnet: RunningDevnet
  let playground: Playground
  let browser: Awaited<ReturnType<typeof launch>>
  let page: Page
  let config: X402SolanaPageConfig
  const errors: string[] = []

  beforeAll(async () => {
    const dist = join(outputDirectory, 'dist', 'x402-solana')
    const [started] = await Promise.all([startDevnet({ rails: ['solana'] }), buildPage(dist)])
    devnet = started
    playground = await startPlayground({ devnet: devnet.info, page: readPage(dist) })
    browser = await launch()
    page = await watchedPage(browser, errors)
    await page.goto(`${playground.url}#x402-solana-service`)
    await page.waitForSelector('body[data-ready="true"]')
    config = (await (await fetch(new URL('/api/config', playground.url))).json()).x402Solana
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await playground?.close()
    await devnet?.stop()
  })

  /** Asks the devnet node itself (not the playground). */
  const node = async <T>(method: string, params: unknown[]): Promise<T> => {
    const rpcUrl = (devnet.info.solana as { rpcUrl: string }).rpcUrl
    const response = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    })
    return ((await response.json()) as { result: T }).result
  }
  /** The owner's token balance of the demo mint (base units), read from the node. */
  const balance = async (owner: string): Promise<bigint> => {
    const { value } = await node<{
      value: { account: { data: { parsed: { info: { tokenAmount: { amount: string } } } } } }[]
    }>('getTokenAccountsByOwner', [owner, { mint: config.token.address }, { encoding: 'jsonParsed' }])
    return value.reduce((sum, { account }) => sum + BigInt(account.data.parsed.info.tokenAmount.amount), 0n)
  }
  const landed = (signature: string) =>
    node<Landed>('getTransaction', [
      signature,
      { encoding: 'json', commitment: 'confirmed', maxSupportedTransactionVersion: 0 },
    ])
  const shot = (name: string) =>
    page.screenshot({ path: join(outputDirectory, `${name}.png`), fullPage: true })
  const pay = async (id: string) => {
    await page.click(`#${id}-pay`)
    await page.waitForFunction(
      (selector) =>
        /^(Paid|Failed|Not paid|Refused)/.test(document.querySelector(selector)?.textContent ?? ''),
      `#${id}-status`,
      { timeout: 30_000 },
    )
    return (await page.textContent(`#${id}-status`))!
  }
  const settlementOf = async (id: string) =>
    JSON.parse((await page.textContent(`#${id}-receipt pre.settlement`))!)

  /** The landed settlement: it succeeded and the facilitator, not the page's payer, paid its fee. */
  const checkLanded = async (signature: string, payer: string) => {
    const record = await landed(signature)
    expect(record.meta.err).toBeNull()
    const keys = record.transaction.message.accountKeys
    expect(keys[0]).toBe(config.facilitator)
    expect(record.meta.preBalances[0]! - record.meta.postBalances[0]!).toBe(record.meta.fee)
    expect(keys).toContain(payer)
  }

  it('the mppkit client pays an @x402/hono service on Solana twice: two settlements, the payee gains the price each time', async () => {
    await page.click('#tab-x402-solana-service')
    const signatures: string[] = []
    for (const round of [1, 2]) {
      const before = await balance(config.payee)
      const payerBefore = await balance(config.servicePayer.address)
      const status = await pay('x402-solana-service')
      console.log(`[playground] x402 service on Solana (${round}): ${status}`)
      expect(status).toMatch(/^Paid: 200 in \d+ ms$/)
      expect((await balance(config.payee)) - before).toBe(2000n)
      expect(payerBefore - (await balance(config.servicePayer.address))).toBe(2000n)
      // The 402 is x402's: PAYMENT-REQUIRED decoded, no WWW-Authenticate.
      const offers = (await page.textContent('#x402-solana-service-offers'))!
      expect(offers).toContain(`0.002 ${config.token.symbol}`)
      expect(offers).toContain(`exact/${config.network}`)
      expect(await page.textContent('#x402-solana-service-unpaid')).toContain('WWW-Authenticate: (none')
      // The payment header, decoded, its transaction masked.
      const payment = JSON.parse((await page.textContent('#x402-solana-service-credential pre'))!)
      expect(payment).toMatchObject({ x402Version: 2, accepted: { network: config.network } })
      expect(payment.payload.transaction).toMatch(/masked/)
      const settlement = await settlementOf('x402-solana-service')
      expect(settlement).toMatchObject({ success: true, network: config.network })
      await checkLanded(settlement.transaction, config.servicePayer.address)
      signatures.push(settlement.transaction)
      await page.click('#x402-solana-service-receipt button.record')
      await page.waitForFunction(() =>
        /"postTokenBalances"/.test(
          document.querySelector('#x402-solana-service-receipt pre.record')?.textContent ?? '',
        ),
      )
      await shot(`x402-solana-service-${round}`)
    }
    expect(signatures[0]).not.toBe(signatures[1])
    expect(await page.textContent('#x402-solana-service-spent')).toBe('0.004')
    expect(await page.textContent('#x402-solana-service-balances')).toMatch(/facilitator settlements/)
  }, 60_000)

  it('@x402/fetch with @x402/svm pays the dual-stack mppkit route: both 402 dialects shown, each payment a settlement', async () => {
    await page.click('#tab-x402-solana-client')
    const before = await balance(config.payee)
    const payerBefore = await balance(config.clientPayer.address)
    const status = await pay('x402-solana-client')
    console.log(`[playground] x402 client on Solana: ${status}`)
    expect(status).toMatch(/^Paid: 200 in \d+ ms$/)
    expect((await balance(config.payee)) - before).toBe(2000n)
    expect(payerBefore - (await balance(config.clientPayer.address))).toBe(2000n)
    const offers = (await page.textContent('#x402-solana-client-offers'))!
    expect(offers).toContain('x402 (PAYMENT-REQUIRED)')
    expect(offers).toContain('MPP (WWW-Authenticate)')
    expect(offers).toContain('solana/charge')
    const payment = JSON.parse((await page.textContent('#x402-solana-client-credential pre'))!)
    expect(payment).toMatchObject({ x402Version: 2, accepted: { network: config.network } })
    expect(payment.payload.transaction).toMatch(/masked/)
    const settlement = await settlementOf('x402-solana-client')
    await checkLanded(settlement.transaction, config.clientPayer.address)
    // mppkit's own receipt rides beside x402's PAYMENT-RESPONSE.
    const receipt = JSON.parse((await page.textContent('#x402-solana-client-receipt pre.receipt'))!)
    expect(receipt).toMatchObject({ status: 'success', method: 'solana', reference: settlement.transaction })
    await shot('x402-solana-client')
    // A second payment is a second settlement.
    expect(await pay('x402-solana-client')).toMatch(/^Paid: 200/)
    const second = await settlementOf('x402-solana-client')
    expect(second.transaction).not.toBe(settlement.transaction)
    expect((await balance(config.payee)) - before).toBe(4000n)
  }, 60_000)

  it('refuses above the cap on both sides: the mppkit policy and @x402/fetch spend controls; nothing moves', async () => {
    const before = await balance(config.payee)
    await page.click('#tab-x402-solana-service')
    await page.fill('#x402-solana-service-max', '0.001')
    await page.click('#x402-solana-service-apply')
    expect(await pay('x402-solana-service')).toMatch(/^Refused by policy: /)
    await page.click('#tab-x402-solana-client')
    await page.fill('#x402-solana-client-max', '0.001')
    expect(await pay('x402-solana-client')).toMatch(/^Refused by @x402\/fetch: /)
    await shot('x402-solana-client-refused')
    expect(await balance(config.payee)).toBe(before)
  }, 30_000)

  it('is readable at 360 px wide (no horizontal scrolling)', async () => {
    await page.setViewportSize({ width: 360, height: 800 })
    for (const id of ['x402-solana-service', 'x402-solana-client']) {
      await page.click(`#tab-${id}`)
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
      await shot(`${id}-narrow-360`)
      expect(overflow, id).toBeLessThanOrEqual(0)
    }
    await page.setViewportSize({ width: 1100, height: 900 })
  })

  it('logged no errors on the console', () => {
    expect(errors).toEqual([])
  })
})
