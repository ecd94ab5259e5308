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
import { ConfigurationError } from '@mppkit/core/client'
import type { ChannelStore, SavedChannel } from './Saved.js'

export type { ChannelStore, SavedChannel } from './Saved.js'

/** A {@link ChannelStore} in one JSON file, with `close()` to let another process take the file. */
export type FileChannelStore = ChannelStore & {
  /** The file's path. */
  readonly path: string
  /** Releases the file's lock (also released when the process exits). */
  close(): void
}

type FileContents = { v: 1; channels: Record<string, unknown> }

// Lock files this process holds, by resolved path: a second store on the same file in this process is
// refused as one in another process would be.
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
 * Keeps a session client's channels in a JSON file (Node.js), so a restarted client pays on its open
 * channels instead of locking a new deposit: `sessionClient({ ..., channelStore: fileChannelStore(path) })`.
 *
 * The file is written whole, to a temporary file that is synced and renamed over it (a crash leaves the
 * old or the new contents, never half), readable by its owner only (mode 0600); it holds no key. A lock
 * file beside it (`<path>.lock`, naming the process) keeps a second running client off the same file:
 * two clients signing on one channel would refuse each other's vouchers, so the second is refused with a
 * `ConfigurationError` while the first lives. A lock left by a process that has ended is taken over.
 *
 * @example
 * ```ts
 * import { fileChannelStore } from '@mppkit/method-tempo/client/node'
 * const sessions = tempo.session({ account, rpcUrl, channelStore: fileChannelStore('.mppkit/channels.json') })
 * await sessions.restore() // the channels a previous run left open, checked on chain before paying
 * ```
 */
export function fileChannelStore(path: string): FileChannelStore {
  if (typeof path !== 'string' || path.length === 0)
    throw new ConfigurationError('fileChannelStore: path must be a non-empty string')
  const lockPath = `${path}.lock`
  const lockKey = resolve(lockPath)
  let locked = false
  let channels: Record<string, unknown> | undefined
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
      `fileChannelStore: ${path} is in use by ${holder === undefined ? 'another process' : `process ${holder}`} (one running client per channel file; its lock is ${lockPath})`,
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
        `fileChannelStore: cannot create the lock file ${lockPath} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      )
    } finally {
      unlink(temporary)
    }
  }

  const acquire = () => {
    if (locked) return
    if (held.has(lockKey))
      throw new ConfigurationError(
        `fileChannelStore: ${path} is in use by another channel store of this process (one running client per channel file)`,
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
    throw new ConfigurationError(`fileChannelStore: could not take the lock ${lockPath}`)
  }

  const read = (): Record<string, unknown> => {
    if (channels) return channels
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        channels = {}
        return channels
      }
      throw new ConfigurationError(
        `fileChannelStore: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      )
    }
    let contents: Partial<FileContents> | null
    try {
      contents = JSON.parse(text) as Partial<FileContents> | null
    } catch {
      throw new ConfigurationError(`fileChannelStore: ${path} is not JSON; fix or remove it`)
    }
    if (
      contents?.v !== 1 ||
      typeof contents.channels !== 'object' ||
      contents.channels === null ||
      Array.isArray(contents.channels)
    )
      throw new ConfigurationError(
        `fileChannelStore: ${path} is not a channel file (expected {"v":1,"channels":{…}}); fix or remove it`,
      )
    channels = { ...contents.channels }
    return channels
  }

  const write = (next: Record<string, unknown>) => {
    const temporary = `${path}.${process.pid}.tmp`
    const fd = openSync(temporary, 'w', 0o600)
    try {
      writeSync(fd, `${JSON.stringify({ v: 1, channels: next } satisfies FileContents, null, 2)}\n`)
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
    channels = next
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
    load: () => run(() => ({ ...read() }) as Record<string, SavedChannel>),
    save: (key, channel) => run(() => write({ ...read(), [key]: channel })),
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
      channels = undefined
    },
  }
}
