// Examples fail with one line naming the cause and one hint, never a stack trace: missing settings, a bad
// chain id, a missing key, a server that is down.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../', import.meta.url))
const built = ['core', 'method-tempo'].every((p) => existsSync(`${root}packages/${p}/dist/index.js`))
if (!built) console.warn('[skip] example failures: run `npm run build` first (npm test does)')

const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^MPP/.test(k)))

function run(file: string, env: Record<string, string>, args: string[] = []) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [`${root}examples/${file}`, ...args],
      { env: { ...clean, ...env }, timeout: 30_000 },
      (error, stdout, stderr) => resolve({ code: error ? ((error.code as number) ?? 1) : 0, stdout, stderr }),
    )
  })
}

async function closedPort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  return port
}

const key = `0x${'ab'.repeat(32)}`
const recipient = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'

describe.skipIf(!built)('example failures', () => {
  it('quickstart server: missing settings, a bad chain id, a malformed recipient', async () => {
    const missing = await run('quickstart/server.mjs', {})
    expect(missing).toMatchObject({ code: 1, stdout: '' })
    expect(missing.stderr).toMatchInlineSnapshot(`
      "server: tempo: rpcUrl is required (the JSON-RPC URL of a Tempo node), got nothing
      hint: set MPPKIT_RPC_URL, MPPKIT_CHAIN_ID and MPPKIT_RECIPIENT (\`npm run demo\` does it)
      "
    `)
    const chain = await run('quickstart/server.mjs', {
      MPPKIT_RPC_URL: 'http://127.0.0.1:8545',
      MPPKIT_CHAIN_ID: 'tempo',
      MPPKIT_RECIPIENT: recipient,
    })
    expect(chain.code).toBe(1)
    expect(chain.stderr.split('\n')[0]).toBe(
      'server: tempo: chainId must be a positive integer (e.g. 4217 for Tempo mainnet), got NaN',
    )
    const malformed = await run('quickstart/server.mjs', {
      MPPKIT_RPC_URL: 'http://127.0.0.1:8545',
      MPPKIT_RECIPIENT: '0x1234',
    })
    expect(malformed.stderr.split('\n')[0]).toBe(
      'server: tempo: recipient must be the address that receives payments (0x followed by 40 hex digits), got "0x1234"',
    )
    for (const result of [missing, chain, malformed]) {
      expect(result.stderr.trim().split('\n')).toHaveLength(2)
      expect(result.stderr).not.toMatch(/^\s+at /m)
    }
  })

  it('quickstart client: a missing key, a server that is down', async () => {
    const noKey = await run('quickstart/client.mjs', { MPPKIT_RPC_URL: 'http://127.0.0.1:8545' })
    expect(noKey.code).toBe(1)
    expect(noKey.stderr).toMatchInlineSnapshot(`
      "client: MPPKIT_PRIVATE_KEY must be a 0x-prefixed 32-byte private key
      hint: \`npm run demo\` prints the server URL, a dev MPPKIT_PRIVATE_KEY and MPPKIT_RPC_URL
      "
    `)
    const port = await closedPort()
    const down = await run(
      'quickstart/client.mjs',
      { MPPKIT_PRIVATE_KEY: key, MPPKIT_RPC_URL: 'http://127.0.0.1:8545' },
      [`http://127.0.0.1:${port}/weather`],
    )
    expect(down.code).toBe(1)
    expect(down.stderr.split('\n')[0]).toBe(`client: connect ECONNREFUSED 127.0.0.1:${port}`)
    expect(down.stderr).not.toMatch(/^\s+at /m)
  })

  it('tempo-charge and tempo-session examples: missing settings, a server that is down', async () => {
    for (const file of [
      'tempo-charge/server.mjs',
      'tempo-session/server.mjs',
      'tempo-session/client.mjs',
      'tempo-agent/agent.mjs',
    ]) {
      const result = await run(file, {})
      expect(result.code, file).toBe(1)
      expect(result.stderr, file).toMatch(
        /^[\w-]+ (server|client): MPPKIT_\w+(, MPPKIT_\w+)* (is|are) not set\nhint: .+\n$/,
      )
    }
    const port = await closedPort()
    const down = await run(
      'tempo-charge/client.mjs',
      { MPPKIT_PRIVATE_KEY: key, MPPKIT_RPC_URL: 'http://127.0.0.1:8545' },
      [`http://127.0.0.1:${port}/quote`],
    )
    expect(down.code).toBe(1)
    expect(down.stderr).toMatch(
      new RegExp(`^tempo-charge client: ECONNREFUSED 127\\.0\\.0\\.1:${port}\\nhint: `),
    )
  })
})
