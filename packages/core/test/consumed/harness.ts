import * as Challenge from '../../src/Challenge.js'
import * as Credential from '../../src/Credential.js'
import { StoreUnavailableError } from '../../src/Errors.js'
import { MemoryStore } from '../../src/MemoryStore.js'
import type { Store } from '../../src/Store.js'
import { create as createServer, type Route } from '../../src/server/Server.js'
import { createTestRail } from '../../src/testing/TestMethod.js'

export type Op = {
  op: 'putIfAbsent' | 'compareAndSet' | 'delete'
  key: string
  expected?: string | undefined
  next: string
}
/**
 * What to do with one operation on a consumed: key: 'drop' = never reaches the store (throws),
 * 'lose' = applied, reply lost (throws), a promise = held until it resolves, then applied.
 */
export type Action = 'drop' | 'lose' | Promise<unknown> | undefined

/** Wraps any Store; `hook` sees every putIfAbsent/compareAndSet on a `consumed:` key. */
export function scripted(
  inner: Store,
  hook: (op: Op) => Action,
  hookDelete: (key: string) => boolean = () => false,
): Store & { log: string[] } {
  const log: string[] = []
  const run = async <T>(op: Op, apply: () => Promise<T>): Promise<T> => {
    const action = op.key.includes('consumed:') ? hook(op) : undefined
    if (action === 'drop') {
      log.push(`${op.op}(${op.expected ?? ''}->${op.next}) DROPPED`)
      throw new StoreUnavailableError({ detail: 'dropped' })
    }
    if (action instanceof Promise) await action
    const result = await apply()
    log.push(
      `${op.op}(${op.expected ?? ''}->${op.next}) = ${String(result)}${action === 'lose' ? ' (reply lost)' : ''}`,
    )
    if (action === 'lose') throw new StoreUnavailableError({ detail: 'reply lost' })
    return result
  }
  return {
    log,
    putIfAbsent: (key, value, ttl) =>
      run({ op: 'putIfAbsent', key, next: value }, () => inner.putIfAbsent(key, value, ttl)),
    compareAndSet: (key, expected, next, ttl) =>
      run({ op: 'compareAndSet', key, expected, next }, () => inner.compareAndSet(key, expected, next, ttl)),
    get: (key) => inner.get(key),
    set: (key, value, ttl) => inner.set(key, value, ttl),
    delete: (key) =>
      hookDelete(key)
        ? Promise.reject(new StoreUnavailableError({ detail: 'delete dropped' }))
        : inner.delete(key),
    increment: (key, delta, options) => inner.increment(key, delta, options),
  }
}

const secret = 'review-4-secret-0123456789abcdefghijklmnop'
const url = 'https://api.test/report'
const route: Route = {
  offers: [{ method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }],
}

export function setup(
  store: Store,
  options: {
    railDown?: () => boolean
    prefix?: string
    rail?: ReturnType<typeof createTestRail>
    now?: () => number
  } = {},
) {
  const rail = options.rail ?? createTestRail()
  const reported: string[] = []
  const server = () => {
    const instance = createServer({
      realm: 'api.test',
      secrets: [secret],
      store,
      logger: false,
      ...(options.now ? { now: options.now } : {}),
      ...(options.prefix ? { keyPrefix: options.prefix } : {}),
      onError: (_error: unknown, { phase }: { phase: string }) => reported.push(phase),
      methods: [
        rail.server({
          failWith: () =>
            options.railDown?.()
              ? new StoreUnavailableError({ detail: 'rail down (nothing moved)' })
              : undefined,
        }),
      ],
    } as never)
    const handler = instance.protect(route, () => new Response('the paid report'))
    return async (authorization?: string, headers: Record<string, string> = {}) => {
      const response = await handler(
        new Request(url, authorization ? { headers: { authorization, ...headers } } : {}),
      )
      const body = await response.text()
      return `${response.status} ${response.status === 200 ? body : (JSON.parse(body).type as string).split('/').pop()}`
    }
  }
  const send = server()
  const credential = async () => {
    const instance = createServer({
      realm: 'api.test',
      secrets: [secret],
      store: new MemoryStore(),
      logger: false,
      methods: [rail.server()],
    })
    const unpaid = await instance.protect(route, () => new Response(''))(new Request(url))
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
    const { payload } = await rail
      .client()
      .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
    return { challenge: challenge!, authorization: Credential.format({ challenge: challenge!, payload }) }
  }
  return { rail, reported, send, server, credential }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
