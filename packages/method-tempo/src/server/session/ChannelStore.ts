import {
  type AtomicStep,
  type AtomicStepResult,
  PaymentError,
  type Store,
  StoreUnavailableError,
  VerificationFailedError,
} from '@mppkit/core'
import type { Address, Hex } from 'viem'
import { sameAddress } from '../../internal/bytes.js'
import type { ChannelState } from './Chain.js'
import { sessionProblem } from './problems.js'

/** The highest accepted voucher of a channel, as stored. */
export type StoredVoucher = { amount: string; signature: Hex }

/**
 * Accounting state of a channel: the highest accepted cumulative amount and what was spent of it;
 * `closing` when nothing was deducted because a cooperative close of the channel is in progress.
 */
export type Balance = { ok: boolean; spent: bigint; accepted: bigint; closing?: boolean }

/**
 * How long a channel stays marked as closing when the process closing it never finishes (it crashed):
 * past this, the channel serves again and the close may be retried.
 */
const closingTtlMs = 5 * 60_000

/** What the channel store needs. */
export type ChannelStoreOptions = {
  /** TTL of session state in the Store, in ms. */
  ttlMs: number
  /** Cached channel state older than this (ms) is re-read from the escrow when `fresh` is asked for. */
  stateTtl: number
  payee: Address
  currency: Address
  /** Reads the channel from the escrow (undefined: no such channel). */
  readChannel(channelId: Hex): Promise<ChannelState | undefined>
  /**
   * Called (synchronously: it must only schedule) when a channel state read from the escrow shows a
   * forced close requested by the payer, with the store the state is saved in: what was served on it
   * must be settled before the grace period ends and the payer withdraws.
   */
  onCloseRequested?(store: Store, channelId: Hex): void
  /** How many channels awaiting settlement are tracked, all stores together (default 100,000; see `dirty`). */
  maxDirty?: number
  /**
   * Shape of the index of channels that may need settlement kept in each store (see `indexChannel`):
   * how many keys it is spread over, and how many channels each holds (default 64 × 512).
   */
  index?: { shards: number; perShard: number }
}

/** Per-channel session state in a Store: cached channel, highest voucher, spent counter. */
export type ChannelStore = ReturnType<typeof createChannelStore>

// How long the keys of a channel live. Each expires `ttlMs` after it was last written, and they must
// never expire in an order that loses money:
// - `spent` outlives `v`: a voucher still stored after its `spent` expired would be served again (down
//   to the settled floor). Every operation that writes `v` writes `spent` too, in the same atomic
//   operation (the deduction itself, or an increment by 0).
// - `ok` (the settle mark) outlives `spent`: while what was served is remembered, so is the voucher that
//   settles it. Every operation that writes `spent` rewrites `ok` to its own value (a compare-and-set
//   from this process's last known value; when another process changed it, the answer of that same
//   operation gives the new value, and one more store operation rewrites it).
// `v` may expire first: the stored `spent` still bounds what is served (a new voucher must exceed it) and
// `ok` still settles it. `ok` outliving both only keeps a voucher that was fully served settleable. `ch`
// is a cache of the escrow, `closing` a short-lived mark.

type KeyKind = 'ch' | 'v' | 'spent' | 'ok' | 'closing'
const keyKinds: readonly KeyKind[] = ['ch', 'v', 'spent', 'ok', 'closing']
/** Channels awaiting settlement this process keeps track of (see `dirty`). */
const maxDirty = 100_000
/**
 * The index of channels that may need settlement, kept in the store (see `indexChannel`): spread over
 * this many keys, each holding at most this many channel ids (64 × 512 = 32,768 channels; a full key
 * is about 34 kB).
 */
const indexShards = 64
const indexPerShard = 512
/** How many attempts an index update makes against concurrent updates of the same key. */
const indexAttempts = 16
/** Channels whose key names are remembered (past it, the memo starts over). */
const keyMemoSize = 10_000
const keyMemo = new Map<string, Record<KeyKind, string>>()
/**
 * The store key of one kind of a channel's state. The names of a channel's keys are built once and
 * reused: the store then gets the same strings on every request, whose hashes the engine keeps.
 */
const key = (kind: KeyKind, channelId: string): string => {
  let names = keyMemo.get(channelId)
  if (names === undefined) {
    const id = channelId.toLowerCase()
    names = {} as Record<KeyKind, string>
    for (const k of keyKinds) names[k] = `${k}:${id}`
    if (keyMemo.size >= keyMemoSize) keyMemo.clear()
    keyMemo.set(channelId, names)
  }
  return names[kind]
}

/**
 * Creates the channel store of a `tempo/session` server: the accepted and spent amounts of each channel
 * live in the given Store and change atomically (compare-and-set of the highest voucher, bounded
 * increment of the spent counter), so several server processes can share one Store.
 *
 * @example
 * ```ts
 * const channels = createChannelStore({ ttlMs, stateTtl: 1000, payee, currency, readChannel })
 * const { ok } = await channels.deduct(store, channelId, 1000n)
 * ```
 * @see draft-tempo-session-00 §9 (Accounting)
 */
export function createChannelStore(options: ChannelStoreOptions) {
  const { ttlMs } = options
  /**
   * Channels spent on since they were last settled, oldest first (the next settlement batch of a store
   * looks at each), each with the stores it was spent in: a method may be set up in several servers,
   * each with its own store, and a batch settling one store leaves the channels of the others alone.
   * Bounded: past `maxDirty` the oldest is forgotten, which loses no money (the store's index still lists
   * it, and a close, a forced close seen on a re-read, or the next deduction on that channel still settles
   * what it owes) but keeps a server that saw many abandoned channels from growing and re-reading them
   * without end. In memory only, and updated on the per-voucher path without a store operation: what a
   * process that stops without closing leaves unsettled is found in the store's index
   * (`indexChannel`). A channel added or deleted without a store is so in every store.
   */
  const dirtyIn = new Map<Hex, Set<Store> | 'every'>()
  const dirty = {
    /** Marks a channel as spent on in `s` (in every store when none is given); it becomes the newest. */
    add(channelId: Hex, s?: Store) {
      const stores = dirtyIn.get(channelId)
      // Moved to the end: the channels spent on lately are the last to be forgotten.
      dirtyIn.delete(channelId)
      if (dirtyIn.size >= (options.maxDirty ?? maxDirty)) dirtyIn.delete(dirtyIn.keys().next().value as Hex)
      dirtyIn.set(channelId, s === undefined || stores === 'every' ? 'every' : (stores ?? new Set()).add(s))
    },
    /** Forgets a channel in `s` (in every store when none is given: the channel was closed). */
    delete(channelId: Hex, s?: Store) {
      const stores = dirtyIn.get(channelId)
      if (stores === undefined) return
      if (s !== undefined && stores !== 'every') {
        stores.delete(s)
        if (stores.size > 0) return
      }
      dirtyIn.delete(channelId)
    },
    /** Whether the channel awaits settlement in `s`. */
    has(channelId: Hex, s: Store) {
      const stores = dirtyIn.get(channelId)
      return stores === 'every' || (stores?.has(s) ?? false)
    },
    /** The channels awaiting settlement in `s`, oldest first. */
    in(s: Store): Hex[] {
      const ids: Hex[] = []
      for (const [channelId, stores] of dirtyIn) if (stores === 'every' || stores.has(s)) ids.push(channelId)
      return ids
    },
    /** How many channels await settlement, in any store. */
    get size() {
      return dirtyIn.size
    },
    /** The channels awaiting settlement in any store, oldest first. */
    [Symbol.iterator]: () => dirtyIn.keys(),
  }
  const markDirty = (s: Store, channelId: Hex) => dirty.add(channelId, s)

  // The index of channels that may need settlement, in the store itself: `dirty` is per process, and a
  // process that stops without `server.close()` (a crash, a redeploy) would leave the vouchers it served
  // fully consumed and unsettled, for the payer to take back by a forced close ("Servers MUST persist
  // the highest voucher to durable storage before providing the corresponding service. Failure to do so
  // may result in unrecoverable fund loss if the server crashes after service delivery": the voucher is
  // persisted, and this index is how another process finds it to settle). A channel is listed
  // when the store first holds it (an open, presented again or not, a top-up, a channel read from the
  // escrow that the store did not hold): never on the per-voucher path, which stays one store operation.
  // The store has no key listing: the ids live in `indexShards` keys, each a space-separated list
  // updated by compare-and-set. An entry goes once the channel is finalized or the store forgot it (its
  // keys expired); past `perShard` ids a key drops the one listed longest ago.
  const shards = options.index?.shards ?? indexShards
  const perShard = options.index?.perShard ?? indexPerShard
  const shardKey = (n: number) => `unsettled:${n}`
  const shardOf = (id: string) => {
    let hash = 0
    for (let i = 0; i < id.length; i++) hash = (hash * 31 + id.charCodeAt(i)) >>> 0
    return hash % shards
  }
  const parseShard = (raw: string | undefined) => (raw ? raw.split(' ') : [])
  // When this process last listed each channel, per store: not listed again for half the state TTL.
  // Safe: a listed channel's `ch` key was written just before, so it lives at least `ttlMs` and its
  // entry is not removed as forgotten meanwhile (a finalized channel needs no entry).
  const listedBy = new WeakMap<Store, Map<string, number>>()
  const listed = (s: Store) => {
    let map = listedBy.get(s)
    if (map === undefined) {
      map = new Map()
      listedBy.set(s, map)
    }
    return map
  }
  const rememberListed = (s: Store, id: string) => {
    const map = listed(s)
    map.delete(id)
    if (map.size >= 10_000) map.delete(map.keys().next().value as string)
    map.set(id, Date.now())
  }
  /**
   * Lists a channel in the store's index of channels that may need settlement (unless this process
   * listed it lately); called after the channel's state is written to the store.
   */
  const indexChannel = async (s: Store, channelId: Hex, force = false) => {
    const id = channelId.toLowerCase()
    const at = listed(s).get(id)
    if (!force && at !== undefined && Date.now() - at < ttlMs / 2) return
    const k = shardKey(shardOf(id))
    for (let attempt = 0; attempt < indexAttempts; attempt++) {
      const raw = await s.get(k)
      const ids = parseShard(raw)
      if (ids.includes(id)) return rememberListed(s, id)
      ids.push(id)
      if (ids.length > perShard) ids.splice(0, ids.length - perShard)
      if (await s.compareAndSet(k, raw, ids.join(' '), ttlMs)) return rememberListed(s, id)
    }
    throw new StoreUnavailableError({
      detail: 'The settlement index is under heavy contention.',
      retryAfter: 1,
    })
  }
  // When this process last rewrote the index keys of each store (their TTL restarts).
  const indexKeptAt = new WeakMap<Store, number>()
  /**
   * The channels the store's index lists, every process's, oldest first per key. Every quarter of the
   * state TTL this process also rewrites each key to its own value: a key written by no open for that
   * long does not expire under channels still in use.
   */
  const indexedChannels = async (s: Store): Promise<Hex[]> => {
    const keep = Date.now() - (indexKeptAt.get(s) ?? 0) >= ttlMs / 4
    const all: Hex[] = []
    for (let n = 0; n < shards; n++) {
      const raw = await s.get(shardKey(n))
      if (keep && raw) await s.compareAndSet(shardKey(n), raw, raw, ttlMs)
      for (const id of parseShard(raw)) all.push(id as Hex)
    }
    if (keep) indexKeptAt.set(s, Date.now())
    return all
  }
  /**
   * Removes channels from the store's index: `finalized` ones, and `forgotten` ones (the store holds
   * nothing of them). A forgotten channel the store holds again once it is removed (presented again
   * meanwhile: its state was written before it was listed) is listed again.
   */
  const unindexChannels = async (s: Store, finalized: readonly Hex[], forgotten: readonly Hex[]) => {
    const byShard = new Map<number, Set<string>>()
    for (const channelId of [...finalized, ...forgotten]) {
      const id = channelId.toLowerCase()
      listed(s).delete(id)
      const n = shardOf(id)
      let set = byShard.get(n)
      if (set === undefined) {
        set = new Set()
        byShard.set(n, set)
      }
      set.add(id)
    }
    for (const [n, ids] of byShard) {
      const k = shardKey(n)
      for (let attempt = 0; attempt < indexAttempts; attempt++) {
        const raw = await s.get(k)
        const before = parseShard(raw)
        const after = before.filter((id) => !ids.has(id))
        if (after.length === before.length) break
        if (await s.compareAndSet(k, raw, after.join(' '), ttlMs)) break
      }
    }
    for (const channelId of forgotten)
      if ((await s.get(key('ch', channelId))) !== undefined) await indexChannel(s, channelId, true)
  }

  const waiters = new Map<string, Set<() => void>>()
  const notify = (channelId: string) => {
    for (const wake of waiters.get(channelId.toLowerCase()) ?? []) wake()
  }

  // This process's last known stored channel state (raw, as in the store, and parsed), for the
  // per-voucher path on stores with `atomic`: the raw value is checked in the same atomic operation that
  // accepts the voucher, so a channel changed meanwhile by another process (closed, topped up, re-read)
  // is never acted upon; the voucher is re-checked against the new state instead.
  const lastChannel = new Map<string, { raw: string; state: ChannelState }>()
  // This process's last known value of each channel's settle mark `ok` (absent from the map: unknown),
  // rewritten to itself by the operations that write `spent` (see the key lifetimes above).
  const lastOk = new Map<string, string | undefined>()
  const rememberOk = (id: string, raw: string | undefined) => {
    if (lastOk.size >= 10_000 && !lastOk.has(id)) lastOk.delete(lastOk.keys().next().value as string)
    lastOk.set(id, raw)
  }
  /**
   * The last step of an operation that writes `spent`: rewrites `ok` to the value this process last saw
   * (its TTL restarts), or checks it is absent. Last, so a stale value stops nothing but itself; its
   * result then carries the current value, for {@link keptOk}.
   */
  const keepOkStep = (channelId: Hex): AtomicStep => {
    const raw = lastOk.get(channelId.toLowerCase())
    return raw === undefined
      ? { op: 'check', key: key('ok', channelId), equals: undefined }
      : { op: 'compareAndSet', key: key('ok', channelId), expected: raw, next: raw, ttlMs }
  }
  /**
   * Rewrites `ok` to its own value (its TTL restarts): after an operation that wrote `spent` without
   * doing it. `known`: the value the caller just read. A value changed meanwhile was just written (its
   * TTL is fresh) by the operation that changed it.
   */
  const keepOk = async (s: Store, channelId: Hex, known?: string) => {
    const id = channelId.toLowerCase()
    const okKey = key('ok', channelId)
    let raw = known ?? lastOk.get(id)
    for (let attempt = 0; attempt < 2; attempt++) {
      raw ??= await s.get(okKey)
      if (raw === undefined) return rememberOk(id, undefined)
      if (await s.compareAndSet(okKey, raw, raw, ttlMs)) return rememberOk(id, raw)
      raw = undefined
    }
    lastOk.delete(id)
  }
  /** Reads the result of a {@link keepOkStep}: when it could not rewrite `ok`, does it with the value it saw. */
  const keptOk = async (s: Store, channelId: Hex, step: AtomicStepResult | undefined) => {
    if (step === undefined || step.op === 'setIfAtLeast' || step.applied) return
    rememberOk(channelId.toLowerCase(), step.value as string | undefined)
    if (step.value !== undefined) await keepOk(s, channelId, step.value as string)
  }

  const rememberChannel = (channelId: string, raw: string, state: ChannelState) => {
    if (lastChannel.size >= 10_000 && !lastChannel.has(channelId))
      lastChannel.delete(lastChannel.keys().next().value as string)
    lastChannel.set(channelId, { raw, state })
  }

  /** A channel state just read from the escrow: a pending forced close goes to `onCloseRequested`. */
  const readFromEscrow = (s: Store, channelId: Hex, state: ChannelState) => {
    if (state.closeRequestedAt !== '0' && !state.finalized)
      options.onCloseRequested?.(s, channelId.toLowerCase() as Hex)
  }

  /**
   * Stores a channel state just read from the escrow (an open, a top-up, a close, a settlement), and
   * lists an open channel in the store's index of channels that may need settlement.
   */
  const saveChannel = async (s: Store, channelId: Hex, state: ChannelState) => {
    const raw = JSON.stringify(state)
    await s.set(key('ch', channelId), raw, ttlMs)
    if (s.atomic) rememberChannel(channelId.toLowerCase(), raw, state)
    readFromEscrow(s, channelId, state)
    if (!state.finalized) await indexChannel(s, channelId)
  }
  const cachedChannel = async (s: Store, channelId: Hex): Promise<ChannelState | undefined> => {
    const raw = await s.get(key('ch', channelId))
    return raw ? (JSON.parse(raw) as ChannelState) : undefined
  }

  const stale = (state: ChannelState) => Date.now() - state.readAt > options.stateTtl
  /**
   * Past three quarters of `stateTtl`, a request still uses the channel state it has and starts the
   * next escrow read in the background: under steady traffic the state is renewed before it goes stale,
   * and no request waits for the chain (one would wait a whole RPC round trip each `stateTtl` per
   * channel). The state used is never older than `stateTtl` either way.
   */
  const aging = (state: ChannelState) => Date.now() - state.readAt > (options.stateTtl * 3) / 4

  /**
   * Escrow reads in flight, one per channel: the requests that find a channel stale together share one
   * read (and one store write) rather than each sending its own to the chain's RPC: each gets what a read
   * of its own would have returned, read at most one round trip earlier.
   */
  const reading = new Map<string, Promise<{ state: ChannelState; raw: string } | undefined>>()
  const readShared = (s: Store, channelId: Hex) => {
    const id = channelId.toLowerCase()
    let pending = reading.get(id)
    if (pending === undefined) {
      pending = (async () => {
        try {
          const state = await options.readChannel(channelId)
          if (!state) return undefined
          readFromEscrow(s, channelId, state)
          return await storeRead(s, channelId, state)
        } finally {
          reading.delete(id)
        }
      })()
      reading.set(id, pending)
    }
    return pending
  }
  /**
   * Stores a state read from the escrow unless the store already holds one read after it was sent (a
   * top-up's own read, say, which this older read must not undo): then that one is the answer.
   */
  const storeRead = async (s: Store, channelId: Hex, state: ChannelState) => {
    const chKey = key('ch', channelId)
    const raw = JSON.stringify(state)
    for (let attempt = 0; attempt < 4; attempt++) {
      const storedRaw = await s.get(chKey)
      const stored = storedRaw ? (JSON.parse(storedRaw) as ChannelState) : undefined
      if (stored && storedRaw && stored.readAt > state.readAt) return { state: stored, raw: storedRaw }
      if (await s.compareAndSet(chKey, storedRaw, raw, ttlMs)) {
        // The store did not hold the channel (a voucher on a channel it forgot, or never saw opened).
        if (storedRaw === undefined && !state.finalized) await indexChannel(s, channelId)
        return { state, raw }
      }
    }
    // Written over and over meanwhile (by reads at least as recent): the escrow's answer still stands.
    return { state, raw }
  }
  /** Starts the next escrow read of an aging channel; a failure is left to the read that must wait. */
  const refreshAhead = (s: Store, channelId: Hex, id: string) => {
    if (reading.has(id)) return
    readShared(s, channelId).then(
      (read) => {
        if (read && s.atomic) rememberChannel(id, read.raw, read.state)
      },
      () => {},
    )
  }

  /**
   * The channel's state and its raw stored value: from this process's cache when `cached` (and it is
   * not older than `stateTtl` when `fresh`), else from the store, else from the escrow (then stored).
   */
  const loadChannelRaw = async (
    s: Store,
    channelId: Hex,
    fresh: boolean,
    cached: boolean,
  ): Promise<{ state: ChannelState; raw: string }> => {
    const id = channelId.toLowerCase()
    const known = cached ? lastChannel.get(id) : undefined
    let raw = known?.raw
    let state = known?.state
    if (!state || (fresh && stale(state))) {
      raw = await s.get(key('ch', channelId))
      state = raw ? (JSON.parse(raw) as ChannelState) : undefined
    }
    if (!state || (fresh && stale(state))) {
      const read = await readShared(s, channelId)
      if (!read)
        throw sessionProblem('channel-not-found', 'Channel Not Found', 410, 'No channel with this id exists.')
      ;({ state, raw } = read)
    } else if (fresh && aging(state)) refreshAhead(s, channelId, id)
    // This process's copy is refreshed only when something else was read (the hot path re-uses it as is).
    if (s.atomic && (known === undefined || known.state !== state)) rememberChannel(id, raw!, state)
    checkChannel(state)
    return { state, raw: raw! }
  }

  const loadChannel = async (s: Store, channelId: Hex, fresh: boolean): Promise<ChannelState> =>
    (await loadChannelRaw(s, channelId, fresh, false)).state

  /**
   * Until when (epoch ms) a response already being served (a metered stream, a handler charging per unit)
   * may keep spending on the channel without looking at it again; undefined when it must stop: a forced
   * close is pending, or the channel is finalized or gone. The channel is read as a voucher's is (from
   * the store, or from the escrow once older than `stateTtl`), so such a response stops within the same
   * delay as vouchers do. "Servers MUST reject vouchers on channels with a pending forced close to prevent
   * service delivery that cannot be settled": a pre-authorized balance delivers service too.
   */
  const servingUntil = async (s: Store, channelId: Hex): Promise<number | undefined> => {
    let state: ChannelState
    try {
      state = await loadChannel(s, channelId, true)
    } catch (error) {
      if (PaymentError.is(error) && error.status === 410) return undefined
      throw error
    }
    return state.closeRequestedAt === '0' ? state.readAt + options.stateTtl : undefined
  }

  /** What every use of a channel requires: open, and paying this server's payee in its currency. */
  const checkChannel = (state: ChannelState) => {
    if (state.finalized)
      throw sessionProblem('channel-finalized', 'Channel Finalized', 410, 'The channel has been closed.')
    if (!sameAddress(state.payee, options.payee) || !sameAddress(state.token, options.currency))
      throw new VerificationFailedError({
        detail: 'The channel pays another payee or token.',
        reason: 'channel-mismatch',
      })
  }

  /**
   * The answer to a voucher or metered request while the channel is being closed: what it spends from
   * then on would not be in the amount the close captures.
   */
  const closingProblem = () =>
    sessionProblem('channel-finalized', 'Channel Finalized', 410, 'The channel is being closed.')

  /**
   * Marks the channel as closing before the close reads what was spent: from then on no request spends
   * on it (every deduction checks the mark in the same store operation as its increment, on a store
   * with `atomic`), so the captured amount covers everything served. False when a close is already in
   * progress. "Servers MUST NOT capture more than the amount actually consumed by delivered service";
   * and nothing served may be left out of the capture either. A close whose transaction may have been
   * sent without an answer (`uncertainClose`) can be retried: it takes the mark over.
   */
  const beginClose = async (s: Store, channelId: Hex) =>
    (await s.putIfAbsent(key('closing', channelId), 'closing', closingTtlMs)) ||
    (await s.compareAndSet(key('closing', channelId), 'uncertain', 'closing', closingTtlMs))
  /** Lifts the mark of a close that failed before its transaction was sent, or reverted: the channel serves again. */
  const abortClose = (s: Store, channelId: Hex) => s.delete(key('closing', channelId))
  /**
   * Keeps the mark of a close whose transaction may have reached the node (its answer was lost): the
   * channel may be closed on chain, so nothing is spent on it; a retried close takes the mark over.
   */
  const uncertainClose = (s: Store, channelId: Hex) =>
    s.set(key('closing', channelId), 'uncertain', closingTtlMs)

  /**
   * Raises the spent counter to at least `floor` (the channel's on-chain `settled`): what is settled
   * was served, whether or not this store still remembers it. Runs only when a deduction found the
   * counter below it (state expired or lost, or settled by another deployment), never per voucher.
   */
  const raiseSpent = async (s: Store, channelId: Hex, floor: bigint) => {
    const spentKey = key('spent', channelId)
    for (let attempt = 0; attempt < 16; attempt++) {
      const { value } = await s.increment(spentKey, 0n, { ttlMs })
      // Bounded by `floor`: a concurrent deduction in between makes this one miss, and it is read again.
      if (value >= floor || (await s.increment(spentKey, floor - value, { ttlMs, max: floor })).applied)
        return keepOk(s, channelId)
    }
    throw new StoreUnavailableError({ detail: 'The channel is under heavy contention.', retryAfter: 1 })
  }

  /**
   * A bounded increment of the spent counter, unless the channel is being closed (`closing`). With a
   * `floor` (the on-chain `settled`), a counter below it is raised to it first: "captureAmount =
   * max(spent, settledOnChain)", so a settled amount the store forgot is never served a second time.
   * The floor is the increment's `min` (no extra store operation while the counter is at or above it).
   */
  const spend = async (
    s: Store,
    channelId: Hex,
    cost: bigint,
    max: bigint,
    floor = 0n,
  ): Promise<{ applied: boolean; value: bigint; closing?: boolean }> => {
    const spentKey = key('spent', channelId)
    const closingKey = key('closing', channelId)
    const min = floor > 0n ? floor + cost : undefined
    for (let attempt = 0; ; attempt++) {
      let result: { applied: boolean; value: bigint }
      if (!s.atomic) {
        // Without `atomic` the mark is read just before the increment: a deduction racing the close's
        // read of `spent` by less than a round trip may still be left out of the capture.
        if ((await s.get(closingKey)) !== undefined) return { applied: false, value: 0n, closing: true }
        result = await s.increment(spentKey, cost, min === undefined ? { ttlMs, max } : { ttlMs, max, min })
        if (result.applied) await keepOk(s, channelId)
      } else {
        const { results } = await s.atomic([
          { op: 'check', key: closingKey, equals: undefined },
          min === undefined
            ? { op: 'increment', key: spentKey, delta: cost, ttlMs, max }
            : { op: 'increment', key: spentKey, delta: cost, ttlMs, max, min },
          keepOkStep(channelId),
        ])
        if (!results[0]!.applied) return { applied: false, value: 0n, closing: true }
        result = results[1] as { applied: boolean; value: bigint }
        await keptOk(s, channelId, results[2])
      }
      if (result.applied || result.value >= floor || attempt > 0) return result
      await raiseSpent(s, channelId, floor)
    }
  }

  const highest = async (
    s: Store,
    channelId: Hex,
  ): Promise<{ raw: string | undefined; voucher: StoredVoucher | undefined }> => {
    const raw = await s.get(key('v', channelId))
    return { raw, voucher: raw ? (JSON.parse(raw) as StoredVoucher) : undefined }
  }

  // Monotonic compare-and-set of the highest voucher. "Servers MUST persist the highest voucher to durable
  // storage before providing the corresponding service."
  // Hot path: the CAS is first tried against this process's last known value of the key (one round trip
  // instead of a read and a CAS). A stale value only makes the CAS fail (then the key is read); a refusal
  // (lower, equal or too small) is only ever decided on a value just read from the store.
  const lastVoucher = new Map<string, string | undefined>()
  // The amount of a stored voucher value, parsed once per value and channel (a pure function of the raw
  // string: the next request on the channel usually sees the same value again).
  const parsedAmounts = new Map<string, { raw: string; amount: bigint }>()
  const amountOf = (id: string, raw: string | undefined): bigint => {
    if (!raw) return -1n
    const hit = parsedAmounts.get(id)
    if (hit !== undefined && hit.raw === raw) return hit.amount
    const stored = JSON.parse(raw) as StoredVoucher | null
    const amount = stored ? BigInt(stored.amount) : -1n
    if (parsedAmounts.size >= 10_000 && hit === undefined)
      parsedAmounts.delete(parsedAmounts.keys().next().value as string)
    parsedAmounts.set(id, { raw, amount })
    return amount
  }
  const remember = (channelId: string, raw: string | undefined) => {
    if (lastVoucher.size >= 10_000) lastVoucher.delete(lastVoucher.keys().next().value as string)
    lastVoucher.set(channelId, raw)
  }
  /**
   * Compare-and-set of the highest voucher that also writes `spent` (an increment by 0) and rewrites
   * `ok`, in the same atomic operation on a store with `atomic`: `spent` never expires before the voucher.
   */
  const storeVoucher = async (s: Store, channelId: Hex, raw: string | undefined, next: string) => {
    const vKey = key('v', channelId)
    if (!s.atomic) {
      if (!(await s.compareAndSet(vKey, raw, next, ttlMs))) return false
      await s.increment(key('spent', channelId), 0n, { ttlMs })
      await keepOk(s, channelId)
      return true
    }
    const { results } = await s.atomic([
      { op: 'compareAndSet', key: vKey, expected: raw, next, ttlMs },
      { op: 'increment', key: key('spent', channelId), delta: 0n, ttlMs },
      keepOkStep(channelId),
    ])
    if (!results[0]!.applied) return false
    await keptOk(s, channelId, results[2])
    return true
  }

  const accept = async (
    s: Store,
    channelId: Hex,
    amount: bigint,
    signature: Hex,
    minDelta: bigint,
  ): Promise<bigint> => {
    const cacheKey = channelId.toLowerCase()
    let known = lastVoucher.has(cacheKey)
    let raw = known ? lastVoucher.get(cacheKey) : (await highest(s, channelId)).raw
    for (;;) {
      const voucher = raw ? (JSON.parse(raw) as StoredVoucher) : undefined
      const current = voucher ? BigInt(voucher.amount) : -1n
      const refused = amount <= current || (current >= 0n && amount - current < minDelta)
      if (refused && known) {
        known = false
        raw = (await highest(s, channelId)).raw
        remember(cacheKey, raw)
        continue
      }
      // "if `cumulativeAmount == highestVoucherAmount`, treat the request as an idempotent retry"
      if (amount === current) return current
      // "Submitting a voucher with lower `cumulativeAmount` than highest accepted MUST be rejected"
      if (amount < current)
        throw new VerificationFailedError({
          detail: `The voucher is below the accepted cumulative amount ${current}.`,
          reason: 'amount-not-increasing',
        })
      if (current >= 0n && amount - current < minDelta)
        throw sessionProblem(
          'delta-too-small',
          'Delta Too Small',
          402,
          `Vouchers must increase by at least ${minDelta}.`,
        )
      const next = JSON.stringify({ amount: String(amount), signature } satisfies StoredVoucher)
      if (await storeVoucher(s, channelId, raw, next)) {
        remember(cacheKey, next)
        notify(channelId)
        return amount
      }
      known = false
      raw = (await highest(s, channelId)).raw
      remember(cacheKey, raw)
    }
  }

  /**
   * The per-voucher hot path on a store with `atomic`: in ONE store operation, checks that the channel
   * state the voucher was verified against is still the stored one, advances the highest voucher
   * (compare-and-set against this process's last known value, or a check of it for an idempotent retry),
   * deducts `cost` bounded by the voucher amount, and marks the voucher consumed once spent reaches it.
   * A conflict (another process moved the channel or the voucher) returns the current value within the
   * same operation: the voucher is re-checked against it and the operation retried. Refusals (lower,
   * equal-but-short, too small a delta) are decided only on values read from the store.
   */
  const acceptAndDeduct = async (
    s: Store & Required<Pick<Store, 'atomic'>>,
    channelId: Hex,
    voucher: {
      /** The raw stored channel state the voucher was verified against. */
      channelRaw: string
      amount: bigint
      signature: Hex
      minDelta: bigint
      cost: bigint
      /** The on-chain `settled` of the channel state the voucher was verified against (the spent floor). */
      settled: bigint
      /** Throws when the channel state no longer allows this voucher (re-run of the verification checks). */
      recheck: (state: ChannelState) => void
    },
  ): Promise<Balance> => {
    const { amount, signature, minDelta, cost } = voucher
    let settled = voucher.settled
    let raised = false
    const id = channelId.toLowerCase()
    const chKey = key('ch', channelId)
    const vKey = key('v', channelId)
    const spentKey = key('spent', channelId)
    let channelRaw = voucher.channelRaw
    let known = lastVoucher.has(id)
    let raw = known ? lastVoucher.get(id) : (await highest(s, channelId)).raw
    for (let attempt = 0; attempt < 64; attempt++) {
      const current = amountOf(id, raw)
      const refused = amount < current || (amount > current && current >= 0n && amount - current < minDelta)
      if (refused && known) {
        known = false
        raw = (await highest(s, channelId)).raw
        remember(id, raw)
        continue
      }
      // "Submitting a voucher with lower `cumulativeAmount` than highest accepted MUST be rejected"
      if (amount < current)
        throw new VerificationFailedError({
          detail: `The voucher is below the accepted cumulative amount ${current}.`,
          reason: 'amount-not-increasing',
        })
      if (amount > current && current >= 0n && amount - current < minDelta)
        throw sessionProblem(
          'delta-too-small',
          'Delta Too Small',
          402,
          `Vouchers must increase by at least ${minDelta}.`,
        )
      // "if `cumulativeAmount == highestVoucherAmount`, treat the request as an idempotent retry"
      const advances = amount > current
      const next = advances
        ? JSON.stringify({ amount: String(amount), signature } satisfies StoredVoucher)
        : (raw as string)
      const steps: AtomicStep[] = [
        { op: 'check', key: key('closing', channelId), equals: undefined },
        { op: 'check', key: chKey, equals: channelRaw },
        advances
          ? { op: 'compareAndSet', key: vKey, expected: raw, next, ttlMs }
          : { op: 'check', key: vKey, equals: raw },
        // "MUST persist `spent := spent + cost` … BEFORE or atomically with delivering the metered service",
        // bounded by the voucher just checked or written, so spent never exceeds the accepted amount;
        // and from at least the settled amount ("captureAmount = max(spent, settledOnChain)"): a counter
        // below it (the store forgot the channel) stops here and is raised first, so what is already
        // settled is never served again. A bound on the same step: no extra store operation.
        settled > 0n
          ? { op: 'increment', key: spentKey, delta: cost, ttlMs, max: amount, min: settled + cost }
          : { op: 'increment', key: spentKey, delta: cost, ttlMs, max: amount },
        // The voucher is fully consumed: it may now be settled without capturing unserved funds.
        {
          op: 'setIfAtLeast',
          key: key('ok', channelId),
          value: next,
          ttlMs,
          counter: spentKey,
          atLeast: amount,
        },
        // Otherwise the settle mark lives as long as `spent` (see the key lifetimes above).
        keepOkStep(channelId),
      ]
      const { results } = await s.atomic(steps)
      const [closingStep, channelStep, voucherStep, spentStep] = results as unknown as [
        { applied: boolean },
        { applied: boolean; value: string | undefined } | undefined,
        { applied: boolean; value: string | undefined } | undefined,
        { applied: boolean; value: bigint } | undefined,
      ]
      if (!closingStep.applied) throw closingProblem()
      if (!channelStep!.applied) {
        // The stored channel changed (or expired): re-check the voucher against what is stored now.
        const now = channelStep!.value ? (JSON.parse(channelStep!.value) as ChannelState) : undefined
        const reloaded =
          now && !stale(now)
            ? { state: now, raw: channelStep!.value! }
            : await loadChannelRaw(s, channelId, true, false)
        checkChannel(reloaded.state)
        voucher.recheck(reloaded.state)
        rememberChannel(id, reloaded.raw, reloaded.state)
        channelRaw = reloaded.raw
        settled = BigInt(reloaded.state.settled)
        continue
      }
      if (!voucherStep!.applied) {
        // Another request moved the voucher: decide again on the value read in the same operation.
        known = false
        raw = voucherStep!.value
        remember(id, raw)
        continue
      }
      if (advances) {
        remember(id, next)
        notify(channelId)
      }
      if (spentStep!.applied) {
        const [okStep, keepStep] = results.slice(4) as [{ applied: boolean }, AtomicStepResult]
        if (okStep.applied) rememberOk(id, next)
        else await keptOk(s, channelId, keepStep)
      } else if (advances) {
        // The voucher was written and `spent` was not: write it (and `ok`) so it does not expire first.
        // Only when this voucher is refused or raised, never on a paid one.
        await s.increment(spentKey, 0n, { ttlMs })
        await keepOk(s, channelId)
      }
      if (!spentStep!.applied && spentStep!.value < settled && !raised) {
        // The voucher step stayed applied: the retry sees it as the stored voucher (an idempotent check).
        raised = true
        raw = next
        known = true
        await raiseSpent(s, channelId, settled)
        continue
      }
      if (spentStep!.applied) markDirty(s, channelId)
      return { ok: spentStep!.applied, spent: spentStep!.value, accepted: amount }
    }
    throw new StoreUnavailableError({ detail: 'The channel is under heavy contention.', retryAfter: 1 })
  }

  const accepted = async (s: Store, channelId: Hex) => {
    const { voucher } = await highest(s, channelId)
    return voucher ? BigInt(voucher.amount) : 0n
  }
  // A plain read: it does not write `spent` (which `ok` would have to follow, see the key lifetimes).
  const spentOf = async (s: Store, channelId: Hex) => {
    const raw = await s.get(key('spent', channelId))
    return raw === undefined ? 0n : BigInt(raw)
  }

  // "MUST persist `spent := spent + cost` to durable storage BEFORE or atomically with delivering the
  // metered service": a bounded increment, so concurrent requests never spend beyond the accepted voucher.
  const deduct = async (
    s: Store,
    channelId: Hex,
    cost: bigint,
    /** The voucher this request just accepted: its amount bounds the first try, and it is the one to settle. */
    justAccepted?: StoredVoucher,
    /** The channel's on-chain `settled`: spent is counted from at least it (see `spend`). */
    settled = 0n,
  ): Promise<Balance> => {
    // A negative cost would lower `spent` and serve again what a used voucher already paid for.
    if (cost < 0n) throw new RangeError('tempo session: a deduction cannot be negative')
    let acceptedNow = justAccepted ? BigInt(justAccepted.amount) : await accepted(s, channelId)
    if (cost === 0n) return { ok: true, spent: await spentOf(s, channelId), accepted: acceptedNow }
    let result = await spend(s, channelId, cost, acceptedNow, settled)
    if (!result.applied && !result.closing && justAccepted) {
      // A higher voucher may have been accepted since (a concurrent request): bound by the stored one.
      const fresh = await accepted(s, channelId)
      if (fresh > acceptedNow) {
        acceptedNow = fresh
        justAccepted = undefined
        result = await spend(s, channelId, cost, acceptedNow, settled)
      }
    }
    if (result.closing) return { ok: false, spent: 0n, accepted: acceptedNow, closing: true }
    if (result.applied) {
      markDirty(s, channelId)
      // The highest voucher is fully consumed: it may now be settled without capturing unserved funds.
      // Best effort, after the deduction: a failure here must not fail a request already paid (its retry
      // would pay again), and a later deduction or the close captures what this one could not mark.
      try {
        const voucher = justAccepted ?? (await highest(s, channelId)).voucher
        if (voucher && BigInt(voucher.amount) <= result.value) await markConsumed(s, channelId, voucher)
      } catch {}
    }
    return { ok: result.applied, spent: result.value, accepted: acceptedNow }
  }

  /**
   * Advances the settle mark to `voucher` unless it already holds a voucher at least as high: two
   * deductions finishing out of order never move it back to a lower voucher.
   */
  const markConsumed = async (s: Store, channelId: Hex, voucher: StoredVoucher) => {
    const next = JSON.stringify(voucher)
    for (let attempt = 0; attempt < 16; attempt++) {
      const raw = await s.get(key('ok', channelId))
      if (raw && BigInt((JSON.parse(raw) as StoredVoucher).amount) >= BigInt(voucher.amount)) return
      if (await s.compareAndSet(key('ok', channelId), raw, next, ttlMs))
        return rememberOk(channelId.toLowerCase(), next)
    }
  }

  /** The highest fully consumed voucher of a channel (what a settlement may capture). */
  const consumedVoucher = async (s: Store, channelId: Hex): Promise<StoredVoucher | undefined> => {
    const raw = await s.get(key('ok', channelId))
    rememberOk(channelId.toLowerCase(), raw)
    return raw ? (JSON.parse(raw) as StoredVoucher) : undefined
  }

  const insufficient = (channelId: Hex, cost: bigint, state: { spent: bigint; accepted: bigint }) =>
    sessionProblem(
      'insufficient-balance',
      'Insufficient Balance',
      402,
      'The channel balance does not cover this request.',
      {
        channelId,
        // "If `available < cost`: return 402 with Problem Details including `requiredTopUp = cost - available`"
        requiredTopUp: String(cost - (state.accepted - state.spent)),
        acceptedCumulative: String(state.accepted),
        spent: String(state.spent),
      },
    )

  /** Calls `wake` whenever a voucher advances on this channel in this process; returns the unsubscribe. */
  const onVoucher = (channelId: Hex, wake: () => void) => {
    const id = channelId.toLowerCase()
    let set = waiters.get(id)
    if (!set) {
      set = new Set()
      waiters.set(id, set)
    }
    set.add(wake)
    return () => {
      set.delete(wake)
      if (set.size === 0) waiters.delete(id)
    }
  }

  /** Wakes every paused stream (e.g. when the server closes). */
  const wakeAll = () => {
    for (const set of waiters.values()) for (const wake of set) wake()
  }

  return {
    /** How long (ms) a channel state read from the escrow is used before it is read again. */
    stateTtl: options.stateTtl,
    dirty,
    indexedChannels,
    unindexChannels,
    notify,
    wakeAll,
    onVoucher,
    saveChannel,
    cachedChannel,
    loadChannel,
    loadChannelRaw,
    servingUntil,
    accept,
    acceptAndDeduct,
    beginClose,
    abortClose,
    uncertainClose,
    closingProblem,
    accepted,
    spentOf,
    deduct,
    consumedVoucher,
    insufficient,
  }
}
