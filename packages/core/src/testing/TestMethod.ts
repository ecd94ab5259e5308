import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import { ServiceUnavailableError, VerificationFailedError } from '../Errors.js'
import * as Method from '../Method.js'

/**
 * A test-only payment rail (not a real method, never offered in production): an in-memory ledger where
 * the client "pays" by recording a transfer bound to the challenge id, and the server verifies the
 * transfer's amount, currency, recipient and binding, then consumes it once. It lets the core and the
 * conformance kit exercise real verify/settle semantics without a chain.
 *
 * @example
 * ```ts
 * const rail = TestRail.create()
 * const server = Server.create({ realm, secrets, methods: [rail.server()] })
 * const client = Client.create({ methods: [rail.client()] })
 * ```
 */
export type TestRail = {
  /** Transfers made so far. */
  readonly transfers: Map<string, { amount: string; currency: string; recipient: string; binding: string }>
  /** Number of successful settlements. */
  readonly settlements: () => number
  server(options?: {
    verifyDelayMs?: number
    failWith?: () => Error | undefined
    /** While true, `settle` records the transfer, then fails as if its confirmation were lost (`consumed: true`). */
    confirmationLost?: () => boolean
  }): Method.Server<typeof testCharge>
  client(options?: {
    tamper?: (payload: { transfer: string }) => { transfer: string }
  }): Method.Client<typeof testCharge>
}

/** The test method's definition: `test/charge`. */
export const testCharge = Method.define({
  name: 'test',
  intent: 'charge',
  request: z.object({
    amount: z.string().regex(/^\d+$/),
    currency: z.string().min(1),
    recipient: z.string().min(1),
    description: z.string().optional(),
    externalId: z.string().optional(),
  }),
  payload: z.object({ transfer: z.string().min(1) }),
})

/**
 * Creates an isolated test rail.
 *
 * @example
 * ```ts
 * const rail = createTestRail()
 * ```
 */
export function createTestRail(): TestRail {
  const transfers: TestRail['transfers'] = new Map()
  let settlements = 0
  return {
    transfers,
    settlements: () => settlements,
    server: (options = {}) => ({
      definition: testCharge,
      async verify({ challenge, request, payload }) {
        if (options.verifyDelayMs) await new Promise((resolve) => setTimeout(resolve, options.verifyDelayMs))
        const failure = options.failWith?.()
        if (failure) throw failure
        const transfer = transfers.get(payload.transfer)
        if (!transfer)
          throw new VerificationFailedError({ detail: 'Unknown transfer.', reason: 'unknown-transfer' })
        if (transfer.binding !== challenge.id)
          throw new VerificationFailedError({
            detail: 'Transfer is bound to another challenge.',
            reason: 'binding-mismatch',
          })
        if (transfer.amount !== request.amount)
          throw new VerificationFailedError({ detail: 'Amount mismatch.', reason: 'amount-mismatch' })
        if (transfer.currency !== request.currency || transfer.recipient !== request.recipient)
          throw new VerificationFailedError({
            detail: 'Currency or recipient mismatch.',
            reason: 'recipient-mismatch',
          })
        return transfer
      },
      async settle({ payload, store }) {
        // The proof itself is single-use, independently of the challenge.
        if (!(await store.putIfAbsent(`transfer:${payload.transfer}`, '1', 3_600_000)))
          throw new VerificationFailedError({ detail: 'Transfer already used.', reason: 'replayed-proof' })
        settlements++
        // Value moved: the challenge must stay used, so the same credential is never charged again.
        if (options.confirmationLost?.())
          throw new ServiceUnavailableError({
            detail: 'The transfer was recorded but its confirmation was lost.',
            reason: 'outcome-unknown',
            consumed: true,
          })
        return { reference: payload.transfer }
      },
    }),
    client: (options = {}) => ({
      definition: testCharge,
      async createPayload({ challenge, request }) {
        const id = `tx_${randomBytes(12).toString('hex')}`
        transfers.set(id, {
          amount: request.amount,
          currency: request.currency,
          recipient: request.recipient,
          binding: challenge.id,
        })
        const payload = { transfer: id }
        return {
          payload: options.tamper ? options.tamper(payload) : payload,
          source: 'did:example:test-payer',
        }
      },
    }),
  }
}

/** A method with no checks at all, for benchmarks of the core's own cost. */
export function noopMethod(): Method.Server<typeof testCharge> {
  return {
    definition: testCharge,
    verify: async () => undefined,
    settle: async ({ payload }) => ({ reference: payload.transfer }),
  }
}
