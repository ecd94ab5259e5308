import { Challenge, Credential } from '@mppkit/core'

// What the native `evm` server tests send to a protected handler, called in-process.

/** The URL the tests' handlers are called with. */
export const url = 'http://localhost/paid'

/** The first challenge of an unpaid request. */
export async function challengeOf(handler: (request: Request) => Promise<Response>) {
  const response = await handler(new Request(url))
  return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
}

/** The handler's answer to `payload` presented with `challenge` (and `source` when given). */
export const send = (
  handler: (request: Request) => Promise<Response>,
  challenge: Challenge.Challenge,
  payload: unknown,
  source?: string,
) =>
  handler(
    new Request(url, {
      headers: {
        authorization: Credential.format({
          challenge,
          payload: payload as never,
          ...(source ? { source } : {}),
        }),
      },
    }),
  )
