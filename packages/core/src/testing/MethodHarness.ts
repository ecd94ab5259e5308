import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { create as createClient } from '../client/Client.js'
import type * as Method from '../Method.js'
import * as Receipt from '../Receipt.js'
import type { Store } from '../Store.js'
import { create as createServer } from '../server/Server.js'
import type { MethodFixture } from './MethodFixture.js'

/** The secret of the kit's server (its challenge ids are recomputed with it). */
export const kitSecret = 'conformance-kit-secret-0123456789abcdef'
/** The kit's protected resource. */
export const kitUrl = 'https://conformance.test/resource'

/** How strictly receipts must carry `challengeId`. */
export type ChallengeIdCheck = 'strict' | 'when-present'

/**
 * A fixture running behind a real payment server: the route, a settable clock, counters of handler runs
 * and successful settlements, and paying clients whose paid retries the kit can intercept.
 *
 * @example
 * ```ts
 * const harness = await createHarness(fixture, () => new MemoryStore())
 * const { response } = await harness.pay()
 * ```
 */
export type MethodHarness = Awaited<ReturnType<typeof createHarness>>

/**
 * Builds a {@link MethodHarness} over `fixture`, with the store `store` builds (default: the server's).
 *
 * @example
 * ```ts
 * const harness = await createHarness(await setup(), undefined)
 * ```
 */
export async function createHarness(
  fixture: MethodFixture,
  store: (() => Store | Promise<Store>) | undefined,
  onError: (error: unknown) => void = () => {},
) {
  let clock = Date.now()
  let handlerRuns = 0
  let settles = 0
  // Counts successful settlements through a wrapper that inherits every other member of the method.
  const method: Method.Server = Object.create(fixture.server, {
    settle: {
      value: async (context: Parameters<Method.Server['settle']>[0]) => {
        const settlement = await fixture.server.settle(context)
        settles++
        return settlement
      },
    },
  })
  const serverStore = store ? await store() : undefined
  /** Errors the method reported from its own background work (through `setup`'s `report`). */
  const background: unknown[] = []
  const server = createServer({
    realm: 'conformance.test',
    secrets: [kitSecret],
    methods: [method],
    now: () => clock,
    onError: (error, context) => {
      if (context.phase === 'background') background.push(error)
      onError(error)
    },
    ...(serverStore ? { store: serverStore } : {}),
  })
  const handler = server.protect({ offers: [fixture.offer] }, async (request, payment) => {
    handlerRuns++
    if (fixture.handler) return fixture.handler(request, payment)
    return Response.json({ ok: true })
  })
  /** Challenge ids of every credential that reached the server, in order. */
  const paidChallenges: string[] = []
  const toServer = (request: Request) => {
    const authorization = request.headers.get('authorization')
    if (authorization) {
      try {
        paidChallenges.push(Credential.parse(authorization).challenge.id)
      } catch {}
    }
    return handler(request)
  }
  const directFetch = (async (input: RequestInfo | URL, init?: RequestInit) =>
    toServer(new Request(input, init))) as typeof fetch
  const clientMethod = (): Method.Client =>
    typeof fixture.client === 'function' ? fixture.client({ fetch: directFetch }) : fixture.client

  /** A paying client whose paid retry (the request carrying a credential) goes through `paid`. */
  const clientWith = (
    paid: (request: Request, authorization: string) => Promise<Response>,
    method: Method.Client = clientMethod(),
  ) =>
    createClient({
      methods: [method],
      ...(fixture.policy ? { policy: fixture.policy } : {}),
      fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
        const request = new Request(input, init)
        const authorization = request.headers.get('authorization')
        return authorization ? paid(request, authorization) : toServer(request)
      }) as typeof fetch,
    })

  let closing: Promise<void> | undefined
  const submit = (authorization: string) => toServer(new Request(kitUrl, { headers: { authorization } }))

  return {
    server,
    method,
    handler: toServer,
    directFetch,
    clientMethod,
    clientWith,
    submit,
    paidChallenges,
    handlerRuns: () => handlerRuns,
    settles: () => settles,
    /** Moves the server clock (ms); `reset` puts it back to the wall clock. */
    advance(ms: number) {
      clock += ms
    },
    reset() {
      clock = Date.now()
    },
    /** One paid request through a fresh client: the response and the credential it carried. */
    async pay() {
      let authorization = ''
      const response = await clientWith((request, auth) => {
        authorization = auth
        return toServer(request)
      }).fetch(kitUrl)
      return { response, authorization }
    },
    /** A credential for a fresh challenge, built by a fresh client and not submitted. */
    async credential() {
      let authorization = ''
      await clientWith(async (_request, auth) => {
        authorization = auth
        return new Response(null, { status: 204 })
      }).fetch(kitUrl)
      if (!authorization) throw new Error('the client produced no credential')
      return authorization
    },
    /** A fresh challenge from the route's 402. */
    async challenge() {
      const response = await toServer(new Request(kitUrl))
      const challenge = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')[0]
      if (response.status !== 402 || !challenge)
        throw new Error(`expected a 402 challenge, got ${response.status}`)
      return { response, challenge }
    },
    /** The receipt of a response (throws if it has none). */
    receipt(response: Response) {
      return Receipt.parse(response.headers.get('payment-receipt') ?? '')
    },
    background,
    /** Closes the server (methods' `close` runs: timers stopped, batches flushed), then the injected store; once. */
    close() {
      closing ??= (async () => {
        await server.close()
        await serverStore?.close?.()
      })()
      return closing
    },
  }
}
