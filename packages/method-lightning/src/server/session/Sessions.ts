import { ConfigurationError, type Store } from '@mppkit/core'
import { IdleIndex } from './IdleIndex.js'

/** A session record as stored (the counters live in their own keys). */
export type SessionRecord = {
  /** SHA-256 of the deposit preimage: the session id. */
  paymentHash: string
  /** Where the unspent balance is refunded on close. */
  returnInvoice: string
  status: 'open' | 'closed'
  /** The challenge that opened it. */
  openedBy: string
  /**
   * When the retention TTL of the session's keys was last refreshed (epoch ms; see
   * {@link Sessions.renew}): a session open longer than the retention keeps its record.
   */
  renewedAt?: number
  /** When it closed (epoch ms): a refund still `pending` or `attempting` long after is recovered. */
  closedAt?: number
  /**
   * Set once the refund is claimed: the balance owed. Once it `succeeded`: what reached the return
   * invoice (the routing fee came out of the balance, see `payReturnInvoice`).
   */
  refundSats?: string
  /** The routing fee a refund that `succeeded` paid out of the balance (satoshis, rounded up). */
  refundFeeSats?: string
  /**
   * `pending` from the close until one process claims the refund (`attempting`, the amount fixed), then
   * its outcome. A record left `pending` or `attempting` by a process that stopped is found by the idle
   * sweep (see `recoverRefund`).
   */
  refundStatus?: 'succeeded' | 'failed' | 'skipped' | 'pending' | 'attempting'
  /**
   * Top-ups that reached the session after it closed, while its refund was still `pending`: payment hash
   * to satoshis. They are paid back with the refund (see {@link Sessions.refundWithClose}).
   */
  topUpsAfterClose?: Record<string, string>
}

/** Balance of a session in satoshis. */
export type Balance = { deposit: bigint; available: bigint; spent: bigint }

/**
 * Session state in the method's Store: the record (`session:<id>`, status changed by compare-and-set),
 * the deposit total (`deposit:<id>`), the spendable balance (`available:<id>`, never below zero) and an
 * activity key (`active:<id>`) whose TTL is the idle timeout. Every balance change is one atomic Store
 * increment, so several server processes sharing a Store never overdraw a session.
 *
 * "Servers MUST persist session state in a durable store keyed by sessionId." / "Servers MUST serialize
 * all balance updates to prevent race conditions." (draft-lightning-session-00 §"Session State")
 *
 * @example
 * ```ts
 * const sessions = new Sessions(store, { ttlMs: 30 * 86_400_000, idleMs: 300_000 })
 * await sessions.charge(sessionId, 2n)
 * ```
 */
export class Sessions {
  /** Every open session, findable by any process sharing the Store (the idle sweep walks it). */
  readonly index: IdleIndex

  constructor(
    readonly store: Store,
    readonly options: { ttlMs: number; idleMs: number },
  ) {
    this.index = new IdleIndex(store, { ttlMs: options.ttlMs })
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const raw = await this.store.get(`session:${id}`)
    return raw === undefined ? undefined : (JSON.parse(raw) as SessionRecord)
  }

  /**
   * Creates an open session with its deposit; false when the id exists already. On a store with
   * `atomic` the record and its balance are written in one operation, so a Store failure part-way never
   * leaves a session without the deposit it was opened with (a retry of the same open finds it whole:
   * see {@link Sessions.reopened}).
   */
  async open(record: SessionRecord, depositSats: bigint): Promise<boolean> {
    const { ttlMs } = this.options
    const id = record.paymentHash
    if (this.store.atomic) {
      const { completed } = await this.store.atomic([
        {
          op: 'compareAndSet',
          key: `session:${id}`,
          expected: undefined,
          next: JSON.stringify(record),
          ttlMs,
        },
        { op: 'increment', key: `deposit:${id}`, delta: depositSats, ttlMs },
        { op: 'increment', key: `available:${id}`, delta: depositSats, ttlMs },
      ])
      if (!completed) return false
    } else {
      if (!(await this.store.putIfAbsent(`session:${id}`, JSON.stringify(record), ttlMs))) return false
      await this.store.increment(`deposit:${id}`, depositSats, { ttlMs })
      await this.store.increment(`available:${id}`, depositSats, { ttlMs })
    }
    await this.reopened(id)
    return true
  }

  /**
   * What an open does after its record and balance exist (the idle timer and the index): run again
   * when the same open is retried after a failure, since it may have stopped before them (an index
   * entry added twice leaves a stale slot, which the sweep drops).
   */
  async reopened(id: string): Promise<void> {
    await this.touch(id)
    await this.index.add(id)
  }

  /** Marks the session active now (the idle timeout restarts). */
  touch(id: string): Promise<void> {
    return this.store.set(`active:${id}`, '1', this.options.idleMs)
  }

  /**
   * Refreshes the retention TTL of an open session's keys (its record, balance counters and index entry)
   * once half of it has passed since the last refresh, so that a session kept open longer than the
   * retention (by its activity) keeps its record, stays findable by the idle sweep and is refunded on
   * close. `record` is the one just read: a refresh that is not due costs no Store operation. The idle
   * sweep calls it for every open session it keeps, so bearer requests pay nothing for it.
   */
  async renew(id: string, record: SessionRecord, now: number): Promise<void> {
    const { ttlMs } = this.options
    const due = (r: SessionRecord) => r.status === 'open' && now - (r.renewedAt ?? 0) >= ttlMs / 2
    if (!due(record)) return
    // The record by compare-and-set (its TTL set again with it); a writer in between is read again.
    const renewed = await this.#transition(id, (current) =>
      due(current) ? { ...current, renewedAt: now } : undefined,
    )
    if (!renewed) return
    // A zero increment refreshes a counter's TTL without changing it.
    await this.store.increment(`deposit:${id}`, 0n, { ttlMs })
    await this.store.increment(`available:${id}`, 0n, { ttlMs })
    await this.index.renew(id)
  }

  /** Whether the session saw an action within the idle timeout. */
  async active(id: string): Promise<boolean> {
    return (await this.store.get(`active:${id}`)) !== undefined
  }

  /**
   * Deducts `sats` from the spendable balance atomically; false (nothing deducted) when it is short.
   * "The streaming layer MUST atomically deduct `amount` sats from the available balance for each chunk
   * delivered, to prevent concurrent chunk deliveries from overdrawing the session balance."
   */
  async charge(id: string, sats: bigint): Promise<boolean> {
    const result = await this.store.increment(`available:${id}`, -sats, {
      ttlMs: this.options.ttlMs,
      min: 0n,
    })
    return result.applied
  }

  /**
   * "TopUp actions MUST atomically increment `session.depositSats`", on a Store without `atomic` (see
   * {@link Sessions.creditWith}): several operations, so a close can land between them. Never `credited`
   * unless the session was still open once the credit was in its balance (a close from then on sweeps it
   * into its refund). Otherwise ("Servers MUST reject any action on a closed session") the credit is
   * taken back from the balance as far as it is still there, and `back` is what the caller gives back;
   * the rest of it stayed with the session (swept into the close's refund before that refund was
   * claimed, or spent by a request served before the close) and is counted in the deposit total.
   */
  async credit(
    id: string,
    sats: bigint,
  ): Promise<{ status: 'credited' } | { status: 'closed'; back: bigint }> {
    const { ttlMs } = this.options
    if ((await this.get(id))?.status !== 'open') return { status: 'closed', back: sats }
    await this.store.increment(`available:${id}`, sats, { ttlMs })
    if ((await this.get(id))?.status === 'open') {
      await this.store.increment(`deposit:${id}`, sats, { ttlMs })
      await this.touch(id)
      return { status: 'credited' }
    }
    // The close's sweep may have run before the credit landed (its refund claimed without it, or paid
    // already): what is left of the credit would stay in the closed session's balance, neither refunded
    // nor reported. Taken back here; a sweep that ran after the credit took it first, into the refund it
    // then claims (each close and recovery sweeps before it claims).
    let back = 0n
    for (;;) {
      const { available } = await this.balance(id)
      back = available < sats ? available : sats
      if (back <= 0n) {
        back = 0n
        break
      }
      if ((await this.store.increment(`available:${id}`, -back, { ttlMs, min: 0n })).applied) break
    }
    if (back < sats) await this.store.increment(`deposit:${id}`, sats - back, { ttlMs })
    return { status: 'closed', back }
  }

  /**
   * {@link Sessions.credit} as ONE Store operation (stores with `atomic` only), together with `claim`, a
   * compare-and-set of the caller's (the deposit claim moving to credited): the top-up lands whole on a
   * session that is open at that instant, with its claim, or nothing does. `closed` when the session is
   * not open; `claimed` when the claim was not `claim.expected` (another request moved it on).
   */
  async creditWith(
    id: string,
    sats: bigint,
    claim: { key: string; expected: string; next: string },
  ): Promise<'credited' | 'closed' | 'claimed'> {
    const { ttlMs } = this.options
    const atomic = this.store.atomic?.bind(this.store)
    if (!atomic) throw new ConfigurationError('lightning session: creditWith needs a store with atomic()')
    for (;;) {
      const raw = await this.store.get(`session:${id}`)
      if (raw === undefined || (JSON.parse(raw) as SessionRecord).status !== 'open') return 'closed'
      // The open record itself is checked: a close changes it by compare-and-set, so the close and this
      // credit are ordered (a credit before it is in the balance the close sweeps into the refund).
      const { completed, results } = await atomic([
        { op: 'check', key: `session:${id}`, equals: raw },
        { op: 'compareAndSet', key: claim.key, expected: claim.expected, next: claim.next, ttlMs },
        { op: 'increment', key: `available:${id}`, delta: sats, ttlMs },
        { op: 'increment', key: `deposit:${id}`, delta: sats, ttlMs },
      ])
      if (completed) break
      if (results.length > 1) return 'claimed'
      // The record changed between the read and the batch (it closed): read it again.
    }
    await this.touch(id)
    return 'credited'
  }

  /**
   * Adds a top-up that reached the session after it closed to the close's refund, while that refund is
   * still `pending` (not yet claimed): the one refund payment then carries it too, instead of a second
   * payment to a return invoice that can be paid only once. True when the refund carries it (added now,
   * or by an earlier call for the same payment hash); false when the refund was already claimed.
   */
  async refundWithClose(id: string, paymentHash: string, sats: bigint): Promise<boolean> {
    let carried = false
    await this.#transition(id, (record) => {
      if (record.topUpsAfterClose?.[paymentHash] !== undefined) {
        carried = true
        return undefined
      }
      if (record.status !== 'closed' || record.refundStatus !== 'pending') return undefined
      carried = true
      return { ...record, topUpsAfterClose: { ...record.topUpsAfterClose, [paymentHash]: String(sats) } }
    })
    return carried
  }

  async balance(id: string): Promise<Balance> {
    const [deposit, available] = await Promise.all([
      this.store.get(`deposit:${id}`),
      this.store.get(`available:${id}`),
    ])
    const d = BigInt(deposit ?? '0')
    const a = BigInt(available ?? '0')
    return { deposit: d, available: a, spent: d - a }
  }

  /**
   * Closes an open session: the status flips to closed by compare-and-set (exactly one caller wins, in
   * any number of processes), then the spendable balance is moved to the session's refund total
   * (`refund:<id>`), which {@link Sessions.claimRefund} fixes and the caller pays. Returns undefined
   * when the session was not open.
   *
   * "Mark session.status = "closed" atomically before attempting the refund, to prevent concurrent
   * bearer actions from spending against a session that is being closed." (§"Server-Initiated Close")
   */
  async close(id: string, now: number = Date.now()): Promise<SessionRecord | undefined> {
    const closed = await this.#transition(id, (record) =>
      record.status === 'open'
        ? { ...record, status: 'closed', refundStatus: 'pending', closedAt: now }
        : undefined,
    )
    if (!closed) return undefined
    await this.sweepBalance(id)
    await this.store.delete(`active:${id}`)
    return closed
  }

  /**
   * Moves what is left of a closed session's spendable balance to its refund total. A charge racing the
   * close either landed before (spent) or finds nothing left. On a Store with `atomic`, each move takes
   * from the balance and adds to the total in one operation, so a process stopping part-way loses
   * nothing and the sweep can be run again; without it, a stop between the two steps loses that amount
   * from the refund.
   */
  async sweepBalance(id: string): Promise<void> {
    const { ttlMs } = this.options
    for (;;) {
      const { available } = await this.balance(id)
      if (available <= 0n) return
      if (this.store.atomic) {
        await this.store.atomic([
          { op: 'increment', key: `available:${id}`, delta: -available, ttlMs, min: 0n },
          { op: 'increment', key: `refund:${id}`, delta: available, ttlMs },
        ])
        continue
      }
      const taken = await this.store.increment(`available:${id}`, -available, { ttlMs, min: 0n })
      if (taken.applied) await this.store.increment(`refund:${id}`, available, { ttlMs })
    }
  }

  /**
   * Claims the refund of a closed session whose refund is `pending`: its amount (the refund total, plus
   * any top-ups that reached the closed session, see {@link Sessions.refundWithClose}) is fixed and the
   * status becomes `attempting` by compare-and-set, so exactly one claimer pays it.
   * Undefined when it was not pending (claimed already, or not closed).
   */
  async claimRefund(id: string): Promise<{ record: SessionRecord; refundSats: bigint } | undefined> {
    let refundSats = 0n
    const record = await this.#transition(id, async (current) => {
      if (current.status !== 'closed' || current.refundStatus !== 'pending') return undefined
      refundSats = BigInt((await this.store.get(`refund:${id}`)) ?? '0')
      // Top-ups added by refundWithClose change the record, so one added after this read fails the
      // compare-and-set below and is counted on the next pass.
      for (const sats of Object.values(current.topUpsAfterClose ?? {})) refundSats += BigInt(sats)
      return { ...current, refundStatus: 'attempting', refundSats: String(refundSats) }
    })
    return record && { record, refundSats }
  }

  /**
   * Records the refund outcome on a claimed (`attempting`) record, by compare-and-set: an outcome
   * recorded already (by an overlapping recovery) is never overwritten. `refundSats` is the balance
   * owed; a refund that succeeded records what it delivered and its fee instead.
   */
  async recordRefund(
    id: string,
    refundSats: bigint,
    outcome: { succeeded: { sentSats: bigint; feeSats: bigint } } | 'failed' | 'skipped',
  ): Promise<void> {
    const recorded: Partial<SessionRecord> =
      typeof outcome === 'string'
        ? { refundSats: String(refundSats), refundStatus: outcome }
        : {
            refundSats: String(outcome.succeeded.sentSats),
            refundFeeSats: String(outcome.succeeded.feeSats),
            refundStatus: 'succeeded',
          }
    await this.#transition(id, (record) =>
      record.refundStatus === 'attempting' ? { ...record, ...recorded } : undefined,
    )
  }

  /**
   * Changes the session record by compare-and-set, read again and retried when another writer changed it
   * in between: `next` gives the new record, or undefined to leave it (then undefined, as for no record).
   */
  async #transition(
    id: string,
    next: (record: SessionRecord) => SessionRecord | undefined | Promise<SessionRecord | undefined>,
  ): Promise<SessionRecord | undefined> {
    const key = `session:${id}`
    for (;;) {
      const raw = await this.store.get(key)
      if (raw === undefined) return undefined
      const changed = await next(JSON.parse(raw) as SessionRecord)
      if (changed === undefined) return undefined
      if (await this.store.compareAndSet(key, raw, JSON.stringify(changed), this.options.ttlMs))
        return changed
    }
  }
}
