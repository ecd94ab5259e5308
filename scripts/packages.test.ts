// Ready to publish: every package passes publint and @arethetypeswrong/cli, its declarations compile for
// its users (without @types/node where it runs in browsers), it has a LICENSE and a README whose
// runnable snippet runs, and a changesets release rehearsal (in a temporary copy) versions and packs it.
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../', import.meta.url))
const script = (file: string) => import(new URL(`./${file}`, import.meta.url).href)
const { checkAllTypes, checkAttw, checkFiles, checkPublint, pool, published } =
  await script('check-packages.mjs')
const names: string[] = Object.keys(published)
const built = names.every((name) => existsSync(join(root, 'packages', name, 'dist/index.d.ts')))
if (!built) console.warn('[skip] package checks: run `npm run build` first (npm test does)')

type Checks = { publint: string[]; attw: string[] }
type Release = {
  result: { problems: string[]; packages: Record<string, { from: string; to: string; files: string[] }> }
  statusBefore: string
  statusAfter: string
}

// The slow checks are independent, so they all start with the file and run side by side (two tsc runs,
// the release rehearsal in a child process, publint and attw three packages at a time); each test below
// awaits its own result.
let checks: Promise<Record<string, Checks>>
let types: Promise<string[]>
let release: Promise<Release>
beforeAll(async () => {
  if (!built) return
  types = checkAllTypes()
  checks = pool(names, 3, async (name: string) => ({
    publint: await checkPublint(name),
    attw: await checkAttw(name),
  })).then((list: Checks[]) => Object.fromEntries(names.map((name, i) => [name, list[i]!])))
  // The repository's status is read right before and right after the rehearsal.
  release = run('git', ['status', '--porcelain'], { cwd: root }).then(async ({ stdout: statusBefore }) => {
    // `node scripts/release-dry-run.mjs` prints the rehearsal's result as one JSON line (exit 1 when it
    // found problems).
    const { stdout, stderr } = await run(process.execPath, [join(root, 'scripts/release-dry-run.mjs')], {
      cwd: root,
      maxBuffer: 64 * 1024 * 1024,
    }).catch((error: { stdout?: string; stderr?: string }) => ({
      stdout: error.stdout ?? '',
      stderr: error.stderr ?? '',
    }))
    const line = stdout.trim().split('\n').pop() ?? ''
    if (!line.startsWith('{')) throw new Error(`release-dry-run.mjs printed no result:\n${stdout}${stderr}`)
    const statusAfter = (await run('git', ['status', '--porcelain'], { cwd: root })).stdout
    return { result: JSON.parse(line), statusBefore, statusAfter }
  })
  for (const promise of [types, checks, release]) promise.catch(() => {})
})

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

  // The snippets are independent child processes (each starts its own local nodes on ports from the OS).
  it.for(names)(
    'the runnable snippet of the %s README runs',
    { concurrent: true, skip: !built, timeout: 90_000 },
    async (name, { expect }) => {
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
          'method-stripe': /^200 \{ paid: true \} pi_\w+\n$/,
          'method-lightning': /^200 \{ paid: true \} [0-9a-f]{64}\n$/,
          'method-solana': /^200 \{ paid: true \} [1-9A-HJ-NP-Za-km-z]{64,88}\n$/,
          'x402-compat': /^200 \{ paid: true \} 0x[0-9a-f]{64}\n$/,
          mcp: /^sunny success 100n\n$/,
          discovery: /^max-age=300\ntrue \[\s*\{\s*intent: 'charge',\s*method: 'tempo',\s*amount: '1000'/,
        }
        // A package that landed without an entry above is still run: it must print something.
        if (!expected[name]) console.warn(`[warn] ${name} README snippet: no expected output listed here`)
        expect(stdout).toMatch(expected[name] ?? /\S/)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    },
  )
})

describe.skipIf(!built)('publint and arethetypeswrong', () => {
  it.each(names)(
    '%s passes publint (strict, suggestions included)',
    async (name) => {
      expect((await checks)[name]!.publint).toEqual([])
    },
    240_000,
  )

  it.each(names)(
    '%s passes @arethetypeswrong/cli (ESM-only profile)',
    async (name) => {
      expect((await checks)[name]!.attw).toEqual([])
    },
    240_000,
  )
})

describe.skipIf(!built)('type declarations in a consumer project', () => {
  // Every entry of every package in one consumer project per kind (two tsc runs side by side):
  // `browser` entries compile without @types/node, `node` entries with it.
  it('every entry of every package compiles (browser entries without @types/node)', async () => {
    const entries = Object.values(published as Record<string, Record<string, string>>).flatMap((kinds) =>
      Object.keys(kinds),
    )
    expect(entries.length).toBeGreaterThan(names.length)
    expect(await types).toEqual([])
  }, 300_000)
})

describe.skipIf(!built)('release dry run (changeset version + npm pack in a temporary copy)', () => {
  it('versions every package without a major bump, with real peer ranges, and packs complete tarballs', async () => {
    const { result, statusBefore, statusAfter } = await release
    expect(result.problems).toEqual([])
    expect(Object.keys(result.packages).sort()).toEqual(names.map((n) => `@mppkit/${n}`).sort())
    expect(result.packages['@mppkit/core']).toMatchObject({ from: '0.0.0', to: '0.1.0' })
    expect(result.packages['@mppkit/core']!.files).toEqual(
      expect.arrayContaining(['LICENSE', 'README.md', 'bin/mppkit.js', 'dist/index.d.ts']),
    )
    // The repository is untouched.
    expect(statusAfter).toBe(statusBefore)
  }, 180_000)
})
