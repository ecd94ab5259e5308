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

/**
 * The failure cases whose problem the core leaves to the rail: when a rail declares none, the kit only
 * asks for a 4xx problem without a receipt (see {@link expectRefusal}); a declared problem is matched.
 */
export type RefusalCase =
  | 'otherChallenge'
  | 'spentPayload'
  | 'wrongRecipient'
  | 'wrongCurrency'
  | 'malformedFields'

/** Per case, the problem a rail answers (a bare string is a type), or false to skip the case. */
export type ExpectedProblems = Partial<Record<ProblemCase | RefusalCase, ExpectedProblem | string | false>>

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
): ExpectedProblem | undefined
/** The declared problem of `kind`, `'any'` when the rail declared none, or undefined when turned off. */
export function expectedProblem(
  problems: ExpectedProblems | undefined,
  kind: RefusalCase,
): ExpectedProblem | 'any' | undefined
export function expectedProblem(
  problems: ExpectedProblems | undefined,
  kind: ProblemCase | RefusalCase,
): ExpectedProblem | 'any' | undefined {
  const declared = problems?.[kind]
  if (declared === false) return undefined
  if (declared === undefined) return kind in defaultProblems ? defaultProblems[kind as ProblemCase] : 'any'
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

/**
 * Asserts that `response` refuses a payment: the `expected` problem when the rail declared one, else any
 * 4xx `application/problem+json` answer with a `type`; never a `Payment-Receipt`, and never a stack trace
 * in the body.
 *
 * @example
 * ```ts
 * await expectRefusal(response, 'any')
 * ```
 * @see draft-httpauth-payment-00 §5.3, §8.2
 */
export async function expectRefusal(response: Response, expected: ExpectedProblem | 'any'): Promise<void> {
  const text = await response.clone().text()
  // A stack frame line ("    at fn (file:line:col)") names internals an attacker may probe.
  expect(text, 'the answer carries no stack trace').not.toMatch(/\n\s+at \S/)
  if (expected !== 'any') return expectProblem(response, expected)
  expect(response.status, text).toBeGreaterThanOrEqual(400)
  expect(response.status, text).toBeLessThan(500)
  let type: unknown
  try {
    type = (JSON.parse(text) as { type?: unknown }).type
  } catch {}
  expect(typeof type, `a problem+json body with a type: ${text}`).toBe('string')
  expect(response.headers.get('payment-receipt')).toBeNull()
}
