import { describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { createTestRail } from '../testing/TestMethod.js'
import { create as createServer, type Handler } from './Server.js'

const secret = 'idempotency-test-secret-0123456789abcdefgh'
const url = 'https://api.test/r'
const offer = { method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }
const base = 'https://paymentauth.org/problems/'

function setup(options: { replaysConsumed: boolean; handler?: Handler }) {
  const rail = createTestRail()
  const server = createServer({
    realm: 'api.test',
    secrets: [secret],
    methods: [{ ...rail.server(), replaysConsumed: options.replaysConsumed }],
  })
  let runs = 0
  const handler = server.protect({ offers: [offer] }, async (request, payment) => {
    runs++
    if (options.handler) return options.handler(request, payment)
    return new Response(`run ${runs}: ${await request.text()}`)
  })
  return { rail, handler, runs: () => runs }
}

async function challengeOf(handler: (request: Request) => Promise<Response>, init: RequestInit = {}) {
  const response = await handler(new Request(url, init))
  return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
}

async function pay(rail: ReturnType<typeof createTestRail>, challenge: Challenge.Challenge) {
  const { payload, source } = await rail
    .client()
    .createPayload({ challenge, request: challenge.request as never, url })
  return Credential.format({ challenge, payload, ...(source ? { source } : {}) })
}

describe('Method.Server.replaysConsumed', () => {
  it('answers the credential that consumed a challenge with the original response', async () => {
    const { rail, handler, runs } = setup({ replaysConsumed: true })
    const challenge = await challengeOf(handler, { method: 'POST', body: 'a' })
    const authorization = await pay(rail, challenge)
    const send = (body = 'a', auth = authorization) =>
      handler(new Request(url, { method: 'POST', body, headers: { authorization: auth } }))
    const first = await send()
    expect(first.status).toBe(200)
    const firstBody = await first.text()
    const again = await send()
    expect(again.status).toBe(200)
    expect(await again.text()).toBe(firstBody)
    expect(again.headers.get('payment-receipt')).toBe(first.headers.get('payment-receipt'))
    expect(runs()).toBe(1)
    expect(rail.settlements()).toBe(1)
    // Another body is not bound by the challenge; another credential for it finds it consumed.
    expect((await send('b')).status).toBe(402)
    const forged = Credential.format({ challenge, payload: { transfer: 'bogus' } })
    const refused = await send('a', forged)
    expect(refused.status).toBe(402)
    expect(await refused.json()).toMatchObject({ type: `${base}invalid-challenge` })
    expect(runs()).toBe(1)
  })

  it('does not replay for methods that do not ask for it', async () => {
    const { rail, handler, runs } = setup({ replaysConsumed: false })
    const authorization = await pay(rail, await challengeOf(handler))
    expect((await handler(new Request(url, { headers: { authorization } }))).status).toBe(200)
    const again = await handler(new Request(url, { headers: { authorization } }))
    expect(again.status).toBe(402)
    expect(runs()).toBe(1)
  })

  it('never replays a streamed response, and never runs the handler again for it', async () => {
    const { rail, handler, runs } = setup({
      replaysConsumed: true,
      handler: () => new Response('data: x\n\n', { headers: { 'content-type': 'text/event-stream' } }),
    })
    const authorization = await pay(rail, await challengeOf(handler))
    const first = await handler(new Request(url, { headers: { authorization } }))
    expect(await first.text()).toBe('data: x\n\n')
    const again = await handler(new Request(url, { headers: { authorization } }))
    expect(again.status).toBe(410)
    expect(runs()).toBe(1)
    expect(rail.settlements()).toBe(1)
  })
})
