import { createHash } from 'node:crypto'
import { Challenge, ConfigurationError } from '@mppkit/core/client'
import { z } from 'zod'
import { LightningNetwork } from '../Methods.js'

/**
 * One session as a session client saves it (see {@link SessionStore}): what it needs to pay from the
 * session again after a restart, and to close it. It holds the deposit preimage, a bearer secret ("the
 * preimage carries the same threat model as any API bearer token", draft-lightning-session-00: whoever
 * reads it can spend the session's balance and close it), so a store must be as private as an API key (`fileSessionStore` writes its file
 * readable by its owner only). Amounts are satoshi decimal strings; challenges are the server's
 * `WWW-Authenticate` values.
 */
export type SavedSession = {
  /** Format version of this record. */
  v: 1
  /**
   * The network the deposit was paid on (a client of another network leaves the record alone: it names
   * it in its `skipped()` and never saves a session over it).
   */
  network: LightningNetwork
  /** The deposit's payment hash (the session id). */
  sessionId: string
  /** The deposit preimage: a bearer secret. */
  preimage: string
  realm: string
  deposit: string
  spent: string
  price: string
  /**
   * The URL the session was opened on (its top-ups and close go there): of the key's origin, or, for a
   * session keyed `realm:<realm>` (a method driven with a URL that has no origin), any name.
   */
  url: string
  /** The amountless invoice the server refunds to. */
  returnInvoice?: string
  /** The last challenge the session answered (its open challenge until the open is confirmed). */
  challenge?: string
  /**
   * Whether the server confirmed the open (a receipt of the session seen). An open saved before it was
   * sent and never confirmed is sent again on restore, on its own challenge while that lives.
   */
  opened: boolean
  /** The last challenge a receipt of the session came for (consumed; kept for the record, not sent again). */
  answered?: string
  /**
   * A top-up paid whose credit the server has not confirmed: sent again, never paid again, to `url`, the
   * URL its challenge came from (its server pins a challenge to its resource; a record without it is
   * sent to the session's `url`).
   */
  pendingTopUp?: { challenge: string; preimage: string; sats: string; url?: string }
}

/**
 * The proof of a top-up paid that its server will never credit (see {@link SessionStore}): kept under
 * `lost:<sessionId>:topup:<paymentHash>` once the server refused it for good (a 4xx), or its challenge
 * expired before it could be sent again ("Clients MUST NOT submit credentials for expired challenges"),
 * and listed by the session client's `lost()` beside the lost sessions (told apart by `kind`). Its
 * preimage is the only proof that the payer paid that invoice (to show the server's operator): a
 * secret, never logged, kept until `forgetLost(sessionId, paymentHash)` deletes it.
 */
export type SavedLostTopUp = {
  /** Format version of this record. */
  v: 1
  /** A lost top-up (a lost session's record, a {@link SavedSession}, has no `kind`). */
  kind: 'topUp'
  /** The network the top-up was paid on. */
  network: LightningNetwork
  /** The session it was paid for (its deposit's payment hash). */
  sessionId: string
  realm: string
  /** The URL of the session (where the top-up was sent). */
  url: string
  /** The top-up invoice's payment hash (its record's key ends with it). */
  paymentHash: string
  /** The top-up's preimage: the proof of payment, a secret. */
  preimage: string
  /** The satoshis paid (routing fee apart). */
  sats: string
  /** The challenge it was paid on (its `depositInvoice` is the invoice paid). */
  challenge: string
  /** Why it will not be credited (the server's refusal, or its challenge's expiry); no secret. */
  reason: string
}

/**
 * Where a session client keeps its sessions across restarts (`sessionClient({ sessionStore })`). A
 * session is saved once its deposit is paid, before its open is sent, and again before a paid top-up is
 * sent and as its balance changes; it is deleted once closed. A session whose deposit was paid but whose
 * open can never be sent (reported lost) is moved under the key `lost:<sessionId>`, as proof of the
 * payment, until `forgetLost(sessionId)` deletes it; a paid top-up its server will never credit is kept
 * under `lost:<sessionId>:topup:<paymentHash>` (a {@link SavedLostTopUp}) the same way.
 * `fileSessionStore(path)` from `@mppkit/method-lightning/client/node` keeps them in a JSON file; any
 * other store (a database row, a keychain) implements these three calls, and must keep the records as
 * secret as an API key. One store serves one running client at a time.
 */
export type SessionStore = {
  /** Every saved record, by key (the client's session keys: server origins; and its `lost:` records). */
  load(): Promise<Record<string, SavedSession | SavedLostTopUp>>
  /** Saves (replaces) one record; resolves once it is durable. */
  save(key: string, session: SavedSession | SavedLostTopUp): Promise<void>
  delete(key: string): Promise<void>
}

const hex32 = z.string().regex(/^[0-9a-f]{64}$/)
const sats = z.string().regex(/^\d{1,20}$/)
const challenge = z
  .string()
  .max(Challenge.maxHeaderLength)
  .refine((value) => {
    try {
      Challenge.parse(value)
      return true
    } catch {
      return false
    }
  })

const savedSession = z.object({
  v: z.literal(1),
  network: LightningNetwork,
  sessionId: hex32,
  preimage: hex32,
  realm: z.string().min(1).max(1024),
  deposit: sats,
  spent: sats,
  price: sats,
  url: z.string().min(1).max(8192),
  returnInvoice: z.string().min(1).max(8192).optional(),
  challenge: challenge.optional(),
  opened: z.boolean(),
  answered: challenge.optional(),
  pendingTopUp: z
    .object({ challenge, preimage: hex32, sats, url: z.string().min(1).max(8192).optional() })
    .optional(),
})

const savedLostTopUp = z.object({
  v: z.literal(1),
  kind: z.literal('topUp'),
  network: LightningNetwork,
  sessionId: hex32,
  realm: z.string().min(1).max(1024),
  url: z.string().min(1).max(8192),
  paymentHash: hex32,
  preimage: hex32,
  sats,
  challenge,
  reason: z.string().min(1).max(1024),
})

/** The key a lost top-up's record is kept under. */
export const lostTopUpKey = (sessionId: string, paymentHash: string) =>
  `lost:${sessionId}:topup:${paymentHash}`

/** The origin (`scheme://host:port`) of `url`, if it is a URL that has one. */
export const originOf = (url: string): string | undefined => {
  try {
    const { origin } = new URL(url)
    return origin === 'null' ? undefined : origin
  } catch {
    return undefined
  }
}

const sha256 = (hex: string) => createHash('sha256').update(Buffer.from(hex, 'hex')).digest('hex')

/** What is wrong with a record (the fields at fault, never their values), or the record checked. */
export type Checked<record> = { ok: true; saved: record } | { ok: false; problem: string }

/**
 * The problem of a record of another format version than 1 (a newer client's: its fields may mean
 * something else, so nothing of it is read), or undefined when it claims version 1 (or none).
 */
function versionProblem(value: unknown): string | undefined {
  const version = (value as { v?: unknown } | null)?.v
  if (version === undefined || version === 1 || Array.isArray(value)) return undefined
  return Number.isSafeInteger(version) && (version as number) > 1
    ? `is a record of version ${version}, which this client does not read (it reads version 1)`
    : 'is not a valid record (v)'
}

/** The fields a schema found at fault ("record" for the value itself: not an object, broken JSON text). */
const fieldsOf = (error: z.ZodError) =>
  [...new Set(error.issues.map((issue) => issue.path.join('.') || 'record'))].join(', ')

/**
 * Checks one loaded session record: its shape (an object of version 1 with every field well formed),
 * that it is saved under its own key (its URL's origin, `realm:<realm>` for a URL without one, or
 * `lost:<sessionId>` for a session reported lost), and that its preimage is the session id's (a record
 * edited by hand, or another session's preimage, is never presented). What is wrong names the fields at
 * fault, never their values (the record holds a bearer secret).
 *
 * @example
 * ```ts
 * const checked = checkSaved(origin, record)
 * if (!checked.ok) console.error(`saved session ${JSON.stringify(origin)} ${checked.problem}`)
 * ```
 */
export function checkSaved(key: string, value: unknown): Checked<SavedSession> {
  const version = versionProblem(value)
  if (version !== undefined) return { ok: false, problem: version }
  const parsed = savedSession.safeParse(value)
  if (!parsed.success) return { ok: false, problem: `is not a valid record (${fieldsOf(parsed.error)})` }
  const saved = parsed.data as SavedSession
  // The key is where the session's credentials go: a URL of another origin would send its preimage there.
  // (A lost session's record is never sent again: its key names it.)
  const origin = originOf(saved.url)
  if (key.startsWith('lost:')) {
    if (key !== `lost:${saved.sessionId}`)
      return { ok: false, problem: "is not a valid record (sessionId: not its key's)" }
  } else if (
    origin === undefined ? key !== `realm:${saved.realm}` : key !== origin || !/^https?:/.test(saved.url)
  )
    return {
      ok: false,
      problem: "is not a valid record (url: not of its key's origin, or not http(s))",
    }
  // "SHA-256(preimage) MUST equal challenge.request.paymentHash" (the session id): one that does not is
  // never presented, to its server or any other.
  if (sha256(saved.preimage) !== saved.sessionId)
    return { ok: false, problem: "holds a preimage that is not its session's (preimage, sessionId)" }
  if (saved.pendingTopUp) {
    const request = Challenge.parse(saved.pendingTopUp.challenge).request as { paymentHash?: unknown }
    if (request.paymentHash !== sha256(saved.pendingTopUp.preimage))
      return {
        ok: false,
        problem: "holds a pending top-up whose preimage is not its challenge's (pendingTopUp)",
      }
    // Where its preimage goes: of the session's origin (or, keyed by realm, the session's own URL).
    const at = saved.pendingTopUp.url
    if (
      at !== undefined &&
      (origin === undefined ? at !== saved.url : originOf(at) !== origin || !/^https?:/.test(at))
    )
      return {
        ok: false,
        problem: "is not a valid record (pendingTopUp.url: not of its session's origin)",
      }
  }
  return { ok: true, saved }
}

/**
 * Checks one loaded record of a lost top-up: its shape, that it is saved under
 * `lost:<sessionId>:topup:<paymentHash>`, and that its preimage is that payment hash's, the hash its
 * challenge names. What is wrong names the fields at fault, never a value.
 */
export function checkLostTopUp(key: string, value: unknown): Checked<SavedLostTopUp> {
  const version = versionProblem(value)
  if (version !== undefined) return { ok: false, problem: version }
  const invalid = (fields: string) => ({
    ok: false as const,
    problem: `is not a valid lost top-up (${fields})`,
  })
  const parsed = savedLostTopUp.safeParse(value)
  if (!parsed.success) return invalid(fieldsOf(parsed.error))
  const saved = parsed.data as SavedLostTopUp
  if (key !== lostTopUpKey(saved.sessionId, saved.paymentHash))
    return invalid("sessionId, paymentHash: not its key's")
  const request = Challenge.parse(saved.challenge).request as { paymentHash?: unknown }
  if (sha256(saved.preimage) !== saved.paymentHash || request.paymentHash !== saved.paymentHash)
    return invalid("preimage: not its payment hash's, or not its challenge's")
  return { ok: true, saved }
}

/**
 * Checks one loaded `lost:` record: a lost top-up's (`lost:<sessionId>:topup:<paymentHash>`, see
 * {@link checkLostTopUp}) or a lost session's (`lost:<sessionId>`, see {@link checkSaved}).
 */
export function checkLost(key: string, value: unknown): Checked<SavedSession | SavedLostTopUp> {
  return /^lost:[^:]*:topup:/.test(key) ? checkLostTopUp(key, value) : checkSaved(key, value)
}

/** Checks a `sessionStore` option at client creation. */
export function checkSessionStore(value: unknown): void {
  if (value === undefined) return
  const store = value as Partial<Record<keyof SessionStore, unknown>> | null
  if (
    !store ||
    typeof store !== 'object' ||
    typeof store.load !== 'function' ||
    typeof store.save !== 'function' ||
    typeof store.delete !== 'function'
  )
    throw new ConfigurationError(
      'lightning session: sessionStore must be an object with load, save and delete functions (e.g. fileSessionStore(path) from @mppkit/method-lightning/client/node)',
    )
}
