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
