// A release rehearsal that leaves the repository untouched: copies the committed files (and each
// package's built dist/) to a temporary folder, runs `changeset version` there, checks the versions and
// ranges it produced, and packs every package with `npm pack`, checking what each tarball holds.
// Usage: node scripts/release-dry-run.mjs [--keep]   (needs `npm run build` first; prints one JSON line)
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../', import.meta.url))
const require = (await import('node:module')).createRequire(import.meta.url)
const semver = require('semver')

/** Files every published package must contain. */
const required = ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts']

function copyRepository(to) {
  const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0')
  for (const file of tracked.filter(Boolean)) {
    if (!existsSync(join(root, file))) continue // deleted in the work tree
    mkdirSync(dirname(join(to, file)), { recursive: true })
    cpSync(join(root, file), join(to, file))
  }
  for (const name of readdirSync(join(root, 'packages'))) {
    const dist = join(root, 'packages', name, 'dist')
    if (existsSync(dist)) cpSync(dist, join(to, 'packages', name, 'dist'), { recursive: true })
  }
}

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))

/** Runs the rehearsal; returns `{ ok, problems, packages }`. */
export function releaseDryRun({ keep = false } = {}) {
  const work = mkdtempSync(join(tmpdir(), 'mppkit-release-'))
  const problems = []
  const packages = {}
  try {
    copyRepository(work)
    // Every folder of packages/ with a manifest: a package that lands is rehearsed without being listed.
    const names = readdirSync(join(work, 'packages')).filter((name) =>
      existsSync(join(work, 'packages', name, 'package.json')),
    )
    const before = Object.fromEntries(
      names.map((name) => [name, readJson(join(work, 'packages', name, 'package.json')).version]),
    )
    execFileSync(process.execPath, [join(root, 'node_modules/@changesets/cli/bin.js'), 'version'], {
      cwd: work,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CI: 'true' },
    })
    const manifests = Object.fromEntries(
      names.map((name) => [name, readJson(join(work, 'packages', name, 'package.json'))]),
    )
    const versions = Object.fromEntries(Object.values(manifests).map((m) => [m.name, m.version]))
    if (readdirSync(join(work, '.changeset')).some((f) => f.endsWith('.md') && f !== 'README.md'))
      problems.push('changeset version left changesets unconsumed')
    // Every published package packed by one npm process (`npm pack -w packages/<name>` packs the same
    // files as `npm pack` in the package's folder, without starting npm once per package).
    const publishedNames = names.filter((name) => !manifests[name].private)
    const packedList = JSON.parse(
      execFileSync(
        'npm',
        [
          'pack',
          '--json',
          '--pack-destination',
          work,
          ...publishedNames.flatMap((n) => ['-w', `packages/${n}`]),
        ],
        { cwd: work, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 },
      ),
    )
    for (const [name, manifest] of Object.entries(manifests)) {
      if (manifest.private) continue
      const entry = { from: before[name], to: manifest.version, files: [] }
      packages[manifest.name] = entry
      if (!semver.valid(manifest.version))
        problems.push(`${manifest.name}: version ${manifest.version} is not semver`)
      if (semver.major(manifest.version) !== semver.major(before[name]))
        problems.push(`${manifest.name}: ${before[name]} → ${manifest.version} is a major bump`)
      if (!existsSync(join(work, 'packages', name, 'CHANGELOG.md')))
        problems.push(`${manifest.name}: no CHANGELOG.md`)
      // Internal peers are real ranges that the released versions satisfy.
      for (const [peer, range] of Object.entries(manifest.peerDependencies ?? {})) {
        if (!(peer in versions)) continue
        if (range === '*' || !semver.validRange(range))
          problems.push(`${manifest.name}: peer ${peer} "${range}" is no real range`)
        else if (!semver.satisfies(versions[peer], range))
          problems.push(`${manifest.name}: peer ${peer} "${range}" excludes the released ${versions[peer]}`)
      }
      const packed = packedList.find((p) => p.name === manifest.name)
      if (!packed) {
        problems.push(`${manifest.name}: npm pack did not pack it`)
        continue
      }
      entry.files = packed.files.map((f) => f.path)
      entry.tarball = packed.filename
      for (const file of required)
        if (!entry.files.includes(file)) problems.push(`${manifest.name}: the tarball lacks ${file}`)
      for (const bin of Object.values(manifest.bin ?? {}))
        if (!entry.files.includes(bin.replace(/^\.\//, '')))
          problems.push(`${manifest.name}: the tarball lacks bin ${bin}`)
      for (const file of entry.files)
        if (/\.test\.[cm]?[jt]s$|(^|\/)test\//.test(file))
          problems.push(`${manifest.name}: the tarball holds test file ${file}`)
    }
  } catch (error) {
    problems.push(`${error.message}${error.stderr ? `\n${error.stderr}` : ''}`)
  } finally {
    if (!keep) rmSync(work, { recursive: true, force: true })
  }
  return { ok: problems.length === 0, problems, packages, ...(keep ? { work } : {}) }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const result = releaseDryRun({ keep: process.argv.includes('--keep') })
  console.log(JSON.stringify(result))
  if (!result.ok) {
    for (const problem of result.problems) console.error(`release dry run: ${problem}`)
    process.exit(1)
  }
}
