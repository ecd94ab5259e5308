import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { ServiceUnavailableError } from '../Errors.js'
import { MemoryStore } from '../MemoryStore.js'
import type * as Method from '../Method.js'
import { createTestRail } from '../testing/TestMethod.js'
import { create as createServer, type Route } from './Server.js'

// Method.Server.resumesExpired: a credential whose challenge expired may still settle when its method
// says settlement of exactly that challenge began, within the method's resumeWindowMs; the consumed
// mark of a resumed credential is kept as long, so no second request settles it again.

const secret = 'resume-expired-test-secret-0123456789abcdef'
const url = 'https://api.test/report'
const route: Route = {
  offers: [{ method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }],
}
/** Challenges live 300 s by default. */
const past = 10 * 60_000
const windowMs = 3_600_000

function setup(resume?: (context: Method.ResumeContext) => Promise<boolean>) {
  const rail = createTestRail()
  let clock = Date.now()
  const asked: Method.ResumeContext[] = []
  const reported: string[] = []
  const method: Method.Server = {
    ...rail.server(),
    ...(resume
      ? {
          resumeWindowMs: windowMs,
          resumesExpired: (context: Method.ResumeContext) => {
            asked.push(context)
            return resume(context)
          },
        }
      : {}),
  }
  const server = createServer({
    realm: 'api.test',
    secrets: [secret],
    now: () => clock,
    store: new MemoryStore({ now: () => clock }),
    logger: false,
    onError: (_error, { phase }) => reported.push(phase),
    methods: [method],
  })
  const handler = server.protect(route, () => new Response('the paid report'))
  const send = (authorization?: string) =>
    handler(new Request(url, authorization ? { headers: { authorization } } : {}))
  const credential = async () => {
    const unpaid = await send()
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
    const { payload } = await rail
      .client()
      .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
    return { challenge: challenge!, authorization: Credential.format({ challenge: challenge!, payload }) }
  }
  const type = async (response: Response) => ((await response.clone().json()) as { type: string }).type
  return {
    rail,
    asked,
    reported,
    send,
    credential,
    type,
    advance: (ms: number) => {
      clock += ms
    },
  }
}

describe('resumesExpired', () => {
  it('a method without it: an expired credential is refused payment-expired', async () => {
    const s = setup()
    const { authorization } = await s.credential()
    s.advance(past)
    const refused = await s.send(authorization)
    expect(refused.status).toBe(402)
    expect(await s.type(refused)).toContain('payment-expired')
    expect(s.rail.settlements()).toBe(0)
  })

  it('is not asked for a live challenge; an expired one is asked with its challenge, payload and store', async () => {
    const s = setup(async () => false)
    const live = await s.credential()
    expect((await s.send(live.authorization)).status).toBe(200)
    expect(s.asked).toHaveLength(0)
    const { challenge, authorization } = await s.credential()
    s.advance(past)
    const refused = await s.send(authorization)
    expect(await s.type(refused)).toContain('payment-expired')
    expect(s.asked).toHaveLength(1)
    expect(s.asked[0]?.challenge.id).toBe(challenge.id)
    expect(s.asked[0]?.payload).toEqual(Credential.parse(authorization).payload)
    expect(typeof s.asked[0]?.store.get).toBe('function')
    expect(s.rail.settlements()).toBe(1)
  })

  it('true: settles once, and stays used for the window, also long after the challenge expired', async () => {
    const s = setup(async () => true)
    const { authorization } = await s.credential()
    s.advance(past)
    const paid = await s.send(authorization)
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(s.rail.settlements()).toBe(1)
    s.advance(windowMs / 2)
    const again = await s.send(authorization)
    expect(await s.type(again)).toContain('invalid-challenge')
    expect(s.rail.settlements()).toBe(1)
  })

  it('settled before expiry: refused as used until the expiry plus 60 s, then as its method says', async () => {
    // The method's own state says whether settlement is still open; it closes once settled.
    let open = true
    const s = setup(async () => open)
    const { authorization } = await s.credential()
    expect((await s.send(authorization)).status).toBe(200)
    s.advance(330_000) // past the 300 s expiry, within its 60 s of consumed mark
    const used = await s.send(authorization)
    expect(await s.type(used)).toContain('invalid-challenge')
    open = false
    s.advance(past)
    const expired = await s.send(authorization)
    expect(await s.type(expired)).toContain('payment-expired')
    expect(s.asked).toHaveLength(2)
    expect(s.rail.settlements()).toBe(1)
  })

  it('past the window: refused payment-expired without asking the method', async () => {
    const s = setup(async () => true)
    const { authorization } = await s.credential()
    s.advance(windowMs + past)
    const refused = await s.send(authorization)
    expect(await s.type(refused)).toContain('payment-expired')
    expect(s.asked).toHaveLength(0)
    expect(s.rail.settlements()).toBe(0)
  })

  it('a rejection is a retryable store failure, reported', async () => {
    const s = setup(async () => {
      throw new Error('store down')
    })
    const { authorization } = await s.credential()
    s.advance(past)
    const failed = await s.send(authorization)
    expect(failed.status).toBe(503)
    expect(s.reported).toEqual(['store'])
    expect(s.rail.settlements()).toBe(0)
  })

  it('a PaymentError rejection is answered as it is', async () => {
    const s = setup(async () => {
      throw new ServiceUnavailableError({ detail: 'busy', reason: 'busy', retryAfter: 2 })
    })
    const { authorization } = await s.credential()
    s.advance(past)
    const failed = await s.send(authorization)
    expect(failed.status).toBe(503)
    expect(failed.headers.get('retry-after')).toBe('2')
  })
})
