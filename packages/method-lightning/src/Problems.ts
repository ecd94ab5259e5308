import { PaymentError } from '@mppkit/core/client'

/** The problem types of the lightning charge and session specs (relative to the problem base). */
export const problemTypes = {
  'malformed-credential': 'Malformed Credential',
  'unknown-challenge': 'Unknown Challenge',
  'invalid-preimage': 'Invalid Preimage',
  'expired-invoice': 'Expired Invoice',
  'session-not-found': 'Session Not Found',
  'session-closed': 'Session Closed',
  'insufficient-balance': 'Insufficient Balance',
  'challenge-expired': 'Challenge Expired',
  'invalid-return-invoice': 'Invalid Return Invoice',
} as const

/** One lightning problem type name, e.g. `invalid-preimage`. */
export type ProblemName = keyof typeof problemTypes

/**
 * A lightning problem: HTTP 402 with type `https://paymentauth.org/problems/lightning/<name>`; the core
 * adds the fresh challenge ("A fresh challenge MUST be included in `WWW-Authenticate`"). Details never
 * carry a preimage.
 *
 * @example
 * ```ts
 * throw new LightningProblem('invalid-preimage', 'SHA-256 of the provided preimage does not match the stored payment hash')
 * ```
 * @see draft-lightning-charge-00 §"Error Responses"; draft-lightning-session-00 §"Error Responses"
 */
export class LightningProblem extends PaymentError {
  readonly problem: ProblemName
  constructor(problem: ProblemName, detail: string, extensions?: Record<string, unknown>) {
    super({
      type: `lightning/${problem}`,
      title: problemTypes[problem],
      status: 402,
      detail,
      ...(extensions ? { extensions } : {}),
    })
    this.name = 'LightningProblem'
    this.problem = problem
  }
}
