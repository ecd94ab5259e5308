import { mayHaveSettled } from './settled.js'

type Errorish = {
  message?: unknown
  code?: unknown
  address?: unknown
  port?: unknown
  cause?: unknown
  errors?: unknown
}

const systemCode = /^E[A-Z_]+$|^UND_ERR/

/** The first system error (`ECONNREFUSED`, `ENOTFOUND`, …) in an error's cause chain, as one phrase. */
function systemCause(error: unknown, depth = 0): string | undefined {
  if (!error || typeof error !== 'object' || depth > 8) return undefined
  const e = error as Errorish
  if (typeof e.code === 'string' && systemCode.test(e.code)) {
    if (typeof e.address === 'string')
      return `${e.code} ${e.address.includes(':') ? `[${e.address}]` : e.address}${e.port ? `:${e.port}` : ''}`
    const host = typeof e.message === 'string' ? /\b(?:getaddrinfo|connect) \S+ (\S+)/.exec(e.message) : null
    return host ? `${e.code} ${host[1]}` : e.code
  }
  // Node's fetch tries each address of a host and reports them together (AggregateError).
  if (Array.isArray(e.errors))
    for (const inner of e.errors) {
      const found = systemCause(inner, depth + 1)
      if (found) return found
    }
  return systemCause(e.cause, depth + 1)
}

/**
 * One line naming the cause of an error: the system error behind a `fetch failed` (`ECONNREFUSED
 * 127.0.0.1:3000`), else the message. Never a stack trace.
 *
 * @example
 * ```ts
 * await fetch('http://127.0.0.1:9/').catch(describeError) // 'ECONNREFUSED 127.0.0.1:9'
 * ```
 */
export function describeError(error: unknown): string {
  const line = describeCause(error)
  // A rail that may already have moved money says so (PaymentFailedError.mayHaveSettled): the person
  // reading this must check before paying again.
  const warning = 'the payment may have gone through: check before paying again'
  return mayHaveSettled(error) && !line.includes(warning) ? `${line}; ${warning}` : line
}

function describeCause(error: unknown): string {
  const cause = systemCause(error)
  const message =
    error && typeof error === 'object' && typeof (error as Errorish).message === 'string'
      ? ((error as Errorish).message as string).split('\n')[0]!
      : String(error)
  if (!cause) return message
  if (/^fetch failed$|^HTTP request failed/i.test(message) || message.includes(cause)) return cause
  return `${message} (${cause})`
}
