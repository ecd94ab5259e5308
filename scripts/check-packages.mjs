// Checks every published package as its users get it (needs `npm run build` first):
// - publint (package.json exports, files, bin) and @arethetypeswrong/cli (types resolve for ESM users);
// - each entry's type declarations compile in a tiny consumer project: without @types/node for the
//   entries that also run in browsers, with it for the Node-only ones (which state that requirement);
// - a LICENSE and a README with Install, Try it and Links sections.
// Usage: node scripts/check-packages.mjs [publint|attw|types|files]…   (prints problems; exit 1 if any)
import { execFile } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { packCached } from './pack-cache.mjs'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../', import.meta.url))

const manifest = (name) => JSON.parse(readFileSync(join(root, 'packages', name, 'package.json'), 'utf8'))

/**
 * Entries that need @types/node in a package whose other entries run in browsers. In every other package
 * the kind follows its manifest: all entries are `node` when it declares @types/node as an optional peer
 * dependency, otherwise `browser` (their declarations must compile without Node's types).
 */
const nodeEntries = {
  core: ['./server', './testing'],
  'method-stripe': ['./server'],
  'x402-compat': ['./server'],
}

/** Every non-private package under packages/ (a new package is checked without being listed here). */
export function packageNames() {
  return readdirSync(join(root, 'packages'))
    .filter((name) => existsSync(join(root, 'packages', name, 'package.json')))
    .filter((name) => !manifest(name).private)
    .sort()
}

function entryKinds(name) {
  const pkg = manifest(name)
  const entries = Object.keys(pkg.exports ?? { '.': pkg.main }).filter((entry) => entry !== './package.json')
  const nodeOnly = pkg.peerDependenciesMeta?.['@types/node']?.optional === true
  return Object.fromEntries(
    entries.map((entry) => [
      entry,
      (nodeEntries[name] ? nodeEntries[name].includes(entry) : nodeOnly) ? 'node' : 'browser',
    ]),
  )
}

/**
 * Published packages and, per entry, whether its declarations must compile without @types/node
 * (`browser`) or may need it (`node`, stated in the README and as an optional peer dependency).
 */
export const published = Object.fromEntries(packageNames().map((name) => [name, entryKinds(name)]))

export async function checkPublint(name) {
  const { publint } = await import('publint')
  const { formatMessage } = await import('publint/utils')
  const pkgDir = join(root, 'packages', name)
  const { messages } = await publint({ pkgDir, level: 'suggestion', pack: 'npm', strict: true })
  const pkg = manifest(name)
  return messages.map(
    (message) => `publint ${pkg.name}: ${formatMessage(message, pkg)?.replace(/\x1b\[\d+m/g, '')}`,
  )
}

/**
 * @arethetypeswrong/core, the analysis the attw CLI runs, loaded once from the CLI's own dependencies: one
 * analysis takes 30-600 ms where a CLI run (node, the CLI and its TypeScript loaded anew) takes ~2.5 s.
 * Imported by path: under vitest's `development` condition its package entry would be its TypeScript source.
 */
let attwCore
function loadAttwCore() {
  attwCore ??= (async () => {
    const require = createRequire(join(root, 'node_modules/@arethetypeswrong/cli/package.json'))
    const dir = require.resolve
      .paths('@arethetypeswrong/core')
      .map((modules) => join(modules, '@arethetypeswrong/core'))
      .find((candidate) => existsSync(join(candidate, 'dist/index.js')))
    if (!dir)
      throw new Error('@arethetypeswrong/core (a dependency of @arethetypeswrong/cli) is not installed')
    return import(pathToFileURL(join(dir, 'dist/index.js')).href)
  })()
  return attwCore
}

/**
 * What `attw --pack <package> --profile esm-only` reports: `npm pack` (as the CLI runs it; the tarball
 * comes from scripts/pack-cache.mjs, packed anew whenever the package's content changed), then the CLI's
 * analysis of that tarball, in this process.
 */
export async function checkAttw(name) {
  const folder = mkdtempSync(join(tmpdir(), 'mppkit-attw-'))
  let analysis
  try {
    const tarball = readFileSync(await packCached(name, folder))
    const core = await loadAttwCore()
    analysis = await core.checkPackage(core.createPackageFromTarballData(new Uint8Array(tarball)), {})
  } finally {
    rmSync(folder, { recursive: true, force: true })
  }
  const problems = analysis.problems ?? []
  // esm-only: node10 and CommonJS-from-ESM resolutions are out of scope for ESM-only packages.
  const relevant = problems.filter(
    (p) => !['node10', 'node16-cjs'].includes(p.resolutionKind) && p.kind !== 'CJSResolvesToESM',
  )
  return relevant.map((p) =>
    `attw ${manifest(name).name}: ${p.kind} (${p.entrypoint ?? ''} ${p.resolutionKind ?? ''})`.trim(),
  )
}

/** The import specifiers of `entries` of package `name` (`.` is the package itself). */
const specifiersOf = (name, entries) =>
  [entries]
    .flat()
    .map((entry) => (entry === '.' ? manifest(name).name : `${manifest(name).name}/${entry.slice(2)}`))

/**
 * tsc's incremental state of each consumer project, kept between runs (in the work tree's .tmp/): a file
 * whose content (tsc hashes it) is unchanged, and that imports nothing changed, keeps its diagnostics
 * from the previous run instead of being checked again; most of the ~2,700 declaration files the two
 * projects read are dependencies' and never change. Each run starts from a copy and stores its own state
 * by an atomic rename, so runs at the same time neither share nor corrupt one.
 */
const typesCache = join(root, '.tmp', 'types-cache')

/**
 * Compiles `import * as entry from '<specifier>'` for every specifier, in one consumer project and one tsc
 * run; `browser` projects have no @types/node (and fail when a declaration pulls it in).
 */
async function compileConsumer(specifiers, needs, label) {
  const dir = join(root, '.tmp', `types-${label}-${needs}-${process.pid}`)
  const buildInfo = join(dir, 'consumer.tsbuildinfo')
  const cached = join(typesCache, `${label}-${needs}.tsbuildinfo`)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  writeFileSync(
    join(dir, 'index.ts'),
    specifiers
      .map((spec, i) => `import * as entry${i} from '${spec}'\nexport type Entry${i} = typeof entry${i}\n`)
      .join(''),
  )
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        // A browser app has no Node types; a Node app has @types/node. Both keep TypeScript's default DOM
        // library (Solana's kit types, under @mppkit/devnet, name WebCrypto's CryptoKey).
        lib: ['ES2023', 'DOM', 'DOM.Iterable'],
        types: needs === 'browser' ? [] : ['node'],
        skipLibCheck: false,
        noEmit: true,
        incremental: true,
        tsBuildInfoFile: './consumer.tsbuildinfo',
      },
      files: ['index.ts'],
    }),
  )
  // The project folder is at the same depth on every run: the state's relative paths hold.
  try {
    copyFileSync(cached, buildInfo)
  } catch {}
  const problems = []
  let pullsNode = false
  try {
    const { stdout } = await run(join(root, 'node_modules/.bin/tsc'), ['-p', dir, '--listFiles'], {
      cwd: dir,
      maxBuffer: 64 * 1024 * 1024,
    }).catch((error) => {
      problems.push(
        ...String(error.stdout)
          .split('\n')
          .filter((line) => /error TS/.test(line))
          .map((line) => `types ${label} (${needs}): ${line.replace(root, '')}`),
      )
      return { stdout: String(error.stdout) }
    })
    pullsNode = needs === 'browser' && /[\\/]@types[\\/]node[\\/]/.test(stdout)
    if (existsSync(buildInfo)) {
      mkdirSync(typesCache, { recursive: true })
      renameSync(buildInfo, cached)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return { problems, pullsNode }
}

/** Compiles `import * as entry from '<package><entry>'` for each entry, in one consumer project. */
export async function checkTypes(name, entries, needs) {
  const specifiers = specifiersOf(name, entries)
  const { problems, pullsNode } = await compileConsumer(specifiers, needs, name)
  if (pullsNode) problems.push(`types ${specifiers.join(', ')}: its declarations pull in @types/node`)
  return problems
}

/**
 * Every entry of every published package in two consumer projects (browser entries without @types/node,
 * Node entries with it), compiled by two tsc runs side by side instead of one per package. A browser
 * project that pulls in @types/node is compiled again per package to name the culprit.
 */
export async function checkAllTypes(packages = published) {
  const byKind = (needs) =>
    Object.entries(packages).flatMap(([name, kinds]) => {
      const entries = Object.keys(kinds).filter((entry) => kinds[entry] === needs)
      return entries.length ? [[name, entries]] : []
    })
  const results = await Promise.all(
    ['browser', 'node'].map(async (needs) => {
      const groups = byKind(needs)
      if (groups.length === 0) return []
      const specifiers = groups.flatMap(([name, entries]) => specifiersOf(name, entries))
      const { problems, pullsNode } = await compileConsumer(specifiers, needs, 'all')
      if (pullsNode)
        for (const [name, entries] of groups)
          if ((await compileConsumer(specifiersOf(name, entries), needs, name)).pullsNode)
            problems.push(
              `types ${specifiersOf(name, entries).join(', ')}: its declarations pull in @types/node`,
            )
      return problems
    }),
  )
  return results.flat()
}

export function checkFiles(name) {
  const pkg = manifest(name)
  const dir = join(root, 'packages', name)
  const problems = []
  if (!existsSync(join(dir, 'LICENSE'))) problems.push(`${pkg.name}: no LICENSE`)
  else if (!/^MIT License/.test(readFileSync(join(dir, 'LICENSE'), 'utf8')) || pkg.license !== 'MIT')
    problems.push(`${pkg.name}: LICENSE and package.json license are not both MIT`)
  const readme = existsSync(join(dir, 'README.md')) ? readFileSync(join(dir, 'README.md'), 'utf8') : ''
  if (!readme) problems.push(`${pkg.name}: no README.md`)
  for (const section of ['## Install', '## Try it', '## Links'])
    if (readme && !readme.includes(`\n${section}\n`)) problems.push(`${pkg.name}: README has no "${section}"`)
  if (readme && !readme.includes(`npm install`)) problems.push(`${pkg.name}: README shows no npm install`)
  const needsNode = Object.values(published[name]).includes('node')
  if (
    needsNode &&
    !(pkg.peerDependencies?.['@types/node'] && pkg.peerDependenciesMeta?.['@types/node']?.optional)
  )
    problems.push(`${pkg.name}: some entries need @types/node: declare it as an optional peer dependency`)
  if (needsNode && !readme.includes('@types/node'))
    problems.push(`${pkg.name}: README does not state @types/node`)
  return problems
}

/** Runs `task` over `items`, `limit` at a time; resolves with the results in the order of `items`. */
export async function pool(items, limit, task) {
  const results = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await task(items[index])
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

/** All checks of `kinds`; publint and attw run a few packages at a time, the type checks alongside. */
export async function checkPackages(kinds = ['files', 'publint', 'attw', 'types']) {
  const names = Object.keys(published)
  const files = kinds.includes('files') ? names.flatMap((name) => checkFiles(name)) : []
  const [types, perPackage] = await Promise.all([
    kinds.includes('types') ? checkAllTypes() : [],
    pool(names, 3, async (name) => [
      ...(kinds.includes('publint') ? await checkPublint(name) : []),
      ...(kinds.includes('attw') ? await checkAttw(name) : []),
    ]),
  ])
  return [...files, ...perPackage.flat(), ...types]
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const kinds = process.argv.slice(2)
  const problems = await checkPackages(kinds.length ? kinds : undefined)
  for (const problem of problems) console.error(problem)
  console.log(problems.length === 0 ? 'packages: ok' : `packages: ${problems.length} problem(s)`)
  process.exitCode = problems.length === 0 ? 0 : 1
}
