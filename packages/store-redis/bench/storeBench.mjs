// Shared by redis.bench.mjs and postgres.bench.mjs (this file is not a *.bench.mjs, so `npm run bench`
// does not run it by itself): consume (putIfAbsent) ops/s on the bare store, and verify + consume of a
// paid request through the core Server on that store, each sequentially and with requests in flight at
// once, as one process sees them. Imports the built packages.
import { Challenge, Credential } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { noopMethod } from '@mppkit/core/testing'

const url = 'http://bench.test/resource'
const route = {
  offers: [{ method: 'test', request: { amount: '1000', currency: 'usd', recipient: 'merchant' } }],
}

// Runs `operation(i)` for i in [0, total) with at most `concurrency` in flight; returns ops/s.
async function measure(total, concurrency, operation) {
  let next = 0
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await operation(next++)
    }),
  )
  return total / (Number(process.hrtime.bigint() - started) / 1e9)
}

/**
 * Benchmarks one store. `label` prefixes the row names; `sizes` sets the operation counts.
 *
 * @param {string} label
 * @param {import('@mppkit/core').Store} store
 */
export async function benchStore(
  label,
  store,
  { sequential = 2_000, concurrent = 8_000, concurrency = 32 } = {},
) {
  const rows = []
  // Text rows (the runner prints them as they are) that still carry the number in `mppkit`.
  const row = (name, opsPerSecond) =>
    rows.push({
      name,
      mppkit: opsPerSecond,
      text: `${Math.round(opsPerSecond).toLocaleString('en-US')} ops/s`,
    })
  const run = Math.random().toString(36).slice(2, 10)
  const ttlMs = 60_000

  // Warm up connections (and, for PostgreSQL, the migration) outside the timed region.
  await measure(200, concurrency, (i) => store.putIfAbsent(`warm:${run}:${i}`, '1', ttlMs))

  const consume = async (prefix, i) => {
    if (!(await store.putIfAbsent(`${prefix}:${run}:${i}`, '1', ttlMs)))
      throw new Error('key already present')
  }
  row(`${label} consume (putIfAbsent), 1 in flight`, await measure(sequential, 1, (i) => consume('seq', i)))
  row(
    `${label} consume (putIfAbsent), ${concurrency} in flight`,
    await measure(concurrent, concurrency, (i) => consume('par', i)),
  )
  // Refusing an already-consumed id is the other outcome of every consume decision.
  row(
    `${label} duplicate consume refused, ${concurrency} in flight`,
    await measure(concurrent, concurrency, async (i) => {
      if (await store.putIfAbsent(`par:${run}:${i}`, '1', ttlMs)) throw new Error('duplicate accepted')
    }),
  )

  // verify + consume through the Server: each request carries a fresh credential, prepared outside the
  // timed region; the server checks the challenge binding, expiry and payload, consumes the id in the
  // store (one putIfAbsent round trip), settles with a no-op method and decorates the response.
  const server = createServer({
    realm: 'bench.test',
    secrets: ['bench-secret-key-0123456789abcdefghijklmnop'],
    methods: [noopMethod()],
    store,
    keyPrefix: `bench:${run}:`,
  })
  const handler = server.protect(route, () => new Response(null))
  const paidRequests = async (count) => {
    const out = []
    for (let i = 0; i < count; i++) {
      // Each credential answers its own challenge: ids are single-use.
      const issued = await handler(new Request(url))
      const challenge = Challenge.parseAll(issued.headers.get('www-authenticate'))[0]
      const authorization = Credential.format({ challenge, payload: { transfer: 'tx' } })
      out.push(new Request(url, { headers: { authorization } }))
    }
    return out
  }
  const pay = (requests) => async (i) => {
    const response = await handler(requests[i])
    if (response.status !== 200)
      throw new Error(`expected 200, got ${response.status}: ${await response.text()}`)
  }
  const sequentialRequests = await paidRequests(Math.min(sequential, 1_500))
  row(
    `${label} verify + consume via Server, 1 in flight`,
    await measure(sequentialRequests.length, 1, pay(sequentialRequests)),
  )
  const concurrentRequests = await paidRequests(Math.min(concurrent, 4_000))
  row(
    `${label} verify + consume via Server, ${concurrency} in flight`,
    await measure(concurrentRequests.length, concurrency, pay(concurrentRequests)),
  )
  return rows
}
