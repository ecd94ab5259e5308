import { fileRecordStore } from '@mppkit/core/client/node'
import type { SavedSession, SessionStore } from './Saved.js'

export type { SavedSession, SessionStore } from './Saved.js'

/** A {@link SessionStore} in one JSON file, with `close()` to let another process take the file. */
export type FileSessionStore = SessionStore & {
  /** The file's path. */
  readonly path: string
  /** Releases the file's lock (also released when the process exits). */
  close(): void
}

/**
 * Keeps a Lightning session client's sessions in a JSON file (Node.js), so a restarted client keeps
 * paying from its prepaid sessions (and can still close them, refund to its return invoice) instead of
 * paying a new deposit: `sessionClient({ ..., sessionStore: fileSessionStore(path) })`.
 *
 * The file holds each session's deposit preimage, a bearer secret: treat it as an API key. It is written
 * whole (`{"v":1,"sessions":{…}}`), to a temporary file that is synced and renamed over it (a crash
 * leaves the old or the new contents, never half), readable by its owner only (mode 0600). A lock file
 * beside it (`<path>.lock`, naming the process) keeps a second running client off the same file: the
 * second is refused with a `ConfigurationError` while the first lives; a lock left by a process that has
 * ended is taken over. (The file mechanics are `fileRecordStore` of `@mppkit/core/client/node`; the
 * records are checked by the session client when it restores them.) A session whose deposit was paid but
 * whose open can never be sent stays in the file under `lost:<sessionId>`, its preimage the proof of
 * payment, until the client's `forgetLost(sessionId)` deletes it (`lost()` lists them).
 *
 * @example
 * ```ts
 * import { fileSessionStore } from '@mppkit/method-lightning/client/node'
 * const sessions = lightning.session({ lnd, network: 'regtest', sessionStore: fileSessionStore('.mppkit/sessions.json') })
 * await sessions.restore() // the sessions a previous run left open
 * ```
 */
export function fileSessionStore(path: string): FileSessionStore {
  return fileRecordStore<SavedSession>(path, { name: 'fileSessionStore', field: 'sessions', noun: 'session' })
}
