import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'devnet', 'method-stripe'].every((p) =>
  existsSync(`${root}packages/${p}/dist/index.js`),
)
if (!built) console.warn('[skip] examples/stripe-charge: run `npm run build` first (npm test does)')

describe.skipIf(!built)('examples/stripe-charge', () => {
  it('pays the example server with an SPT, then shows a decline as a 402 with its reason', async () => {
    const { stdout } = await run(process.execPath, [fileURLToPath(new URL('./run.mjs', import.meta.url))], {
      timeout: 60_000,
    })
    expect(stdout).toMatch(/^200 \{"report":"Q3 revenue up 12%","paymentIntent":"pi_\w+"\}$/m)
    expect(stdout).toMatch(/status: 'success'/)
    expect(stdout).toMatch(/^402 insufficient_funds - Your card has insufficient funds\.$/m)
    expect(stdout).not.toMatch(/spt_\w{4}/)
  }, 90_000)
})
