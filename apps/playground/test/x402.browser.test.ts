import { join } from 'node:path'
import { type RunningDevnet, startDevnet, tempoClients } from '@mppkit/devnet'
import type { Page } from 'playwright-core'
import { type Address, erc20Abi } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error: build.mjs is plain JavaScript
import { buildPage } from '../build.mjs'
import { readPage } from '../src/server/page.js'
import { type Playground, startPlayground } from '../src/server/playground.js'
import type { X402PageConfig } from '../src/server/x402.js'
import { chromiumUnavailableReason, launch, outputDirectory, watchedPage } from './chromium.js'

if (chromiumUnavailableReason) console.warn(`[skip] x402 views in Chromium: ${chromiumUnavailableReason}`)

type FullTempo = Extract<NonNullable<RunningDevnet['info']['tempo']>, { escrow: string }>

describe.skipIf(!!chromiumUnavailableReason)('the x402 views in Chromium', () => {
  let devnet: RunningDevnet
  let playground: Playground
  let browser: Awaited<ReturnType<typeof launch>>
  let page: Page
  let config: X402PageConfig
  const errors: string[] = []

  beforeAll(async () => {
    const dist = join(outputDirectory, 'dist', 'x402')
    const [started] = await Promise.all([
      startDevnet({ rails: ['tempo'], tempo: { accounts: 8 } }),
      buildPage(dist),
    ])
    devnet = started
    playground = await startPlayground({ devnet: devnet.info, page: readPage(dist) })
    browser = await launch()
    page = await watchedPage(browser, errors)
    await page.goto(`${playground.url}#x402-service`)
    await page.waitForSelector('body[data-ready="true"]')
    config = (await (await fetch(new URL('/api/config', playground.url))).json()).x402
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await playground?.close()
    await devnet?.stop()
  })

  const tempo = () => devnet.info.tempo as FullTempo
  /** Asks anvil itself (not the playground). */
  const balance = (owner: Address) =>
    tempoClients(tempo()).publicClient.readContract({
      address: tempo().eip3009Token,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [owner],
    })
  const receiptOf = (hash: `0x${string}`) =>
    tempoClients(tempo()).publicClient.getTransactionReceipt({ hash })
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

  it('the mppkit client pays an @x402/hono service twice: two settlements on anvil, the payee gains the price each time', async () => {
    await page.click('#tab-x402-service')
    const hashes: string[] = []
    for (const round of [1, 2]) {
      const before = await balance(config.payee)
      const payerBefore = await balance(config.servicePayer.address)
      const status = await pay('x402-service')
      console.log(`[playground] x402 service (${round}): ${status}`)
      expect(status).toMatch(/^Paid: 200 in \d+ ms$/)
      expect((await balance(config.payee)) - before).toBe(2000n)
      expect(payerBefore - (await balance(config.servicePayer.address))).toBe(2000n)
      // The 402 is x402's: PAYMENT-REQUIRED decoded, no WWW-Authenticate.
      const offers = (await page.textContent('#x402-service-offers'))!
      expect(offers).toContain(`0.002 ${config.token.symbol}`)
      expect(offers).toContain(`exact/eip155:${config.chainId}`)
      expect(await page.textContent('#x402-service-unpaid')).toContain('WWW-Authenticate: (none')
      // The payment header, decoded, its signature masked.
      const payment = JSON.parse((await page.textContent('#x402-service-credential pre'))!)
      expect(payment.payload.signature).toMatch(/masked/)
      expect(payment.payload.authorization).toMatchObject({
        from: config.servicePayer.address,
        value: '2000',
      })
      const settlement = await settlementOf('x402-service')
      expect(settlement).toMatchObject({ success: true, network: `eip155:${config.chainId}` })
      expect((await receiptOf(settlement.transaction)).status).toBe('success')
      hashes.push(settlement.transaction)
      await page.click('#x402-service-receipt button.record')
      await page.waitForFunction(() =>
        /"transfers"/.test(document.querySelector('#x402-service-receipt pre.record')?.textContent ?? ''),
      )
      const record = JSON.parse((await page.textContent('#x402-service-receipt pre.record'))!)
      expect(record.transfers).toContainEqual({
        token: tempo().eip3009Token.toLowerCase(),
        from: config.servicePayer.address.toLowerCase(),
        to: config.payee.toLowerCase(),
        amount: '2000',
      })
      await shot(`x402-service-${round}`)
    }
    expect(hashes[0]).not.toBe(hashes[1])
    expect(await page.textContent('#x402-service-spent')).toBe('0.004')
    expect(await page.textContent('#x402-service-balances')).toMatch(/facilitator settlements/)
  }, 60_000)

  it('@x402/fetch pays the dual-stack mppkit route: both 402 dialects shown, each payment a settlement', async () => {
    await page.click('#tab-x402-client')
    const before = await balance(config.payee)
    const payerBefore = await balance(config.clientPayer.address)
    const status = await pay('x402-client')
    console.log(`[playground] x402 client: ${status}`)
    expect(status).toMatch(/^Paid: 200 in \d+ ms$/)
    expect((await balance(config.payee)) - before).toBe(2000n)
    expect(payerBefore - (await balance(config.clientPayer.address))).toBe(2000n)
    const offers = (await page.textContent('#x402-client-offers'))!
    expect(offers).toContain('x402 (PAYMENT-REQUIRED)')
    expect(offers).toContain('MPP (WWW-Authenticate)')
    expect(offers).toContain('evm/charge')
    const payment = JSON.parse((await page.textContent('#x402-client-credential pre'))!)
    expect(payment).toMatchObject({ x402Version: 2, payload: { authorization: { value: '2000' } } })
    expect(payment.payload.signature).toMatch(/masked/)
    const settlement = await settlementOf('x402-client')
    expect((await receiptOf(settlement.transaction)).status).toBe('success')
    // mppkit's own receipt rides beside x402's PAYMENT-RESPONSE.
    const receipt = JSON.parse((await page.textContent('#x402-client-receipt pre.receipt'))!)
    expect(receipt).toMatchObject({ status: 'success', method: 'evm', reference: settlement.transaction })
    await shot('x402-client')
    // A second payment is a second settlement.
    expect(await pay('x402-client')).toMatch(/^Paid: 200/)
    const second = await settlementOf('x402-client')
    expect(second.transaction).not.toBe(settlement.transaction)
    expect((await balance(config.payee)) - before).toBe(4000n)
  }, 60_000)

  it('refuses above the cap on both sides: the mppkit policy and @x402/fetch spend controls; nothing moves', async () => {
    const before = await balance(config.payee)
    await page.click('#tab-x402-service')
    await page.fill('#x402-service-max', '0.001')
    await page.click('#x402-service-apply')
    expect(await pay('x402-service')).toMatch(/^Refused by policy: /)
    await page.click('#tab-x402-client')
    await page.fill('#x402-client-max', '0.001')
    expect(await pay('x402-client')).toMatch(/^Refused by @x402\/fetch: /)
    await shot('x402-client-refused')
    expect(await balance(config.payee)).toBe(before)
    await page.fill('#x402-client-max', '0.01')
    await page.click('#tab-x402-service')
    await page.fill('#x402-service-max', '0.01')
    await page.click('#x402-service-apply')
  }, 30_000)

  it('is keyboard accessible: arrow keys reach the x402 views, Enter pays', async () => {
    await page.focus('#tab-x402-service')
    await page.keyboard.press('ArrowRight')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tab-x402-client')
    expect(await page.isVisible('#view-x402-client')).toBe(true)
    await page.keyboard.press('ArrowLeft')
    expect(await page.isVisible('#view-x402-service')).toBe(true)
    const before = await balance(config.payee)
    await page.focus('#x402-service-pay')
    await page.keyboard.press('Enter')
    await page.waitForFunction(() =>
      /^(Paid|Failed|Not paid|Refused)/.test(
        document.querySelector('#x402-service-status')?.textContent ?? '',
      ),
    )
    expect(await page.textContent('#x402-service-status')).toMatch(/^Paid: 200/)
    expect((await balance(config.payee)) - before).toBe(2000n)
  }, 30_000)

  it('is readable at 360 px wide (no horizontal scrolling)', async () => {
    await page.setViewportSize({ width: 360, height: 800 })
    for (const id of ['x402-service', 'x402-client']) {
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
