import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const app = fileURLToPath(new URL('../', import.meta.url))

// `npm run playground` is `node apps/playground/build.mjs && node apps/playground/dist/server.mjs`.
describe('npm run playground', () => {
  let child: ChildProcess | undefined
  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL')
  })

  it('serves the page within 10 s of the build finishing, and Ctrl-C stops the devnet with it', async () => {
    const build = spawn(process.execPath, ['build.mjs', '--quiet'], {
      cwd: app,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    build.stdout!.on('data', (chunk) => process.stdout.write(chunk))
    const [code] = await once(build, 'exit')
    expect(code).toBe(0)

    const started = performance.now()
    child = spawn(process.execPath, ['dist/server.mjs'], {
      cwd: app,
      env: { ...process.env, PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const lines = createInterface({ input: child.stdout! })
    const [line] = (await Promise.race([once(lines, 'line'), once(child, 'exit').then(() => [''])])) as [
      string,
    ]
    const url = /^playground: (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line)?.[1]
    expect(url, `first line: ${line}`).toBeDefined()
    const page = await fetch(url!)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('<script type="module" src="/page.js">')
    const bundle = await fetch(new URL('/page.js', url))
    expect(bundle.status).toBe(200)
    await bundle.arrayBuffer()
    const seconds = (performance.now() - started) / 1000
    console.log(`[playground] page served ${seconds.toFixed(1)} s after start`)
    expect(seconds).toBeLessThan(10)

    // The devnet's anvil answers while the playground runs, and is gone once Ctrl-C stopped it.
    const { tempo } = (await (await fetch(new URL('/api/config', url))).json()) as {
      tempo: { rpcUrl: string }
    }
    const blockNumber = () =>
      fetch(tempo.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] }),
      })
    expect((await blockNumber()).status).toBe(200)
    child.kill('SIGINT')
    const [exitCode] = await once(child, 'exit')
    expect(exitCode).toBe(0)
    await expect(blockNumber()).rejects.toThrow()
  }, 120_000)
})
