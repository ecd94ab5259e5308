import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { PaymentError } from '../Errors.js'
import { MemoryStore } from '../MemoryStore.js'
import type * as Method from '../Method.js'
import * as Receipt from '../Receipt.js'
import { createTestRail } from '../testing/TestMethod.js'
import { create as createServer, type Route } from './Server.js'

const secret = 'lifecycle-test-secret-0123456789abcdefghij'
const url = 'https://api.test/r'
const route: Route = {
  offers: [{ method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }],
}

/** Issues a challenge on `handler` and pays it with the rail's client. */
async function credentialFor(
  rail: ReturnType<typeof createTestRail>,
  handler: (request: Request) => Promise<Response>,
) {
  const unpaid = await handler(new Request(url))
  const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate') ?? '')
  const { payload, source } = await rail
    .client()
    .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
  return {
    challenge: challenge!,
    authorization: Credential.format({ challenge: challenge!, payload, ...(source ? { source } : {}) }),
  }
}

describe('Method.Server.setup', () => {
  it('runs once per server, before any request, with the scoped store, realm, clock and a live signal', async () => {
    const rail = createTestRail()
    const store = new MemoryStore()
    const contexts: Method.SetupContext[] = []
    let sawInVerify: string | undefined
    const base = rail.server()
    const method: Method.Server<typeof base.definition> = {
      ...base,
      setup: (context) => {
        contexts.push(context)
        void context.store.set('seen', 'yes', 60_000)
      },
      verify: async (context) => {
        sawInVerify = await context.store.get('seen')
        return base.verify(context)
      },
    }
    createServer({ realm: 'api.test', secrets: [secret], methods: [method], store, now: () => 42 })
    expect(contexts).toHaveLength(1)
    const [context] = contexts
    expect(context!.realm).toBe('api.test')
    expect(context!.now()).toBe(42)
    expect(context!.signal.aborted).toBe(false)
    // Scoped: the key lands under the method's prefix in the shared store.
    expect(await store.get('mppkit:m:test/charge:seen')).toBe('yes')
    // A second server with the same method instance sets it up again.
    createServer({ realm: 'other.test', secrets: [secret], methods: [method] })
    expect(contexts.map((c) => c.realm)).toEqual(['api.test', 'other.test'])
    // The store a method gets in setup is the one verify sees.
    const paying = createServer({ realm: 'api.test', secrets: [secret], methods: [method], store })
    const handler = paying.protect(route, () => new Response('ok'))
    const { authorization } = await credentialFor(rail, handler)
    expect((await handler(new Request(url, { headers: { authorization } }))).status).toBe(200)
    expect(sawInVerify).toBe('yes')
  })

  it("routes report() to onError with phase 'background'", () => {
    const rail = createTestRail()
    const seen: [unknown, string][] = []
    let report: ((error: unknown) => void) | undefined
    createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [{ ...rail.server(), setup: (context) => (report = context.report) }],
      onError: (error, { phase }) => seen.push([error, phase]),
    })
    const failure = new Error('batch flush failed')
    report!(failure)
    expect(seen).toEqual([[failure, 'background']])
  })
})

describe('Server.close', () => {
  it("aborts the setup signal and awaits every method's close", async () => {
    const rail = createTestRail()
    const events: string[] = []
    let signal: AbortSignal | undefined
    const slowClose = {
      ...rail.server(),
      setup: (context: Method.SetupContext) => {
        signal = context.signal
        context.signal.addEventListener('abort', () => events.push('aborted'))
      },
      close: async () => {
        await new Promise((resolve) => setTimeout(resolve, 20))
        events.push('flushed')
      },
    }
    const seen: string[] = []
    const other = { ...rail.server(), definition: { ...rail.server().definition, intent: 'session' } }
    const failing = {
      ...other,
      close: () => {
        throw new Error('flush failed')
      },
    }
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [slowClose, failing],
      onError: (error, { phase }) => seen.push(`${phase}: ${(error as Error).message}`),
    })
    expect(signal!.aborted).toBe(false)
    const closed = server.close()
    expect(signal!.aborted).toBe(true)
    expect(events).toEqual(['aborted'])
    await closed
    expect(events).toEqual(['aborted', 'flushed'])
    expect(seen).toEqual(['background: flush failed'])
    // Idempotent: closing again neither re-runs close nor reports again.
    await server.close()
    expect(events).toEqual(['aborted', 'flushed'])
    expect(seen).toHaveLength(1)
  })
})

describe('Method.Server.challengeProblem', () => {
  const custom = (kind: string) =>
    new PaymentError({ type: `test/${kind}`, title: `Test ${kind}`, status: 402, detail: kind })

  it("asks the method for a problem when a challenge was already consumed ('consumed')", async () => {
    const rail = createTestRail()
    const kinds: string[] = []
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [
        {
          ...rail.server(),
          challengeProblem: (_payload, kind) => {
            kinds.push(kind)
            return kind === 'consumed' ? custom(kind) : undefined
          },
        },
      ],
    })
    const handler = server.protect(route, () => new Response('ok'))
    const { authorization } = await credentialFor(rail, handler)
    expect((await handler(new Request(url, { headers: { authorization } }))).status).toBe(200)
    const replay = await handler(new Request(url, { headers: { authorization } }))
    expect(replay.status).toBe(402)
    expect(await replay.json()).toMatchObject({ type: 'https://paymentauth.org/problems/test/consumed' })
    expect(kinds).toEqual(['consumed'])
  })

  it("asks the method for a problem when the payload fails its schema ('malformed')", async () => {
    const rail = createTestRail()
    const kinds: string[] = []
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [
        {
          ...rail.server(),
          challengeProblem: (payload, kind) => {
            kinds.push(`${kind}:${JSON.stringify(payload)}`)
            return kind === 'malformed' ? custom(kind) : undefined
          },
        },
      ],
    })
    const handler = server.protect(route, () => new Response('ok'))
    const { challenge } = await credentialFor(rail, handler)
    const authorization = Credential.format({ challenge, payload: { transfer: 42 } })
    const response = await handler(new Request(url, { headers: { authorization } }))
    expect(response.status).toBe(402)
    expect(response.headers.get('www-authenticate')).toMatch(/^Payment /)
    expect(await response.json()).toMatchObject({ type: 'https://paymentauth.org/problems/test/malformed' })
    expect(kinds).toEqual(['malformed:{"transfer":42}'])
  })
})

describe('Receipt.challengeId', () => {
  it('names the challenge that was paid', async () => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
    const handler = server.protect(route, (_request, payment) => Response.json(payment.receipt))
    const { challenge, authorization } = await credentialFor(rail, handler)
    const response = await handler(new Request(url, { headers: { authorization } }))
    expect(response.status).toBe(200)
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    expect(receipt.challengeId).toBe(challenge.id)
    expect(await response.json()).toMatchObject({ challengeId: challenge.id })
  })
})
