import { ConfigurationError, type Store } from '@mppkit/core'
import type { Hex } from 'viem'
import type { Balance, ChannelStore } from './ChannelStore.js'

/** What a route handler gets as `payment.context` for a session request. */
export type SessionMeter = {
  channelId: Hex
  /**
   * Deducts `units × amount` from the channel balance; false (and nothing deducted) when it is short, or
   * the channel is closing (a cooperative close, a forced close requested by the payer) or finalized.
   * Throws `ConfigurationError` for a negative or fractional number of units.
   */
  charge(units?: number): Promise<boolean>
  /** Current accounting state. */
  state(): Promise<{ acceptedCumulative: bigint; spent: bigint; deposit: bigint }>
  /**
   * An SSE response that charges `unitsPerChunk` before each chunk, emits `payment-need-voucher` and
   * pauses when the balance runs out, and ends with a `payment-receipt` event.
   */
  sse(chunks: AsyncIterable<string> | Iterable<string>, options?: { unitsPerChunk?: number }): Response
}

const max = (a: bigint, b: bigint) => (a > b ? a : b)

/** A number of units as the meter takes it: a whole number, 0 or more (a negative one would give credit). */
function unitsOf(units: unknown, what: string): bigint {
  if (typeof units !== 'number' || !Number.isSafeInteger(units) || units < 0)
    throw new ConfigurationError(`tempo session: ${what} takes a whole number of units, 0 or more`)
  return BigInt(units)
}

/**
 * The session-specific receipt fields (draft-tempo-session-00 §11 Receipts).
 *
 * @example
 * ```ts
 * receiptFields(challenge.id, channelId, { accepted: 3000n, spent: 2000n }, { units: 2 })
 * ```
 * @see draft-tempo-session-00 §11
 */
export const receiptFields = (
  challengeId: string,
  channelId: Hex,
  state: { accepted: bigint; spent: bigint },
  extra: Record<string, unknown> = {},
) => ({
  intent: 'session',
  challengeId,
  channelId,
  acceptedCumulative: String(state.accepted),
  spent: String(state.spent),
  ...extra,
})

/** Parameters of {@link createMeter}. */
export type MeterParameters = {
  channels: ChannelStore
  store: Store
  channelId: Hex
  /** Price of one unit (the route's `amount`). */
  price: bigint
  challengeId: string
  minDelta: bigint
  /** How long a paused stream waits for a voucher (ms). */
  voucherTimeout: number
  /** True once every server of the method closed: a paused stream then ends at once, with its receipt. */
  closed: () => boolean
  /**
   * When (epoch ms) the channel state the request was verified against was read: once it is older than
   * `channelStateTtl`, the meter reads the channel again before spending (`ChannelStore.servingUntil`).
   */
  channelReadAt: number
}

/**
 * The meter a route handler uses to charge a session per unit, or to stream SSE chunks that are each paid
 * before they are sent.
 *
 * @example
 * ```ts
 * const meter = createMeter({ channels, store, channelId, price: 25n, challengeId, minDelta: 0n, voucherTimeout: 60_000, closed: () => false, channelReadAt: Date.now() })
 * return meter.sse(tokens)
 * ```
 * @see draft-tempo-session-00 §12 (Streaming)
 */
export function createMeter(parameters: MeterParameters): SessionMeter {
  const { channels, store: s, channelId, price, challengeId, minDelta } = parameters
  const waitForVoucher = (timeoutMs: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        clearInterval(poll)
        unsubscribe()
        resolve()
      }
      // In-process wake-up, plus polling for vouchers accepted by other server processes.
      const timer = setTimeout(done, timeoutMs)
      const poll = setInterval(done, 250)
      const unsubscribe = channels.onVoucher(channelId, done)
    })

  // A response served for long (a stream, a handler charging per unit) stops spending on a channel the
  // payer started to force-close, or withdrew, within `channelStateTtl`, as vouchers do: the channel is
  // looked at again only once the state last seen is that old (no store operation per chunk before).
  let freshUntil = parameters.channelReadAt + channels.stateTtl
  const serving = async (): Promise<boolean> => {
    if (Date.now() <= freshUntil) return true
    const until = await channels.servingUntil(s, channelId)
    if (until === undefined) return false
    freshUntil = until
    return true
  }
  const stopped: Balance = { ok: false, spent: 0n, accepted: 0n, closing: true }
  // A stream ends (with its receipt) when the channel cannot be read either: nothing is served unchecked.
  const deductChunk = async (cost: bigint): Promise<Balance> =>
    (await serving().catch(() => false)) ? channels.deduct(s, channelId, cost) : stopped

  const meter: SessionMeter = {
    channelId,
    async charge(units = 1) {
      const cost = price * unitsOf(units, 'charge(units)')
      if (!(await serving())) return false
      return (await channels.deduct(s, channelId, cost)).ok
    },
    async state() {
      const channel = await channels.cachedChannel(s, channelId)
      return {
        acceptedCumulative: await channels.accepted(s, channelId),
        spent: await channels.spentOf(s, channelId),
        deposit: BigInt(channel?.deposit ?? '0'),
      }
    },
    sse(chunks, sseOptions = {}) {
      const cost = price * unitsOf(sseOptions.unitsPerChunk ?? 1, 'sse({ unitsPerChunk })')
      const encoder = new TextEncoder()
      let units = 0
      let cancelled = false
      // The events of the stream, made one at a time as the client reads them: a chunk is charged only
      // when the response is ready to take it (the adapter reads on as the socket drains), so a slow or
      // gone reader is never charged for chunks buffered ahead of it.
      async function* events(): AsyncGenerator<string> {
        for await (const chunk of chunks as AsyncIterable<string>) {
          if (cancelled) return
          let result = await deductChunk(cost)
          const deadline = Date.now() + parameters.voucherTimeout
          while (!result.ok) {
            // No voucher in time: stop metering, but still end with the receipt ("MUST include the
            // receipt … in the final message of the stream").
            // A channel being closed takes no more spending: end now (no voucher can reopen it).
            if (result.closing || Date.now() >= deadline || parameters.closed()) break
            // "servers MUST emit an `payment-need-voucher` event when available balance is exhausted"
            // and "MUST pause delivery until a valid voucher advancing `acceptedCumulative` is accepted".
            const state = await meter.state()
            yield `event: payment-need-voucher\ndata: ${JSON.stringify({
              acceptedCumulative: String(result.accepted),
              channelId,
              deposit: String(state.deposit),
              // "Minimum cumulative amount the next voucher must authorize": enough for this chunk, and
              // at least `minVoucherDelta` above the accepted voucher.
              requiredCumulative: String(max(result.spent + cost, result.accepted + minDelta)),
            })}\n\n`
            const before = result.accepted
            while (
              !cancelled &&
              Date.now() < deadline &&
              !parameters.closed() &&
              (await channels.accepted(s, channelId)) === before
            )
              await waitForVoucher(Math.max(1, deadline - Date.now()))
            // The client left while the stream waited: nothing more is charged.
            if (cancelled) return
            result = await deductChunk(cost)
          }
          if (!result.ok) break
          units += Number(sseOptions.unitsPerChunk ?? 1)
          yield `data: ${chunk.replace(/\n/g, '\ndata: ')}\n\n`
        }
        // "For SSE responses, the final receipt SHOULD be delivered as an event"
        const state = await meter.state()
        yield `event: payment-receipt\ndata: ${JSON.stringify({
          method: 'tempo',
          status: 'success',
          timestamp: new Date().toISOString(),
          reference: channelId,
          ...receiptFields(
            challengeId,
            channelId,
            { accepted: state.acceptedCumulative, spent: state.spent },
            { units },
          ),
        })}\n\n`
      }
      const source = events()
      const body = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            try {
              const { value, done } = await source.next()
              if (cancelled) return
              if (done) controller.close()
              else controller.enqueue(encoder.encode(value))
            } catch (error) {
              if (!cancelled) controller.error(error)
            }
          },
          async cancel() {
            cancelled = true
            // Ends the chunk source too (its `return`), unless the generator is mid-step: it then stops
            // at its next check of `cancelled`.
            await source.return(undefined).catch(() => {})
          },
        },
        // Nothing is made before it is read.
        { highWaterMark: 0 },
      )
      return new Response(body, {
        headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, private' },
      })
    },
  }
  return meter
}
