import { once } from 'node:events'
import { createServer } from 'node:net'
import { Challenge, ConfigurationError, Credential } from '@mppkit/core'
import { create as createServer402 } from '@mppkit/core/server'
import { createTestRail } from '@mppkit/core/testing'
import { describe, expect, it } from 'vitest'
import { PostgresStore } from './PostgresStore.js'

// `retryAfter` becomes the `Retry-After` header of every answer given while PostgreSQL is unavailable
// (RFC 9110 §10.2.3: "a non-negative decimal integer, representing time in seconds"): anything but a
// whole number of seconds, 1 or more, is refused when the store is created (NaN used to be sent as
// `Retry-After: NaN`). Nothing here needs a running PostgreSQL.

const schema = `mppkit_test_${Math.random().toString(36).slice(2, 10)}`

/** A TCP port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

describe('PostgresStore retryAfter', () => {
  it.each([Number.NaN, 0, -1, 1.5, Number.POSITIVE_INFINITY, '2'])('refuses %j', (retryAfter) => {
    const refused = () =>
      new PostgresStore({
        connectionString: 'postgres://x@127.0.0.1:1/x',
        schema,
        retryAfter: retryAfter as number,
      })
    expect(refused).toThrow(ConfigurationError)
    expect(refused).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: retryAfter must be a positive whole number of seconds]`,
    )
  })

  it('answers a paid request 503 with Retry-After: <retryAfter> while PostgreSQL is unreachable', async () => {
    const store = new PostgresStore({
      connectionString: `postgres://postgres@127.0.0.1:${await closedPort()}/test`,
      schema,
      retryAfter: 7,
      timeoutMs: 2_000,
    })
    try {
      const rail = createTestRail()
      const server = createServer402({
        realm: 'api.test',
        secrets: ['postgres-retry-after-test-secret-0123456789'],
        methods: [rail.server()],
        store,
        logger: false,
      })
      const handler = server.protect(
        { offers: [{ method: 'test', request: { amount: '1', currency: 'usd', recipient: 'acct' } }] },
        () => new Response('ok'),
      )
      const url = 'https://api.test/r'
      const unpaid = await handler(new Request(url))
      expect(unpaid.status).toBe(402)
      const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
      const { payload } = await rail
        .client()
        .createPayload({ challenge: challenge!, request: challenge!.request as never, url } as never)
      const authorization = Credential.format({ challenge: challenge!, payload } as never)
      const answer = await handler(new Request(url, { headers: { authorization } }))
      expect(answer.status).toBe(503)
      expect(answer.headers.get('retry-after')).toBe('7')
    } finally {
      await store.close()
    }
  })
})
