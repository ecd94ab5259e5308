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
if (!built) console.warn('[skip] examples/tempo-agent: run `npm run build` first (npm test does)')

describe.skipIf(!built)('examples/tempo-agent', () => {
  it('a second run of the agent pays on the channel the first left open, then closes it', async () => {
    const { stdout } = await run(process.execPath, [fileURLToPath(new URL('./run.mjs', import.meta.url))], {
      timeout: 60_000,
    })
    const [first, second] = stdout.split('second run (a new process):')
    expect(first).toMatch(/^restored 0 channel\(s\)$/m)
    const kept = /^keeping channel (0x[0-9a-f]{64}) open for the next run$/m.exec(first ?? '')?.[1]
    expect(kept, stdout).toBeDefined()
    expect(second).toMatch(new RegExp(`^restored 1 channel\\(s\\) ${kept}$`, 'm'))
    // The same channel, spent going on from where the first run stopped: no second deposit.
    expect(second).toMatch(new RegExp(`^200 \\{"answer":42\\} channel ${kept} spent 300$`, 'm'))
    expect(second).toMatch(new RegExp(`^200 \\{"answer":42\\} channel ${kept} spent 400$`, 'm'))
    expect(second).toMatch(new RegExp(`^closed ${kept} 200$`, 'm'))
  }, 90_000)
})
