// `npm start` and `npm run demo` on a fresh clone: they build only what they run, JavaScript only, in
// seconds (the full build, with type declarations, took over two minutes and made the first start take
// 2 min 33 s). The playground's own build (apps/playground/build.mjs) then bundles the page and server.
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../../', import.meta.url))
// A plain .mjs script (no declarations): imported by URL.
const { buildForStart, isFresh, startPackages } = await import(
  new URL('../../scripts/build-for-start.mjs', import.meta.url).href
)

describe('buildForStart', () => {
  it('builds core, method-tempo, devnet, method-stripe, method-lightning, method-solana, mcp and x402-compat from a clone without dist/ in well under 60 s, then nothing', async () => {
    const clone = mkdtempSync(join(tmpdir(), 'mppkit-start-'))
    try {
      cpSync(join(root, 'tsconfig.base.json'), join(clone, 'tsconfig.base.json'))
      symlinkSync(join(root, 'node_modules'), join(clone, 'node_modules'))
      for (const name of Object.keys(startPackages)) {
        const from = join(root, 'packages', name)
        const to = join(clone, 'packages', name)
        for (const entry of ['src', 'package.json', 'tsconfig.json', 'tsup.config.ts'])
          cpSync(join(from, entry), join(to, entry), { recursive: true })
        expect(isFresh(name, clone)).toBe(false)
      }
      const lines: string[] = []
      const started = performance.now()
      const builtNames = await buildForStart({ base: clone, log: (line: string) => lines.push(line) })
      const seconds = (performance.now() - started) / 1000
      expect(builtNames).toEqual([
        'core',
        'method-tempo',
        'devnet',
        'method-stripe',
        'method-lightning',
        'method-solana',
        'mcp',
        'x402-compat',
      ])
      expect(seconds).toBeLessThan(30)
      // It says what it does while it does it.
      expect(lines[0]).toMatch(
        /^\[start\] building @mppkit\/core, @mppkit\/method-tempo, @mppkit\/devnet, @mppkit\/method-stripe, @mppkit\/method-lightning, @mppkit\/method-solana, @mppkit\/mcp, @mppkit\/x402-compat/,
      )
      for (const [name, files] of Object.entries(startPackages as Record<string, string[]>))
        for (const file of files) expect(existsSync(join(clone, 'packages', name, file)), file).toBe(true)
      // Fresh now: a second start builds nothing; a changed source rebuilds that package only.
      expect(await buildForStart({ base: clone, log: () => {} })).toEqual([])
      const future = new Date(Date.now() + 60_000)
      utimesSync(join(clone, 'packages/method-tempo/src/cli.ts'), future, future)
      expect(await buildForStart({ base: clone, log: () => {} })).toEqual(['method-tempo'])
    } finally {
      rmSync(clone, { recursive: true, force: true })
    }
  }, 120_000)
})

// The terminal demo end to end (`start.mjs --once`): every rail's example runs, the x402 ones last.
const startBuilt = Object.keys(startPackages as Record<string, string[]>).every((name) => isFresh(name, root))
if (!startBuilt) console.warn('[skip] start.mjs --once: run `node scripts/build-for-start.mjs` first')

describe.skipIf(!startBuilt)('start.mjs --once', () => {
  it('pays every demo (the Tempo agent resuming its channel in a second process) and ends with the x402 examples: an mppkit agent pays @x402/hono, @x402/fetch and MPP pay one route', async () => {
    const { execFile } = await import('node:child_process')
    const { promisify } = await import('node:util')
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [fileURLToPath(new URL('./start.mjs', import.meta.url)), '--once'],
      { timeout: 420_000, maxBuffer: 16 * 1024 * 1024 },
    )
    const x402 = stdout.slice(stdout.indexOf('\nx402: '))
    expect(x402).toMatch(/^x402 service 200 \{ weather: 'sunny'/m)
    expect(x402).toMatch(/^x402 200 \{ quote: /m)
    expect(x402).toMatch(/^mpp 200 \{ quote: /m)
    expect(x402.match(/0x[0-9a-f]{64}/g)?.length).toBeGreaterThanOrEqual(3)
    expect(stdout).toMatch(/Paid\. The server stays up/)
    // The agent's second process restored the channel its first left open, paid on it and closed it.
    const agent = stdout.slice(
      stdout.indexOf('\nTempo agent across a restart'),
      stdout.indexOf('\nStripe charge'),
    )
    const [, kept] = agent.match(/^first run:[\s\S]*?^restored 0 channel\(s\)[\s\S]*?(0x[0-9a-f]{64})/m) ?? []
    expect(kept).toBeDefined()
    expect(agent).toMatch(
      new RegExp(`^second run \\(a new process\\):\\nrestored 1 channel\\(s\\) ${kept}$`, 'm'),
    )
    expect(agent).toMatch(new RegExp(`^closed ${kept} 200$`, 'm'))
  }, 450_000)
})
