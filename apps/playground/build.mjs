// Builds the playground: the workspace packages its server imports (JavaScript only, and only when
// their sources are newer than dist/), the server (dist/server.mjs) and the page (dist/page.js, a
// browser bundle of the rails' browser-safe clients, built from their sources).
// `node build.mjs` prints what it builds; `--quiet` prints only the page size and the time it took.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import * as esbuild from 'esbuild'

const app = fileURLToPath(new URL('./', import.meta.url))
const root = join(app, '../../')
const quiet = process.argv.includes('--quiet')
const log = (line) => quiet || console.log(line)

/** The packages the server imports at run time, and the built files it needs from each. */
const serverPackages = {
  core: ['dist/index.js', 'dist/server/index.js', 'dist/client/index.js'],
  'method-tempo': ['dist/index.js', 'dist/server/index.js'],
  'method-stripe': ['dist/index.js', 'dist/server/index.js'],
  devnet: ['dist/index.js'],
  'method-lightning': ['dist/index.js', 'dist/server/index.js', 'dist/client/index.js'],
  mcp: ['dist/index.js'],
}

function newest(path) {
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return Math.max(0, ...readdirSync(path).map((entry) => newest(join(path, entry))))
}

function isFresh(name) {
  const directory = join(root, 'packages', name)
  const built = serverPackages[name].map((file) => join(directory, file))
  if (!built.every((file) => existsSync(file))) return false
  const sources = Math.max(newest(join(directory, 'src')), newest(join(directory, 'package.json')))
  return Math.min(...built.map((file) => statSync(file).mtimeMs)) >= sources
}

function tsup(name) {
  const directory = join(root, 'packages', name)
  return new Promise((resolve, reject) => {
    const child = spawn(join(root, 'node_modules/.bin/tsup'), [], {
      cwd: directory,
      env: { ...process.env, MPPKIT_BUILD: 'js', MPPKIT_KEEP_DIST: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('error', reject)
    // The server needs JavaScript only (MPPKIT_KEEP_DIST keeps the declarations of an earlier full
    // build). method-stripe's tsup also writes declarations, which fail while core's dist/ holds no
    // .d.ts (core's come from tsc): fresh JavaScript is enough here.
    child.on('exit', (code) =>
      code === 0 || isFresh(name)
        ? resolve()
        : reject(new Error(`tsup failed in packages/${name}:\n${output.trim()}`)),
    )
  })
}

// The page bundles workspace sources (as vitest does), so it needs no build of the packages.
// `@mppkit/core` resolves to its browser-safe client entry: @mppkit/method-stripe/client imports the
// root entry (for ConfigurationError and PolicyError), whose server helpers import node:crypto.
const sources = {
  name: 'mppkit-sources',
  setup(build) {
    build.onResolve({ filter: /^@mppkit\/[^/]+(\/[^/]+)?$/ }, (args) => {
      const [, pkg, sub] = /^@mppkit\/([^/]+)(?:\/(.+))?$/.exec(args.path)
      const entry = pkg === 'core' && !sub ? 'client' : sub
      return { path: join(root, 'packages', pkg, 'src', entry ? `${entry}/index.ts` : 'index.ts') }
    })
  },
}

/** Bundles the page for the browser; returns its size, raw and gzipped. */
export async function buildPage(outdir = join(app, 'dist')) {
  const result = await esbuild.build({
    entryPoints: [join(app, 'src/page/main.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'silent',
    plugins: [sources],
  })
  const code = result.outputFiles[0].contents
  mkdirSync(outdir, { recursive: true })
  writeFileSync(join(outdir, 'page.js'), code)
  return { bytes: code.length, gzipped: gzipSync(code).length }
}

export async function buildServer(outdir = join(app, 'dist')) {
  await esbuild.build({
    entryPoints: [join(app, 'src/server/main.ts')],
    outfile: join(outdir, 'server.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'silent',
  })
}

export async function buildPlayground() {
  const started = performance.now()
  const stale = Object.keys(serverPackages).filter((name) => !isFresh(name))
  if (stale.length)
    log(`[playground] building ${stale.map((name) => `@mppkit/${name}`).join(', ')} (JavaScript only)…`)
  // @mppkit/core first: its tsup run cleans its dist/, and method-stripe's tsup (with declarations)
  // reads core's types from there.
  const packages = stale.includes('core')
    ? tsup('core').then(() => Promise.all(stale.filter((name) => name !== 'core').map((name) => tsup(name))))
    : Promise.all(stale.map((name) => tsup(name)))
  await Promise.all([
    packages,
    buildServer(),
    buildPage().then((size) =>
      console.log(
        `[playground] page.js ${(size.bytes / 1024).toFixed(0)} KB, ${(size.gzipped / 1024).toFixed(0)} KB gzipped`,
      ),
    ),
  ])
  console.log(`[playground] built in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildPlayground().catch((error) => {
    console.error(`[playground] ${error.message}`)
    process.exit(1)
  })
}
