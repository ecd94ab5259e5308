// Test helper of the install-alone tests: `npm pack` some workspace packages, install the tarballs in a
// fresh folder outside the workspace (so nothing resolves from the monorepo's node_modules), and run
// scripts or bins there. Used by packages/*/test/install-alone.test.ts.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll } from 'vitest'
import { packCached } from './pack-cache.mjs'

const exec = promisify(execFile)
const packagesDir = fileURLToPath(new URL('../packages/', import.meta.url))

/**
 * Why the install-alone test of `packages` cannot run (a `dist/` is missing), or undefined. Prints the
 * `[skip]` reason, as the test then skips.
 *
 * @example
 * ```ts
 * const reason = missingBuild(['core', 'method-stripe'])
 * describe.skipIf(!!reason)('install alone', () => { … })
 * ```
 */
export function missingBuild(packages: string[]): string | undefined {
  const missing = packages.filter((name) => !existsSync(join(packagesDir, name, 'dist', 'index.js')))
  if (missing.length === 0) return undefined
  const reason =
    `dist/ of ${missing.map((name) => `@mppkit/${name}`).join(', ')} is missing: run ` +
    `\`npx turbo run build --filter=@mppkit/${packages.at(-1)}...\` (npm test builds first)`
  console.warn(`[skip] install-alone: ${reason}`)
  return reason
}

/** A folder where packed packages are installed alone. */
export type Installation = {
  folder: string
  /** Top-level entries of its node_modules (`@solana`, `viem`, …). */
  modules: string[]
  /** Writes `script` as an ES module and runs it with node; resolves its last line of stdout. */
  run(script: string, env?: Record<string, string>): Promise<string>
  /** Runs a bin of node_modules/.bin; resolves its exit code and output (never rejects). */
  bin(name: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }>
  remove(): Promise<void>
}

// Tarballs for this test file, by package folder name, from the cache of scripts/pack-cache.mjs (keyed by
// the package's content, shared with the other install-alone files and the attw check): linked into a
// folder of this file, removed after its tests.
const packed = new Map<string, Promise<string>>()
let packFolder: Promise<string> | undefined
afterAll(async () => {
  if (packFolder) await rm(await packFolder, { recursive: true, force: true })
})

function pack(name: string): Promise<string> {
  let tarball = packed.get(name)
  if (!tarball) {
    tarball = (async () => {
      packFolder ??= mkdtemp(join(tmpdir(), 'mppkit-packed-'))
      return packCached(name, await packFolder)
    })()
    tarball.catch(() => packed.delete(name))
    packed.set(name, tarball)
  }
  return tarball
}

/**
 * Packs `packages` (folder names under packages/; side by side, each once per content: see
 * scripts/pack-cache.mjs) and installs the tarballs, and only them, in a new temporary folder with
 * `npm install --prefer-offline --ignore-scripts`.
 *
 * @example
 * ```ts
 * const alone = await installAlone(['core', 'method-stripe'])
 * expect(alone.modules).not.toContain('viem')
 * ```
 */
export async function installAlone(packages: string[]): Promise<Installation> {
  const folder = await mkdtemp(join(tmpdir(), 'mppkit-alone-'))
  try {
    const tarballs = await Promise.all(packages.map(pack))
    const dependencies = Object.fromEntries(
      packages.map((name, i) => [`@mppkit/${name}`, `file:${tarballs[i]}`]),
    )
    await writeFile(
      join(folder, 'package.json'),
      JSON.stringify({ name: 'alone', private: true, type: 'module', dependencies }),
    )
    await exec('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], {
      cwd: folder,
      timeout: 200_000,
    })
  } catch (error) {
    await rm(folder, { recursive: true, force: true })
    throw error
  }
  let scripts = 0
  return {
    folder,
    modules: await readdir(join(folder, 'node_modules')),
    async run(script, env = {}) {
      const file = join(folder, `script-${++scripts}.mjs`)
      await writeFile(file, script)
      const { stdout } = await exec('node', [file], {
        cwd: folder,
        env: { ...process.env, ...env },
        timeout: 60_000,
      })
      return stdout.trim().split('\n').pop() as string
    },
    bin(name, args) {
      return new Promise((resolve) => {
        execFile(
          join(folder, 'node_modules', '.bin', name),
          args,
          { cwd: folder, timeout: 60_000 },
          (error, stdout, stderr) =>
            resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
        )
      })
    },
    remove: () => rm(folder, { recursive: true, force: true }),
  }
}
