// `npm pack` of a workspace package, once per content: the tarball is kept in os.tmpdir() under a name
// that hashes everything `npm pack` reads (every file of the package folder outside node_modules, the
// root manifest and ignore files, the npm version), so the install-alone tests and the attw check pack
// core once between them instead of once per test file, and a tarball is never used for other content.
// Safe for several processes at once: a tarball enters the cache by an atomic rename, and only when the
// package's content was the same before and after packing (a build writing dist/ meanwhile is not cached).
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { copyFile, link, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const exec = promisify(execFile)
const root = fileURLToPath(new URL('../', import.meta.url))
const cacheDir = join(tmpdir(), 'mppkit-tarballs')
/** Entries not used for this long are removed when a new one is stored. */
const keepMs = 3 * 24 * 3600_000

/** The version of the `npm` that `npm pack` runs (from its package.json, without starting npm). */
let npmVersion
function npmIdentity() {
  if (npmVersion !== undefined) return npmVersion
  npmVersion = 'unknown'
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const bin = join(dir, 'npm')
    if (!dir || !existsSync(bin)) continue
    let at = dirname(realpathSync(bin))
    for (let up = 0; up < 3; up++, at = dirname(at)) {
      const manifest = join(at, 'package.json')
      if (!existsSync(manifest)) continue
      const { name, version } = JSON.parse(readFileSync(manifest, 'utf8'))
      if (name === 'npm') {
        npmVersion = `${realpathSync(bin)}@${version}`
        return npmVersion
      }
    }
    npmVersion = realpathSync(bin)
    return npmVersion
  }
  return npmVersion
}

async function filesOf(dir) {
  const out = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...(await filesOf(path)))
    else out.push(path)
  }
  return out
}

/**
 * A hash of everything `npm pack` in packages/`name` reads: each file's path, mode and bytes (a superset
 * of what it packs), the root package.json and ignore files, and the npm that packs.
 */
export async function packageHash(name) {
  const dir = join(root, 'packages', name)
  const hash = createHash('sha256').update(`npm ${npmIdentity()}\n`)
  const files = [
    ...(await filesOf(dir)).sort(),
    ...['package.json', '.gitignore', '.npmignore'].map((file) => join(root, file)),
  ]
  for (const file of files) {
    let bytes
    let mode = 0
    try {
      ;[bytes, { mode }] = await Promise.all([readFile(file), stat(file)])
    } catch (error) {
      if (error.code !== 'ENOENT') throw error
      bytes = Buffer.from('(absent)')
    }
    hash.update(`${relative(root, file)}\0${mode}\0${bytes.length}\0`).update(bytes)
  }
  return hash.digest('hex')
}

async function npmPack(name, destination) {
  const { stdout } = await exec('npm', ['pack', '--silent', '--pack-destination', destination], {
    cwd: join(root, 'packages', name),
  })
  return join(destination, stdout.trim().split('\n').pop())
}

async function prune() {
  const now = Date.now()
  for (const entry of await readdir(cacheDir).catch(() => [])) {
    const path = join(cacheDir, entry)
    const { mtimeMs } = await stat(path).catch(() => ({ mtimeMs: now }))
    // Temporary folders of packs that died: an hour; tarballs: unused for `keepMs`.
    if (now - mtimeMs > (entry.startsWith('packing-') ? 3600_000 : keepMs))
      await rm(path, { recursive: true, force: true })
  }
}

/**
 * The tarball of packages/`name` as `npm pack` makes it, as a file in `folder` (a hard link to, or copy
 * of, the cached one: removing the cache cannot remove it); packs when the cache has none for the
 * package's current content. Resolves the tarball's path.
 */
export async function packCached(name, folder) {
  await mkdir(cacheDir, { recursive: true })
  const hash = await packageHash(name)
  const cached = join(cacheDir, `${name}-${hash}.tgz`)
  const target = join(folder, `${name}-${hash.slice(0, 16)}.tgz`)
  const place = async (from) => {
    await link(from, target).catch(async (error) => {
      if (error.code === 'EEXIST') return
      await copyFile(from, target)
    })
    return target
  }
  if (existsSync(cached)) {
    const now = new Date()
    await utimes(cached, now, now).catch(() => {})
    return place(cached).catch((error) => {
      // Removed by another process's prune between the check and the link: pack it anew below.
      if (error.code !== 'ENOENT') throw error
      return packAndStore()
    })
  }
  return packAndStore()

  async function packAndStore() {
    const work = await mkdtemp(join(cacheDir, 'packing-'))
    try {
      const tarball = await npmPack(name, work)
      // Cached only when nothing changed while packing; otherwise used once, as a plain `npm pack` is.
      if ((await packageHash(name)) === hash) {
        await rename(tarball, cached)
        await prune()
        return await place(cached)
      }
      return await place(tarball)
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  }
}
