import { EventEmitter } from 'node:events'
import { ConfigurationError } from '@mppkit/core'
import type { Sessions } from './Sessions.js'

/** What a route handler gets as `payment.context` for a lightning session request. */
export type SessionMeter = {
  /** The session id (payment hash of the deposit invoice). */
  sessionId: string
  /** Price of one unit in satoshis (the challenge's `amount`). */
  price: bigint
  /**
   * Deducts `units × price` from the session balance; false (nothing deducted) when it is short. Throws
   * `ConfigurationError` for a negative or fractional number of units.
   */
  charge(units?: number): Promise<boolean>
  /** The session's deposit, spendable balance and spent total in satoshis. */
  balance(): Promise<{ deposit: bigint; available: bigint; spent: bigint }>
  /**
   * An SSE response billing `price` per chunk: when the balance runs out it emits
   * `payment-need-topup`, holds the connection and resumes after a top-up (or emits `session-timeout`
   * and ends), and ends with a `payment-receipt` event before `data: [DONE]`.
   */
  sse(chunks: AsyncIterable<string> | Iterable<string>): Response
}

/** Wakes paused streams of this process when a top-up credits their session. */
export const credited = new EventEmitter().setMaxListeners(0)

/** Parameters of {@link createMeter}. */
export type MeterParameters = {
  sessions: Sessions
  sessionId: string
  price: bigint
  /** Units the request already paid for (per-request billing prepays the first chunk). */
  prepaid: number
  /** How long a paused stream waits for a top-up (ms). */
  topUpTimeoutMs: number
  /** Aborted when the server closes: paused streams end. */
  signal: AbortSignal
  now: () => number
}

const encoder = new TextEncoder()
const event = (name: string | undefined, data: string) =>
  encoder.encode(
    `${name ? `event: ${name}\n` : ''}${data
      .split('\n')
      .map((line) => `data: ${line}`)
      .join('\n')}\n\n`,
  )

/**
 * The meter of one session request: per-unit charges and an SSE stream billed per chunk.
 *
 * @example
 * ```ts
 * return (payment.context as SessionMeter).sse(tokens)
 * ```
 * @see draft-lightning-session-00 §"Streaming and Per-Chunk Billing"
 */
export function createMeter(parameters: MeterParameters): SessionMeter {
  const { sessions, sessionId, price, topUpTimeoutMs, signal } = parameters
  let prepaid = parameters.prepaid

  const charge = async (units = 1) => {
    // A negative amount would be a credit: the close refunds the balance, so it would pay out satoshis
    // nobody deposited. (A fraction of a unit has no price in whole satoshis.)
    if (!Number.isSafeInteger(units) || units < 0)
      throw new ConfigurationError(
        'lightning session: charge(units) takes a whole number of units, 0 or more',
      )
    if (units === 0) return true
    const ok = await sessions.charge(sessionId, price * BigInt(units))
    if (ok) await sessions.touch(sessionId)
    return ok
  }

  /**
   * Waits until the session can pay one more unit (a top-up), the timeout, the server's close or
   * `stopped` (the stream's reader went away): true when it can.
   */
  const waitForTopUp = (stopped: AbortSignal): Promise<boolean> =>
    new Promise((resolve) => {
      let settled = false
      const finish = (value: boolean) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        clearInterval(poll)
        credited.off(sessionId, check)
        signal.removeEventListener('abort', aborted)
        stopped.removeEventListener('abort', aborted)
        resolve(value)
      }
      const check = () => {
        sessions.balance(sessionId).then(
          ({ available }) => {
            if (available >= price) finish(true)
          },
          () => {},
        )
      }
      const aborted = () => finish(false)
      // In-process wake-up, plus polling for top-ups credited by other server processes.
      credited.on(sessionId, check)
      const poll = setInterval(check, 250)
      const timer = setTimeout(() => finish(false), topUpTimeoutMs)
      signal.addEventListener('abort', aborted)
      stopped.addEventListener('abort', aborted)
      if (signal.aborted || stopped.aborted) finish(false)
      else check()
    })

  const sse = (chunks: AsyncIterable<string> | Iterable<string>): Response => {
    const source: AsyncIterator<string> | Iterator<string> =
      Symbol.asyncIterator in chunks
        ? (chunks as AsyncIterable<string>)[Symbol.asyncIterator]()
        : (chunks as Iterable<string>)[Symbol.iterator]()
    let units = 0
    let spent = 0n
    /** The chunk taken from the source and not yet delivered (its unit not yet paid). */
    let held: { chunk: string } | undefined
    /** The wait for a top-up begun when `payment-need-topup` went out: the next read awaits it. */
    let paused: Promise<boolean> | undefined
    let ended = false
    const stopped = new AbortController()

    const end = (controller: ReadableStreamDefaultController<Uint8Array>, last: Uint8Array[]) => {
      if (ended) return
      ended = true
      for (const bytes of last) controller.enqueue(bytes)
      controller.close()
    }
    const needTopUp = async () => {
      const { spent: balanceSpent } = await sessions.balance(sessionId)
      return JSON.stringify({ sessionId, balanceSpent: Number(balanceSpent), balanceRequired: Number(price) })
    }

    // Pulled, one event per read: a chunk is taken from the source and paid for only when the reader
    // asks for it (highWaterMark 0), so a slow reader is never billed for chunks waiting in a buffer,
    // nor one that goes away for chunks it never received.
    const stream = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (ended) return
          if (paused) {
            const resumed = await paused
            paused = undefined
            if (!resumed || ended) return
          }
          if (!held) {
            const next = await source.next()
            if (next.done) {
              // "The payment-receipt event MUST be emitted before the [DONE] sentinel."
              const receipt = {
                method: 'lightning',
                reference: sessionId,
                status: 'success',
                timestamp: new Date(Math.floor(parameters.now() / 1000) * 1000)
                  .toISOString()
                  .replace('.000Z', 'Z'),
                spent: Number(spent),
                units,
              }
              end(controller, [event('payment-receipt', JSON.stringify(receipt)), event(undefined, '[DONE]')])
              return
            }
            held = { chunk: next.value }
          }
          if (prepaid > 0) prepaid--
          else if (!(await charge())) {
            const need = await needTopUp()
            // "Stop delivering additional metered content immediately; emit a payment-need-topup SSE
            // event on the existing connection; hold the connection open and pause delivery"
            controller.enqueue(event('payment-need-topup', need))
            const record = await sessions.get(sessionId)
            // "When the timeout fires, the server MUST close the SSE connection." (after session-timeout)
            const timeout = () => end(controller, [event('session-timeout', need)])
            if (record?.status !== 'open') timeout()
            // Waiting starts now (the timeout runs whether or not the reader reads on); the held chunk
            // is paid for and delivered on the next read after the top-up.
            else
              paused = waitForTopUp(stopped.signal).then((resumed) => {
                if (!resumed && !stopped.signal.aborted) timeout()
                return resumed
              })
            return
          }
          units++
          spent += price
          if (ended) return
          const { chunk } = held
          held = undefined
          controller.enqueue(event(undefined, chunk))
        },
        async cancel() {
          // The reader went away: the wait for a top-up ends, and the source is released.
          ended = true
          stopped.abort()
          await source.return?.()
        },
      },
      { highWaterMark: 0 },
    )
    return new Response(stream, {
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
    })
  }

  return {
    sessionId,
    price,
    charge,
    balance: () => sessions.balance(sessionId),
    sse,
  }
}
