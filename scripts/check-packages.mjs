// Checks every published package as its users get it (needs `npm run build` first):
// - publint (package.json exports, files, bin) and @arethetypeswrong/cli (types resolve for ESM users);
// - each entry's type declarations compile in a tiny consumer project: without @types/node for the
//   entries that also run in browsers, with it for the Node-only ones (which state that requirement);
// - a LICENSE and a README with Install, Try it and Links sections.
// Usage: node scripts/check-packages.mjs [publint|attw|types|files]…   (prints problems; exit 1 if any)
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../', import.meta.url))

/**
 * Published packages and, per entry, whether its declarations must compile without @types/node
 * (`browser`) or may need it (`node`, stated in the README and as an optional peer dependency).
 */
export const published = {
  core: { '.': 'browser', './client': 'browser', './server': 'node', './testing': 'node' },
  'method-tempo': { '.': 'browser', './client': 'browser', './server': 'browser', './cli': 'browser' },
  devnet: { '.': 'node' },
  'store-redis': { '.': 'node' },
  'store-postgres': { '.': 'node' },
  mcp: { '.': 'node', './server': 'node', './client': 'node' },
  discovery: { '.': 'node' },
}

const manifest = (name) => JSON.parse(readFileSync(join(root, 'packages', name, 'package.json'), 'utf8'))

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

export async function checkAttw(name) {
  const pkgDir = join(root, 'packages', name)
  const { stdout } = await run(
    join(root, 'node_modules/.bin/attw'),
    ['--pack', '.', '--profile', 'esm-only', '--format', 'json', '--no-emoji'],
    { cwd: pkgDir, maxBuffer: 64 * 1024 * 1024 },
  ).catch((error) => ({ stdout: error.stdout ?? '' }))
  const json = JSON.parse(stdout.slice(stdout.indexOf('{')))
  const problems = json.analysis?.problems ?? []
  // esm-only: node10 and CommonJS-from-ESM resolutions are out of scope for ESM-only packages.
  const relevant = problems.filter(
    (p) => !['node10', 'node16-cjs'].includes(p.resolutionKind) && p.kind !== 'CJSResolvesToESM',
  )
  return relevant.map((p) =>
    `attw ${manifest(name).name}: ${p.kind} (${p.entrypoint ?? ''} ${p.resolutionKind ?? ''})`.trim(),
  )
}

/** Compiles `import * as entry from '<package><entry>'` for each entry, in one consumer project. */
export async function checkTypes(name, entries, needs) {
  const pkg = manifest(name)
  const specifiers = [entries]
    .flat()
    .map((entry) => (entry === '.' ? pkg.name : `${pkg.name}/${entry.slice(2)}`))
  const specifier = specifiers.join(', ')
  const dir = join(root, '.tmp', `types-${name}-${needs}`)
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
      },
      files: ['index.ts'],
    }),
  )
  const problems = []
  try {
    const { stdout } = await run(join(root, 'node_modules/.bin/tsc'), ['-p', dir, '--listFiles'], {
      cwd: dir,
      maxBuffer: 64 * 1024 * 1024,
    }).catch((error) => {
      problems.push(
        ...String(error.stdout)
          .split('\n')
          .filter((line) => /error TS/.test(line))
          .map((line) => `types ${specifier} (${needs}): ${line.replace(root, '')}`),
      )
      return { stdout: '' }
    })
    if (needs === 'browser' && /[\\/]@types[\\/]node[\\/]/.test(stdout))
      problems.push(`types ${specifier}: its declarations pull in @types/node`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return problems
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

export async function checkPackages(kinds = ['files', 'publint', 'attw', 'types']) {
  const problems = []
  for (const name of Object.keys(published)) {
    if (kinds.includes('files')) problems.push(...checkFiles(name))
    if (kinds.includes('publint')) problems.push(...(await checkPublint(name)))
    if (kinds.includes('attw')) problems.push(...(await checkAttw(name)))
    if (kinds.includes('types'))
      for (const needs of ['browser', 'node']) {
        const entries = Object.keys(published[name]).filter((entry) => published[name][entry] === needs)
        if (entries.length) problems.push(...(await checkTypes(name, entries, needs)))
      }
  }
  return problems
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const kinds = process.argv.slice(2)
  const problems = await checkPackages(kinds.length ? kinds : undefined)
  for (const problem of problems) console.error(problem)
  console.log(problems.length === 0 ? 'packages: ok' : `packages: ${problems.length} problem(s)`)
  process.exitCode = problems.length === 0 ? 0 : 1
}
