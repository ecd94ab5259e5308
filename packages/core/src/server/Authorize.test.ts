import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import {
  InvalidChallengeError,
  type PaymentError,
  ServiceUnavailableError,
  VerificationFailedError,
} from '../Errors.js'
import type * as Method from '../Method.js'
import * as Receipt from '../Receipt.js'
import { createTestRail, type testCharge } from '../testing/TestMethod.js'
import * as Mcp from './Mcp.js'
import { create as createServer, type Route } from './Server.js'

const secret = 'authorize-test-secret-0123456789abcdefghi'
const route: Route = {
  offers: [
    {
      method: 'test',
      request: { amount: '100', currency: 'usd', recipient: 'acct' },
      description: 'API call fee',
    },
  ],
}
// A JSON-RPC call has no HTTP request of its own: it describes itself to prices and methods.
const call = () => new Request('https://mcp.test/tools/expensive-api', { method: 'POST' })

function setup() {
  const rail = createTestRail()
  const server = createServer({ realm: 'mcp.test', secrets: [secret], methods: [rail.server()] })
  return { rail, server }
}

/** A challenge of `route` from `server` and the test rail's payload answering it. */
async function paying(rail: ReturnType<typeof createTestRail>, server: ReturnType<typeof createServer>) {
  const { challenges } = await server.issueChallenges({ route, request: call() })
  const challenge = challenges[0]!.challenge
  const { payload } = await rail
    .client()
    .createPayload({ challenge, request: challenge.request as never, url: '' })
  return { challenge, payload }
}

describe('Server.authorizePayment', () => {
  it('pays a base64url token and returns the paid outcome as data', async () => {
    const { rail, server } = setup()
    const { challenge, payload } = await paying(rail, server)
    const token = Credential.serialize({ challenge, payload })
    const outcome = await server.authorizePayment({ route, request: call(), credential: token })
    expect(outcome.status).toBe('paid')
    if (outcome.status !== 'paid') return
    expect(outcome.receipt).toMatchObject({ status: 'success', method: 'test', challengeId: challenge.id })
    expect(outcome.payment.challenge.id).toBe(challenge.id)
    // The same token again: consumed, refused with fresh challenges as data.
    const again = await server.authorizePayment({ route, request: call(), credential: token })
    expect(again.status).toBe('problem')
    if (again.status !== 'problem') return
    expect(again.error.type).toBe('invalid-challenge')
    expect(again.challenges).toHaveLength(1)
    expect(again.challenges[0]!.challenge.id).not.toBe(challenge.id)
  })

  it("builds the receipt from the method's fields, then the server's, whatever the fields are named", async () => {
    const rail = createTestRail()
    const method = rail.server()
    // A method's receipt fields as parsed from JSON: an own `__proto__` member among them.
    const fields = JSON.parse('{"units":2,"__proto__":{"polluted":true},"challengeId":"from-method"}')
    const server = createServer({
      realm: 'mcp.test',
      secrets: [secret],
      methods: [
        { ...method, settle: async (context) => ({ ...(await method.settle(context)), receipt: fields }) },
      ],
    })
    const { challenge, payload } = await paying(rail, server)
    const outcome = await server.authorizePayment({
      route,
      request: call(),
      credential: Credential.serialize({ challenge, payload }),
    })
    expect(outcome.status).toBe('paid')
    if (outcome.status !== 'paid') return
    const receipt = outcome.receipt
    // The field stays a field: nothing reaches the receipt's prototype.
    expect(Object.getPrototypeOf(receipt)).toBe(Object.prototype)
    expect((receipt as { polluted?: unknown }).polluted).toBeUndefined()
    expect(Object.hasOwn(receipt, '__proto__')).toBe(true)
    // The method's fields first (in their order), then the server's; challengeId is the server's value.
    expect(Object.keys(receipt)).toEqual([
      'units',
      '__proto__',
      'challengeId',
      'status',
      'method',
      'timestamp',
      'reference',
    ])
    expect(receipt).toMatchObject({ units: 2, status: 'success', method: 'test', challengeId: challenge.id })
    // Without such a field (the usual case) the fields and their order are the same.
    const plain = createServer({
      realm: 'mcp.test',
      secrets: [secret],
      methods: [
        {
          ...method,
          settle: async (context) => ({ ...(await method.settle(context)), receipt: { units: 3 } }),
        },
      ],
    })
    const second = await paying(rail, plain)
    const paid = await plain.authorizePayment({
      route,
      request: call(),
      credential: Credential.serialize(second),
    })
    if (paid.status !== 'paid') throw new Error(`expected paid, got ${paid.status}`)
    expect(Object.keys(paid.receipt)).toEqual([
      'units',
      'status',
      'method',
      'timestamp',
      'reference',
      'challengeId',
    ])
    expect(Object.getPrototypeOf(paid.receipt)).toBe(Object.prototype)
  })

  it("serves a settled payment whose method's receipt fields cannot be serialized, never a 503", async () => {
    const rail = createTestRail()
    const method = rail.server()
    const getter = {
      get units(): never {
        throw new Error('unreadable')
      },
    }
    for (const fields of [{ amount: 100n }, getter] as Record<string, unknown>[]) {
      const errors: [string, unknown][] = []
      const server = createServer({
        realm: 'mcp.test',
        secrets: [secret],
        methods: [
          { ...method, settle: async (context) => ({ ...(await method.settle(context)), receipt: fields }) },
        ],
        logger: false,
        onError: (error, { phase }) => errors.push([phase, error]),
      })
      let runs = 0
      const handler = server.protect(route, () => {
        runs++
        return new Response('paid content')
      })
      const unpaid = await handler(call())
      const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
      const { payload } = await rail
        .client()
        .createPayload({ challenge: challenge!, request: challenge!.request as never, url: '' })
      const headers = {
        authorization: Credential.format({ challenge: challenge!, payload }),
        'idempotency-key': 'k',
      }
      const settled = rail.settlements()
      const paid = await handler(new Request(call(), { headers }))
      expect(paid.status).toBe(200)
      expect(await paid.text()).toBe('paid content')
      // The server's own fields only, reported as the method's (settle) failure.
      expect(Object.keys(Receipt.parse(paid.headers.get('payment-receipt')!)).sort()).toEqual([
        'challengeId',
        'method',
        'reference',
        'status',
        'timestamp',
      ])
      expect(errors.map(([phase]) => phase)).toEqual(['settle'])
      // The record was written: a retry with the key replays the response without settling again.
      const retry = await handler(new Request(call(), { headers }))
      expect(retry.status).toBe(200)
      expect(retry.headers.get('payment-receipt')).toBe(paid.headers.get('payment-receipt'))
      expect(runs).toBe(1)
      expect(rail.settlements()).toBe(settled + 1)
    }
  })

  it('replays a delivered result to a retry with the same idempotency key', async () => {
    const { rail, server } = setup()
    const { challenge, payload } = await paying(rail, server)
    const input = {
      route,
      request: call(),
      credential: Credential.serialize({ challenge, payload }),
      idempotencyKey: 'k1',
    }
    const paid = await server.authorizePayment(input)
    if (paid.status !== 'paid') throw new Error(`expected paid, got ${paid.status}`)
    await paid.delivered({
      status: 200,
      headers: [['content-type', 'application/json']],
      body: Buffer.from('{"ok":1}').toString('base64'),
    })
    const retry = await server.authorizePayment(input)
    expect(retry).toMatchObject({ status: 'replay', receipt: paid.receipt, response: { status: 200 } })
    expect(rail.settlements()).toBe(1)
  })
})

describe('reusable credentials (Method.reusesChallenge)', () => {
  // A method whose credentials may be presented again (a session's vouchers): verify and settle run on
  // every presentation; decoding and the binding check of a resent token are remembered.
  function reusable() {
    const rail = createTestRail()
    const base = rail.server()
    let clock = Date.parse('2026-01-01T00:00:00Z')
    const calls = { verify: 0, settle: 0 }
    const method = {
      ...base,
      reusesChallenge: () => true,
      async verify(context: Parameters<typeof base.verify>[0]) {
        calls.verify++
        return base.verify(context)
      },
      async settle() {
        calls.settle++
        return { reference: `r${calls.settle}` }
      },
    }
    const server = createServer({ realm: 'mcp.test', secrets: [secret], methods: [method], now: () => clock })
    const advance = (ms: number) => {
      clock += ms
    }
    return { rail, server, calls, advance }
  }

  it('a resent token still runs verify, settle, expiry and offer checks on every presentation', async () => {
    const { rail, server, calls, advance } = reusable()
    const { challenge, payload } = await paying(rail, server)
    const token = Credential.serialize({ challenge, payload })
    for (let i = 1; i <= 3; i++) {
      const outcome = await server.authorizePayment({ route, request: call(), credential: token })
      expect(outcome.status).toBe('paid')
      expect(calls).toEqual({ verify: i, settle: i })
    }
    // Another route (another price): the remembered token is pinned to its offer, so it is refused.
    const dearer: Route = {
      offers: [{ ...route.offers[0]!, request: { ...route.offers[0]!.request, amount: '200' } }],
    }
    const elsewhere = await server.authorizePayment({ route: dearer, request: call(), credential: token })
    expect(elsewhere.status).toBe('problem')
    if (elsewhere.status === 'problem') expect(elsewhere.error.type).toBe('invalid-challenge')
    // A token differing in one payload byte is not the remembered one: it is decoded and checked anew.
    const tampered = Credential.serialize({ challenge, payload: { ...payload, transfer: 'tx_unknown' } })
    const refused = await server.authorizePayment({ route, request: call(), credential: tampered })
    expect(refused.status).toBe('problem')
    if (refused.status === 'problem') expect(refused.error.type).toBe('verification-failed')
    // Past the challenge's expiry the remembered token is refused like any other.
    advance(24 * 3_600_000)
    const expired = await server.authorizePayment({ route, request: call(), credential: token })
    expect(expired.status).toBe('problem')
    if (expired.status === 'problem') expect(expired.error.type).toBe('payment-expired')
    expect(calls).toEqual({ verify: 4, settle: 3 })
  })

  it('a token whose id does not bind its challenge is refused every time, never remembered', async () => {
    const { rail, server, calls } = reusable()
    const { challenge, payload } = await paying(rail, server)
    const forged = Credential.serialize({
      challenge: {
        ...challenge,
        id: `${challenge.id.slice(0, -1)}${challenge.id.endsWith('A') ? 'B' : 'A'}`,
      },
      payload,
    })
    for (let i = 0; i < 2; i++) {
      const outcome = await server.authorizePayment({ route, request: call(), credential: forged })
      expect(outcome.status).toBe('problem')
      if (outcome.status === 'problem') expect(outcome.error.type).toBe('invalid-challenge')
    }
    expect(calls).toEqual({ verify: 0, settle: 0 })
  })
})

describe('Mcp', () => {
  it('offers challenges as a -32042 error with request as a JSON object, and pays a _meta credential', async () => {
    const { rail, server } = setup()
    // tools/call without a credential.
    const first = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'expensive-api' } }
    expect(Mcp.credentialOf(first)).toBeUndefined()
    const problem = await server.issueChallenges({ route, request: call() })
    const error = JSON.parse(JSON.stringify(Mcp.toJsonRpcError(problem))) as Mcp.JsonRpcError
    expect(error.code).toBe(-32042)
    expect({
      ...error.data,
      challenges: error.data.challenges.map((c) => ({
        ...c,
        id: '<id>',
        expires: '<expires>',
        opaque: '<opaque>',
      })),
    }).toMatchInlineSnapshot(`
        {
          "challenges": [
            {
              "description": "API call fee",
              "expires": "<expires>",
              "id": "<id>",
              "intent": "charge",
              "method": "test",
              "opaque": "<opaque>",
              "realm": "mcp.test",
              "request": {
                "amount": "100",
                "currency": "usd",
                "recipient": "acct",
              },
            },
          ],
          "httpStatus": 402,
          "problem": {
            "detail": "Payment is required.",
            "status": 402,
            "title": "Payment Required",
            "type": "https://paymentauth.org/problems/payment-required",
          },
        }
      `)
    // The client echoes the challenge object unchanged (request stays JSON) in params._meta.
    const challenge = error.data.challenges[0]!
    const { payload } = await rail
      .client()
      .createPayload({ challenge, request: challenge.request as never, url: '' })
    const second = {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'expensive-api', _meta: { [Mcp.credentialKey]: { challenge, payload } } },
    }
    const credential = Mcp.credentialOf(second)!
    const outcome = await server.authorizePayment({ route, request: call(), credential })
    if (outcome.status !== 'paid') throw new Error(`expected paid, got ${outcome.status}`)
    expect(Mcp.receiptMeta(outcome.receipt)[Mcp.receiptKey].challengeId).toBe(challenge.id)
    // Replayed: -32043 with a fresh challenge and the failure.
    const replay = await server.authorizePayment({ route, request: call(), credential })
    if (replay.status !== 'problem') throw new Error('expected a problem')
    const refused = Mcp.toJsonRpcError(replay)
    expect(refused.code).toBe(-32043)
    expect(refused.data.failure).toEqual({ detail: 'The challenge has already been used.' })
    expect(refused.data.challenges).toHaveLength(1)
  })

  it('answers a malformed _meta credential with -32602, never a throw', async () => {
    const { server } = setup()
    for (const credential of [{ challenge: { id: 'x' }, payload: {} }, { challenge: 'nope' }, 42]) {
      const outcome = await server.authorizePayment({
        route,
        request: call(),
        credential: credential as never,
      })
      if (outcome.status !== 'problem') throw new Error('expected a problem')
      expect(Mcp.toJsonRpcError(outcome).code).toBe(-32602)
    }
  })

  it('reads root-level _meta too (generic JSON-RPC)', () => {
    const credential = { challenge: {}, payload: {} }
    expect(
      Mcp.credentialOf({ jsonrpc: '2.0', params: ['latest'], _meta: { [Mcp.credentialKey]: credential } }),
    ).toBe(credential)
  })
})

describe('retries are pinned to the route like any request', () => {
  const resource = 'https://api.test/r'
  const cheapRequest = { amount: '1', currency: 'usd', recipient: 'acct' }

  /** A server over the test rail; `now` is a clock a test may move. */
  function retrying(options: { replaysConsumed?: boolean } = {}) {
    const rail = createTestRail()
    let clock = Date.parse('2026-01-01T00:00:00Z')
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [{ ...rail.server(), replaysConsumed: options.replaysConsumed === true }],
      now: () => clock,
      logger: false,
    })
    const advance = (ms: number) => {
      clock += ms
    }
    return { rail, server, advance }
  }

  /** A handler whose first `failures` runs throw (a 500 after settlement), counting its runs. */
  function flaky(server: ReturnType<typeof createServer>, route: Route, failures: number, name: string) {
    let runs = 0
    const handler = server.protect(route, (request) => {
      runs++
      if (runs <= failures) throw new Error('transient')
      return new Response(`${name} ${new URL(request.url).pathname}`)
    })
    return { handler, runs: () => runs }
  }

  async function credentialFor(rail: ReturnType<typeof createTestRail>, unpaid: Response) {
    expect(unpaid.status).toBe(402)
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
    const { payload } = await rail
      .client()
      .createPayload({ challenge: challenge!, request: challenge!.request as never, url: resource })
    return Credential.format({ challenge: challenge!, payload })
  }

  const expectInvalidChallenge = async (response: Response) => {
    expect(response.status).toBe(402)
    expect(response.headers.get('payment-receipt')).toBeNull()
    expect(response.headers.get('www-authenticate')).toMatch(/^Payment /)
    expect(await response.json()).toMatchObject({
      type: 'https://paymentauth.org/problems/invalid-challenge',
    })
  }

  for (const [name, premiumOffer] of [
    ['opaque', { method: 'test', request: cheapRequest, opaque: { route: 'premium' } }],
    ['price', { method: 'test', request: { ...cheapRequest, amount: '100000' }, opaque: { route: 'cheap' } }],
  ] as const)
    it(`refuses an Idempotency-Key retry on a route of another ${name}, and still serves it on its own`, async () => {
      const { rail, server, advance } = retrying()
      const cheap = flaky(
        server,
        { offers: [{ method: 'test', request: cheapRequest, opaque: { route: 'cheap' } }] },
        1,
        'cheap',
      )
      const premium = flaky(server, { offers: [premiumOffer] }, 0, 'premium')
      const authorization = await credentialFor(rail, await cheap.handler(new Request(resource)))
      const headers = { authorization, 'idempotency-key': 'k' }
      // Paid on the cheap route, whose handler fails: the record is kept for a retry.
      expect((await cheap.handler(new Request(resource, { headers }))).status).toBe(500)
      await expectInvalidChallenge(await premium.handler(new Request(resource, { headers })))
      expect(premium.runs()).toBe(0)
      // The paying client still recovers its response on the route it paid, even past the expiry.
      advance(3_600_000)
      const retry = await cheap.handler(new Request(resource, { headers }))
      expect(retry.status).toBe(200)
      expect(await retry.text()).toBe('cheap /r')
      expect(retry.headers.get('payment-receipt')).not.toBeNull()
      // Delivered now: the stored response is not replayed on the other route either.
      await expectInvalidChallenge(await premium.handler(new Request(resource, { headers })))
      expect(premium.runs()).toBe(0)
      expect(rail.settlements()).toBe(1)
    })

  it('refuses an Idempotency-Key retry at a path whose dynamic price differs, and serves it at its own', async () => {
    const { rail, server } = retrying()
    const price = (request: Request) => ({
      ...cheapRequest,
      amount: new URL(request.url).pathname === '/gold' ? '100000' : '1',
    })
    const priced = flaky(server, { offers: [{ method: 'test', request: price }] }, 1, 'served')
    const authorization = await credentialFor(rail, await priced.handler(new Request('https://api.test/tin')))
    const headers = { authorization, 'idempotency-key': 'k' }
    expect((await priced.handler(new Request('https://api.test/tin', { headers }))).status).toBe(500)
    await expectInvalidChallenge(await priced.handler(new Request('https://api.test/gold', { headers })))
    expect(priced.runs()).toBe(1)
    const retry = await priced.handler(new Request('https://api.test/tin', { headers }))
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('served /tin')
    expect(rail.settlements()).toBe(1)
  })

  it('never replays a replaysConsumed record on another route', async () => {
    const { rail, server } = retrying({ replaysConsumed: true })
    const cheap = flaky(
      server,
      { offers: [{ method: 'test', request: cheapRequest, opaque: { route: 'cheap' } }] },
      0,
      'cheap',
    )
    const premium = flaky(
      server,
      { offers: [{ method: 'test', request: cheapRequest, opaque: { route: 'premium' } }] },
      0,
      'premium',
    )
    const authorization = await credentialFor(rail, await cheap.handler(new Request(resource)))
    const first = await cheap.handler(new Request(resource, { headers: { authorization } }))
    expect(await first.text()).toBe('cheap /r')
    await expectInvalidChallenge(await premium.handler(new Request(resource, { headers: { authorization } })))
    expect(premium.runs()).toBe(0)
    // Its own route still replays it.
    const again = await cheap.handler(new Request(resource, { headers: { authorization } }))
    expect(await again.text()).toBe('cheap /r')
    expect(cheap.runs()).toBe(1)
    expect(rail.settlements()).toBe(1)
  })
})

describe('settle failures that consumed the challenge (PaymentError.consumed)', () => {
  const resource = 'https://api.test/r'

  /**
   * A server over a rail that does not guard its own proof: every `settle` call moves money (counted),
   * and the first one then refuses with `error()`.
   */
  function payingThenRefusing(
    error: () => PaymentError,
    options: { replaysConsumed?: boolean; challengeProblem?: Method.Server['challengeProblem'] } = {},
  ) {
    const rail = createTestRail()
    const base = rail.server()
    let charges = 0
    let failures = 1
    const method: Method.Server<typeof testCharge> = {
      ...base,
      replaysConsumed: options.replaysConsumed === true,
      async settle({ payload }) {
        charges++
        if (failures-- > 0) throw error()
        return { reference: payload.transfer }
      },
    }
    if (options.challengeProblem) method.challengeProblem = options.challengeProblem
    const errors: [string, unknown][] = []
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [method],
      logger: false,
      onError: (cause, { phase }) => errors.push([phase, cause]),
    })
    let runs = 0
    const handler = server.protect(route, async () => {
      runs++
      return new Response('paid content')
    })
    const credential = async (init: RequestInit = {}) => {
      const unpaid = await handler(new Request(resource, init))
      const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
      const { payload } = await rail
        .client()
        .createPayload({ challenge: challenge!, request: challenge!.request as never, url: resource })
      return { challenge: challenge!, payload }
    }
    return { server, handler, credential, errors, charges: () => charges, runs: () => runs }
  }

  const wrongAmount = (consumed: boolean) => () =>
    new VerificationFailedError({
      detail: 'The transfer landed for the wrong amount.',
      reason: 'amount-mismatch',
      consumed,
    })

  const problemOf = async (response: Response) => ({
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    receipt: response.headers.get('payment-receipt'),
    fresh: response.headers.get('www-authenticate')?.startsWith('Payment ') === true,
    body: (await response.json()) as { type: string; detail?: string },
  })

  it('keeps the challenge consumed: the same credential is refused as used, never settled again', async () => {
    const { handler, credential, errors, charges, runs } = payingThenRefusing(wrongAmount(true))
    const authorization = Credential.format(await credential())
    const send = () => handler(new Request(resource, { headers: { authorization } }))
    const refused = await problemOf(await send())
    expect(refused).toMatchObject({ status: 402, retryAfter: null, receipt: null, fresh: true })
    expect(refused.body.type).toBe('https://paymentauth.org/problems/verification-failed')
    // Money moved: the operator is told, once, as a settle failure.
    expect(errors.map(([phase, cause]) => [phase, (cause as Error).message])).toEqual([
      ['settle', 'The transfer landed for the wrong amount.'],
    ])
    for (let i = 0; i < 2; i++) {
      const again = await problemOf(await send())
      expect(again).toMatchObject({ status: 402, receipt: null, fresh: true })
      expect(again.body).toMatchObject({
        type: 'https://paymentauth.org/problems/invalid-challenge',
        detail: 'The challenge has already been used.',
      })
    }
    expect(charges()).toBe(1)
    expect(runs()).toBe(0)
    expect(errors).toHaveLength(1)
  })

  it('releases the challenge when the error is not marked: the same credential settles on retry', async () => {
    const { handler, credential, errors, charges, runs } = payingThenRefusing(wrongAmount(false))
    const authorization = Credential.format(await credential())
    const send = () => handler(new Request(resource, { headers: { authorization } }))
    const refused = await problemOf(await send())
    expect(refused.body.type).toBe('https://paymentauth.org/problems/verification-failed')
    const retry = await send()
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('paid content')
    expect(charges()).toBe(2)
    expect(runs()).toBe(1)
    // An expected refusal, not reported.
    expect(errors).toEqual([])
  })

  it('answers an Idempotency-Key retry as used too: the key is released (no 409), nothing settles again', async () => {
    const { handler, credential, errors, charges, runs } = payingThenRefusing(wrongAmount(true))
    const authorization = Credential.format(await credential({ method: 'POST', body: 'order' }))
    const send = () =>
      handler(
        new Request(resource, {
          method: 'POST',
          body: 'order',
          headers: { authorization, 'idempotency-key': 'order-1' },
        }),
      )
    const refused = await problemOf(await send())
    expect(refused.body).toMatchObject({
      type: 'https://paymentauth.org/problems/verification-failed',
      reason: 'amount-mismatch',
    })
    expect(errors).toHaveLength(1)
    for (let i = 0; i < 2; i++) {
      const again = await problemOf(await send())
      expect(again).toMatchObject({ status: 402, receipt: null })
      expect(again.body).toMatchObject({
        type: 'https://paymentauth.org/problems/invalid-challenge',
        detail: 'The challenge has already been used.',
      })
    }
    expect(charges()).toBe(1)
    expect(runs()).toBe(0)
  })

  it("answers a replaysConsumed method's retry with its own consumed problem, as data", async () => {
    const kinds: string[] = []
    const { server, credential, charges } = payingThenRefusing(wrongAmount(true), {
      replaysConsumed: true,
      challengeProblem: (_payload, kind) => {
        kinds.push(kind)
        return kind === 'consumed'
          ? new InvalidChallengeError({ detail: 'This payment was already taken.', reason: 'test-used' })
          : undefined
      },
    })
    const token = Credential.serialize(await credential())
    const input = { route, request: new Request(resource), credential: token }
    const first = await server.authorizePayment(input)
    if (first.status !== 'problem') throw new Error(`expected a problem, got ${first.status}`)
    expect(first.error.type).toBe('verification-failed')
    expect(first.error.consumed).toBe(true)
    const again = await server.authorizePayment(input)
    if (again.status !== 'problem') throw new Error(`expected a problem, got ${again.status}`)
    expect(again.error).toMatchObject({ type: 'invalid-challenge', reason: 'test-used' })
    expect(again.challenges).toHaveLength(1)
    expect(kinds).toEqual(['consumed'])
    expect(charges()).toBe(1)
  })

  it('answers a consumed outage 503 without Retry-After, and refuses the same credential as used', async () => {
    const { handler, credential, errors, charges } = payingThenRefusing(
      () => new ServiceUnavailableError({ detail: 'Sent, then the RPC went away.', consumed: true }),
    )
    const authorization = Credential.format(await credential())
    const send = () => handler(new Request(resource, { headers: { authorization } }))
    const down = await problemOf(await send())
    expect(down).toMatchObject({ status: 503, retryAfter: null, receipt: null })
    expect(down.body.type).toBe('https://paymentauth.org/problems/service-unavailable')
    const again = await problemOf(await send())
    expect(again.body.type).toBe('https://paymentauth.org/problems/invalid-challenge')
    expect(charges()).toBe(1)
    expect(errors.map(([phase]) => phase)).toEqual(['settle'])
  })
})
