import { join } from 'node:path'
import { type RunningDevnet, startDevnet } from '@mppkit/devnet'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error: build.mjs is plain JavaScript
import { buildPage } from '../build.mjs'
import { readPage } from '../src/server/page.js'
import { type Playground, startPlayground } from '../src/server/playground.js'
import type { SolanaPageConfig } from '../src/server/solana.js'
import { chromiumUnavailableReason, launch, outputDirectory, watchedPage } from './chromium.js'

if (chromiumUnavailableReason) console.warn(`[skip] Solana view in Chromium: ${chromiumUnavailableReason}`)

describe.skipIf(!!chromiumUnavailableReason)('the Solana charge view in Chromium', () => {
  let devnet: RunningDevnet
  let playground: Playground
  let browser: Awaited<ReturnType<typeof launch>>
  let page: Page
  let config: SolanaPageConfig
  const errors: string[] = []

  beforeAll(async () => {
    const dist = join(outputDirectory, 'dist', 'solana')
    const [started] = await Promise.all([startDevnet({ rails: ['solana'] }), buildPage(dist)])
    devnet = started
    playground = await startPlayground({ devnet: devnet.info, page: readPage(dist) })
    browser = await launch()
    page = await watchedPage(browser, errors)
    await page.goto(`${playground.url}#solana`)
    await page.waitForSelector('body[data-ready="true"]')
    config = (await (await fetch(new URL('/api/config', playground.url))).json()).solana
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await playground?.close()
    await devnet?.stop()
  })

  /** Asks the devnet node itself (not the playground). */
  const rpc = async <T>(method: string, params: unknown[]): Promise<T> => {
    const response = await fetch(devnet.info.solana!.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    })
    return ((await response.json()) as { result: T }).result
  }
  const lamports = async (owner: string) =>
    BigInt((await rpc<{ value: number }>('getBalance', [owner, { commitment: 'confirmed' }])).value)
  const tokens = async (owner: string) => {
    const { value } = await rpc<{
      value: { account: { data: { parsed: { info: { tokenAmount: { amount: string } } } } } }[]
    }>('getTokenAccountsByOwner', [owner, { mint: config.token.mint }, { encoding: 'jsonParsed' }])
    return BigInt(value[0]!.account.data.parsed.info.tokenAmount.amount)
  }
  const shot = (name: string) =>
    page.screenshot({ path: join(outputDirectory, `${name}.png`), fullPage: true })
  const settled = () =>
    page.waitForFunction(
      () =>
        /^(Paid|Failed|Not paid|Refused)/.test(document.querySelector('#solana-status')?.textContent ?? ''),
      undefined,
      { timeout: 30_000 },
    )
  const pay = async () => {
    await page.click('#solana-pay')
    await settled()
    return (await page.textContent('#solana-status'))!
  }
  const receipt = async () => JSON.parse((await page.textContent('#solana-receipt pre'))!)
  const record = async () => {
    await page.click('#solana-receipt button.record')
    await page.waitForFunction(() =>
      /"status"/.test(document.querySelector('#solana-receipt pre.record')?.textContent ?? ''),
    )
    return JSON.parse((await page.textContent('#solana-receipt pre.record'))!)
  }

  it('pays SOL in pull and push mode: two settlements, the payee gains the price each time', async () => {
    const signatures: string[] = []
    for (const mode of ['pull', 'push']) {
      await page.selectOption('#solana-currency', 'sol')
      await page.selectOption('#solana-mode', mode)
      const before = await lamports(config.payee)
      const status = await pay()
      console.log(`[playground] Solana SOL (${mode}): ${status}`)
      expect(status).toMatch(/^Paid: 200 in \d+ ms$/)
      expect((await lamports(config.payee)) - before).toBe(1_000_000n)
      const paid = await receipt()
      expect(paid).toMatchObject({ status: 'success', method: 'solana' })
      signatures.push(paid.reference)
      // The 402's offer, decoded in display units; the credential with its signatures masked.
      expect(await page.textContent('#solana-offers')).toContain('0.001 SOL')
      const credential = (await page.textContent('#solana-credential pre'))!
      expect(credential).toContain('"method": "solana"')
      expect(credential).not.toContain(paid.reference)
      if (mode === 'pull') {
        // The transaction the page signed: a System transfer of the price to the payee.
        const transaction = JSON.parse((await page.textContent('#solana-transaction pre'))!)
        expect(transaction.instructions).toContainEqual(
          expect.objectContaining({
            program: 'System',
            instruction: 'Transfer',
            to: config.payee,
            lamports: '1000000',
          }),
        )
        expect(transaction.signatures[0].signature).toMatch(/masked/)
        expect(credential).toMatch(/base64 wire transaction/)
      } else {
        expect(credential).toMatch(/redacted \d+ chars/)
        const instructions = JSON.parse((await page.textContent('#solana-transaction pre'))!)
        expect(instructions).toContainEqual(
          expect.objectContaining({ type: 'transfer', lamports: 1_000_000 }),
        )
      }
      // The devnet's record of the same transaction.
      const landed = await record()
      expect(landed).toMatchObject({ signature: paid.reference, status: 'success' })
      expect(landed.lamportChanges).toContainEqual({ account: config.payee, lamports: 1_000_000 })
      // Balances before/after, as the page shows them.
      expect(await page.textContent('#solana-balances')).toMatch(/payee SOL/)
      await shot(`solana-sol-${mode}`)
    }
    expect(signatures[0]).not.toBe(signatures[1])
  }, 60_000)

  it('pays the SPL token: a TransferChecked of the price into the payee token account', async () => {
    await page.selectOption('#solana-currency', 'token')
    await page.selectOption('#solana-mode', 'pull')
    const before = await tokens(config.payee)
    const payerBefore = await tokens(config.payer.address)
    const status = await pay()
    console.log(`[playground] Solana ${config.token.symbol}: ${status}`)
    expect(status).toMatch(/^Paid: 200/)
    expect((await tokens(config.payee)) - before).toBe(10_000n)
    expect(payerBefore - (await tokens(config.payer.address))).toBe(10_000n)
    expect(await page.textContent('#solana-offers')).toContain(`0.01 ${config.token.symbol}`)
    const transaction = JSON.parse((await page.textContent('#solana-transaction pre'))!)
    expect(transaction.instructions).toContainEqual(
      expect.objectContaining({
        instruction: 'TransferChecked',
        mint: config.token.mint,
        amount: '10000',
        decimals: 6,
      }),
    )
    const landed = await record()
    expect(landed.tokenChanges).toContainEqual(
      expect.objectContaining({ owner: config.payee, amount: '10000' }),
    )
    expect(await page.textContent('#solana-spent')).toBe('0.01')
    await shot('solana-token')
  }, 60_000)

  it('refuses a payment above the per-request cap: nothing moves on the node', async () => {
    await page.selectOption('#solana-currency', 'sol')
    await page.fill('#solana-max', '0.0001')
    await page.click('#solana-apply')
    const before = await lamports(config.payee)
    expect(await pay()).toMatch(/^Refused by policy: /)
    expect(await lamports(config.payee)).toBe(before)
    await shot('solana-refused')
    await page.fill('#solana-max', '0.01')
    await page.click('#solana-apply')
  }, 30_000)

  it('is keyboard accessible: the tab is reachable, Enter pays', async () => {
    await page.focus('#tab-solana')
    await page.keyboard.press('End')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tab-inspector')
    await page.keyboard.press('Home')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tab-solana')
    expect(await page.isVisible('#view-solana')).toBe(true)
    const before = await lamports(config.payee)
    await page.focus('#solana-pay')
    await page.keyboard.press('Enter')
    await settled()
    expect(await page.textContent('#solana-status')).toMatch(/^Paid: 200/)
    expect((await lamports(config.payee)) - before).toBe(1_000_000n)
  }, 30_000)

  it('is readable at 360 px wide (no horizontal scrolling)', async () => {
    await page.setViewportSize({ width: 360, height: 800 })
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    await shot('solana-narrow-360')
    expect(overflow).toBeLessThanOrEqual(0)
    await page.setViewportSize({ width: 1100, height: 900 })
  })

  it('logged no errors on the console', () => {
    expect(errors).toEqual([])
  })
})
