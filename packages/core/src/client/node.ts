// The Node.js-only part of the client: a file that keeps a client's records (a rail's open channels or
// sessions) across restarts. Not imported by `@mppkit/core/client`, which also runs in browsers.
import { randomBytes } from 'node:crypto'
import {
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { dirname, resolve } from 'node:path'
import { ConfigurationError } from '../Errors.js'

/** Options of {@link fileRecordStore}: how its file and its errors name what it holds. */
export type FileRecordStoreOptions = {
  /** The name errors start with (default `fileRecordStore`), e.g. the rail's own store function. */
  name?: string
  /** The property of the file's JSON object that holds the records (default `records`). */
  field?: string
  /** What one record is, in errors ("a channel file", "another channel store"; default `record`). */
  noun?: string
}

/** Records kept in one JSON file by {@link fileRecordStore}: one running client per file. */
export type FileRecordStore<record = unknown> = {
  /** The file's path. */
  readonly path: string
  /** Every record, by key (a copy); the file is read once, then kept in memory. */
  load(): Promise<Record<string, record>>
  /** Saves (replaces) one record; resolves once it is durable. */
  save(key: string, record: record): Promise<void>
  delete(key: string): Promise<void>
  /** Releases the file's lock (also released when the process exits). */
  close(): void
}

// Lock files this process holds, by resolved path: a second store on the same file in this process is
// refused as one in another process would be (whichever rail's store it is).
const held = new Set<string>()

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: a process of another user holds that pid: alive.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Keeps a client's records in one JSON file (`{"v":1,"<field>":{key: record}}`), for a rail's store of
 * open channels or sessions that a restarted client reads back (`fileChannelStore` of
 * `@mppkit/method-tempo/client/node`, `fileSessionStore` of `@mppkit/method-lightning/client/node`).
 * Records are JSON values; checking them is the caller's part.
 *
 * The file is written whole, to a temporary file that is synced and renamed over it (a crash leaves the
 * old or the new contents, never half; the directory is synced too, where the platform allows it),
 * readable by its owner only (mode 0600). A lock file beside it (`<path>.lock`, naming the process)
 * keeps a second running client off the same file, in this process or another: the second store is
 * refused with a `ConfigurationError` (at its first operation) while the first lives. A lock left by a
 * process that has ended is taken over. Operations run one at a time, in order.
 *
 * @example
 * ```ts
 * import { fileRecordStore } from '@mppkit/core/client/node'
 * const store = fileRecordStore('.mppkit/records.json')
 * await store.save('https://api.example', { v: 1 }); store.close()
 * ```
 */
export function fileRecordStore<record = unknown>(
  path: string,
  options: FileRecordStoreOptions = {},
): FileRecordStore<record> {
  const name = options.name ?? 'fileRecordStore'
  const field = options.field ?? 'records'
  const noun = options.noun ?? 'record'
  if (typeof path !== 'string' || path.length === 0)
    throw new ConfigurationError(`${name}: path must be a non-empty string`)
  const lockPath = `${path}.lock`
  const lockKey = resolve(lockPath)
  let locked = false
  let records: Record<string, unknown> | undefined
  let queue: Promise<unknown> = Promise.resolve()

  const unlink = (file: string) => {
    try {
      unlinkSync(file)
    } catch {}
  }
  /** The pid a lock file names; undefined when it names none; null when there is no such file. */
  const holderOf = (file: string): number | undefined | null => {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      return null
    }
    return /^\d{1,10}$/.test(text) ? Number(text) : undefined
  }
  const inUse = (holder: number | undefined) =>
    new ConfigurationError(
      `${name}: ${path} is in use by ${holder === undefined ? 'another process' : `process ${holder}`} (one running client per ${noun} file; its lock is ${lockPath})`,
    )

  const release = () => {
    if (!locked) return
    locked = false
    held.delete(lockKey)
    // Only a lock that still names this process (never one another process has taken since).
    if (holderOf(lockPath) === process.pid) unlink(lockPath)
  }
  const onExit = () => release()

  // The lock file appears whole or not at all: written under a name of its own, then linked to the lock
  // path, which fails when a lock exists.
  const tryCreate = (): boolean => {
    const temporary = `${lockPath}.${process.pid}.${randomBytes(6).toString('hex')}`
    try {
      writeFileSync(temporary, String(process.pid), { mode: 0o600 })
      linkSync(temporary, lockPath)
      return true
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw new ConfigurationError(
        `${name}: cannot create the lock file ${lockPath} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      )
    } finally {
      unlink(temporary)
    }
  }

  const acquire = () => {
    if (locked) return
    if (held.has(lockKey))
      throw new ConfigurationError(
        `${name}: ${path} is in use by another ${noun} store of this process (one running client per ${noun} file)`,
      )
    for (let attempt = 0; attempt < 5; attempt++) {
      if (tryCreate()) {
        locked = true
        held.add(lockKey)
        process.once('exit', onExit)
        return
      }
      const holder = holderOf(lockPath)
      if (holder === null) continue
      if (holder === undefined) {
        // Not a lock this code wrote (it writes the pid before the lock appears): held, unless old.
        let age = 0
        try {
          age = Date.now() - statSync(lockPath).mtimeMs
        } catch {
          continue
        }
        if (age < 60_000) throw inUse(undefined)
      } else if (holder !== process.pid && alive(holder)) throw inUse(holder)
      // Left by a process that ended (or by this one, closed): moved aside, and taken over only when what
      // was moved is that lock (another process may have taken it over in between: it is put back).
      const aside = `${lockPath}.stale.${process.pid}.${randomBytes(6).toString('hex')}`
      try {
        renameSync(lockPath, aside)
      } catch {
        continue
      }
      const moved = holderOf(aside)
      if (moved !== holder) {
        try {
          linkSync(aside, lockPath)
        } catch {}
        unlink(aside)
        throw inUse(moved ?? undefined)
      }
      unlink(aside)
    }
    throw new ConfigurationError(`${name}: could not take the lock ${lockPath}`)
  }

  const read = (): Record<string, unknown> => {
    if (records) return records
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        records = {}
        return records
      }
      throw new ConfigurationError(
        `${name}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      )
    }
    let contents: Record<string, unknown> | null
    try {
      contents = JSON.parse(text) as Record<string, unknown> | null
    } catch {
      // Never its contents: a record may hold a bearer secret.
      throw new ConfigurationError(`${name}: ${path} is not JSON; fix or remove it`)
    }
    const kept = contents?.[field]
    if (contents?.v !== 1 || typeof kept !== 'object' || kept === null || Array.isArray(kept))
      throw new ConfigurationError(
        `${name}: ${path} is not a ${noun} file (expected {"v":1,"${field}":{…}}); fix or remove it`,
      )
    records = { ...(kept as Record<string, unknown>) }
    return records
  }

  const write = (next: Record<string, unknown>) => {
    const temporary = `${path}.${process.pid}.tmp`
    const fd = openSync(temporary, 'w', 0o600)
    try {
      writeSync(fd, `${JSON.stringify({ v: 1, [field]: next }, null, 2)}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temporary, path)
    // The rename itself made durable (the directory's entry), where the platform allows it.
    try {
      const directory = openSync(dirname(resolve(path)), 'r')
      try {
        fsyncSync(directory)
      } finally {
        closeSync(directory)
      }
    } catch {}
    records = next
  }

  // One operation at a time, in order: a save is never overtaken by an older one.
  const run = <T>(fn: () => T): Promise<T> => {
    const next = queue.then(() => {
      acquire()
      return fn()
    })
    queue = next.catch(() => {})
    return next
  }

  return {
    path,
    load: () => run(() => ({ ...read() }) as Record<string, record>),
    save: (key, value) => run(() => write({ ...read(), [key]: value })),
    delete: (key) =>
      run(() => {
        const current = read()
        if (!(key in current)) return
        const { [key]: _, ...rest } = current
        write(rest)
      }),
    close() {
      release()
      process.removeListener('exit', onExit)
      records = undefined
    },
  }
}
