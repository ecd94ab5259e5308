import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'devnet', 'method-tempo'].every((p) =>
  existsSync(`${root}packages/${p}/dist/index.js`),
)
if (!built) console.warn('[skip] examples/tempo-session: run `npm run build` first (npm test does)')

describe.skipIf(!built)('examples/tempo-session', () => {
  it('opens a channel, pays requests and a metered stream, and closes on a local Tempo node', async () => {
    const { stdout } = await run(process.execPath, [fileURLToPath(new URL('./run.mjs', import.meta.url))], {
      timeout: 60_000,
    })
    expect(stdout).toMatch(/^200 \{ answer: 42 \} \{ spent: '300', acceptedCumulative: '300' \}$/m)
    expect(stdout).toMatch(/^message stream$/m)
    expect(stdout).toMatch(/"spent":"800","units":5/)
    expect(stdout).toMatch(/^closed 200/m)
    expect(stdout).toMatch(/txHash: '0x[0-9a-f]{64}'/)
  }, 90_000)
})
