import type { PaymentError } from '../Errors.js'
import { textResponse } from '../internal/LazyResponse.js'
import type { IssuedChallenge, Problem } from './Issuance.js'

const problemBodies = new WeakMap<PaymentError, string>()

/**
 * Renders a problem as an HTTP response: `application/problem+json`, `Cache-Control: no-store`,
 * `Retry-After` for transient failures, and one `WWW-Authenticate` per challenge.
 *
 * @example
 * ```ts
 * const response = Problems.toResponse(new PaymentRequiredError(), challenges)
 * ```
 * @see draft-httpauth-payment-00 §8 (Error Handling), §12.9
 */
export function toResponse(error: PaymentError, challenges: readonly IssuedChallenge[] = []): Response {
  const headers: [string, string][] = [
    ['content-type', 'application/problem+json'],
    // "Servers MUST send `Cache-Control: no-store` with 402 responses" (§12.9)
    ['cache-control', 'no-store'],
  ]
  if (error.retryAfter !== undefined)
    headers.push(['retry-after', String(Math.max(0, Math.ceil(error.retryAfter)))])
  for (const challenge of challenges) headers.push(['www-authenticate', challenge.header])
  let body = problemBodies.get(error)
  if (body === undefined) {
    body = JSON.stringify(error.toProblem())
    // Errors are immutable: a shared instance (payment-required) serializes once.
    problemBodies.set(error, body)
  }
  return textResponse(body, { status: error.status, headers })
}

/**
 * Renders a {@link Problem} (the transport-neutral refusal) as an HTTP response.
 *
 * @example
 * ```ts
 * if (outcome.status === 'problem') return Problems.render(outcome)
 * ```
 */
export function render(problem: Problem): Response {
  return toResponse(problem.error, problem.challenges)
}
