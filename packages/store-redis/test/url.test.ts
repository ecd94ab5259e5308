// The `url` option. A password with special characters left unescaped must never reach logs (Node's
// DEP0170 warning on stderr, the error `new RedisStore` throws, operation errors, onError), and a URL
// that can never connect is a ConfigurationError when the store is created, not a 503 on every operation.
// A correctly percent-encoded one logs in with its username, password and database number.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { inspect } from 'node:util'
import { ConfigurationError } from '@mppkit/core'
import { RedisStore } from '@mppkit/store-redis'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'

const dump = (value: unknown) => inspect(value, { depth: 10, showHidden: true })

/** Everything written to stderr and every process warning while a test runs. */
const logged: string[] = []
const onWarning = (warning: Error) => logged.push(dump(warning))
const stderrWrite = process.stderr.write
beforeEach(() => {
  logged.length = 0
  process.on('warning', onWarning)
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]) => {
    logged.push(String(chunk))
    return (stderrWrite as (...args: unknown[]) => boolean).call(process.stderr, chunk, ...rest)
  }) as typeof process.stderr.write
})
afterEach(() => {
  process.off('warning', onWarning)
  process.stderr.write = stderrWrite
})

/** Creates a store from `url` and runs one operation; returns whatever was thrown, and what onError got. */
async function attempt(url: string): Promise<{ thrown: unknown; reported: Error[] }> {
  const reported: Error[] = []
  let store: RedisStore | undefined
  let thrown: unknown
  try {
    store = new RedisStore({
      url,
      keyPrefix: 'mppkit-test-url:',
      timeoutMs: 1_500,
      onError: (e) => reported.push(e),
    })
    await store.get('k')
  } catch (error) {
    thrown = error
  } finally {
    store?.client.disconnect()
  }
  // Lets a deferred warning or a reconnect error surface before the checks.
  await new Promise((resolve) => setTimeout(resolve, 50))
  return { thrown, reported }
}

/** Asserts a ConfigurationError with no cause and no input, and that `secret` appears nowhere. */
async function expectRefused(url: string, secret: string): Promise<void> {
  const { thrown, reported } = await attempt(url)
  expect(thrown).toBeInstanceOf(ConfigurationError)
  expect((thrown as Error).message).toMatch(/^RedisStore: url is not a valid redis:\/\/ URL/)
  expect(thrown).not.toHaveProperty('cause')
  expect(thrown).not.toHaveProperty('input')
  for (const text of [dump(thrown), ...reported.map(dump), ...logged]) expect(text).not.toContain(secret)
}

describe('RedisStore url: a mistyped password never shows', () => {
  it("password with an unescaped '/': no DEP0170 warning quoting it, a ConfigurationError", async () => {
    await expectRefused('redis://app:Pw1-slash/x@127.0.0.1:6379', 'Pw1-slash')
  })

  it("password with an unescaped '[': a ConfigurationError without the URL in `input`", async () => {
    await expectRefused('redis://app:Pw2-bracket@[::1:6379', 'Pw2-bracket')
  })

  it("numeric password before an unescaped '#' or '?' is never read as the port", async () => {
    await expectRefused('redis://app:480213#x@127.0.0.1:6379', '480213')
    // A number that would be a valid port: the rest of the URL (a fragment, a query) gives it away.
    await expectRefused('redis://app:4802#x@127.0.0.1:6379', '4802')
    await expectRefused('redis://app:4802?x@127.0.0.1:6379', '4802')
    await expectRefused('redis://app:4802/x@127.0.0.1:6379', '4802')
  })

  it('a malformed percent-encoding in the password', async () => {
    await expectRefused('redis://app:Pw3%zz@127.0.0.1:6379', 'Pw3')
  })
})

describe('RedisStore url: one that can never connect is a ConfigurationError, not a 503', () => {
  for (const [url, why] of [
    ['redis://127.0.0.1:99999', /parse|port/],
    ['redis://127.0.0.1:0', /port/],
    ['http://127.0.0.1:6379', /scheme/],
    ['127.0.0.1:6379', /scheme|parse/],
    ['redis://127.0.0.1:6379/db', /database number/],
    ['redis://127.0.0.1:6379/?tls=yes', /query parameter/],
    ['redis://:6379', /parse|host/],
  ] as const)
    it(url, async () => {
      const { thrown } = await attempt(url)
      expect(thrown).toBeInstanceOf(ConfigurationError)
      expect((thrown as Error).message).toMatch(why)
      expect(thrown).not.toHaveProperty('cause')
    })
})

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

const noServer = spawnSync('redis-server', ['--version']).error
  ? 'redis-server is not installed (apt-get install -y redis-server)'
  : undefined
if (noServer) console.warn(`[skip] RedisStore url login tests: ${noServer}`)

describe.skipIf(!!noServer)('RedisStore url: a percent-encoded one logs in (throwaway redis-server)', () => {
  // Every character that broke the legacy parser, and a few more, percent-encoded in the URL.
  const password = 'Pw/#?[]@:% é-4'
  let port = 0
  let server: ChildProcess | undefined
  let admin: Redis

  beforeAll(async () => {
    port = await freePort()
    server = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    await new Promise<void>((resolve, reject) => {
      let output = ''
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 5_000)
      server?.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer)
          resolve()
        }
      })
    })
    admin = new Redis({ port, host: '127.0.0.1' })
    await admin.call('ACL', 'SETUSER', 'app', 'on', `>${password}`, '~*', '+@all')
  })

  afterAll(async () => {
    admin?.disconnect()
    server?.kill()
    if (server) await once(server, 'exit')
  })

  it('username, password and database number reach Redis', async () => {
    const url = `redis://app:${encodeURIComponent(password)}@127.0.0.1:${port}/3`
    const store = new RedisStore({ url, keyPrefix: 'p:' })
    try {
      await store.set('k', 'v', 60_000)
      expect(await store.get('k')).toBe('v')
      expect(await store.client.call('ACL', 'WHOAMI')).toBe('app')
      await admin.select(3)
      expect(await admin.get('p:k')).toBe('v')
    } finally {
      await store.close()
    }
  })

  it('IPv6 host in brackets and the default port form parse', async () => {
    const store = new RedisStore({
      url: `redis://app:${encodeURIComponent(password)}@[::1]:${port}`,
      keyPrefix: 'p:',
    })
    expect(store.client.options).toMatchObject({ host: '::1', port, username: 'app', password })
    store.client.disconnect()
    const plain = new RedisStore({ url: 'redis://localhost', keyPrefix: 'p:' })
    expect(plain.client.options).toMatchObject({ host: 'localhost', port: 6379 })
    plain.client.disconnect()
  })

  it('a wrong password is reported without it', async () => {
    const wrong = 'Wr0ng/#pass'
    const { thrown, reported } = await attempt(`redis://app:${encodeURIComponent(wrong)}@127.0.0.1:${port}`)
    expect(thrown).toBeDefined()
    for (const text of [dump(thrown), ...reported.map(dump), ...logged]) {
      expect(text).not.toContain(wrong)
      expect(text).not.toContain(encodeURIComponent(wrong))
    }
  })
})
