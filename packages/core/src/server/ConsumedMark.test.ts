import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { StoreUnavailableError } from '../Errors.js'
import { MemoryStore } from '../MemoryStore.js'
import type { Store } from '../Store.js'
import { createTestRail } from '../testing/TestMethod.js'
import { create as createServer, type Route } from './Server.js'

// The consumed mark of a challenge (Authorize.ts): a credential whose attempt never settled because the
// store failed around it must not stay "already used" for good. "Servers MUST ensure that concurrent
// requests with the same Payment credential result in at most one successful payment settlement and
// one resource delivery." (draft-httpauth-payment-00 §11.6): the same credential may take over such a
// mark only after its lease, once, and never a mark that settled.

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
  armed: 'putIfAbsent' | 'delete' | undefined
  readonly #lose = (op: 'putIfAbsent' | 'delete', key: string) => {
    if (this.armed !== op || !key.includes('consumed:')) return false
    this.armed = undefined
    return true
  }
  override async putIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const created = await super.putIfAbsent(key, value, ttlMs)
    if (this.#lose('putIfAbsent', key)) throw new StoreUnavailableError()
    return created
  }
  override async delete(key: string): Promise<void> {
    // A delete that never reaches the store: the mark stays.
    if (this.#lose('delete', key)) throw new StoreUnavailableError()
    return super.delete(key)
  }
}

function setup(options: { store?: Store; failSettle?: () => boolean } = {}) {
  const rail = createTestRail()
  const store = (options.store ?? new LossyStore()) as LossyStore
  let clock = Date.parse('2026-12-06T10:00:00Z')
  const reported: string[] = []
  const server = createServer({
    realm: 'api.test',
    secrets: [secret],
    store,
    idempotencyLease: 30,
    now: () => clock,
    logger: false,
    onError: (_error, { phase }) => reported.push(phase),
    methods: [
      rail.server({
        failWith: () =>
          options.failSettle?.()
            ? new StoreUnavailableError({ detail: 'store down while verifying' })
            : undefined,
      }),
    ],
  })
  const handler = server.protect(route, () => new Response('the paid report'))
  const credential = async () => {
    const unpaid = await handler(new Request(url))
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
    const { payload } = await rail
      .client()
      .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
    return { challenge: challenge!, authorization: Credential.format({ challenge: challenge!, payload }) }
  }
  const send = (authorization: string) => handler(new Request(url, { headers: { authorization } }))
  const problem = async (response: Response) => ((await response.json()) as { type: string }).type
  return {
    rail,
    store,
    reported,
    credential,
    send,
    problem,
    advance: (ms: number) => {
      clock += ms
    },
  }
}

describe('the consumed mark of a challenge', () => {
  it('a lost reply to its write: 503, the same credential refused during the lease, then settled once', async () => {
    const { rail, store, credential, send, problem, advance } = setup()
    const { authorization } = await credential()
    store.armed = 'putIfAbsent'
    const first = await send(authorization)
    expect(first.status).toBe(503)
    expect(rail.settlements()).toBe(0)
    // The mark landed: within its lease the attempt may still be running, so the credential is used.
    const during = await send(authorization)
    expect(during.status).toBe(402)
    expect(await problem(during)).toContain('invalid-challenge')
    advance(31_000)
    const after = await send(authorization)
    expect(after.status, await after.clone().text()).toBe(200)
    expect(await after.text()).toBe('the paid report')
    expect(rail.settlements()).toBe(1)
    // Settled: never again, lease or not.
    advance(31_000)
    const again = await send(authorization)
    expect(again.status).toBe(402)
    expect(await problem(again)).toContain('invalid-challenge')
    expect(rail.settlements()).toBe(1)
  })

  it('a failed release after a failed settle: reported, and the same credential settles once after the lease', async () => {
    let down = true
    const { rail, store, reported, credential, send, advance } = setup({ failSettle: () => down })
    const { authorization } = await credential()
    store.armed = 'delete'
    const first = await send(authorization)
    expect(first.status).toBe(503)
    expect(reported).toContain('store')
    down = false
    expect((await send(authorization)).status).toBe(402)
    advance(31_000)
    const after = await send(authorization)
    expect(after.status, await after.clone().text()).toBe(200)
    expect(rail.settlements()).toBe(1)
  })

  it('another credential for the same challenge never takes a pending mark over', async () => {
    const { rail, store, credential, send, advance } = setup()
    const { challenge, authorization } = await credential()
    store.armed = 'putIfAbsent'
    expect((await send(authorization)).status).toBe(503)
    // A second valid payment answering the same challenge.
    const { payload } = await rail
      .client()
      .createPayload({ challenge, request: challenge.request as never, url })
    const other = Credential.format({ challenge, payload })
    advance(31_000)
    const refused = await send(other)
    expect(refused.status).toBe(402)
    expect(rail.settlements()).toBe(0)
    // The credential that claimed the mark still can.
    expect((await send(authorization)).status).toBe(200)
    expect(rail.settlements()).toBe(1)
  })

  it('concurrent retries of one credential after the lease: one settles, the others are refused', async () => {
    const { rail, store, credential, send, advance } = setup()
    const { authorization } = await credential()
    store.armed = 'putIfAbsent'
    expect((await send(authorization)).status).toBe(503)
    advance(31_000)
    const responses = await Promise.all(Array.from({ length: 20 }, () => send(authorization)))
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
    expect(responses.filter((r) => r.status === 402)).toHaveLength(19)
    expect(rail.settlements()).toBe(1)
  })
})
