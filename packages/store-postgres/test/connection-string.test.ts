// The `connectionString` option. One that can never connect (does not parse, port out of range, another
// scheme, a password cut at an unescaped `#`) is a ConfigurationError when the store is created, which
// never quotes the string: pg parses it only at connect time, and every operation was a 503 with
// Retry-After (a passing outage to clients and health checks) for ever.
import { inspect } from 'node:util'
import { ConfigurationError } from '@mppkit/core'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { PostgresStore } from '../src/PostgresStore.js'

const dump = (value: unknown) => inspect(value, { depth: 10, showHidden: true })
const url = process.env.MPPKIT_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

/** Creates a store from `connectionString` and runs one operation; returns what was thrown and reported. */
async function attempt(connectionString: string): Promise<{ thrown: unknown; reported: Error[] }> {
  const reported: Error[] = []
  let thrown: unknown
  let store: PostgresStore | undefined
  try {
    store = new PostgresStore({
      connectionString,
      schema: 'mppkit_test_cs',
      timeoutMs: 1_500,
      cleanupIntervalMs: false,
      autoMigrate: false,
      onError: (e) => reported.push(e),
    })
    await store.get('k')
  } catch (error) {
    thrown = error
  } finally {
    await store?.close()
  }
  return { thrown, reported }
}

describe('PostgresStore connectionString', () => {
  for (const [connectionString, secret, why] of [
    ['postgres://app@127.0.0.1:99999/test', undefined, /does not parse/],
    ['postgres://app@127.0.0.1:0/test', undefined, /port/],
    ['mysql://app@127.0.0.1:3306/test', undefined, /scheme/],
    ['postgres://app:Pw1-slash/x@127.0.0.1:5432/test', 'Pw1-slash', /does not parse/],
    ['postgres://app:Pw2-bracket@[::1:5432/test', 'Pw2-bracket', /does not parse/],
    ['postgres://app:480213#x@127.0.0.1:5432/test', '480213', /does not parse/],
    ['postgres://app:4802#x@127.0.0.1:5432/test', '4802', /fragment/],
  ] as const)
    it(`refuses ${secret ? 'a mistyped password' : connectionString} with a ConfigurationError that never quotes it`, async () => {
      const { thrown, reported } = await attempt(connectionString)
      expect(thrown).toBeInstanceOf(ConfigurationError)
      expect((thrown as Error).message).toMatch(why)
      expect(thrown).not.toHaveProperty('cause')
      expect(thrown).not.toHaveProperty('input')
      expect(reported).toEqual([])
      for (const part of [connectionString, '127.0.0.1', ...(secret ? [secret] : [])])
        expect(dump(thrown)).not.toContain(part)
    })

  it('accepts what pg accepts: a URL with a percent-encoded password, spaces, a socket directory', async () => {
    for (const accepted of [
      'postgres://app:Pw%2F%23%3F%5B@127.0.0.1:5432/test',
      'postgresql://app:p w@localhost/test?sslmode=disable',
      'postgres://app@/test?host=/var/run/postgresql',
      '/var/run/postgresql test',
      'socket:/var/run/postgresql?db=test',
    ]) {
      const store = new PostgresStore({
        connectionString: accepted,
        schema: 'mppkit_test_cs',
        cleanupIntervalMs: false,
      })
      await store.close()
    }
  })

  it('a valid connection string still connects', async () => {
    const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 })
    probe.on('error', () => {})
    const reachable = await probe.connect().then(
      () => true,
      () => false,
    )
    await probe.end().catch(() => {})
    if (!reachable) return
    const store = new PostgresStore({
      connectionString: url,
      schema: 'mppkit_test_cs',
      cleanupIntervalMs: false,
      autoMigrate: false,
    })
    try {
      expect((await store.pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }])
    } finally {
      await store.close()
    }
  })
})
