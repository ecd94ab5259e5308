import { join } from 'node:path'
import { type RunningDevnet, startDevnet, tempoClients } from '@mppkit/devnet'
import type { Page } from 'playwright-core'
import Stripe from 'stripe'
import { erc20Abi, type Hex } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error: build.mjs is plain JavaScript
import { buildPage } from '../build.mjs'
import { tempoRoles } from '../src/server/demo.js'
import { readPage } from '../src/server/page.js'
import { type Playground, startPlayground } from '../src/server/playground.js'
import { chromiumUnavailableReason, launch, outputDirectory, watchedPage } from './chromium.js'

if (chromiumUnavailableReason) console.warn(`[skip] playground in Chromium: ${chromiumUnavailableReason}`)

describe.skipIf(!!chromiumUnavailableReason)('the playground in Chromium', () => {
  let devnet: RunningDevnet
  let playground: Playground
  let browser: Awaited<ReturnType<typeof launch>>
  let page: Page
  const errors: string[] = []
  let size: { bytes: number; gzipped: number }
  // Every script the page loads (page.js, then each view's chunks as its tab opens): encoding and size.
  const scripts: Promise<{ url: string; encoding: string | undefined; bytes: number }>[] = []

  beforeAll(async () => {
    const dist = join(outputDirectory, 'dist')
    const [started, built] = await Promise.all([
      startDevnet({ rails: ['tempo', 'stripe'], tempo: { accounts: 4 } }),
      buildPage(dist) as Promise<{ bytes: number; gzipped: number }>,
    ])
    devnet = started
    size = built
    console.log(`[playground] page, whole app: ${built.bytes} bytes, ${built.gzipped} bytes gzipped`)
    playground = await startPlayground({
      devnet: devnet.info,
      page: readPage(dist),
      chunkDelayMs: 20,
    })
    browser = await launch()
    page = await watchedPage(browser, errors)
    page.on('response', (response) => {
      if (response.url().endsWith('.js'))
        scripts.push(
          (async () => ({
            url: response.url(),
            encoding: (await response.allHeaders())['content-encoding'],
            bytes: (await response.request().sizes()).responseBodySize,
          }))(),
        )
    })
    await page.goto(playground.url)
    await page.waitForSelector('body[data-ready="true"]')
    console.log(`[playground] screenshots: ${outputDirectory}`)
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await playground?.close()
    await devnet?.stop()
  })

  const tempo = () =>
    devnet.info.tempo as Extract<NonNullable<RunningDevnet['info']['tempo']>, { escrow: string }>
  const balance = (owner: Hex) =>
    tempoClients(tempo()).publicClient.readContract({
      address: tempo().tokens.pathUsd,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [owner],
    })
  const payee = () => tempo().accounts[tempoRoles.payee]!.address
  const shot = (name: string) =>
    page.screenshot({ path: join(outputDirectory, `${name}.png`), fullPage: true })
  const statusOf = (id: string, pattern: RegExp) =>
    page.waitForFunction(
      ([selector, source]) => new RegExp(source!).test(document.querySelector(selector!)?.textContent ?? ''),
      [`#${id}-status`, pattern.source],
      { timeout: 30_000 },
    )

  it('pays a Tempo charge in pull and push mode: two settlements, the payee gains the price each time', async () => {
    await page.click('#tab-tempo-charge')
    const references: string[] = []
    for (const mode of ['pull', 'push']) {
      await page.selectOption('#tempo-charge-mode', mode)
      const before = await balance(payee())
      await page.click('#tempo-charge-pay')
      await statusOf('tempo-charge', /Paid: 200|Failed|Not paid|Refused/)
      const paid = (await page.textContent('#tempo-charge-status'))!
      console.log(`[playground] Tempo charge (${mode}): ${paid}`)
      expect(paid).toMatch(/^Paid: 200 in \d+ ms$/)
      const receipt = JSON.parse((await page.textContent('#tempo-charge-receipt pre'))!)
      expect(receipt).toMatchObject({ status: 'success', method: 'tempo' })
      expect(receipt.reference).toMatch(/^0x[0-9a-f]{64}$/)
      references.push(receipt.reference)
      expect((await balance(payee())) - before).toBe(1000n)
      // Every offer of the 402 is decoded, and the credential's signature is masked.
      expect(await page.textContent('#tempo-charge-offers')).toContain('0.001 PathUSD')
      const credential = (await page.textContent('#tempo-charge-credential pre'))!
      expect(credential).toContain('"method": "tempo"')
      if (mode === 'pull') expect(credential).toMatch(/redacted \d+ chars/)
      await page.click('#tempo-charge-receipt button.record')
      await page.waitForFunction(() =>
        /"status": "success"/.test(
          document.querySelector('#tempo-charge-receipt pre:last-child')?.textContent ?? '',
        ),
      )
      // The devnet's record of the transaction: the transfer of the price to the payee.
      const record = JSON.parse((await page.textContent('#tempo-charge-receipt pre:last-child'))!)
      expect(record.transfers).toContainEqual({
        token: tempo().tokens.pathUsd.toLowerCase(),
        from: tempo().accounts[tempoRoles.chargePayer]!.address.toLowerCase(),
        to: payee().toLowerCase(),
        amount: '1000',
      })
      await shot(`tempo-charge-${mode}`)
      // The README's screenshot (apps/playground/screenshot.png is a copy, made smaller).
      if (mode === 'pull')
        await page.screenshot({
          path: join(outputDirectory, 'readme.png'),
          fullPage: true,
          clip: { x: 0, y: 0, width: 1100, height: 620 },
        })
    }
    expect(references[0]).not.toBe(references[1])
  }, 60_000)

  it('refuses a Tempo charge above the per-request cap or past the budget, and the node moves nothing for it', async () => {
    await page.fill('#tempo-charge-max', '0.0001')
    await page.click('#tempo-charge-apply')
    const before = await balance(payee())
    await page.click('#tempo-charge-pay')
    await statusOf('tempo-charge', /Refused|Paid|Failed|Not paid/)
    expect(await page.textContent('#tempo-charge-status')).toMatch(/^Refused by policy: /)
    await shot('tempo-charge-refused')
    expect(await balance(payee())).toBe(before)
    // A budget of 1.5 payments: the first is paid, the next is refused.
    await page.fill('#tempo-charge-max', '0.01')
    await page.fill('#tempo-charge-budget', '0.0015')
    await page.click('#tempo-charge-apply')
    await page.click('#tempo-charge-pay')
    await statusOf('tempo-charge', /Refused|Paid|Failed|Not paid/)
    expect(await page.textContent('#tempo-charge-status')).toMatch(/^Paid: 200/)
    expect(await page.textContent('#tempo-charge-spent')).toBe('0.001')
    await page.click('#tempo-charge-pay')
    await statusOf('tempo-charge', /Refused|Failed|Not paid/)
    expect(await page.textContent('#tempo-charge-status')).toMatch(/^Refused by policy: /)
    expect((await balance(payee())) - before).toBe(1000n)
    await page.fill('#tempo-charge-budget', '0.1')
    await page.click('#tempo-charge-apply')
  }, 30_000)

  it('says a charge whose paid answer was lost may have gone through, and keeps it in spent', async () => {
    await page.click('#tab-tempo-charge')
    // Push mode: the page broadcasts the transfer before it sends the credential.
    await page.selectOption('#tempo-charge-mode', 'push')
    await page.click('#tempo-charge-apply')
    const before = await balance(payee())
    // Chromium logs the aborted request: expected here, not an error of the page.
    const logged = page.waitForEvent('console', {
      predicate: (message) => /ERR_CONNECTION_RESET/.test(message.text()),
      timeout: 10_000,
    })
    // The paid request (the one carrying the credential) loses its connection.
    await page.route('**/api/demo/tempo/charge', (route) =>
      route.request().headers().authorization ? route.abort('connectionreset') : route.continue(),
    )
    try {
      await page.click('#tempo-charge-pay')
      await statusOf('tempo-charge', /Paid|Failed|Not paid|Refused|Outcome/)
      const status = (await page.textContent('#tempo-charge-status'))!
      await shot('tempo-charge-outcome-unknown')
      expect(status).toBe(
        'Outcome unknown: the paid request failed after the credential was sent; the payment may have gone through: check before paying again (it stays booked against the budget)',
      )
      // The client keeps the payment booked; the page says so.
      expect(await page.textContent('#tempo-charge-spent')).toBe('0.001')
      // And it did go through: the transfer was on chain before the answer was lost.
      expect((await balance(payee())) - before).toBe(1000n)
    } finally {
      await page.unroute('**/api/demo/tempo/charge')
    }
    await logged
    errors.splice(0, errors.length, ...errors.filter((e) => !/ERR_CONNECTION_RESET/.test(e)))
  }, 30_000)

  it('shows a paid 402 whose body is not JSON as not paid, not as a parse error', async () => {
    await page.click('#tempo-charge-apply')
    await page.route('**/api/demo/tempo/charge', (route) =>
      route.request().headers().authorization
        ? route.fulfill({ status: 402, contentType: 'text/plain', body: 'Payment Required' })
        : route.continue(),
    )
    try {
      await page.click('#tempo-charge-pay')
      await statusOf('tempo-charge', /Paid|Failed|Not paid|Refused|Outcome/)
      expect(await page.textContent('#tempo-charge-status')).toBe('Not paid: 402')
      expect(await page.textContent('#tempo-charge-response pre')).toBe('Payment Required')
    } finally {
      await page.unroute('**/api/demo/tempo/charge')
      await page.click('#tempo-charge-apply')
    }
  }, 30_000)

  it('streams a Tempo session: meters per chunk, tops up, closes with a refund', async () => {
    await page.click('#tab-tempo-session')
    const payeeBefore = await balance(payee())
    await page.click('#tempo-session-stream-button')
    await statusOf('tempo-session', /Streamed|Failed|Not paid|Refused/)
    const streamed = (await page.textContent('#tempo-session-status'))!
    expect(streamed).toMatch(/^Streamed: \d+ chunks paid, [1-9]\d* top-up\(s\)$/)
    expect(await page.textContent('#tempo-session-meter')).toMatch(/spent 0\.\d+ PathUSD/)
    await shot('tempo-session-streamed')
    await page.click('#tempo-session-close')
    await statusOf('tempo-session', /Closed|Close failed/)
    const closed = (await page.textContent('#tempo-session-status'))!
    expect(closed).toMatch(/^Closed: spent 0\.\d+, refunded 0\.\d+ PathUSD$/)
    await shot('tempo-session-closed')
    // The channel is settled and closed: nothing stays in the escrow, the payee got what was spent.
    expect(await balance(tempo().escrow)).toBe(0n)
    const spent = /spent (0\.\d+)/.exec(closed)![1]!
    const gained = (await balance(payee())) - payeeBefore
    expect(gained).toBeGreaterThan(0n)
    expect(Number(gained) / 1e6).toBeLessThanOrEqual(Number(spent))
  }, 60_000)

  it('pays Stripe with a test card, shows a decline and a card that needs authentication', async () => {
    const info = devnet.info.stripe as Extract<
      NonNullable<RunningDevnet['info']['stripe']>,
      { networkId: string }
    >
    const stripe = new Stripe(info.secretKey, { host: info.host, port: info.port, protocol: info.protocol })
    const succeeded = async () =>
      (await stripe.paymentIntents.list({ limit: 100 })).data.filter(
        (intent) => intent.status === 'succeeded',
      )
    await page.click('#tab-stripe')
    const before = (await succeeded()).length
    await page.selectOption('#stripe-card', 'pm_card_visa')
    await page.click('#stripe-pay')
    await statusOf('stripe', /Paid|Failed|Not paid|Refused/)
    const paid = (await page.textContent('#stripe-status'))!
    console.log(`[playground] Stripe charge: ${paid}`)
    expect(paid).toMatch(/^Paid: 200 in \d+ ms$/)
    const receipt = JSON.parse((await page.textContent('#stripe-receipt pre'))!)
    expect(receipt).toMatchObject({ status: 'success', method: 'stripe' })
    const after = await succeeded()
    expect(after.length).toBe(before + 1)
    expect(after.map((intent) => intent.id)).toContain(receipt.reference)
    expect(after.find((intent) => intent.id === receipt.reference)!.amount_received).toBe(50)
    await page.click('#stripe-receipt button.record')
    await page.waitForFunction(() =>
      /"status": "succeeded"/.test(
        document.querySelector('#stripe-receipt pre:last-child')?.textContent ?? '',
      ),
    )
    const intent = JSON.parse((await page.textContent('#stripe-receipt pre:last-child'))!)
    expect(intent).toMatchObject({ id: receipt.reference, amount: 50, currency: 'usd', status: 'succeeded' })
    await shot('stripe-paid')

    await page.selectOption('#stripe-card', 'pm_card_chargeDeclinedInsufficientFunds')
    await page.click('#stripe-pay')
    await statusOf('stripe', /Not paid|Failed|Refused|Paid/)
    expect(await page.textContent('#stripe-status')).toMatch(/^Not paid: 402 .*insufficient funds/i)
    await shot('stripe-declined')
    expect((await succeeded()).length).toBe(before + 1)

    await page.selectOption('#stripe-card', 'pm_card_threeDSecure2Required')
    await page.click('#stripe-pay')
    await statusOf('stripe', /Not paid|Failed|Refused|Paid/)
    expect(await page.textContent('#stripe-status')).toMatch(/^Not paid: 402 requires_action/)
    await shot('stripe-requires-action')
  }, 60_000)

  it('decodes a real WWW-Authenticate header and a URL in the inspector', async () => {
    const header = (await fetch(new URL('/api/demo/tempo/charge', playground.url))).headers.get(
      'www-authenticate',
    )!
    await page.click('#tab-inspector')
    await page.fill('#inspect-input', header)
    await page.click('#inspect-run')
    const decoded = (await page.textContent('#inspect-output'))!
    expect(decoded).toMatch(/^1 Payment challenge\(s\):/)
    expect(decoded).toContain('tempo/charge  realm=playground.tempo')
    expect(decoded).toContain('amount      1000 (base units)')
    await page.fill('#inspect-input', new URL('/api/demo/stripe/charge', playground.url).href)
    await page.click('#inspect-run')
    await page.waitForFunction(() => /402/.test(document.querySelector('#inspect-output')?.textContent ?? ''))
    expect(await page.textContent('#inspect-output')).toContain('stripe/charge  realm=playground.stripe')
    await shot('inspector')
  }, 30_000)

  it('is keyboard accessible: arrow keys move between views, Enter pays', async () => {
    await page.click('#tab-tempo-charge')
    await page.keyboard.press('ArrowRight')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tab-tempo-session')
    expect(await page.isVisible('#view-tempo-session')).toBe(true)
    await page.keyboard.press('ArrowLeft')
    expect(await page.isVisible('#view-tempo-charge')).toBe(true)
    const before = await balance(payee())
    await page.focus('#tempo-charge-pay')
    await page.keyboard.press('Enter')
    await statusOf('tempo-charge', /Paid: 200|Failed|Not paid|Refused/)
    expect(await page.textContent('#tempo-charge-status')).toMatch(/^Paid: 200/)
    expect((await balance(payee())) - before).toBe(1000n)
  }, 30_000)

  it('sends every script compressed, under 300 KB transferred for all the views opened', async () => {
    const sent = await Promise.all(scripts)
    const bytes = sent.reduce((sum, script) => sum + script.bytes, 0)
    console.log(
      `[playground] scripts transferred after opening every view: ${bytes} bytes in ${sent.length} files`,
    )
    expect(sent.length).toBeGreaterThan(1)
    for (const script of sent) expect(['br', 'gzip'], script.url).toContain(script.encoding)
    expect(bytes).toBeLessThan(size.bytes / 3)
    expect(bytes).toBeLessThan(300_000)
  })

  it('logged no errors on the console', () => {
    expect(errors).toEqual([])
  })

  it('is readable at 360 px wide (no horizontal scrolling)', async () => {
    await page.setViewportSize({ width: 360, height: 800 })
    await page.click('#tab-tempo-charge')
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    await shot('narrow-360')
    expect(overflow).toBeLessThanOrEqual(0)
  })
})
