// Builds the playground: the workspace packages its server imports (JavaScript only, and only when
// their sources are newer than dist/), the server (dist/server.mjs) and the page (dist/page.js and
// dist/chunks/: browser bundles of the rails' browser-safe clients, built from their sources, one
// lazily loaded chunk per view). `node build.mjs` prints what it builds; `--quiet` prints only the
// page sizes (the whole app and the first load, gzipped) and the time it took.
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'
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
  'method-solana': ['dist/index.js', 'dist/server/index.js'],
  mcp: ['dist/index.js'],
  'x402-compat': ['dist/index.js', 'dist/server/index.js'],
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

// @mppkit/x402-compat loads @solana/kit with a dynamic import (only to pay an x402 Solana offer), which
// would keep every export of the kit in the bundle. In the page that import resolves to
// src/page/x402-kit.ts, which re-exports only what x402-compat's Solana payer uses (tree-shaken, and
// shared with the Solana views' chunks).
const x402Kit = {
  name: 'mppkit-x402-kit',
  setup(build) {
    build.onResolve({ filter: /^@solana\/kit$/ }, (args) =>
      args.kind === 'dynamic-import' && /x402-compat[\\/]src[\\/]svm[\\/]Kit\.ts$/.test(args.importer)
        ? { path: join(app, 'src/page/x402-kit.ts') }
        : undefined,
    )
  },
}

// Namespace re-exports (`export * as Abis from './Abis.js'` in viem/tempo, `z` and `locales` in zod)
// defeat tree shaking when imported by name: `import { z } from 'zod'` keeps every zod locale and the
// JSON Schema converters, `import { Abis } from 'viem/tempo'` every Tempo ABI. In the page's sources
// such imports become `import * as z from '<the module>'`, whose unused exports esbuild drops.
const barrels = {
  zod: join(root, 'node_modules/zod/v4/classic/external.js'),
  'viem/tempo': join(root, 'node_modules/viem/_esm/tempo/index.js'),
}
const namespaceTables = new Map()
function namespacesOf(specifier) {
  let table = namespaceTables.get(specifier)
  if (!table) {
    const file = barrels[specifier]
    table = specifier === 'zod' ? { z: file } : {}
    for (const [, name, target] of readFileSync(file, 'utf8').matchAll(
      /export \* as (\w+) from ['"]([^'"]+)['"]/g,
    ))
      table[name] = join(dirname(file), target)
    namespaceTables.set(specifier, table)
  }
  return table
}
// Names the page takes from a file of its own instead (see the file's comment).
const substitutes = { 'viem/tempo': { createClient: join(app, 'src/page/viem-tempo-client.ts') } }
const narrowImports = {
  name: 'mppkit-narrow-imports',
  setup(build) {
    build.onLoad({ filter: /(packages\/[^/]+\/src|apps\/playground\/src\/page)\/.*\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8').replace(
        /import\s*\{([^}]*)\}\s*from\s*'(zod|viem\/tempo)'/g,
        (_all, names, specifier) => {
          const table = namespacesOf(specifier)
          const kept = []
          const namespaces = []
          for (const name of names
            .split(',')
            .map((part) => part.trim())
            .filter(Boolean)) {
            const [imported, local] = name.split(/\s+as\s+/)
            const substitute = substitutes[specifier]?.[imported]
            if (!name.startsWith('type ') && substitute)
              namespaces.push(
                `import { ${imported} as ${local ?? imported} } from ${JSON.stringify(substitute)}`,
              )
            else if (!name.startsWith('type ') && table[imported])
              namespaces.push(`import * as ${local ?? imported} from ${JSON.stringify(table[imported])}`)
            else kept.push(name)
          }
          // Type-only leftovers become `import type` (an `import { type X }` would still load the module).
          if (kept.length && kept.every((name) => name.startsWith('type ')))
            namespaces.push(
              `import type { ${kept.map((name) => name.slice(5)).join(', ')} } from '${specifier}'`,
            )
          else if (kept.length) namespaces.push(`import { ${kept.join(', ')} } from '${specifier}'`)
          return namespaces.join(';\n')
        },
      )
      return { contents: text, loader: 'ts' }
    })
  },
}

// viem's Tempo ABI module ends with `export const all = [...core, ...earn, …]`: top-level spreads that
// esbuild must keep (a spread may run an iterator), and with them every ABI (~180 KB) though the page
// uses `tip20` alone. Wrapped in pure calls, the unused ones are dropped; the values are unchanged.
const pureAbiSpreads = {
  name: 'mppkit-pure-abi-spreads',
  setup(build) {
    build.onLoad({ filter: /viem\/_esm\/tempo\/Abis\.js$/ }, (args) => ({
      contents: readFileSync(args.path, 'utf8').replace(
        /export const (\w+) = (\[(?:\s*\.\.\.\w+,?)+\s*\]);/g,
        'export const $1 = /* @__PURE__ */ (() => $2)();',
      ),
      loader: 'js',
    }))
  },
}

const gzipped = (bytes) => gzipSync(bytes, { level: 9 }).length

/**
 * Bundles the page for the browser: `page.js` (the shell, the inspector, the spend policy) and one
 * lazily loaded chunk per view plus their shared chunks under `chunks/` (esbuild code splitting).
 * Returns the sizes, raw and gzipped: the whole app (every file), the first page load (page.js and
 * the chunks it imports statically, i.e. before any view opens) and what each view adds when it opens.
 */
export async function buildPage(outdir = join(app, 'dist')) {
  const result = await esbuild.build({
    entryPoints: { page: join(app, 'src/page/main.ts') },
    outdir,
    chunkNames: 'chunks/[name]-[hash]',
    // Metafile paths are relative to this.
    absWorkingDir: root,
    bundle: true,
    splitting: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    define: { 'process.env.NODE_ENV': '"production"' },
    // @mppkit/method-solana's RPC loads node:net and node:tls lazily, on Node only (the page uses fetch).
    external: ['node:net', 'node:tls'],
    metafile: true,
    write: false,
    logLevel: 'silent',
    plugins: [sources, x402Kit, narrowImports, pureAbiSpreads],
  })
  rmSync(join(outdir, 'chunks'), { recursive: true, force: true })
  mkdirSync(join(outdir, 'chunks'), { recursive: true })
  // What each chunk holds, for esbuild's bundle analyzer (https://esbuild.github.io/analyze/).
  writeFileSync(join(outdir, 'page-meta.json'), JSON.stringify(result.metafile))
  const files = {}
  for (const file of result.outputFiles) {
    const name = relative(outdir, file.path).split(sep).join('/')
    writeFileSync(file.path, file.contents)
    files[name] = { bytes: file.contents.length, gzipped: gzipped(file.contents) }
  }
  // The first load: page.js and what it imports statically (dynamic imports wait for a view). Each
  // view: the chunks its dynamic import brings beyond those.
  const outputs = result.metafile.outputs
  const nameOf = (path) => relative(outdir, resolve(root, path)).split(sep).join('/')
  const byName = Object.fromEntries(Object.entries(outputs).map(([path, output]) => [nameOf(path), output]))
  const closure = (name, seen = new Set()) => {
    if (seen.has(name)) return seen
    seen.add(name)
    for (const imported of byName[name].imports)
      if (imported.kind === 'import-statement') closure(nameOf(imported.path), seen)
    return seen
  }
  const sum = (names) =>
    [...names].reduce(
      (total, name) => ({
        bytes: total.bytes + files[name].bytes,
        gzipped: total.gzipped + files[name].gzipped,
      }),
      { bytes: 0, gzipped: 0 },
    )
  const shell = closure('page.js')
  const views = {}
  for (const [name, output] of Object.entries(byName))
    if (output.entryPoint?.startsWith('apps/playground/src/page/') && name !== 'page.js') {
      const view = basename(output.entryPoint, '.ts')
      views[view] = sum([...closure(name)].filter((chunk) => !shell.has(chunk)))
    }
  return { files, ...sum(Object.keys(files)), firstLoad: sum(shell), views }
}

/** The build's size line: the whole app and the first page load, gzipped. */
export function sizeLine(size) {
  const kb = (bytes) => `${(bytes / 1024).toFixed(0)} KB`
  const views = Object.entries(size.views).map(([view, { gzipped }]) => `${view} +${kb(gzipped)}`)
  return `[playground] page: whole app ${kb(size.gzipped)} gzipped (${kb(size.bytes)} raw, ${Object.keys(size.files).length} files); first load ${kb(size.firstLoad.gzipped)} gzipped, then per view opened: ${views.join(', ')}`
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
  await Promise.all([packages, buildServer(), buildPage().then((size) => console.log(sizeLine(size)))])
  console.log(`[playground] built in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  buildPlayground().catch((error) => {
    console.error(`[playground] ${error.message}`)
    process.exit(1)
  })
}
