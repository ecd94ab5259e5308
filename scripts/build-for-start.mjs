// Builds what `npm start` (the playground's server) and `npm run demo` (the terminal demo) import
// (@mppkit/core, @mppkit/method-tempo, @mppkit/devnet, @mppkit/method-stripe, @mppkit/method-lightning,
// @mppkit/method-solana, @mppkit/mcp, @mppkit/x402-compat, and the `mppkit` bin and CLIs the pasted
// commands run) with tsup alone
// (JavaScript, no type declarations), and only when their sources are newer than their dist/: a few
// seconds on a fresh clone, where the full `npm run build` (with type declarations) takes minutes.
// Prints what it does while it does it.
import { spawn } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../', import.meta.url))

/** The packages `npm start` and `npm run demo` import, and the built files they need from each. */
export const startPackages = {
  core: ['dist/index.js', 'dist/server/index.js', 'dist/client/index.js', 'dist/bin/mppkit.js'],
  'method-tempo': ['dist/index.js', 'dist/server/index.js', 'dist/client/index.js', 'dist/cli.js'],
  devnet: ['dist/index.js', 'dist/cli.js'],
  'method-stripe': ['dist/index.js', 'dist/server/index.js', 'dist/client/index.js', 'dist/cli.js'],
  'method-lightning': ['dist/index.js', 'dist/server/index.js', 'dist/client/index.js'],
  'method-solana': ['dist/index.js', 'dist/server/index.js', 'dist/client/index.js'],
  mcp: ['dist/index.js', 'dist/server/index.js', 'dist/client/index.js'],
  'x402-compat': ['dist/index.js', 'dist/server/index.js', 'dist/client/index.js'],
}

function newestSource(directory) {
  let newest = 0
  const visit = (path) => {
    const stat = statSync(path)
    if (stat.isDirectory()) for (const entry of readdirSync(path)) visit(join(path, entry))
    // Tests are not built: editing one does not make dist/ stale (nor strip its type declarations).
    else if (!/\.test\.tsx?$/.test(path)) newest = Math.max(newest, stat.mtimeMs)
  }
  visit(join(directory, 'src'))
  for (const file of ['package.json', 'tsup.config.ts'])
    newest = Math.max(newest, statSync(join(directory, file)).mtimeMs)
  return newest
}

/** True when every needed built file exists and is newer than every source of the package. */
export function isFresh(name, base = root) {
  const directory = join(base, 'packages', name)
  const built = startPackages[name].map((file) => join(directory, file))
  if (!built.every((file) => existsSync(file))) return false
  const oldest = Math.min(...built.map((file) => statSync(file).mtimeMs))
  return oldest >= newestSource(directory)
}

function tsup(directory) {
  return new Promise((resolve, reject) => {
    const child = spawn(join(root, 'node_modules/.bin/tsup'), [], {
      cwd: directory,
      // Keep the type declarations a full `npm run build` wrote (tsup would clean dist/ first).
      env: { ...process.env, MPPKIT_KEEP_DIST: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('error', reject)
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`tsup failed in ${directory}:\n${output.trim()}`)),
    )
  })
}

/**
 * Builds the stale start packages in parallel (JavaScript only) and logs progress; resolves with the
 * names it built.
 */
export async function buildForStart({ base = root, log = (line) => console.log(line) } = {}) {
  const stale = Object.keys(startPackages).filter((name) => !isFresh(name, base))
  if (stale.length === 0) return []
  const started = performance.now()
  log(
    `[start] building ${stale.map((name) => `@mppkit/${name}`).join(', ')} (JavaScript only; ` +
      '`npm run build` also writes type declarations)…',
  )
  await Promise.all(
    stale.map(async (name) => {
      const began = performance.now()
      await tsup(join(base, 'packages', name))
      log(`[start]   @mppkit/${name} built in ${((performance.now() - began) / 1000).toFixed(1)} s`)
    }),
  )
  log(`[start] built in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  return stale
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildForStart().catch((error) => {
    console.error(`[start] ${error.message}`)
    process.exit(1)
  })
}
