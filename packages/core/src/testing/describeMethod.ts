import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Binding from '../Binding.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { create as createClient } from '../client/Client.js'
import * as Expires from '../Expires.js'
import type * as Method from '../Method.js'
import * as Receipt from '../Receipt.js'
import { create as createServer, type Offer } from '../server/Server.js'

/** What a rail gives the conformance kit. */
export type MethodFixture = {
  /** Server side of the method under test. */
  server: Method.Server
  /** Client side that can pay the challenges `server` issues. */
  client: Method.Client
  /** The route's offer (method, intent, pinned request). */
  offer: Offer
  /** Releases nodes, clients… */
  teardown?: () => Promise<void>
}

/** Options of {@link describeMethod}. */
export type DescribeMethodOptions = {
  /** Suite name, e.g. `tempo/charge`. */
  name: string
  /** Builds a fresh fixture (called once per suite). */
  setup: () => Promise<MethodFixture>
  /** Parallel submissions in the double-submit test (default 16). */
  concurrency?: number
  /** A printed reason to skip the suite (e.g. a node is unavailable). */
  skip?: string | undefined
}

const secret = 'conformance-kit-secret-0123456789abcdef'

/**
 * The conformance kit every rail runs: a full 402 → pay → 200 round trip, receipt shape, tampered id,
 * expired challenge, replay, and concurrent double submission of one credential.
 *
 * @example
 * ```ts
 * describeMethod({ name: 'tempo/charge', setup: async () => ({ server, client, offer }) })
 * ```
 * @see draft-httpauth-payment-00 §11.3 (Replay Protection), §11.6 (Concurrent Request Handling)
 */
export function describeMethod(options: DescribeMethodOptions): void {
  if (options.skip) console.warn(`[skip] ${options.name}: ${options.skip}`)
  describe.skipIf(!!options.skip)(`conformance: ${options.name}`, () => {
    let fixture: MethodFixture
    let clock = Date.now()
    let handlerRuns = 0
    let handler: (request: Request) => Promise<Response>

    beforeAll(async () => {
      fixture = await options.setup()
      const server = createServer({
        realm: 'conformance.test',
        secrets: [secret],
        methods: [fixture.server],
        now: () => clock,
      })
      handler = server.protect({ offers: [fixture.offer] }, () => {
        handlerRuns++
        return new Response(JSON.stringify({ ok: true }), { headers: { 'content-type': 'application/json' } })
      })
    })
    afterAll(async () => {
      await fixture?.teardown?.()
    })

    // A paying client; its paid retry (the request carrying a credential) goes through `paid`.
    const clientWith = (paid: (request: Request, authorization: string) => Promise<Response>) =>
      createClient({
        methods: [fixture.client],
        fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
          const request = new Request(input, init)
          const authorization = request.headers.get('authorization')
          return authorization ? paid(request, authorization) : handler(request)
        }) as typeof fetch,
      })
    const pay = async () => {
      let authorization = ''
      const response = await clientWith((request, auth) => {
        authorization = auth
        return handler(request)
      }).fetch('https://conformance.test/resource')
      return { response, authorization }
    }
    const submit = (authorization: string) =>
      handler(new Request('https://conformance.test/resource', { headers: { authorization } }))
    const problemType = async (response: Response) => ((await response.json()) as { type: string }).type

    it('answers 402 with a bound challenge and no-store', async () => {
      const response = await handler(new Request('https://conformance.test/resource'))
      expect(response.status).toBe(402)
      expect(response.headers.get('cache-control')).toBe('no-store')
      expect(response.headers.get('payment-receipt')).toBeNull()
      const [challenge] = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
      expect(challenge?.method).toBe(fixture.server.definition.name)
      expect(challenge?.intent).toBe(fixture.server.definition.intent)
      expect(challenge?.id).toBe(Binding.computeId(challenge!, secret))
    })

    it('round-trips a payment and returns a well-formed receipt', async () => {
      const before = handlerRuns
      const { response } = await pay()
      expect(response.status).toBe(200)
      expect(handlerRuns).toBe(before + 1)
      const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
      expect(receipt.status).toBe('success')
      expect(receipt.method).toBe(fixture.server.definition.name)
      expect(typeof receipt.reference).toBe('string')
      expect(receipt.reference.length).toBeGreaterThan(0)
      expect(Expires.parse(receipt.timestamp)).toBeGreaterThan(0)
      expect(response.headers.get('cache-control')).toContain('private')
    })

    it('rejects a replayed credential with invalid-challenge', async () => {
      const { response, authorization } = await pay()
      expect(response.status).toBe(200)
      const before = handlerRuns
      const replay = await submit(authorization)
      expect(replay.status).toBe(402)
      expect(await problemType(replay)).toBe('https://paymentauth.org/problems/invalid-challenge')
      expect(replay.headers.get('payment-receipt')).toBeNull()
      expect(handlerRuns).toBe(before)
    })

    it('rejects a tampered challenge id', async () => {
      const client = clientWith((request, authorization) => {
        const credential = Credential.parse(authorization)
        credential.challenge.id =
          credential.challenge.id.slice(0, -2) + (credential.challenge.id.endsWith('AA') ? 'BB' : 'AA')
        const headers = new Headers(request.headers)
        headers.set('authorization', Credential.format(credential))
        return handler(new Request(request.url, { headers }))
      })
      const before = handlerRuns
      const response = await client.fetch('https://conformance.test/resource')
      expect(response.status).toBe(402)
      expect(await problemType(response)).toBe('https://paymentauth.org/problems/invalid-challenge')
      expect(handlerRuns).toBe(before)
    })

    it('rejects an expired challenge with payment-expired', async () => {
      const client = clientWith((request) => {
        // Time passes between the 402 and the paid retry.
        clock += 3_600_000
        return handler(request)
      })
      const before = handlerRuns
      try {
        const response = await client.fetch('https://conformance.test/resource')
        expect(response.status).toBe(402)
        expect(await problemType(response)).toBe('https://paymentauth.org/problems/payment-expired')
        expect(handlerRuns).toBe(before)
      } finally {
        clock = Date.now()
      }
    })

    it('settles one of many concurrent submissions of one credential', async () => {
      // Build a credential without submitting it.
      let authorization = ''
      const client = clientWith(async (_request, auth) => {
        authorization = auth
        return new Response(null, { status: 204 })
      })
      await client.fetch('https://conformance.test/resource')
      expect(authorization).not.toBe('')
      const before = handlerRuns
      const responses = await Promise.all(
        Array.from({ length: options.concurrency ?? 16 }, () => submit(authorization)),
      )
      const ok = responses.filter((r) => r.status === 200)
      expect(ok).toHaveLength(1)
      expect(handlerRuns).toBe(before + 1)
      for (const r of responses.filter((r) => r.status !== 200)) {
        expect(r.status).toBe(402)
        expect(r.headers.get('payment-receipt')).toBeNull()
      }
    })
  })
}
