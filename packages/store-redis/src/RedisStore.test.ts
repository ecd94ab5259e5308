import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import { ConfigurationError, StoreUnavailableError } from '@mppkit/core'
import { describeStore } from '@mppkit/core/testing'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisStore, redisClientOptions } from './RedisStore.js'

const url = process.env.MPPKIT_REDIS_URL ?? 'redis://127.0.0.1:6379'
// A random prefix per run: parallel runs and other users of this Redis never see our keys.
const prefix = `mppkit-test:${Math.random().toString(36).slice(2, 10)}:`

async function probe(): Promise<string | undefined> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return undefined
  } catch (error) {
    return `Redis unreachable at ${url} (${(error as Error).message}); start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no, or set MPPKIT_REDIS_URL`
  } finally {
    client.disconnect()
  }
}

const reason = await probe()

describeStore('RedisStore', () => new RedisStore({ url, keyPrefix: prefix }), { skip: reason, instances: 4 })

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

describe('RedisStore (outage)', () => {
  it('throws StoreUnavailableError quickly when nothing listens, without an unhandled error event', async () => {
    const port = await closedPort()
    const errors: Error[] = []
    const store = new RedisStore({
      url: `redis://127.0.0.1:${port}`,
      keyPrefix: prefix,
      onError: (e) => errors.push(e),
    })
    try {
      for (const operation of [
        () => store.putIfAbsent('a', '1', 1_000),
        () => store.get('a'),
        () => store.set('a', '1', 1_000),
        () => store.delete('a'),
        () => store.compareAndSet('a', 'x', 'y', 1_000),
        () => store.increment('a', 1n, { ttlMs: 1_000, max: 5n }),
      ]) {
        const started = Date.now()
        const error = await operation().catch((caught: unknown) => caught)
        expect(error).toBeInstanceOf(StoreUnavailableError)
        expect((error as StoreUnavailableError).status).toBe(503)
        expect((error as StoreUnavailableError).retryAfter).toBe(1)
        // The message (for logs) leads with the cause; the problem stays generic.
        expect((error as Error).message).toBe(`Redis unreachable at 127.0.0.1:${port}: ECONNREFUSED`)
        expect((error as StoreUnavailableError).toProblem().detail).toBe('Payment store unavailable')
        expect(Date.now() - started).toBeLessThan(3_000)
      }
      expect(errors.length).toBeGreaterThan(0)
      expect(errors[0]?.message).toMatch(/ECONNREFUSED/)
    } finally {
      await store.close()
    }
  })
})

describe.skipIf(!!reason)('RedisStore', () => {
  let admin: Redis

  beforeAll(() => {
    admin = new Redis(url, redisClientOptions)
    admin.on('error', () => {})
  })

  afterAll(async () => {
    // Remove every key this run wrote (the shared suite included). As bytes: a key with an unpaired
    // surrogate is not UTF-8, and a key read back as a string would name another key.
    let cursor = '0'
    do {
      const [next, keys] = await admin.scanBuffer(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000)
      if (keys.length > 0) await admin.del(...keys)
      cursor = next.toString()
    } while (cursor !== '0')
    expect(
      await admin.scanBuffer('0', 'MATCH', `${prefix}*`, 'COUNT', 10_000).then(([, keys]) => keys),
    ).toEqual([])
    await admin.quit()
  })

  it('stores keyPrefix + key with a PX TTL on every write', async () => {
    const store = new RedisStore({ url, keyPrefix: prefix })
    try {
      await store.putIfAbsent('layout:consumed', '1', 10_000)
      await store.increment('layout:counter', 5n, { ttlMs: 20_000 })
      await store.set('layout:value', 'v', 30_000)
      await store.compareAndSet('layout:value', 'v', 'w', 40_000)
      expect(await admin.get(`${prefix}layout:consumed`)).toBe('1')
      expect(await admin.get(`${prefix}layout:counter`)).toBe('5')
      expect(await admin.get(`${prefix}layout:value`)).toBe('w')
      for (const [key, max] of [
        ['layout:consumed', 10_000],
        ['layout:counter', 20_000],
        ['layout:value', 40_000],
      ] as const) {
        const pttl = await admin.pttl(prefix + key)
        expect(pttl).toBeGreaterThan(max - 5_000)
        expect(pttl).toBeLessThanOrEqual(max)
      }
    } finally {
      await store.close()
    }
  })

  it('keeps the Redis key every well-formed key always had; a key with an unpaired surrogate gets WTF-8 bytes of its own', async () => {
    const client = new Redis(url, redisClientOptions)
    // Every command the store sends, by name: the key mapping must add none.
    const sent: string[] = []
    const sendCommand = client.sendCommand.bind(client)
    client.sendCommand = (command, stream) => {
      sent.push(command.name)
      return sendCommand(command, stream)
    }
    const store = new RedisStore({ client, keyPrefix: prefix })
    const bytes = (...parts: (string | number[])[]) =>
      Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(part) : Buffer.from(part))))
    try {
      // What the previous version wrote (and a process still running it writes): `keyPrefix + key`.
      const long = `compat:${'0123456789abcdef'.repeat(6_250)}`
      const wellFormed = [
        'compat:plain',
        'compat:ключ/✓ 🚀',
        'compat:a\u0000b',
        'compat:\ufffd',
        'compat:x\ud83d\ude80',
        long,
      ]
      for (const [index, k] of wellFormed.entries()) {
        expect(store.redisKey(k)).toBe(prefix + k)
        await admin.set(prefix + k, `old${index}`, 'PX', 10_000)
      }
      for (const [index, k] of wellFormed.entries()) {
        expect(await store.get(k)).toBe(`old${index}`)
        expect(await store.putIfAbsent(k, 'replay', 10_000)).toBe(false)
        expect(await store.compareAndSet(k, `old${index}`, `new${index}`, 10_000)).toBe(true)
        expect(await admin.get(prefix + k)).toBe(`new${index}`)
      }
      await admin.set(`${prefix}compat:spent`, '41', 'PX', 10_000)
      expect(await store.increment('compat:spent', 1n, { ttlMs: 10_000 })).toEqual({
        applied: true,
        value: 42n,
      })

      // Unpaired surrogates: 3 bytes each (ED A0–BF …), never U+FFFD (EF BF BD), which a well-formed key has.
      const lone: [string, Buffer][] = [
        ['compat:\ud800', bytes(`${prefix}compat:`, [0xed, 0xa0, 0x80])],
        ['compat:\udc00', bytes(`${prefix}compat:`, [0xed, 0xb0, 0x80])],
        ['compat:a\udfffb', bytes(`${prefix}compat:a`, [0xed, 0xbf, 0xbf], 'b')],
        ['compat:x\ude80\ud83d🚀', bytes(`${prefix}compat:x`, [0xed, 0xba, 0x80, 0xed, 0xa0, 0xbd], '🚀')],
      ]
      // The atomic script is loaded (a first EVALSHA may meet NOSCRIPT and send EVAL).
      await store.atomic([{ op: 'check', key: 'compat:warm-up', equals: undefined }])
      sent.length = 0
      for (const [index, [k, redisKey]] of lone.entries()) {
        expect(store.redisKey(k)).toEqual(redisKey)
        expect(await store.putIfAbsent(k, `lone${index}`, 10_000)).toBe(true)
        expect(await admin.getBuffer(redisKey).then(String)).toBe(`lone${index}`)
        expect(await admin.pttl(redisKey)).toBeGreaterThan(5_000)
      }
      expect(await admin.get(`${prefix}compat:\ufffd`)).toBe('new3')
      expect(
        await store.atomic([
          { op: 'check', key: lone[0]![0], equals: 'lone0' },
          { op: 'compareAndSet', key: lone[1]![0], expected: 'lone1', next: 'swapped', ttlMs: 10_000 },
          { op: 'increment', key: 'compat:\ud800:n', delta: 2n, ttlMs: 10_000 },
        ]),
      ).toMatchObject({ completed: true })
      expect(await admin.getBuffer(lone[1]![1]).then(String)).toBe('swapped')
      expect(await admin.getBuffer(bytes(`${prefix}compat:`, [0xed, 0xa0, 0x80], ':n')).then(String)).toBe(
        '2',
      )
      await store.delete(lone[0]![0])
      expect(await admin.exists(lone[0]![1])).toBe(0)
      // One command per operation, one EVALSHA per atomic batch: the mapping is computed in the process.
      expect(sent).toEqual(['set', 'set', 'set', 'set', 'evalsha', 'del'])

      // An unpaired surrogate in keyPrefix would reach Redis as U+FFFD, sharing the namespace of the
      // prefix with U+FFFD in its place: it is refused (test/key-prefix.test.ts).
      expect(() => new RedisStore({ client, keyPrefix: `${prefix}odd\udc00:` })).toThrow(ConfigurationError)
    } finally {
      await store.close()
      await client.quit()
    }
  })

  it('reloads its scripts after SCRIPT FLUSH (EVALSHA falls back to EVAL)', async () => {
    const store = new RedisStore({ url, keyPrefix: prefix })
    try {
      expect(await store.increment('flush', 1n, { ttlMs: 10_000 })).toEqual({ applied: true, value: 1n })
      await admin.script('FLUSH')
      expect(await store.increment('flush', 1n, { ttlMs: 10_000 })).toEqual({ applied: true, value: 2n })
      await admin.script('FLUSH')
      await store.set('flush-cas', 'a', 10_000)
      expect(await store.compareAndSet('flush-cas', 'a', 'b', 10_000)).toBe(true)
    } finally {
      await store.close()
    }
  })

  it('uses a client passed in and leaves it open on close; the closed store answers nothing', async () => {
    const client = new Redis(url, redisClientOptions)
    const store = new RedisStore({ client, keyPrefix: prefix })
    expect(await store.putIfAbsent('own-client', '1', 10_000)).toBe(true)
    await store.close()
    await store.close()
    expect(await client.get(`${prefix}own-client`)).toBe('1')
    // The client still works for its owner, but the store, closed, never answers as if it were open.
    await expect(store.putIfAbsent('own-client:after', '1', 10_000)).rejects.toBeInstanceOf(
      StoreUnavailableError,
    )
    expect(await client.get(`${prefix}own-client:after`)).toBeNull()
    expect(client.listenerCount('error')).toBe(0)
    await client.quit()
  })

  it('reconnects after its connection is killed (CLIENT KILL)', async () => {
    const errors: Error[] = []
    const store = new RedisStore({ url, keyPrefix: prefix, onError: (e) => errors.push(e) })
    try {
      expect(await store.putIfAbsent('kill:before', '1', 10_000)).toBe(true)
      const id = await store.client.client('ID')
      const reconnected = once(store.client, 'ready')
      expect(await admin.client('KILL', 'ID', String(id))).toBe(1)
      // An operation racing the kill either runs or fails as unavailable, never anything else.
      const racing = await store.get('kill:before').catch((caught: unknown) => caught)
      if (racing !== '1') expect(racing).toBeInstanceOf(StoreUnavailableError)
      await reconnected
      expect(await store.client.client('ID')).not.toBe(id)
      expect(await store.putIfAbsent('kill:after', '1', 10_000)).toBe(true)
      expect(await store.increment('kill:counter', 1n, { ttlMs: 10_000 })).toEqual({
        applied: true,
        value: 1n,
      })
    } finally {
      await store.close()
    }
  })

  it('fails an in-flight operation with StoreUnavailableError when the connection drops, and never resends it', async () => {
    const store = new RedisStore({ url, keyPrefix: prefix })
    try {
      await store.get('warm-up')
      const id = await store.client.client('ID')
      // Hold writes on the server so that the put is in flight when its connection is killed.
      await admin.client('PAUSE', 2_000, 'WRITE')
      try {
        const started = Date.now()
        const pending = store.putIfAbsent('inflight', '1', 10_000).catch((caught: unknown) => caught)
        await new Promise((resolve) => setTimeout(resolve, 100))
        const reconnected = once(store.client, 'ready')
        await admin.client('KILL', 'ID', String(id))
        expect(await pending).toBeInstanceOf(StoreUnavailableError)
        expect(Date.now() - started).toBeLessThan(1_500)
        await reconnected
      } finally {
        await admin.client('UNPAUSE')
      }
      // The killed command never ran and was not resent behind our back: the key is still free.
      expect(await admin.get(`${prefix}inflight`)).toBeNull()
      expect(await store.putIfAbsent('inflight', '2', 10_000)).toBe(true)
    } finally {
      await store.close()
    }
  })

  it('matches bigint arithmetic for any current value, delta and bounds (decimal strings in Lua)', async () => {
    const store = new RedisStore({ url, keyPrefix: prefix })
    const integer = fc.oneof(
      fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }),
      fc.bigInt({ min: -1000n, max: 1000n }),
      fc.constantFrom(0n, 2n ** 53n, -(2n ** 53n), 2n ** 64n - 1n, 10n ** 18n),
    )
    try {
      await fc.assert(
        fc.asyncProperty(
          integer,
          integer,
          fc.option(integer, { nil: undefined }),
          fc.option(integer, { nil: undefined }),
          async (current, delta, min, max) => {
            const key = `property:${Math.random().toString(36).slice(2)}`
            await store.set(key, current.toString(), 10_000)
            const next = current + delta
            const applied = (min === undefined || next >= min) && (max === undefined || next <= max)
            const options = {
              ttlMs: 10_000,
              ...(min === undefined ? {} : { min }),
              ...(max === undefined ? {} : { max }),
            }
            expect(await store.increment(key, delta, options)).toEqual({
              applied,
              value: applied ? next : current,
            })
            expect(await store.get(key)).toBe((applied ? next : current).toString())
          },
        ),
        { numRuns: 300 },
      )
    } finally {
      await store.close()
    }
  })

  it('reports a counter holding a non-integer as a typed error, not as an outage', async () => {
    const store = new RedisStore({ url, keyPrefix: prefix })
    try {
      await store.set('text', '12a', 10_000)
      const error = await store.increment('text', 1n, { ttlMs: 10_000 }).catch((caught: unknown) => caught)
      expect(error).not.toBeInstanceOf(StoreUnavailableError)
      expect((error as { code?: string }).code).toBe('store_invalid_counter')
    } finally {
      await store.close()
    }
  })
})

/** A TCP server that accepts connections and never answers (a hung or black-holed Redis). */
async function blackHole(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets: Socket[] = []
  const server = createServer((socket) => {
    sockets.push(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  return {
    url: `redis://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}

/** What `pending` came to within `ms`: its error, its value, or `'still pending'`. */
async function within(pending: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve('still pending'), ms)
  })
  try {
    return await Promise.race([pending.catch((error: unknown) => error), late])
  } finally {
    clearTimeout(timer)
  }
}

describe('RedisStore (a client passed in)', () => {
  it('refuses a client that resends unanswered commands after a reconnect (ioredis defaults)', () => {
    for (const options of [{}, { ...redisClientOptions, autoResendUnfulfilledCommands: true }]) {
      const client = new Redis(url, { ...options, lazyConnect: true })
      expect(() => new RedisStore({ client, keyPrefix: prefix })).toThrow(ConfigurationError)
      expect(() => new RedisStore({ client, keyPrefix: prefix })).toThrow(
        /autoResendUnfulfilledCommands.*redisClientOptions/,
      )
      // Refused before the store attached anything to the client.
      expect(client.listenerCount('error')).toBe(0)
      client.disconnect()
    }
    const client = new Redis(url, { ...redisClientOptions, lazyConnect: true })
    expect(() => new RedisStore({ client, keyPrefix: prefix })).not.toThrow()
    client.disconnect()
  })

  it('refuses a timeoutMs that is not a positive number of milliseconds', () => {
    for (const timeoutMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2_147_483_648])
      expect(() => new RedisStore({ url, keyPrefix: prefix, timeoutMs })).toThrow(ConfigurationError)
  })

  it('fails every operation with StoreUnavailableError within timeoutMs when Redis never answers, whatever the client', async () => {
    const hole = await blackHole()
    // No commandTimeout, maxRetriesPerRequest 20, default connectTimeout: on its own this client waits forever.
    const client = new Redis(hole.url, { autoResendUnfulfilledCommands: false })
    client.on('error', () => {})
    const given = new RedisStore({ client, keyPrefix: prefix, timeoutMs: 300 })
    const own = new RedisStore({ url: hole.url, keyPrefix: prefix, timeoutMs: 300 })
    try {
      for (const store of [given, own]) {
        const operations = [
          () => store.putIfAbsent('k', '1', 1_000),
          () => store.get('k'),
          () => store.set('k', '1', 1_000),
          () => store.delete('k'),
          () => store.compareAndSet('k', '1', '2', 1_000),
          () => store.increment('n', 1n, { ttlMs: 1_000 }),
          () =>
            store.atomic([{ op: 'compareAndSet', key: 'k', expected: undefined, next: '1', ttlMs: 1_000 }]),
        ]
        const started = Date.now()
        const outcomes = await Promise.all(operations.map((operation) => within(operation(), 3_000)))
        expect(Date.now() - started).toBeLessThan(2_500)
        for (const outcome of outcomes) {
          expect(outcome).toBeInstanceOf(StoreUnavailableError)
          expect(outcome).toMatchObject({ status: 503, retryAfter: 1 })
          expect((outcome as Error).message).toMatch(
            /^Redis at 127\.0\.0\.1:\d+ did not answer within 300 ms$/,
          )
        }
      }
    } finally {
      client.disconnect()
      // Closing is bounded too: QUIT gets no answer either, and the connection is dropped instead.
      const closing = Date.now()
      await own.close()
      expect(Date.now() - closing).toBeLessThan(1_000)
      await hole.close()
    }
  })
})
