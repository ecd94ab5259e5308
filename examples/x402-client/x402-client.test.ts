import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'devnet', 'x402-compat'].every((p) => existsSync(`${root}packages/${p}/dist/index.js`))
if (!built) console.warn('[skip] examples/x402-client: run `npm run build` first (npm test does)')

describe.skipIf(!built)('examples/x402-client', () => {
  it('an mppkit agent pays an @x402/hono service on a local node', async () => {
    const { stdout } = await run(process.execPath, [fileURLToPath(new URL('./run.mjs', import.meta.url))], {
      timeout: 60_000,
    })
    expect(stdout).toMatch(/^x402 service 200 \{ weather: 'sunny'/m)
    expect(stdout).toMatch(/reference: '0x[0-9a-f]{64}'/)
  }, 90_000)
})
