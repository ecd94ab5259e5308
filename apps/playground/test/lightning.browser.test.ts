// The Lightning views in Chromium, on the devnet's LND simulator: a person clicks, the playground's
// server pays from the payer node, and the nodes (read here through the unmodified `lightning` client)
// say the money moved.
import { join } from 'node:path'
import { type RunningDevnet, startDevnet } from '@mppkit/devnet'
import { type AuthenticatedLnd, authenticatedLndGrpc, getChannelBalance, getPayment } from 'lightning'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error: build.mjs is plain JavaScript
import { buildPage } from '../build.mjs'
import { readPage } from '../src/server/page.js'
import { type Playground, startPlayground } from '../src/server/playground.js'
import { chromiumUnavailableReason, launch, outputDirectory, watchedPage } from './chromium.js'

if (chromiumUnavailableReason)
  console.warn(`[skip] Lightning views in Chromium: ${chromiumUnavailableReason}`)

describe.skipIf(!!chromiumUnavailableReason)('the Lightning views in Chromium', () => {
  let devnet: RunningDevnet
  let playground: Playground
  let browser: Awaited<ReturnType<typeof launch>>
  let page: Page
  let payer: AuthenticatedLnd
  let payee: AuthenticatedLnd
  const errors: string[] = []

  beforeAll(async () => {
    const dist = join(outputDirectory, 'dist', 'lightning')
    const [started] = await Promise.all([startDevnet({ rails: ['lightning'] }), buildPage(dist)])
    devnet = started
    const nodes = (
      devnet.info.lightning as {
        nodes: Record<'payer' | 'payee', { socket: string; cert: string; macaroon: string }>
      }
    ).nodes
    payer = authenticatedLndGrpc(nodes.payer).lnd
    payee = authenticatedLndGrpc(nodes.payee).lnd
    playground = await startPlayground({
      devnet: devnet.info,
      page: readPage(dist),
      chunkDelayMs: 40,
    })
    browser = await launch()
    page = await watchedPage(browser, errors)
    await page.goto(playground.url, { timeout: 90_000 })
    await page.waitForSelector('body[data-ready="true"]')
    console.log(`[playground] screenshots: ${outputDirectory}`)
  }, 180_000)

  afterAll(async () => {
    await browser?.close()
    await playground?.close()
    await devnet?.stop()
  })

  const sats = async (lnd: AuthenticatedLnd) => (await getChannelBalance({ lnd })).channel_balance
  const shot = (name: string) =>
    page.screenshot({ path: join(outputDirectory, `${name}.png`), fullPage: true })
  const statusOf = (id: string, pattern: RegExp) =>
    page.waitForFunction(
      ([selector, source]) => new RegExp(source!).test(document.querySelector(selector!)?.textContent ?? ''),
      [`#${id}-status`, pattern.source],
      { timeout: 30_000 },
    )
  const payCharge = async () => {
    await page.evaluate(() => {
      document.querySelector('#lightning-charge-status')!.textContent = ''
    })
    await page.click('#lightning-charge-pay')
    await statusOf('lightning-charge', /Paid|Failed|Not paid|Refused|Outcome unknown/)
    return (await page.textContent('#lightning-charge-status'))!
  }

  it('pays a Lightning charge: each step shown, the preimage masked, the nodes moved by the price; a second payment is a second settlement', async () => {
    await page.click('#tab-lightning-charge')
    const [payerBefore, payeeBefore] = await Promise.all([sats(payer), sats(payee)])
    const references: string[] = []
    for (const round of [1, 2]) {
      const status = await payCharge()
      console.log(`[playground] Lightning charge #${round}: ${status}`)
      expect(status).toMatch(/^Paid: 200 in \d+ ms$/)
      const receipt = JSON.parse((await page.textContent('#lightning-charge-receipt pre'))!)
      expect(receipt).toMatchObject({ status: 'success', method: 'lightning' })
      expect(receipt.reference).toMatch(/^[0-9a-f]{64}$/)
      references.push(receipt.reference)
      // What a person sees: the offer in sat, the invoice as the payer node decoded it, the payment
      // settled on the payee node, the credential with its preimage masked, the body.
      expect(await page.textContent('#lightning-charge-offers')).toContain('100 sat')
      const invoice = JSON.parse((await page.textContent('#lightning-charge-invoice pre'))!)
      expect(invoice).toMatchObject({ tokens: 100, id: receipt.reference, description: 'one fortune' })
      const payment = JSON.parse((await page.textContent('#lightning-charge-payment pre'))!)
      expect(payment.payeeInvoice).toMatchObject({ id: receipt.reference, is_confirmed: true, received: 100 })
      const credential = (await page.textContent('#lightning-charge-credential pre'))!
      expect(credential).toMatch(/"preimage": "<redacted 64 chars/)
      expect(await page.textContent('#lightning-charge-response pre')).toContain('fortune')
      // The preimage the payer node holds never reached the page.
      const { payment: paid, is_confirmed } = await getPayment({ lnd: payer, id: receipt.reference })
      expect(is_confirmed).toBe(true)
      expect(paid?.secret).toMatch(/^[0-9a-f]{64}$/)
      expect(await page.content()).not.toContain(paid!.secret)
      // Balances in the page come from the nodes, before and after.
      expect(await page.textContent('#lightning-charge-balances')).toMatch(/payee node \(sat\)\d+\d+/)
      expect(await page.textContent('#lightning-charge-spent')).toBe(String(100 * round))
      await shot(`lightning-charge-${round}`)
    }
    expect(references[0]).not.toBe(references[1])
    expect((await sats(payee)) - payeeBefore).toBe(200)
    expect(payerBefore - (await sats(payer))).toBe(200)
    // Two payments, each settled on its own invoice (the payer node's records, by payment hash).
    for (const id of references) expect((await getPayment({ lnd: payer, id })).is_confirmed).toBe(true)
  }, 60_000)

  it('refuses a charge past the budget, and the nodes move nothing for it', async () => {
    await page.fill('#lightning-charge-budget', '150')
    await page.click('#lightning-charge-apply')
    expect(await payCharge()).toMatch(/^Paid: 200/)
    const [payerBefore, payeeBefore] = await Promise.all([sats(payer), sats(payee)])
    const refused = await payCharge()
    expect(refused).toMatch(/^Refused by policy: .*budget/)
    await shot('lightning-charge-refused')
    expect(await sats(payer)).toBe(payerBefore)
    expect(await sats(payee)).toBe(payeeBefore)
    await page.fill('#lightning-charge-budget', '10000')
    await page.click('#lightning-charge-apply')
  }, 30_000)

  it('refuses a budget that holds the price but not the routing fee limit, and says why', async () => {
    // The fee limit is named next to the policy, with the budget one payment needs.
    expect(await page.textContent('#lightning-charge-fee-note')).toMatch(
      /routing fee limit of 10 sat \(maxFeeSats\).*a budget of at least 110 sat/,
    )
    await page.fill('#lightning-charge-budget', '100')
    await page.click('#lightning-charge-apply')
    const [payerBefore, payeeBefore] = await Promise.all([sats(payer), sats(payee)])
    const refused = await payCharge()
    await shot('lightning-charge-fee-refused')
    expect(refused).toBe(
      'Refused by policy: lightning: the payment and its routing fee limit of 10 sat (maxFeeSats) would exceed the remaining budget',
    )
    expect(await page.textContent('#lightning-charge-spent')).toBe('0')
    expect(await sats(payer)).toBe(payerBefore)
    expect(await sats(payee)).toBe(payeeBefore)
    // The budget the note names pays.
    await page.fill('#lightning-charge-budget', '110')
    await page.click('#lightning-charge-apply')
    expect(await payCharge()).toMatch(/^Paid: 200/)
    await page.fill('#lightning-charge-budget', '10000')
    await page.click('#lightning-charge-apply')
  }, 30_000)

  it("says a payment whose outcome the node did not report may have gone through; spent is the agent's ledger", async () => {
    // The server's trace of a refusal carries what the agent's ledger holds as spent.
    const answer = await fetch(new URL('/api/lightning/charge', playground.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: crypto.randomUUID(), maxAmount: '1000', budget: '100' }),
    })
    const last = JSON.parse((await answer.text()).trim().split('\n').at(-1)!)
    expect(last).toEqual({
      type: 'refused',
      message:
        'lightning: the payment and its routing fee limit of 10 sat (maxFeeSats) would exceed the remaining budget',
      spent: '0',
    })
    // The page's rendering of a failure the node left unknown (as the server traces it): the payment and
    // its whole fee limit stay booked.
    await page.click('#tab-lightning-charge')
    await page.route('**/api/lightning/charge', (route) =>
      route.fulfill({
        contentType: 'application/x-ndjson',
        body: `${JSON.stringify({
          type: 'failed',
          message: 'lightning: the payment failed (UnexpectedPaymentError)',
          mayHaveSettled: true,
          spent: '110',
        })}\n`,
      }),
    )
    try {
      expect(await payCharge()).toBe(
        'Outcome unknown: lightning: the payment failed (UnexpectedPaymentError); the payment may have gone through: check before paying again (it stays booked against the budget)',
      )
      expect(await page.textContent('#lightning-charge-spent')).toBe('110')
    } finally {
      await page.unroute('**/api/lightning/charge')
      await page.click('#lightning-charge-apply')
    }
  }, 30_000)

  it('streams a Lightning session: the balance meter moves live, the deposit is topped up twice, close refunds the rest', async () => {
    await page.click('#tab-lightning-session')
    const [payerBefore, payeeBefore] = await Promise.all([sats(payer), sats(payee)])
    // Record every text the meter shows while the stream runs.
    await page.evaluate(() => {
      const meter = document.querySelector('#lightning-session-meter')!
      const seen: string[] = []
      ;(window as unknown as { meterTexts: string[] }).meterTexts = seen
      new MutationObserver(() => seen.push(meter.textContent ?? '')).observe(meter, {
        childList: true,
        characterData: true,
        subtree: true,
      })
    })
    await page.click('#lightning-session-stream-button')
    await statusOf('lightning-session', /Streamed|Failed|Not paid|Refused|ended/)
    const streamed = (await page.textContent('#lightning-session-status'))!
    console.log(`[playground] Lightning session: ${streamed}`)
    expect(streamed).toBe('Streamed: 25 chunks paid, 2 top-up(s)')
    const meters = await page.evaluate(() => (window as unknown as { meterTexts: string[] }).meterTexts)
    const spentValues = new Set(meters.map((text) => /spent (\d+) sat/.exec(text)?.[1]))
    expect(spentValues.size).toBeGreaterThanOrEqual(20)
    expect(meters.some((text) => /deposit 10 sat/.test(text))).toBe(true)
    expect(meters.some((text) => /deposit 20 sat/.test(text))).toBe(true)
    expect(await page.textContent('#lightning-session-meter')).toMatch(/deposit 30 sat .* top-ups 2$/)
    expect((await page.textContent('#lightning-session-stream'))!.trim().split(/\s+/)).toHaveLength(25)
    expect(await page.isVisible('#lightning-session-topup-1')).toBe(true)
    expect(await page.textContent('#lightning-session-topup-2-payment pre')).toContain('"is_confirmed": true')
    expect(JSON.parse((await page.textContent('#lightning-session-stream-receipt pre'))!)).toMatchObject({
      spent: 25,
      units: 25,
    })
    // The deposit and both top-ups reached the payee node (3 × 10 sat).
    expect((await sats(payee)) - payeeBefore).toBe(30)
    await shot('lightning-session-streamed')

    await page.click('#lightning-session-close')
    await statusOf('lightning-session', /Closed|Close failed/)
    const closed = (await page.textContent('#lightning-session-status'))!
    expect(closed).toBe('Closed: deposited 30 sat, spent 25, refunded 5 sat (succeeded)')
    await shot('lightning-session-closed')
    // Net: the payer paid 25 chunks, the payee kept 25.
    expect(payerBefore - (await sats(payer))).toBe(25)
    expect((await sats(payee)) - payeeBefore).toBe(25)
  }, 60_000)

  it('is keyboard accessible: arrow keys reach the Lightning views, Enter pays', async () => {
    await page.click('#tab-lightning-charge')
    await page.keyboard.press('ArrowRight')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tab-lightning-session')
    expect(await page.isVisible('#view-lightning-session')).toBe(true)
    await page.keyboard.press('ArrowLeft')
    expect(await page.isVisible('#view-lightning-charge')).toBe(true)
    const before = await sats(payee)
    await page.evaluate(() => {
      document.querySelector('#lightning-charge-status')!.textContent = ''
    })
    await page.focus('#lightning-charge-pay')
    await page.keyboard.press('Enter')
    await statusOf('lightning-charge', /Paid|Failed|Not paid|Refused/)
    expect(await page.textContent('#lightning-charge-status')).toMatch(/^Paid: 200/)
    expect((await sats(payee)) - before).toBe(100)
  }, 30_000)

  it('is readable at 360 px wide (no horizontal scrolling)', async () => {
    await page.setViewportSize({ width: 360, height: 800 })
    for (const view of ['lightning-charge', 'lightning-session']) {
      await page.click(`#tab-${view}`)
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
      await shot(`${view}-narrow-360`)
      expect(overflow, view).toBeLessThanOrEqual(0)
    }
    await page.setViewportSize({ width: 1100, height: 900 })
  })

  it('logged no errors on the console', () => {
    expect(errors).toEqual([])
  })
})
