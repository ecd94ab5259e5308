import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'devnet', 'method-tempo', 'mcp'].every((p) =>
  existsSync(`${root}packages/${p}/dist/index.js`),
)
if (!built) console.warn('[skip] examples/mcp-paid-tool: run `npm run build` first (npm test does)')

describe.skipIf(!built)('examples/mcp-paid-tool', () => {
  it('an agent pays a paid MCP tool on a local Tempo node and gets the receipt', async () => {
    const { stdout } = await run(process.execPath, [fileURLToPath(new URL('./run.mjs', import.meta.url))], {
      timeout: 60_000,
    })
    expect(stdout).toMatch(/^payment capability \{"methods":\{"tempo":\{"intents":\["charge"\]\}\}\}$/m)
    expect(stdout).toMatch(/^ping pong$/m)
    expect(stdout).toMatch(/^forecast Paris: sunny, 21 °C \(paid in 0x[0-9a-f]{64}\)$/m)
    expect(stdout).toMatch(/challengeId: '[\w-]+'/)
  }, 90_000)
})
