import * as Challenge from '../Challenge.js'
import * as Receipt from '../Receipt.js'
import type { Payment } from './Client.js'

/**
 * A protocol plug: how a client reads payment challenges from a 402 and where it sends the
 * credential. The Payment scheme ({@link mpp}) is the default; a plug for another format (e.g. x402's
 * `PAYMENT-REQUIRED` header or its v1 JSON body) maps each of its offers to a {@link Challenge.Challenge}
 * whose `method`/`intent` a client method pays, and names the header the credential goes in.
 *
 * @example
 * ```ts
 * const client = Client.create({ methods, protocols: [Protocol.mpp, myX402Plug] })
 * ```
 * @see draft-httpauth-payment-00 §5
 */
export type Protocol = {
  /** A name for messages and ranking (`mpp`). */
  readonly name: string
  /**
   * The challenges a 402 response offers in this protocol's format (none: `[]`). It gets its own clone
   * of the response, so it may read the body. Invalid entries are dropped by the client.
   */
  challenges(response: Response): readonly Challenge.Challenge[] | Promise<readonly Challenge.Challenge[]>
  /** The request headers that carry the payment on the paid retry. */
  headers(payment: Payment): Record<string, string>
  /** The receipt of a paid response, if this protocol has one. */
  receipt?(response: Response): Receipt.Receipt | undefined
}

// Headers a browser refuses to let scripts set (a credential put there would be silently dropped after
// the money moved), and headers whose meaning a credential must not replace.
const refused =
  /^(accept-charset|accept-encoding|accept-payment|access-control-request-headers|access-control-request-method|connection|content-length|content-type|cookie|cookie2|date|dnt|expect|host|idempotency-key|keep-alive|origin|referer|set-cookie|te|trailer|transfer-encoding|upgrade|via|proxy-.*|sec-.*)$/i
const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * The request header a credential for this challenge goes in: its `header` parameter, else
 * `Authorization`; `undefined` when the named header cannot carry a credential (not a token, or a
 * header such as `Cookie`, `Host` or `Sec-…` that a browser would drop), so the challenge is not paid.
 *
 * @example
 * ```ts
 * credentialHeader({ ...challenge, header: 'Payment-Authorization' }) // 'Payment-Authorization'
 * ```
 * @see draft-httpauth-payment-00 §5.2
 */
export function credentialHeader(challenge: Challenge.Challenge): string | undefined {
  const header = challenge.header
  if (header === undefined || header === '') return 'Authorization'
  return token.test(header) && !refused.test(header) ? header : undefined
}

/**
 * The Payment HTTP authentication scheme: challenges from `WWW-Authenticate: Payment …`, the credential
 * in `Authorization` (or the header a challenge names), the receipt from `Payment-Receipt`.
 *
 * @example
 * ```ts
 * Client.create({ methods, protocols: [mpp] }) // the default
 * ```
 * @see draft-httpauth-payment-00 §5.1, §5.2, §5.3
 */
export const mpp: Protocol = {
  name: 'mpp',
  challenges: (response) => Challenge.parseAll(response.headers.get('www-authenticate') ?? ''),
  headers: (payment) => ({ [payment.header]: payment.authorization }),
  receipt(response) {
    const header = response.headers.get('payment-receipt')
    if (!header) return undefined
    try {
      return Receipt.parse(header)
    } catch {
      return undefined
    }
  },
}
