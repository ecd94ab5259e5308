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
if (!built) console.warn('[skip] examples/lightning-session: run `npm run build` first (npm test does)')

describe.skipIf(!built)('examples/lightning-session', () => {
  it('streams 26 chunks with two top-ups mid-stream, then closes with a refund', async () => {
    const { stdout } = await run(process.execPath, [fileURLToPath(new URL('./run.mjs', import.meta.url))], {
      timeout: 60_000,
    })
    expect(stdout).toMatch(/^open 200 session [0-9a-f]{64}$/m)
    expect(stdout.match(/\[top-up: spent \d+ sat/g)).toHaveLength(2)
    expect(stdout).toContain('[stream receipt: 26 chunks, 26 sat]')
    expect(stdout).toMatch(/^close 200 \{ status: 'closed', refundSats: 4, refundStatus: 'succeeded' \}$/m)
  }, 90_000)
})
