import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import * as IdempotencyCache from '../IdempotencyCache.js'
import { createTestRail } from '../testing/TestMethod.js'
import { create as createServer } from './Server.js'

const secret = 'paid-test-secret-0123456789abcdefghijklmn'
const url = 'https://api.test/stream'
const offer = { method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }

const within = <value>(promise: Promise<value>, ms: number, what: string) =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)),
  ])

describe('Paid.finalize', () => {
  it('lets a streamed (SSE) response to an Idempotency-Key POST flow as produced, and never replays it', async () => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
    let release!: () => void
    const gate = new Promise<void>((resolve) => {
      release = resolve
    })
    let runs = 0
    const handler = server.protect({ offers: [offer] }, () => {
      runs++
      let step = 0
      const encoder = new TextEncoder()
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          step++
          if (step === 1) controller.enqueue(encoder.encode('data: first\n\n'))
          else if (step === 2) {
            // The rest of the stream waits until the client has seen the first event.
            await gate
            controller.enqueue(encoder.encode('data: last\n\n'))
          } else controller.close()
        },
      })
      return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
    })
    const unpaid = await handler(new Request(url, { method: 'POST', body: 'q' }))
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
    const { payload, source } = await rail
      .client()
      .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
    const authorization = Credential.format({ challenge: challenge!, payload, ...(source ? { source } : {}) })
    const send = () =>
      handler(
        new Request(url, {
          method: 'POST',
          body: 'q',
          headers: { authorization, 'idempotency-key': 'sse-1' },
        }),
      )
    const response = await within(send(), 2_000, 'the paid response')
    expect(response.status).toBe(200)
    expect(response.headers.get('payment-receipt')).not.toBeNull()
    const reader = response.body!.getReader()
    const first = await within(reader.read(), 2_000, 'the first event')
    expect(new TextDecoder().decode(first.value)).toBe('data: first\n\n')
    release()
    let rest = ''
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      rest += new TextDecoder().decode(chunk.value)
    expect(rest).toBe('data: last\n\n')
    // A retry with the key: a clear problem, no second handler run, no second charge.
    const retry = await send()
    expect(retry.status).toBe(410)
    expect(retry.headers.get('payment-receipt')).toBeNull()
    expect(await retry.json()).toMatchObject({
      type: 'https://paymentauth.org/problems/response-not-replayable',
      status: 410,
    })
    expect(runs).toBe(1)
    expect(rail.settlements()).toBe(1)
  })
  it('a paid body that fails while it is buffered for the record: a 500 problem, reported, and the retry with the key serves it once', async () => {
    const rail = createTestRail()
    const reported: string[] = []
    const server = createServer({
      realm: 'api.test',
      secrets: [secret],
      methods: [rail.server()],
      logger: false,
      onError: (_error, { phase }) => reported.push(phase),
    })
    let runs = 0
    const handler = server.protect({ offers: [offer] }, () => {
      runs++
      const attempt = runs
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (attempt === 1) controller.error(new Error('upstream reset'))
          else {
            controller.enqueue(new TextEncoder().encode('{"report":1}'))
            controller.close()
          }
        },
      })
      return new Response(body, { headers: { 'content-type': 'application/json' } })
    })
    const [challenge] = Challenge.parseAll((await handler(new Request(url))).headers.get('www-authenticate')!)
    const { payload } = await rail
      .client()
      .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
    const authorization = Credential.format({ challenge: challenge!, payload })
    const send = () => handler(new Request(url, { headers: { authorization, 'idempotency-key': 'order-9' } }))
    const first = await send()
    expect(first.status).toBe(500)
    expect(first.headers.get('content-type')).toContain('application/problem+json')
    expect(JSON.stringify(await first.json())).not.toContain('upstream reset')
    expect(reported).toEqual(['handler'])
    const retry = await send()
    expect(retry.status).toBe(200)
    expect(await retry.text()).toBe('{"report":1}')
    expect(retry.headers.get('payment-receipt')).not.toBeNull()
    expect(rail.settlements()).toBe(1)
  })
})

describe('Paid.decorate', () => {
  // "Responses containing `Payment-Receipt` headers MUST include `Cache-Control: private`" (§12.9): a
  // `private` that names fields (RFC 9111 §5.2.2.7) lets a shared cache store the rest of the paid
  // response, which it would then serve to clients that never paid.
  it.each([
    [undefined, 'private'],
    ['public, max-age=600', 'private'],
    ['public, max-age=600, private="set-cookie"', 'private'],
    ['private=set-cookie', 'private'],
    ['max-age=60, x-private-note', 'private'],
    ['public, x-no-store-hint', 'private'],
    ['private', 'private'],
    ['PRIVATE, max-age=60', 'PRIVATE, max-age=60'],
    ['max-age=60, private', 'max-age=60, private'],
    ['no-store', 'no-store'],
    ['no-cache, no-store, must-revalidate', 'no-cache, no-store, must-revalidate'],
    ['x-note="a, private", public', 'private'],
    ['x-note="a \\" b", private', 'x-note="a \\" b", private'],
  ])('a paid 2xx with Cache-Control %j is sent with %j', async (sent, expected) => {
    const rail = createTestRail()
    const server = createServer({ realm: 'api.test', secrets: [secret], methods: [rail.server()] })
    const handler = server.protect({ offers: [offer] }, () =>
      sent === undefined
        ? new Response('paid')
        : new Response('paid', { headers: { 'cache-control': sent } }),
    )
    const unpaid = await handler(new Request(url))
    const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate')!)
    const { payload } = await rail
      .client()
      .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
    const authorization = Credential.format({ challenge: challenge!, payload })
    const response = await handler(new Request(url, { headers: { authorization } }))
    expect(response.status).toBe(200)
    expect(response.headers.get('payment-receipt')).not.toBeNull()
    expect(response.headers.get('cache-control')).toBe(expected)
  })
})

describe('IdempotencyCache.isStreamed', () => {
  it('is true for event streams and NDJSON with a body, false otherwise', () => {
    const typed = (type: string, body: string | null = 'x') =>
      new Response(body, { headers: { 'content-type': type } })
    expect(IdempotencyCache.isStreamed(typed('text/event-stream'))).toBe(true)
    expect(IdempotencyCache.isStreamed(typed('text/event-stream; charset=utf-8'))).toBe(true)
    expect(IdempotencyCache.isStreamed(typed('application/x-ndjson'))).toBe(true)
    expect(IdempotencyCache.isStreamed(typed('application/json'))).toBe(false)
    expect(IdempotencyCache.isStreamed(typed('text/event-stream', null))).toBe(false)
    expect(IdempotencyCache.isStreamed(new Response('x'))).toBe(false)
  })
})
