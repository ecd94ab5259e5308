import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'devnet', 'method-solana'].every((p) =>
  existsSync(`${root}packages/${p}/dist/index.js`),
)
if (!built) console.warn('[skip] examples/solana-charge: run `npm run build` first (npm test does)')

describe.skipIf(!built)('examples/solana-charge', () => {
  it('pays the example server in pull and push mode on a local Solana node', async () => {
    const { stdout } = await run(process.execPath, [fileURLToPath(new URL('./run.mjs', import.meta.url))], {
      timeout: 60_000,
    })
    expect(stdout).toMatch(/^pull 200 \{\s+quote:/m)
    expect(stdout).toMatch(/^push 200 \{\s+quote:/m)
    expect(stdout.match(/reference: '[1-9A-HJ-NP-Za-km-z]{64,88}'/g)).toHaveLength(2)
  }, 90_000)
})
