import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import type * as Method from '../Method.js'
import { createTestRail, testCharge } from '../testing/TestMethod.js'
import { create as createServer } from './Server.js'

const secret = 'issuance-test-secret-0123456789abcdefghij'
const request = { amount: '100', currency: 'usd', recipient: 'acct' }

describe('Issuance.issuer', () => {
  it('prepares the offers of a 402 concurrently, so slow rails do not add up', async () => {
    const rail = createTestRail()
    let inFlight = 0
    let most = 0
    const slow = (intent: string, field: string): Method.Server<typeof testCharge> => ({
      ...rail.server(),
      definition: { ...testCharge, intent } as typeof testCharge,
      // An invoice to create, a blockhash to fetch: each takes 150 ms.
      prepare: async ({ request }) => {
        inFlight++
        most = Math.max(most, inFlight)
        await new Promise((resolve) => setTimeout(resolve, 150))
        inFlight--
        return { ...request, description: field }
      },
    })
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [slow('charge', 'invoice'), slow('session', 'blockhash')],
    })
    const handler = server.protect(
      {
        offers: [
          { method: 'test', request },
          { method: 'test', intent: 'session', request },
        ],
      },
      () => new Response('ok'),
    )
    const response = await handler(new Request('https://api.test/r'))
    expect(response.status).toBe(402)
    const challenges = Challenge.parseAll(response.headers.get('www-authenticate')!)
    // Both offers, in route order, each with what its prepare added.
    expect(challenges.map((c) => [c.intent, c.request.description])).toEqual([
      ['charge', 'invoice'],
      ['session', 'blockhash'],
    ])
    // Both prepares were in flight at once (a wall-clock bound would only add flakiness under load).
    expect(most).toBe(2)
  })

  it('returns the challenges as data through issueChallenges, request as a JSON object', async () => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
    const route = { offers: [{ method: 'test', request, description: 'API call fee' }] }
    const problem = await server.issueChallenges({ route, request: new Request('https://api.test/r') })
    expect(problem.status).toBe('problem')
    expect(problem.error.toProblem()).toMatchInlineSnapshot(`
      {
        "detail": "Payment is required.",
        "status": 402,
        "title": "Payment Required",
        "type": "https://paymentauth.org/problems/payment-required",
      }
    `)
    const [issued] = problem.challenges
    expect(issued!.challenge).toMatchObject({ realm: 'api.test', method: 'test', intent: 'charge', request })
    // The data and the header describe the same challenge.
    expect(Challenge.parse(issued!.header)).toEqual(issued!.challenge)
  })
})
