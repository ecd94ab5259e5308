import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const root = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'devnet', 'method-tempo'].every((p) =>
  existsSync(`${root}packages/${p}/dist/index.js`),
)
if (!built) console.warn('[skip] quickstart: run `npm run build` first (npm test does)')

// The README's own commands and code blocks run in readme.test.ts.
describe.skipIf(!built)('quickstart examples', () => {
  it('runs against the node `npm run devnet` started (MPPKIT_DEVNET_INFO)', async () => {
    const devnet = spawn(process.execPath, [`${root}packages/devnet/dist/cli.js`, '--rails', 'tempo'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      const [line] = (await once(createInterface({ input: devnet.stdout! }), 'line')) as [string]
      const info = JSON.parse(line)
      const { stdout } = await run(process.execPath, [`${root}examples/tempo-charge/run.mjs`], {
        timeout: 60_000,
        env: { ...process.env, MPPKIT_DEVNET_INFO: line },
      })
      expect(stdout).toMatch(/200/)
      // The example paid on the devnet's node, not on one of its own.
      const block = await fetch(info.tempo.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] }),
      }).then((r) => r.json())
      expect(Number(block.result)).toBeGreaterThan(0)
    } finally {
      devnet.kill('SIGINT')
      await once(devnet, 'exit')
    }
  }, 90_000)

  it('`mppkit pay` (the core bin, resolving @mppkit/method-tempo/cli) pays the quickstart server', async () => {
    const { startTempo } = await import('@mppkit/devnet')
    const node = await startTempo({ accounts: 2 })
    const [payer, merchant] = node.info.accounts
    const env = {
      ...process.env,
      MPPKIT_RPC_URL: node.info.rpcUrl,
      MPPKIT_CHAIN_ID: String(node.info.chainId),
      MPPKIT_RECIPIENT: merchant!.address,
      PORT: '0',
    }
    const server = spawn(process.execPath, [here('./server.mjs')], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      const [line] = (await once(createInterface({ input: server.stdout! }), 'line')) as [string]
      const url = /(http:\/\/\S+)/.exec(line)![1]!
      const { stdout, stderr } = await run(
        process.execPath,
        [`${root}packages/core/dist/bin/mppkit.js`, 'pay', url],
        { env: { ...env, MPPKIT_PRIVATE_KEY: payer!.privateKey }, timeout: 60_000 },
      )
      expect(JSON.parse(stdout)).toEqual({ city: 'Lisbon', forecast: 'sunny', celsius: 24 })
      expect(stderr).toMatch(/0x[0-9a-f]{64}/)
      expect(stderr).not.toContain(payer!.privateKey.slice(2))
    } finally {
      server.kill()
      await node.stop()
    }
  }, 90_000)
})
