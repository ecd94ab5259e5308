import { ConfigurationError } from '@mppkit/core/client'
import { type Address, type Hex, isAddressEqual, zeroAddress } from 'viem'
import { z } from 'zod'
import * as Channel from '../Channel.js'

/**
 * One channel as a session client saves it (see {@link ChannelStore}): what it needs to pay on the
 * channel again after a restart, and nothing secret (no key; the signed open transaction and top-up
 * only ever fund the payer's own channel). Amounts are base-unit decimal strings.
 */
export type SavedChannel = {
  /** Format version of this record. */
  v: 1
  payer: Address
  channelId: Hex
  escrow: Address
  currency: Address
  /** The payee the channel pays. */
  recipient: Address
  /** The salt the channel id was computed with (the id is checked against it when loaded). */
  salt: Hex
  chainId: number
  deposit: string
  /** The highest cumulative amount this client ever signed on the channel (saved before it is sent). */
  cumulative: string
  /** What the server had spent per its last receipt seen before the save. */
  spent: string
  /** The URL the channel was last paid on (its close goes there). */
  url: string
  /** The channel's own signed open transaction (presented again, never replaced while it may be mined). */
  open: { transaction: Hex; nonce: number; authorizedSigner?: Address }
  /** A signed top-up whose outcome is unknown (saved before it is sent): sent again, never signed anew. */
  topUpPending?: { transaction: Hex; nonce: number; amount: string }
}

/**
 * Where a session client keeps its channels across restarts (`sessionClient({ channelStore })`). A
 * channel is saved before any credential that raises its cumulative amount, opens it or tops it up
 * leaves the client, and deleted once it is closed or taken back, so a restarted client pays on the same
 * channel (above anything it signed before) instead of locking a new deposit. `fileChannelStore(path)`
 * from `@mppkit/method-tempo/client/node` keeps them in a JSON file; any other store (a database row,
 * a keychain) implements these three calls; a session client makes them one at a time. One store must
 * serve one running client at a time: two clients signing on one channel would refuse each other's
 * vouchers.
 */
export type ChannelStore = {
  /** Every saved channel, by key (the client's own keys; entries of other payers are left alone). */
  load(): Promise<Record<string, SavedChannel>>
  /** Saves (replaces) one channel; resolves once it is durable. */
  save(key: string, channel: SavedChannel): Promise<void>
  delete(key: string): Promise<void>
}

const hex = (bytes?: number) =>
  z
    .string()
    .regex(bytes === undefined ? /^0x(?:[0-9a-fA-F]{2})+$/ : new RegExp(`^0x[0-9a-fA-F]{${bytes * 2}}$`))
const address = hex(20)
const amount = z.string().regex(/^\d{1,78}$/)
const nonce = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)

const savedChannel = z.object({
  v: z.literal(1),
  payer: address,
  channelId: hex(32),
  escrow: address,
  currency: address,
  recipient: address,
  salt: hex(32),
  chainId: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  deposit: amount,
  cumulative: amount,
  spent: amount,
  url: z.string().refine((value) => {
    try {
      return /^https?:$/.test(new URL(value).protocol)
    } catch {
      return false
    }
  }),
  open: z.object({ transaction: hex(), nonce, authorizedSigner: address.optional() }),
  topUpPending: z.object({ transaction: hex(), nonce, amount }).optional(),
})

/**
 * Checks one loaded record: its shape (an object of version 1 with every field well formed), and that its
 * channel id is the one the escrow computes from its payer, payee, token, salt, signer, escrow and chain
 * (a record naming another channel, e.g. edited by hand, is never paid on). What is wrong names the
 * fields at fault, never their values (a record holds a signed open transaction).
 *
 * @example
 * ```ts
 * const checked = checkSaved(JSON.parse(text))
 * if (!checked.ok) console.error(`saved channel ${checked.problem}`) // "is not a valid record (v)"
 * ```
 */
export function checkSaved(
  value: unknown,
): { ok: true; saved: SavedChannel } | { ok: false; problem: string } {
  const version = (value as { v?: unknown } | null)?.v
  // A newer client's record: its fields may mean something else, so nothing of it is read.
  if (version !== undefined && version !== 1 && !Array.isArray(value))
    return {
      ok: false,
      problem:
        Number.isSafeInteger(version) && (version as number) > 1
          ? `is a record of version ${version}, which this client does not read (it reads version 1)`
          : 'is not a valid record (v)',
    }
  const parsed = savedChannel.safeParse(value)
  if (!parsed.success)
    return {
      ok: false,
      problem: `is not a valid record (${[
        ...new Set(parsed.error.issues.map((issue) => issue.path.join('.') || 'record')),
      ].join(', ')})`,
    }
  const saved = parsed.data as SavedChannel
  const computed = Channel.computeId({
    payer: saved.payer,
    payee: saved.recipient,
    token: saved.currency,
    salt: saved.salt,
    authorizedSigner: saved.open.authorizedSigner ?? zeroAddress,
    escrow: saved.escrow,
    chainId: saved.chainId,
  })
  if (computed.toLowerCase() !== saved.channelId.toLowerCase())
    return {
      ok: false,
      problem: `names channel ${saved.channelId}, but its payer, payee, token, salt, signer, escrow and chain make ${computed}`,
    }
  return { ok: true, saved }
}

/** Whether a saved record belongs to this payer and can be signed for by this signer. */
export function isOwnSaved(saved: SavedChannel, payer: Address, signer: Address): boolean {
  if (!isAddressEqual(saved.payer, payer)) return false
  const authorized = saved.open.authorizedSigner ?? zeroAddress
  return isAddressEqual(authorized, zeroAddress)
    ? isAddressEqual(signer, payer)
    : isAddressEqual(authorized, signer)
}

/** Checks a `channelStore` option at client creation. */
export function checkChannelStore(scope: string, value: unknown): void {
  if (value === undefined) return
  const store = value as Partial<Record<keyof ChannelStore, unknown>> | null
  if (
    !store ||
    typeof store !== 'object' ||
    typeof store.load !== 'function' ||
    typeof store.save !== 'function' ||
    typeof store.delete !== 'function'
  )
    throw new ConfigurationError(
      `${scope}: channelStore must be an object with load, save and delete functions (e.g. fileChannelStore(path) from @mppkit/method-tempo/client/node)`,
    )
}

/**
 * `store` with its operations run one at a time, in order (each starts once the one before settled): a
 * session client closes channels of different servers concurrently, and a store need not take
 * overlapping calls (one that rewrites a whole file could otherwise lose one of two deletes).
 */
export function oneAtATime(store: ChannelStore): ChannelStore {
  let queue: Promise<unknown> = Promise.resolve()
  const run = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn)
    queue = next.catch(() => {})
    return next
  }
  return {
    load: () => run(() => store.load()),
    save: (key, channel) => run(() => store.save(key, channel)),
    delete: (key) => run(() => store.delete(key)),
  }
}
