import { Challenge, Credential, MemoryStore } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { createInvoice, pay } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import * as Invoice from '../src/Invoice.js'
import { session } from '../src/Methods.js'
import { type SessionOptions, sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

// The session options that go into every challenge (`idleTimeout`, `depositAmount`) are accepted up to
// what the challenge can carry: at the largest values the server takes, the challenge still fits the
// method's request schema, so its own verify accepts the paid credential (config-server.test.ts checks
// that anything beyond is refused when the method is created).

const realm = 'lightning.test'
const secret = 'lightning-option-bounds-secret-0123456789'
const url = 'https://lightning.test/resource'

let network: Lightning
beforeAll(async () => {
  network = await startLightning()
})
afterAll(async () => {
  await network?.stop()
})

function setup(options: Omit<SessionOptions, 'lnd'>) {
  const server = createServer({
    realm,
    secrets: [secret],
    methods: [sessionServer({ lnd: lndFor(network.info.nodes.payee), ...options })],
    store: new MemoryStore(),
    logger: false,
  })
  const handler = server.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
    () => Response.json({ ok: true }),
  )
  const challenge = async () => {
    const response = await handler(new Request(url))
    expect(response.status).toBe(402)
    return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
  }
  return { handler, challenge }
}

describe('sessionServer option bounds', () => {
  it('advertises the longest idleTimeoutSeconds as idleTimeout, and a paid open succeeds', async () => {
    const { handler, challenge } = setup({ depositSats: 10, idleTimeoutSeconds: 999_999_999 })
    const c = await challenge()
    expect(c.request.idleTimeout).toBe('999999999')
    expect(session.request.safeParse(c.request).success).toBe(true)
    const payer = lndFor(network.info.nodes.payer)
    const { secret: preimage } = await pay({ lnd: payer, request: c.request.depositInvoice as string })
    const returnInvoice = (await createInvoice({ lnd: payer })).request
    const payload = { action: 'open', preimage, returnInvoice }
    const opened = await handler(
      new Request(url, { headers: { authorization: Credential.format({ challenge: c, payload } as never) } }),
    )
    expect(opened.status).toBe(200)
  })

  it('issues the largest depositSats as an invoice of exactly that amount, in a challenge the schema accepts', async () => {
    const { challenge } = setup({ depositSats: 2_100_000_000_000_000n })
    const c = await challenge()
    expect(c.request.depositAmount).toBe('2100000000000000')
    expect(session.request.safeParse(c.request).success).toBe(true)
    expect(Invoice.tryDecode(c.request.depositInvoice as string)?.amountMsat).toBe(2_100_000_000_000_000_000n)
  })
})
