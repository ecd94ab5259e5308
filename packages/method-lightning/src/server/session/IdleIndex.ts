import { randomBytes } from 'node:crypto'
import type { Store } from '@mppkit/core'

/** What the sweep decides for one indexed session: keep it indexed, or drop it (closed, or closed now). */
export type Verdict = 'keep' | 'drop'

// How many slots a sweep reads at once.
const batch = 32
// How many slots still without their name `idle:low` remembers (opens in progress at one time).
const maxPendingSlots = 256

/**
 * An index of open sessions kept in the Store itself, so that any server process sharing the Store can
 * find every session, including those opened by other processes (the Store has no key listing).
 *
 * Each session gets a numbered slot: `idle:next` is a counter (one atomic increment per open),
 * `idle:slot:<n>` names the session and `idle:at:<id>` the session's current slot (so a stale slot is
 * recognized). A sweep walks the slots from `idle:low` to the last allocated one under a lease
 * (`idle:lock`, one sweeper at a time among the processes, renewed before each batch; a lease that
 * expires anyway, under one batch slower than the lease, only lets two sweeps overlap, which the
 * callers' compare-and-set close makes harmless), drops the slots of closed sessions,
 * and, when the slots it keeps are sparse, moves them to the end so the next sweep starts further on.
 * A sweep's work is therefore about the number of open sessions, not of all sessions ever opened.
 * A slot allocated but not yet written (an open in progress) is not skipped: every sweep starts at or
 * before it until its name is written, however slow the writer (a paused process, a slow Store round
 * trip), for up to `pendingSlotMs` after a sweep first found it empty; only then is its writer taken for
 * dead. `idle:low` holds `<low>:<last slot the previous sweep saw>` and, after a third `:`, the slots
 * found empty as `<slot>@<first seen empty, epoch ms>` separated by commas: an empty slot the previous
 * sweep saw that is not among them was emptied by a sweep (dropped), not waiting for its writer.
 *
 * @example
 * ```ts
 * const index = new IdleIndex(store, { ttlMs: 30 * 86_400_000 })
 * await index.add(sessionId)
 * await index.sweep(async (id) => ((await isOpen(id)) ? 'keep' : 'drop'))
 * ```
 */
export class IdleIndex {
  constructor(
    readonly store: Store,
    readonly options: {
      ttlMs: number
      leaseMs?: number
      /**
       * How long a slot allocated but still without its name is waited for (ms, default 300 000): far
       * beyond a Store round trip, so only an open whose process died is given up.
       */
      pendingSlotMs?: number
    },
  ) {}

  /** Indexes a session (once, when it opens). */
  async add(id: string): Promise<void> {
    const { ttlMs } = this.options
    const { value: slot } = await this.store.increment('idle:next', 1n, { ttlMs })
    // The session's slot first, then the slot's name: a sweep in another process that reads the name
    // between the two writes must find the session pointing at it, or it drops the slot as stale and the
    // session is never swept. A slot with no name yet is kept for the next sweep (see `sweep`).
    await this.store.set(`idle:at:${id}`, String(slot), ttlMs)
    await this.store.set(`idle:slot:${slot}`, id, ttlMs)
  }

  /**
   * Refreshes the TTL of a session's entry (its slot number and the slot's name); indexes it again
   * when the entry is gone or moved in between (a slot added twice is dropped as stale by the sweep).
   */
  async renew(id: string): Promise<void> {
    const { ttlMs } = this.options
    const slot = await this.store.get(`idle:at:${id}`)
    if (
      slot === undefined ||
      !(await this.store.compareAndSet(`idle:at:${id}`, slot, slot, ttlMs)) ||
      !(await this.store.compareAndSet(`idle:slot:${slot}`, id, id, ttlMs))
    )
      await this.add(id)
  }

  /**
   * Visits every indexed session once (unless another process holds the sweep lease: then nothing, and
   * false). `visit` decides whether the session stays indexed. When `signal` aborts (the server is
   * closing), the sweep stops after the batch in progress, leaves `idle:low` where it was (the next sweep,
   * in any process, visits what this one did not) and releases the lease, so that a closing process never
   * keeps the others from sweeping until the lease expires. `now` (epoch ms, the wall clock by default:
   * a writer's delay is real time) times the wait for a slot not yet written.
   */
  async sweep(
    visit: (id: string) => Promise<Verdict>,
    signal?: AbortSignal,
    now: number = Date.now(),
  ): Promise<boolean> {
    const { store } = this
    const { ttlMs } = this.options
    const pendingSlotMs = this.options.pendingSlotMs ?? 300_000
    const token = randomBytes(9).toString('base64url')
    const leaseMs = this.options.leaseMs ?? 60_000
    // The lease is free when absent (expired) or released (`free`: the Store has no delete-if-equal).
    const acquired =
      (await store.putIfAbsent('idle:lock', token, leaseMs)) ||
      (await store.compareAndSet('idle:lock', 'free', token, leaseMs))
    if (!acquired) return false
    try {
      const lowRaw = await store.get('idle:low')
      // A zero increment reads the counter and refreshes its TTL with `idle:low`'s (they expire together).
      const end = (await store.increment('idle:next', 0n, { ttlMs })).value
      const [lowText = '1', seenText = '0', waitingText = ''] = (lowRaw ?? '').split(':')
      let low = /^\d+$/.test(lowText) ? BigInt(lowText) : 1n
      const seen = /^\d+$/.test(seenText) ? BigInt(seenText) : 0n
      if (low > end + 1n) low = 1n
      // The slots the previous sweep found empty, and since when.
      const waiting = new Map<bigint, number>()
      for (const entry of waitingText.split(',')) {
        const match = /^(\d+)@(\d+)$/.exec(entry)
        if (match) waiting.set(BigInt(match[1]!), Number(match[2]))
      }
      const kept: Array<{ slot: bigint; id: string }> = []
      // The slots found empty that may still get their name: the next sweep starts at the first.
      const empty = new Map<bigint, number>()
      for (let start = low; start <= end; start += BigInt(batch)) {
        if (signal?.aborted) return true
        // The lease is renewed before each batch (visits may pay refunds, which take time), so two
        // sweeps overlap only when one batch outlasts the whole lease; a sweep that lost its lease stops.
        if (start !== low && !(await store.compareAndSet('idle:lock', token, token, leaseMs))) return true
        const slots: bigint[] = []
        for (let slot = start; slot <= end && slot < start + BigInt(batch); slot++) slots.push(slot)
        await Promise.all(
          slots.map(async (slot) => {
            const id = await store.get(`idle:slot:${slot}`)
            if (id === undefined) {
              // Allocated since the previous sweep read the last slot: an open in progress. Seen empty
              // before: waited for a while. Anything else was dropped by a sweep.
              const since = slot > seen ? now : waiting.get(slot)
              if (since !== undefined && now - since < pendingSlotMs) empty.set(slot, since)
              return
            }
            if ((await store.get(`idle:at:${id}`)) !== String(slot)) {
              await store.delete(`idle:slot:${slot}`)
              return
            }
            if ((await visit(id)) === 'keep') {
              kept.push({ slot, id })
              return
            }
            await store.delete(`idle:at:${id}`)
            await store.delete(`idle:slot:${slot}`)
          }),
        )
      }
      kept.sort((a, b) => (a.slot < b.slot ? -1 : 1))
      let nextLow = kept[0]?.slot ?? end + 1n
      // Sparse: move the kept sessions behind the last slot, so the next sweep starts at `end + 1`.
      if (kept.length > 0 && end + 1n - nextLow > BigInt(2 * kept.length + batch)) {
        for (const { slot, id } of kept) await this.#move(id, slot)
        nextLow = end + 1n
      }
      // The oldest empty slots first, a bounded list (one past it is given up by the next sweep).
      const pending = [...empty].sort(([a], [b]) => (a < b ? -1 : 1)).slice(0, maxPendingSlots)
      if (pending[0] && pending[0][0] < nextLow) nextLow = pending[0][0]
      const wait = pending.map(([slot, since]) => `${slot}@${since}`).join(',')
      await store.compareAndSet('idle:low', lowRaw, `${nextLow}:${end}${wait && `:${wait}`}`, ttlMs)
      return true
    } finally {
      // Releases the lease if it is still this sweep's.
      await store.compareAndSet('idle:lock', token, 'free', leaseMs).catch(() => false)
    }
  }

  /** Gives a session a new slot at the end; the old slot goes (unless another sweep moved it first). */
  async #move(id: string, from: bigint): Promise<void> {
    const { ttlMs } = this.options
    const { value: slot } = await this.store.increment('idle:next', 1n, { ttlMs })
    await this.store.set(`idle:slot:${slot}`, id, ttlMs)
    if (await this.store.compareAndSet(`idle:at:${id}`, String(from), String(slot), ttlMs))
      await this.store.delete(`idle:slot:${from}`)
    else await this.store.delete(`idle:slot:${slot}`)
  }
}
