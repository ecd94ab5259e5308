import { fileRecordStore } from '@mppkit/core/client/node'
import type { ChannelStore, SavedChannel } from './Saved.js'

export type { ChannelStore, SavedChannel } from './Saved.js'

/** A {@link ChannelStore} in one JSON file, with `close()` to let another process take the file. */
export type FileChannelStore = ChannelStore & {
  /** The file's path. */
  readonly path: string
  /** Releases the file's lock (also released when the process exits). */
  close(): void
}

/**
 * Keeps a session client's channels in a JSON file (Node.js), so a restarted client pays on its open
 * channels instead of locking a new deposit: `sessionClient({ ..., channelStore: fileChannelStore(path) })`.
 *
 * The file (`{"v":1,"channels":{…}}`) is written whole, to a temporary file that is synced and renamed
 * over it (a crash leaves the old or the new contents, never half), readable by its owner only (mode
 * 0600); it holds no key. A lock file beside it (`<path>.lock`, naming the process) keeps a second
 * running client off the same file: two clients signing on one channel would refuse each other's
 * vouchers, so the second is refused with a `ConfigurationError` while the first lives. A lock left by a
 * process that has ended is taken over. (The file mechanics are `fileRecordStore` of
 * `@mppkit/core/client/node`; the records are checked by the session client when it restores them.)
 *
 * @example
 * ```ts
 * import { fileChannelStore } from '@mppkit/method-tempo/client/node'
 * const sessions = tempo.session({ account, rpcUrl, channelStore: fileChannelStore('.mppkit/channels.json') })
 * await sessions.restore() // the channels a previous run left open, checked on chain before paying
 * ```
 */
export function fileChannelStore(path: string): FileChannelStore {
  return fileRecordStore<SavedChannel>(path, { name: 'fileChannelStore', field: 'channels', noun: 'channel' })
}
