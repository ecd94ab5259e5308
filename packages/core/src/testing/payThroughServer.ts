import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import type { Store } from '../Store.js'
import { create as createServer } from '../server/Server.js'
import { createTestRail } from './TestMethod.js'

/**
 * Pays one request with a valid credential through a real payment server over `store` (on a fresh test
 * rail) and returns what the client receives and how often the paid handler ran. Store authors use it to
 * check what their errors become on the wire: an outage is a 503 with `Retry-After`, a permanent error a
 * 500 problem that names nothing internal, and neither runs the handler.
 *
 * @example
 * ```ts
 * const { response, runs } = await payThroughServer(new RedisStore({ url, keyPrefix }))
 * expect(response.status).toBe(200); expect(runs).toBe(1)
 * ```
 */
export async function payThroughServer(store: Store): Promise<{ response: Response; runs: number }> {
  const rail = createTestRail()
  const server = createServer({
    realm: 'store.test',
    secrets: ['store-test-secret-0123456789abcdef012345'],
    methods: [rail.server()],
    store,
  })
  let runs = 0
  const url = 'https://store.test/resource'
  const offer = { method: 'test', request: { amount: '1000', currency: 'usd', recipient: 'merchant' } }
  const handler = server.protect({ offers: [offer] }, () => {
    runs++
    return Response.json({ ok: true })
  })
  const unpaid = await handler(new Request(url))
  const challenge = Challenge.parseAll(unpaid.headers.get('www-authenticate') ?? '')[0]
  if (unpaid.status !== 402 || !challenge) throw new Error(`expected a 402 challenge, got ${unpaid.status}`)
  const { payload, source } = await rail.client().createPayload({
    challenge,
    request: challenge.request as never,
    url,
  })
  const authorization = Credential.format({ challenge, payload, ...(source ? { source } : {}) })
  const response = await handler(new Request(url, { headers: { authorization } }))
  return { response, runs }
}
