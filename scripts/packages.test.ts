// Ready to publish: every package passes publint and @arethetypeswrong/cli, its declarations compile for
// its users (without @types/node where it runs in browsers), it has a LICENSE and a README whose
// runnable snippet runs, and a changesets release rehearsal (in a temporary copy) versions and packs it.
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../', import.meta.url))
const script = (file: string) => import(new URL(`./${file}`, import.meta.url).href)
const { checkAttw, checkFiles, checkPublint, checkTypes, published } = await script('check-packages.mjs')
const names = Object.keys(published)
const built = names.every((name) => existsSync(join(root, 'packages', name, 'dist/index.d.ts')))
if (!built) console.warn('[skip] package checks: run `npm run build` first (npm test does)')

describe('LICENSE and README of every package', () => {
  it('has an MIT LICENSE at the root and in every package, and a README with Install, Try it and Links', () => {
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^MIT License/)
    expect(names.flatMap((name) => checkFiles(name))).toEqual([])
  })

  const reachable = (port: number) =>
    new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.destroy()
        resolve(true)
      })
      socket.on('error', () => resolve(false))
    })

  it.skipIf(!built).each(names)(
    'the runnable snippet of the %s README runs',
    async (name) => {
      const readme = readFileSync(join(root, 'packages', name, 'README.md'), 'utf8')
      const section = readme.slice(readme.indexOf('\n## Try it\n'))
      const snippet = /```js\n([\s\S]*?)```/.exec(section)?.[1]
      expect(snippet, 'a ```js block under "## Try it"').toBeDefined()
      const service = { 'store-redis': 6379, 'store-postgres': 5432 }[name]
      if (service && !(await reachable(service)))
        return console.warn(`[skip] ${name} README snippet: nothing listens on 127.0.0.1:${service}`)
      const dir = join(root, '.tmp', `readme-${name}`)
      mkdirSync(dir, { recursive: true })
      writeFileSync(join(dir, 'snippet.mjs'), snippet!)
      try {
        const { stdout } = await run(process.execPath, [join(dir, 'snippet.mjs')], { timeout: 60_000 })
        // What the snippet's comments say it prints.
        const expected: Record<string, RegExp> = {
          core: /^api\.example\.com tempo\/charge \{ amount: '1000' \}\ntrue\n$/,
          'method-tempo': /^200 \{ paid: true \} 0x[0-9a-f]{64}\n$/,
          devnet: /^http:\/\/127\.0\.0\.1:\d+ true 0x[0-9a-fA-F]{40}\n$/,
          'store-redis': /^true\nfalse\n$/,
          'store-postgres': /^true\nfalse\n$/,
        }
        expect(stdout).toMatch(expected[name]!)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
    90_000,
  )
})

describe.skipIf(!built)('publint and arethetypeswrong', () => {
  it.each(names)(
    '%s passes publint (strict, suggestions included)',
    async (name) => {
      expect(await checkPublint(name)).toEqual([])
    },
    60_000,
  )

  it.each(names)(
    '%s passes @arethetypeswrong/cli (ESM-only profile)',
    async (name) => {
      expect(await checkAttw(name)).toEqual([])
    },
    120_000,
  )
})

describe.skipIf(!built)('type declarations in a consumer project', () => {
  // One consumer project per package and kind: `browser` entries compile without @types/node.
  const cases = names.flatMap((name) =>
    (['browser', 'node'] as const)
      .map((needs) => ({
        name,
        needs,
        entries: Object.keys(published[name]).filter((entry) => published[name][entry] === needs),
      }))
      .filter(({ entries }) => entries.length > 0),
  )
  it.each(cases)(
    '$name $entries compiles ($needs consumer)',
    async ({ name, entries, needs }) => {
      expect(await checkTypes(name, entries, needs)).toEqual([])
    },
    240_000,
  )
})

describe.skipIf(!built)('release dry run (changeset version + npm pack in a temporary copy)', () => {
  it('versions every package without a major bump, with real peer ranges, and packs complete tarballs', async () => {
    const status = (await run('git', ['status', '--porcelain'], { cwd: root })).stdout
    const { releaseDryRun } = await script('release-dry-run.mjs')
    const result = releaseDryRun()
    expect(result.problems).toEqual([])
    expect(Object.keys(result.packages).sort()).toEqual(names.map((n) => `@mppkit/${n}`).sort())
    expect(result.packages['@mppkit/core']).toMatchObject({ from: '0.0.0', to: '0.1.0' })
    expect(result.packages['@mppkit/core'].files).toEqual(
      expect.arrayContaining(['LICENSE', 'README.md', 'bin/mppkit.js', 'dist/index.d.ts']),
    )
    // The repository is untouched.
    expect((await run('git', ['status', '--porcelain'], { cwd: root })).stdout).toBe(status)
  }, 180_000)
})
