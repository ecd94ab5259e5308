import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { StoreUnavailableError } from '../Errors.js'
import { MemoryStore } from '../MemoryStore.js'
import { createTestRail } from '../testing/TestMethod.js'
import { create as createServer, type Route } from './Server.js'

// The consumed mark of a challenge (Authorize.ts): a credential whose attempt never settled because the
// store failed around it must not stay "already used" for good. "Servers MUST ensure that concurrent
// requests with the same Payment credential result in at most one successful payment settlement and
// one resource delivery." (draft-httpauth-payment-00 §11.6): no attempt takes over another's mark; the
// process whose release failed takes its own back on the retry, and releases it in the background.

const secret = 'consumed-mark-test-secret-0123456789abcdef'
const url = 'https://api.test/report'
const route: Route = {
  offers: [{ method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }],
}

/**
 * A MemoryStore whose next operation on a `consumed:` key (of the kind armed) is applied and then
 * answered with a StoreUnavailableError: a reply lost after the write landed, as a dropped connection
 * to Redis gives.
 */
class LossyStore extends MemoryStore {
  armed: 'putIfAbsent' | 'compareAndSet' | undefined
  /** Releases of keys holding this text never reach the store (an Idempotency-Key record's). */
  failReleases: string | undefined
  readonly #lose = (op: 'putIfAbsent' | 'compareAndSet', key: string) => {
    if (this.armed !== op || !key.includes('consumed:')) return false
    this.armed = undefined
    return true
  }
  override async putIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const created = await super.putIfAbsent(key, value, ttlMs)
    if (this.#lose('putIfAbsent', key)) throw new StoreUnavailableError()
    return created
  }
  override async compareAndSet(
    key: string,
    expected: string | undefined,
    next: string,
    ttlMs: number,
  ): Promise<boolean> {
    // A release that never reaches the store: the mark stays.
    if (this.#lose('compareAndSet', key)) throw new StoreUnavailableError()
    if (this.failReleases !== undefined && key.includes(this.failReleases) && next === 'released')
      throw new StoreUnavailableError()
    return super.compareAndSet(key, expected, next, ttlMs)
  }
}

function setup(options: { failSettle?: () => boolean; verifyDelayMs?: number } = {}) {
  const rail = createTestRail()
  const store = new LossyStore()
  const reported: string[] = []
  /** A server instance on the shared store, as another process would be. */
  const server = (verifyDelayMs?: number) => {
    const instance = createServer({
      realm: 'api.test',
      secrets: [secret],
      store,
      logger: false,
      onError: (_error, { phase }) => reported.push(phase),
      methods: [
        rail.server({
          ...(verifyDelayMs ? { verifyDelayMs } : {}),
          failWith: () =>
            options.failSettle?.()
              ? new StoreUnavailableError({ detail: 'store down while verifying' })
              : undefined,
        }),
      ],
    })
    const handler = instance.protect(route, () => new Response('the paid report'))
    return (authorization?: string, headers: Record<string, string> = {}) =>
      handler(new Request(url, authorization ? { headers: { authorization, ...headers } } : {}))
  }
  const send = server(options.verifyDelayMs)
  const credential = async () => {
    const unpaid = await send()
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
    const { payload } = await rail
      .client()
      .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
    return { challenge: challenge!, authorization: Credential.format({ challenge: challenge!, payload }) }
  }
  const problem = async (response: Response) => ((await response.json()) as { type: string }).type
  return { rail, store, reported, credential, send, server, problem }
}

describe('the consumed mark of a challenge', () => {
  it('a lost reply to its write: 503, and the retry to this process settles once; never again', async () => {
    const { rail, store, credential, send, problem } = setup()
    const { authorization } = await credential()
    store.armed = 'putIfAbsent'
    const first = await send(authorization)
    expect(first.status).toBe(503)
    expect(rail.settlements()).toBe(0)
    // The mark landed, but this process knows its attempt ended without settling: taken back.
    const retry = await send(authorization)
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(await retry.text()).toBe('the paid report')
    expect(rail.settlements()).toBe(1)
    // Settled: never again, however long after.
    await new Promise((resolve) => setTimeout(resolve, 1_200))
    const again = await send(authorization)
    expect(again.status).toBe(402)
    expect(await problem(again)).toContain('invalid-challenge')
    expect(rail.settlements()).toBe(1)
  })

  it('a failed release after a failed settle: reported, and the retry settles once', async () => {
    let down = true
    const { rail, store, reported, credential, send } = setup({ failSettle: () => down })
    const { authorization } = await credential()
    store.armed = 'compareAndSet'
    const first = await send(authorization)
    expect(first.status).toBe(503)
    expect(reported).toContain('store')
    down = false
    const retry = await send(authorization)
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(rail.settlements()).toBe(1)
    expect((await send(authorization)).status).toBe(402)
  })

  it('with an Idempotency-Key: both releases fail, and the retry with the key settles once, then replays', async () => {
    let down = true
    const { rail, store, reported, credential, send } = setup({ failSettle: () => down })
    const { authorization } = await credential()
    store.armed = 'compareAndSet'
    store.failReleases = 'idem:'
    const key = { 'idempotency-key': 'order-17' }
    const first = await send(authorization, key)
    expect(first.status).toBe(503)
    expect(reported.filter((phase) => phase === 'store')).toHaveLength(2)
    down = false
    store.failReleases = undefined
    // Not a 409 until the record's lease ends (the challenge would expire first): this process's own.
    const retry = await send(authorization, key)
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(await retry.text()).toBe('the paid report')
    const replay = await send(authorization, key)
    expect(replay.status).toBe(200)
    expect(replay.headers.get('payment-receipt')).toBe(retry.headers.get('payment-receipt'))
    expect(rail.settlements()).toBe(1)
  })

  it('another process sees the mark as used until the release lands in the background, then settles', async () => {
    const { rail, store, credential, send, server } = setup()
    const other = server()
    const { authorization } = await credential()
    store.armed = 'putIfAbsent'
    expect((await send(authorization)).status).toBe(503)
    // Another process on the same store cannot tell an abandoned attempt from one in flight.
    expect((await other(authorization)).status).toBe(402)
    await new Promise((resolve) => setTimeout(resolve, 1_300))
    const after = await other(authorization)
    expect(after.status, await after.clone().text()).toBe(200)
    expect(rail.settlements()).toBe(1)
    expect((await send(authorization)).status).toBe(402)
  })

  it('concurrent retries after a lost reply: one settles, the others are refused', async () => {
    const { rail, store, credential, send } = setup()
    const { authorization } = await credential()
    store.armed = 'putIfAbsent'
    expect((await send(authorization)).status).toBe(503)
    const responses = await Promise.all(Array.from({ length: 20 }, () => send(authorization)))
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
    expect(responses.filter((r) => r.status === 402)).toHaveLength(19)
    expect(rail.settlements()).toBe(1)
  })

  it('a credential that settled, or one in flight, is never settled again by another request', async () => {
    const { rail, credential, send, server } = setup({ verifyDelayMs: 300 })
    const other = server()
    const { authorization } = await credential()
    const [first, second] = await Promise.all([
      send(authorization),
      new Promise((resolve) => setTimeout(resolve, 50)).then(() => other(authorization)),
    ])
    expect([first.status, second.status].sort()).toEqual([200, 402])
    expect(rail.settlements()).toBe(1)
  })
})
