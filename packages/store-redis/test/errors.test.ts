import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { inspect } from 'node:util'
import { type Store, StoreUnavailableError } from '@mppkit/core'
import { payThroughServer } from '@mppkit/core/testing'
import { RedisStore, RedisStoreError, redisClientOptions } from '@mppkit/store-redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisUnavailableReason, redisUrl } from './redis.js'

// Permanent error replies (a 500 RedisStoreError) versus outages and transient replies (a 503).

const url = redisUrl
const prefix = `mppkit-test-errors:${Math.random().toString(36).slice(2, 10)}:`

/** A TCP port the OS just handed out, with nothing listening on it any more. */
async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** A throwaway redis-server (no persistence) on a free port, for ACL users and config changes. */
async function startRedis(): Promise<{ url: string; port: number; process: ChildProcess }> {
  const port = await freePort()
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  await new Promise<void>((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 5_000)
    child.once('error', reject)
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    })
  })
  return { url: `redis://127.0.0.1:${port}`, port, process: child }
}

const reason = await redisUnavailableReason()
const noServer = spawnSync('redis-server', ['--version']).error
  ? 'redis-server is not installed (apt-get install -y redis-server)'
  : undefined
if (reason) console.warn(`[skip] RedisStore permanent-error tests on the shared Redis: ${reason}`)
if (noServer) console.warn(`[skip] RedisStore ACL/auth/memory tests: ${noServer}`)

/** The error an operation rejects with. */
const failure = (operation: () => Promise<unknown>): Promise<unknown> =>
  operation().then(
    () => expect.fail('the operation succeeded'),
    (caught: unknown) => caught,
  )

/** Every store operation, on `key`. */
const operations = (store: Store, key: string) => [
  () => store.putIfAbsent(key, '1', 1_000),
  () => store.get(key),
  () => store.set(key, '1', 1_000),
  () => store.delete(key),
  () => store.compareAndSet(key, 'x', 'y', 1_000),
  () => store.increment(key, 1n, { ttlMs: 1_000, max: 5n }),
]

/** Asserts `error` is a 500 RedisStoreError with `replyCode`, whose problem body hides the reply. */
function expectPermanent(error: unknown, replyCode: string, hidden: RegExp): void {
  expect(error).toBeInstanceOf(RedisStoreError)
  expect(error).not.toBeInstanceOf(StoreUnavailableError)
  expect(error).toMatchObject({ replyCode, status: 500, type: 'store-error', retryAfter: undefined })
  const { cause } = error as RedisStoreError
  expect((cause as Error).name).toBe('ReplyError')
  expect((cause as Error).message).toMatch(hidden)
  expect(JSON.stringify((error as RedisStoreError).toProblem())).not.toMatch(hidden)
  // The message, for logs, leads with what Redis replied.
  expect((error as Error).message).toMatch(
    new RegExp(`^Redis at \\S+ refused the operation: ${replyCode}\\b`),
  )
  expect((error as Error).message).toMatch(hidden)
}

describe.skipIf(!!reason)('RedisStore (permanent error replies on the shared Redis)', () => {
  let admin: Redis

  beforeAll(() => {
    admin = new Redis(url, redisClientOptions)
    admin.on('error', () => {})
  })

  afterAll(async () => {
    const [, keys] = await admin.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 10_000)
    if (keys.length > 0) await admin.del(...keys)
    await admin.quit()
  })

  it('answers WRONGTYPE (a list under a key the store reads as a string) with RedisStoreError, reported to onError', async () => {
    await admin.rpush(`${prefix}list`, 'a', 'b')
    const errors: Error[] = []
    const store = new RedisStore({ url, keyPrefix: prefix, onError: (e) => errors.push(e) })
    try {
      for (const operation of [
        () => store.get('list'),
        () => store.compareAndSet('list', 'a', 'b', 1_000),
        () => store.increment('list', 1n, { ttlMs: 1_000 }),
      ])
        expectPermanent(await failure(operation), 'WRONGTYPE', /wrong kind of value/)
      expect(errors).toHaveLength(3)
      expect(errors.every((error) => error instanceof RedisStoreError)).toBe(true)
      // The list is untouched, and the store keeps working on other keys.
      expect(await admin.lrange(`${prefix}list`, 0, -1)).toEqual(['a', 'b'])
      expect(await store.putIfAbsent('fine', '1', 10_000)).toBe(true)
    } finally {
      await store.close()
    }
  })
})

describe.skipIf(!!noServer)('RedisStore (ACL, auth and memory limits on a throwaway redis-server)', () => {
  let server: Awaited<ReturnType<typeof startRedis>>
  let admin: Redis
  const open = 'open:'
  const locked = 'locked:'

  beforeAll(async () => {
    server = await startRedis()
    admin = new Redis(server.url, redisClientOptions)
    admin.on('error', () => {})
    // `app` may use every command but DEL, on `open:*` keys only; `scripted` may not SET, even in a script.
    await admin.acl('SETUSER', 'app', 'on', '>app-password', `~${open}*`, '+@all', '-del')
    await admin.acl('SETUSER', 'scripted', 'on', '>scripted-password', '~*', '+@all', '-set')
  })

  afterAll(async () => {
    admin.disconnect()
    const exited = once(server.process, 'exit')
    server.process.kill('SIGTERM')
    await exited
  })

  const as = (user: string, password: string) => `redis://${user}:${password}@127.0.0.1:${server.port}`

  it('answers NOPERM (ACL denies a key or a command) with RedisStoreError, reported to onError', async () => {
    const errors: Error[] = []
    const store = new RedisStore({
      url: as('app', 'app-password'),
      keyPrefix: locked,
      onError: (e) => errors.push(e),
    })
    try {
      // DEL is denied as a command before its key is looked at; the others for their key.
      for (const operation of operations(store, 'k'))
        expectPermanent(await failure(operation), 'NOPERM', /no permissions to (access|run)/)
      expect(errors.filter((error) => error instanceof RedisStoreError)).toHaveLength(6)
    } finally {
      await store.close()
    }
    const allowed = new RedisStore({ url: as('app', 'app-password'), keyPrefix: open })
    try {
      expect(await allowed.putIfAbsent('k', '1', 10_000)).toBe(true)
      expect(await allowed.increment('n', 2n, { ttlMs: 10_000 })).toEqual({ applied: true, value: 2n })
      expectPermanent(await failure(() => allowed.delete('k')), 'NOPERM', /run the 'del' command/)
    } finally {
      await allowed.close()
    }
  })

  it('answers a command the ACL denies inside a script (ERR) with RedisStoreError', async () => {
    const store = new RedisStore({ url: as('scripted', 'scripted-password'), keyPrefix: open })
    try {
      expect(await store.get('s')).toBeUndefined()
      expectPermanent(
        await failure(() => store.increment('s', 1n, { ttlMs: 10_000 })),
        'ERR',
        /can't run this command/,
      )
    } finally {
      await store.close()
    }
  })

  it('answers a wrong password (WRONGPASS) with RedisStoreError on every try, not only the first', async () => {
    const errors: Error[] = []
    const store = new RedisStore({
      url: as('app', 'wrong-password'),
      keyPrefix: open,
      onError: (e) => errors.push(e),
    })
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        // A command sent during a login attempt gets the WRONGPASS reply itself.
        expectPermanent(await failure(() => store.get('k')), 'WRONGPASS', /invalid username-password/)
        // One sent while the client waits to reconnect fails with a bare MaxRetriesPerRequestError:
        // the refusal the last login got is what it reports.
        while (store.client.status !== 'reconnecting') await new Promise((resolve) => setTimeout(resolve, 5))
        const error = await failure(() => store.get('k'))
        expectPermanent(error, 'WRONGPASS', /invalid username-password/)
        while (store.client.status === 'reconnecting') await new Promise((resolve) => setTimeout(resolve, 5))
      }
      expect(errors.some((error) => error instanceof RedisStoreError)).toBe(true)
    } finally {
      await store.close()
    }
  })

  it('never carries the password of a refused login in an error, its cause or onError', async () => {
    const password = 'pw-that-must-not-leak'
    const errors: Error[] = []
    const store = new RedisStore({
      url: as('app', password),
      keyPrefix: open,
      onError: (e) => errors.push(e),
    })
    try {
      const thrown: unknown[] = []
      for (let attempt = 0; attempt < 2; attempt++) {
        thrown.push(await failure(() => store.get('k')))
        while (store.client.status !== 'reconnecting') await new Promise((resolve) => setTimeout(resolve, 5))
        thrown.push(await failure(() => store.get('k')))
        while (store.client.status === 'reconnecting') await new Promise((resolve) => setTimeout(resolve, 5))
      }
      for (const error of thrown) expectPermanent(error, 'WRONGPASS', /invalid username-password/)
      expect(errors.length).toBeGreaterThan(0)
      // ioredis attaches the failed AUTH command (user and password) to its reply error; a logger that
      // prints an error with its cause (pino, util.inspect, console.error) would print the password.
      for (const error of [...thrown, ...errors]) {
        expect(inspect(error, { depth: 10 })).not.toContain(password)
        expect(inspect((error as Error).cause, { depth: 10, showHidden: true })).not.toContain(password)
      }
    } finally {
      await store.close()
    }
  })

  it('keeps OOM (maxmemory reached) a transient StoreUnavailableError', async () => {
    const store = new RedisStore({ url: server.url, keyPrefix: open })
    try {
      await admin.config('SET', 'maxmemory', '1')
      const error = await failure(() => store.set('oom', 'x', 10_000))
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect(error).toMatchObject({ status: 503, retryAfter: 1 })
      expect((error as StoreUnavailableError).cause).toMatchObject({ name: 'ReplyError' })
      expect(((error as StoreUnavailableError).cause as Error).message).toMatch(/^OOM /)
      expect((error as Error).message).toMatch(/^Redis unavailable at \S+: OOM /)
    } finally {
      await admin.config('SET', 'maxmemory', '0')
      await store.close()
    }
    const store2 = new RedisStore({ url: server.url, keyPrefix: open })
    await store2.set('oom', 'x', 10_000)
    await store2.close()
  })

  it('through a payment server: a permanent store error is a 500 problem without Retry-After or internals', async () => {
    const errors: Error[] = []
    const store = new RedisStore({
      url: as('app', 'app-password'),
      keyPrefix: locked,
      onError: (e) => errors.push(e),
    })
    try {
      const { response, runs } = await payThroughServer(store)
      expect(response.status).toBe(500)
      expect(response.headers.get('content-type')).toBe('application/problem+json')
      expect(response.headers.get('retry-after')).toBeNull()
      const text = await response.text()
      expect(JSON.parse(text)).toMatchObject({
        type: 'https://paymentauth.org/problems/store-error',
        status: 500,
        reason: 'store-error',
      })
      expect(text).not.toMatch(/NOPERM|permission|locked|app|\bat\b.*\(|RedisStore\.ts/)
      expect(runs).toBe(0)
      expect(errors.some((error) => error instanceof RedisStoreError)).toBe(true)
    } finally {
      await store.close()
    }
  })

  it('through a payment server: an unreachable store is still a 503 with Retry-After', async () => {
    const store = new RedisStore({ url: `redis://127.0.0.1:${await freePort()}`, keyPrefix: open })
    try {
      const { response, runs } = await payThroughServer(store)
      expect(response.status).toBe(503)
      expect(response.headers.get('retry-after')).toBe('1')
      expect(runs).toBe(0)
    } finally {
      await store.close()
    }
  })
})
