import { PaymentError } from '@mppkit/core'

/**
 * A `session/*` problem (draft-tempo-session-00 §10 Error Handling): its type, title, status, detail and
 * any extension members.
 *
 * @example
 * ```ts
 * throw sessionProblem('delta-too-small', 'Delta Too Small', 402, 'Vouchers must increase by at least 10.')
 * ```
 * @see draft-tempo-session-00 §10
 */
export const sessionProblem = (
  type: string,
  title: string,
  status: number,
  detail: string,
  extensions?: Record<string, unknown>,
): PaymentError =>
  new PaymentError({ type: `session/${type}`, title, status, detail, ...(extensions ? { extensions } : {}) })
