import { Challenge, Credential, MemoryStore } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { createInvoice, getChannelBalance, pay } from 'lightning'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { sessionServer } from '../src/server/index.js'
import { lndFor } from './helpers.js'

// The idle sweep finds open sessions through an index in the Store. An open whose index entry is written
// late (its process paused, a slow Store round trip) while several sweeps pass its slot must still be
// found, idle-closed and refunded.
const url = 'https://lightning.test/generate'
let network: Lightning
beforeAll(async () => {
  network = await startLightning()
})
afterAll(async () => {
  await network?.stop()
})

/** A store whose first write of an index slot's name waits `delayMs` (a paused process, a slow round trip). */
class SlowSlotStore extends MemoryStore {
  delayed = false
  constructor(readonly delayMs: number) {
    super()
  }
  override async set(key: string, value: string, ttlMs?: number) {
    if (!this.delayed && key.includes('idle:slot:')) {
      this.delayed = true
      await new Promise((resolve) => setTimeout(resolve, this.delayMs))
    }
    return super.set(key, value, ttlMs as number)
  }
}

const payerBalance = async () =>
  (await getChannelBalance({ lnd: lndFor(network.info.nodes.payer) })).channel_balance

describe('idle sweep and a slow index write', () => {
  it('an open whose slot name is written after eight sweeps passed it is still idle-closed and refunded', async () => {
    const store = new SlowSlotStore(400)
    const method = sessionServer({
      lnd: lndFor(network.info.nodes.payee),
      depositSats: 10,
      idleTimeoutSeconds: 1,
      idleCheckIntervalMs: 50,
    })
    const server = createServer({
      realm: 'lightning.test',
      secrets: ['slow-index-secret-0123456789abcdef'],
      methods: [method],
      store,
    })
    const handler = server.protect(
      { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
      () => Response.json({ ok: true }),
    )
    const before = await payerBalance()
    const open = Challenge.parseAll((await handler(new Request(url))).headers.get('www-authenticate')!)[0]!
    const payer = lndFor(network.info.nodes.payer)
    const { secret: preimage, id: sessionId } = await pay({
      lnd: payer,
      request: (open.request as { depositInvoice: string }).depositInvoice,
    })
    const returnInvoice = (await createInvoice({ lnd: payer })).request
    const opened = await handler(
      new Request(url, {
        headers: {
          authorization: Credential.format({
            challenge: open,
            payload: { action: 'open', preimage, returnInvoice },
          } as never),
        },
      }),
    )
    expect(opened.status).toBe(200)
    expect(store.delayed).toBe(true)
    // Idle after 1 s; sweeps every 50 ms. Waited for up to 4 s.
    const record = async () => {
      const raw = await store.get(`mppkit:m:lightning/session:session:${sessionId}`)
      return raw === undefined ? undefined : (JSON.parse(raw) as { status: string; refundStatus?: string })
    }
    const deadline = Date.now() + 4_000
    while ((await record())?.refundStatus !== 'succeeded' && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50))
    expect(await record()).toMatchObject({ status: 'closed', refundStatus: 'succeeded' })
    // Paid 10, billed 1, 9 back.
    expect(await payerBalance()).toBe(before - 1)
    await server.close()
  })
})
