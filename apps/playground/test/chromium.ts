// Debian's chromium through playwright-core (CI installs it: .ci/run); a browser is never downloaded.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

export const executablePath = process.env.MPPKIT_CHROMIUM ?? '/usr/bin/chromium'

/** Why Chromium tests cannot run here, or undefined. */
export const chromiumUnavailableReason = existsSync(executablePath)
  ? undefined
  : `${executablePath} is absent (apt-get install -y --no-install-recommends chromium)`

/** Where the tests save screenshots (printed by the tests; CI prints it too). */
export const outputDirectory = fileURLToPath(new URL('../test-output/', import.meta.url))

export async function launch() {
  mkdirSync(outputDirectory, { recursive: true })
  const userDataDir = mkdtempSync(join(tmpdir(), 'mppkit-playground-'))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1100, height: 900 },
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
  return {
    context,
    close: async () => {
      await context.close().catch(() => {})
      rmSync(userDataDir, { recursive: true, force: true })
    },
  }
}

/**
 * A new page that records what a person would call an error into `errors`: uncaught exceptions and
 * console errors (Chromium logs every 402 as a failed resource load: those are expected, not errors).
 */
export async function watchedPage(browser: Awaited<ReturnType<typeof launch>>, errors: string[]) {
  const page = await browser.context.newPage()
  page.on('pageerror', (error) => errors.push(String(error)))
  page.on('console', (message) => {
    if (message.type() === 'error' && !/status of 402/.test(message.text())) errors.push(message.text())
  })
  return page
}
