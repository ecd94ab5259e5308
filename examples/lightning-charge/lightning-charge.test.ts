import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'devnet', 'method-lightning'].every((p) =>
  existsSync(`${root}packages/${p}/dist/index.js`),
)
if (!built) console.warn('[skip] examples/lightning-charge: run `npm run build` first (npm test does)')

describe.skipIf(!built)('examples/lightning-charge', () => {
  it('pays the example server over the LND simulator and gets the payment hash as reference', async () => {
    const { stdout } = await run(process.execPath, [fileURLToPath(new URL('./run.mjs', import.meta.url))], {
      timeout: 60_000,
    })
    expect(stdout).toMatch(/^charge 200 \{ temperature: 72, condition: 'sunny' \}/m)
    expect(stdout).toMatch(/reference: '[0-9a-f]{64}'/)
  }, 90_000)
})
