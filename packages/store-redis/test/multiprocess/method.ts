import { createHmac } from 'node:crypto'
import { Method, PaymentError, VerificationFailedError } from '@mppkit/core'

/**
 * A test-only rail for the multi-process tests: the "proof" is an HMAC of the challenge id under a key
 * both the test and the server processes know, so verification needs no ledger shared between
 * processes. Everything else (consumption, idempotency, problems) is the real core server on the real
 * store. The server process prints one `settle` line per settlement, which the test counts.
 */
const proofKey = 'multiprocess-test-proof-key'

type Request = { amount: string; currency: string; recipient: string }
type Payload = { proof: string }

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null

export const multiprocessCharge = Method.define({
  name: 'mp',
  intent: 'charge',
  request: {
    safeParse: (value: unknown) =>
      isRecord(value) &&
      typeof value.amount === 'string' &&
      typeof value.currency === 'string' &&
      typeof value.recipient === 'string'
        ? { success: true as const, data: value as Request }
        : { success: false as const, error: 'invalid request' },
  },
  payload: {
    safeParse: (value: unknown) =>
      isRecord(value) && typeof value.proof === 'string'
        ? { success: true as const, data: value as Payload }
        : { success: false as const, error: 'invalid payload' },
  },
})

/** The proof a payer presents for a challenge id. */
export const proof = (challengeId: string) =>
  createHmac('sha256', proofKey).update(challengeId).digest('base64url')

/** The route every server process protects. */
export const route = {
  offers: [{ method: 'mp', request: { amount: '1000', currency: 'usd', recipient: 'merchant' } }],
}

/** The server side of the rail; `onSettle` observes each settlement. */
export function multiprocessServer(
  onSettle: (challengeId: string) => void,
): Method.Server<typeof multiprocessCharge> {
  return {
    definition: multiprocessCharge,
    async verify({ challenge, payload }) {
      if (payload.proof !== proof(challenge.id))
        throw new VerificationFailedError({ detail: 'Bad proof.', reason: 'bad-proof' })
    },
    async settle({ challenge }) {
      // A little latency, like a real rail, widens the window in which duplicates race.
      await new Promise((resolve) => setTimeout(resolve, 5))
      onSettle(challenge.id)
      return { reference: `mp_${challenge.id.slice(0, 16)}` }
    },
  }
}

/**
 * A test-only metered session rail (never shipped): a payer opens a prepaid channel once (`open`
 * credential carrying the deposit), then pays each request with a fresh `voucher` credential. Settling a
 * voucher deducts the route's cost from the channel balance in the shared store with one bounded
 * increment (`increment(balance, -cost, { min: 0n })`), as a real session persists `spent` before serving
 * the metered resource. A voucher the balance cannot cover is refused with the session problem
 * `session/insufficient-balance` (402), and nothing is settled. Proofs are HMACs as for `mp/charge`.
 */
type SessionPayload =
  | { action: 'open'; channel: string; deposit: string; proof: string }
  | { action: 'voucher'; channel: string; proof: string }

export const multiprocessSession = Method.define({
  name: 'mp',
  intent: 'session',
  request: multiprocessCharge.request,
  payload: {
    safeParse: (value: unknown) =>
      isRecord(value) &&
      typeof value.channel === 'string' &&
      typeof value.proof === 'string' &&
      (value.action === 'voucher' ||
        (value.action === 'open' && typeof value.deposit === 'string' && /^\d+$/.test(value.deposit)))
        ? { success: true as const, data: value as SessionPayload }
        : { success: false as const, error: 'invalid payload' },
  },
})

/** The proof a payer presents for a session credential (binds the action, channel, deposit and id). */
export const sessionProof = (challengeId: string, payload: Omit<SessionPayload, 'proof'>) =>
  createHmac('sha256', proofKey)
    .update(
      `${payload.action}|${payload.channel}|${'deposit' in payload ? payload.deposit : ''}|${challengeId}`,
    )
    .digest('base64url')

/** The metered route (cost 7 per request). */
export const meteredRoute = {
  offers: [
    { method: 'mp', intent: 'session', request: { amount: '7', currency: 'usd', recipient: 'merchant' } },
  ],
}

/** What a session settlement reports to the test: a deduction, or the opening deposit. */
export type SessionEvent =
  | { kind: 'open'; channel: string; deposit: bigint }
  | { kind: 'deduct'; channel: string; cost: bigint; balance: bigint }

const sessionTtlMs = 10 * 60_000

/** The server side of the metered session rail; `onEvent` observes each applied open and deduction. */
export function multiprocessSessionServer(
  onEvent: (challengeId: string, event: SessionEvent) => void,
): Method.Server<typeof multiprocessSession> {
  return {
    definition: multiprocessSession,
    async verify({ challenge, payload }) {
      const { proof: presented, ...signed } = payload
      if (presented !== sessionProof(challenge.id, signed))
        throw new VerificationFailedError({ detail: 'Bad proof.', reason: 'bad-proof' })
    },
    async settle({ challenge, payload, request, store }) {
      const balanceKey = `balance:${payload.channel}`
      if (payload.action === 'open') {
        // A channel is funded once; a second open of the same channel is refused.
        if (!(await store.putIfAbsent(`open:${payload.channel}`, '1', sessionTtlMs)))
          throw new PaymentError({
            type: 'session/channel-exists',
            title: 'Channel Exists',
            status: 409,
            detail: 'This channel is already open.',
          })
        const deposit = BigInt(payload.deposit)
        await store.increment(balanceKey, deposit, { ttlMs: sessionTtlMs })
        onEvent(challenge.id, { kind: 'open', channel: payload.channel, deposit })
        return {
          reference: `open_${payload.channel}`,
          response: Response.json({ channel: payload.channel, deposit: payload.deposit }),
        }
      }
      const cost = BigInt(request.amount)
      // A little latency before the deduction, like a real rail, so deductions from both processes overlap.
      await new Promise((resolve) => setTimeout(resolve, 2))
      const result = await store.increment(balanceKey, -cost, { ttlMs: sessionTtlMs, min: 0n })
      if (!result.applied)
        throw new PaymentError({
          type: 'session/insufficient-balance',
          title: 'Insufficient Balance',
          status: 402,
          detail: 'The channel balance does not cover this request.',
          extensions: {
            channel: payload.channel,
            balance: String(result.value),
            requiredTopUp: String(cost - result.value),
          },
        })
      onEvent(challenge.id, { kind: 'deduct', channel: payload.channel, cost, balance: result.value })
      return { reference: `voucher_${challenge.id.slice(0, 16)}`, receipt: { balance: String(result.value) } }
    },
  }
}
