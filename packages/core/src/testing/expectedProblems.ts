import { expect } from 'vitest'
import { problemBase } from '../Errors.js'

/** The failure cases of the conformance kit whose problem a rail may name itself. */
export type ProblemCase = 'tamperedId' | 'expired' | 'replay' | 'malformed' | 'wrongAmount'

/**
 * The problem a rail answers for one case: its `type` (relative to the problem base, e.g.
 * `invalid-challenge` or `session/insufficient-balance`, or absolute), and optionally the `reason` member
 * and HTTP status (default 402).
 */
export type ExpectedProblem = { type: string; reason?: string; status?: number }

/** Per case, the problem a rail answers (a bare string is a type), or false to skip the case. */
export type ExpectedProblems = Partial<Record<ProblemCase, ExpectedProblem | string | false>>

/**
 * The core's problems for each case, which a rail keeps unless it declares its own.
 *
 * @example
 * ```ts
 * defaultProblems.replay // { type: 'invalid-challenge' }
 * ```
 * @see draft-httpauth-payment-00 §8.2 (Problem Types), §11.3 (Replay Protection)
 */
export const defaultProblems: Readonly<Record<ProblemCase, ExpectedProblem>> = Object.freeze({
  // "Servers MUST verify that credentials present an `id` matching the expected binding." (§5.1.3)
  tamperedId: { type: 'invalid-challenge' },
  expired: { type: 'payment-expired' },
  // A consumed challenge is unknown to the server from then on.
  replay: { type: 'invalid-challenge' },
  malformed: { type: 'malformed-credential' },
  wrongAmount: { type: 'verification-failed' },
})

/** The expected problem of `kind`, or undefined when the fixture turned the case off. */
export function expectedProblem(
  problems: ExpectedProblems | undefined,
  kind: ProblemCase,
): ExpectedProblem | undefined {
  const declared = problems?.[kind]
  if (declared === false) return undefined
  if (declared === undefined) return defaultProblems[kind]
  return typeof declared === 'string' ? { type: declared } : declared
}

const absolute = (type: string) => (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(type) ? type : problemBase + type)

/**
 * Asserts that `response` is the expected problem: status, problem+json `type` (and `reason` when
 * declared), and no `Payment-Receipt` ("Servers MUST NOT return a `Payment-Receipt` header on error
 * responses", §5.3).
 *
 * @example
 * ```ts
 * await expectProblem(response, { type: 'payment-expired' })
 * ```
 * @see draft-httpauth-payment-00 §8.2
 */
export async function expectProblem(response: Response, expected: ExpectedProblem): Promise<void> {
  const body = (await response
    .clone()
    .json()
    .catch(() => ({}))) as { type?: string; reason?: string }
  const summary = { status: response.status, type: body.type, reason: body.reason }
  expect(summary, JSON.stringify(body)).toMatchObject({
    status: expected.status ?? 402,
    type: absolute(expected.type),
    ...(expected.reason !== undefined ? { reason: expected.reason } : {}),
  })
  expect(response.headers.get('payment-receipt')).toBeNull()
}
