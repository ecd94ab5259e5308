// Session settlement on anvil across servers and processes (review 3, findings 1 and 3): one method set
// up in two servers settles what each served, and a server process that stops without
// `server.close()` (a crash, a redeploy) leaves what it served listed in the shared store, where the next
// process settles it before the payer can force-close and withdraw it.

import type { Store } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import type { Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  advanceTempoTime,
  startTempo,
  type TempoDevnet,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { PostgresStore } from '../../store-postgres/src/index.js'
import { RedisStore } from '../../store-redis/src/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { type SessionOptions, sessionServer } from '../src/server/index.js'
import { readChannel } from './helpers.js'
import { type Handler, sessionHarness } from './sessionHarness.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-session-settle-index-secret-0123456'
const price = 1_000n
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const tag = Math.random().toString(36).slice(2, 10)
const postgresUrl = process.env.MPPKIT_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

type Shared = { store: Store; close(): Promise<void> }
/** The shared stores a restarted process meets the previous one on; a message when unreachable. */
const sharedStores: { name: string; payer: number; open(): Promise<Shared | string> }[] = [
  {
    name: 'RedisStore',
    payer: 3,
    open: async () => {
      const why = await redisUnavailableReason()
      if (why) return why
      const keyPrefix = `mppkit-test-settle-index:${tag}:`
      const stores: RedisStore[] = []
      return {
        get store() {
          const store = new RedisStore({ url: redisUrl, keyPrefix })
          stores.push(store)
          return store
        },
        close: async () => {
          for (const store of stores) await store.close()
        },
      }
    },
  },
  {
    name: 'PostgresStore',
    payer: 4,
    open: async () => {
      const schema = `mppkit_test_settle_index_${tag}`
      const stores: PostgresStore[] = []
      const first = new PostgresStore({ connectionString: postgresUrl, schema })
      stores.push(first)
      try {
        await first.migrate()
      } catch (error) {
        await first.close()
        return `PostgreSQL unreachable at ${postgresUrl} (${(error as Error).message})`
      }
      let fresh = false
      return {
        // Each process its own pool on the one schema (the first is the one that migrated).
        get store() {
          if (!fresh) {
            fresh = true
            return first
          }
          const store = new PostgresStore({ connectionString: postgresUrl, schema })
          stores.push(store)
          return store
        },
        close: async () => {
          await first.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
          for (const store of stores) await store.close()
        },
      }
    },
  },
]

describe.skipIf(!!reason)('tempo/session settlement across servers and processes', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 6 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const { send, voucher, open, payerCall } = sessionHarness(() => devnet, { secret, price })
  const onChain = (channelId: Hex) => readChannel(devnet.info, channelId)
  const pay = async (handler: Handler, index: number, channelId: Hex, amount: bigint) =>
    send(handler, {
      action: 'voucher',
      channelId,
      cumulativeAmount: String(amount),
      signature: await voucher(index, channelId, amount),
    })
  const method = (extra: Partial<SessionOptions> = {}) =>
    sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
      escrow: devnet.info.escrow,
      timeout: 5_000,
      stateTtlSeconds: 900,
      ...extra,
    })
  /** A server process on `store` with the session method `sessions`; what goes to onError is kept. */
  const serverOn = (sessions: ReturnType<typeof method>, store?: Store, realm = 'session.test') => {
    const errors: unknown[] = []
    const server = createServer({
      realm,
      secrets: [secret],
      methods: [sessions],
      onError: (error) => errors.push(error),
      ...(store ? { store } : {}),
    })
    const handler: Handler = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
    return { server, handler, errors }
  }
  /** Polls the escrow until the channel's settled amount reaches `amount` (or `timeout` ms pass). */
  const settledReaches = async (channelId: Hex, amount: bigint, timeout = 10_000) => {
    const deadline = Date.now() + timeout
    for (;;) {
      const channel = await onChain(channelId)
      if (channel.settled >= amount || Date.now() > deadline) return channel
      await sleep(100)
    }
  }

  it('one method in two servers (each its own store): settleChannels() settles what each served', async () => {
    const sessions = method()
    const first = serverOn(sessions, undefined, 'first.test')
    const second = serverOn(sessions, undefined, 'second.test')
    const channels: Hex[] = []
    for (const [index, { handler }] of [
      [1, second],
      [2, first],
    ] as const) {
      const { response, channelId } = await open(handler, index, 10n * price, price)
      expect(response.status, await response.clone().text()).toBe(200)
      const paid = await pay(handler, index, channelId, 2n * price)
      expect(paid.status, await paid.clone().text()).toBe(200)
      channels.push(channelId)
    }
    // The first server's store is settled first: the second server's channel must survive its batch.
    expect(await sessions.settleChannels()).toBeDefined()
    for (const channelId of channels) expect((await onChain(channelId)).settled).toBe(2n * price)
    expect([...first.errors, ...second.errors]).toEqual([])
    await first.server.close()
    await second.server.close()
  })

  it('one method in two servers with settleInterval: the timer batches of the first server leave the second’s channel to it', async () => {
    const sessions = method({ settleInterval: 150 })
    const first = serverOn(sessions, undefined, 'first.test')
    const second = serverOn(sessions, undefined, 'second.test')
    // Past each store's first timer batch (which reads the store's index): from here on, for a minute,
    // the timer batches look only at the channels this process spent on in their store.
    await sleep(400)
    const { response, channelId } = await open(second.handler, 2, 10n * price, price)
    expect(response.status, await response.clone().text()).toBe(200)
    expect((await pay(second.handler, 2, channelId, 2n * price)).status).toBe(200)
    expect((await settledReaches(channelId, 2n * price, 3_000)).settled).toBe(2n * price)
    expect([...first.errors, ...second.errors]).toEqual([])
    await first.server.close()
    await second.server.close()
  })

  it.each(sharedStores)(
    'a process that stopped without closing: the next one on the same $name settles what it served, before the payer withdraws',
    async ({ open: openStore, payer }) => {
      const shared = await openStore()
      if (typeof shared === 'string') {
        console.warn(`[skip] ${shared}`)
        return
      }
      try {
        // The process that serves and then dies: its timer never fires, its server is never closed.
        const crashed = method({ settleInterval: 600_000 })
        const before = serverOn(crashed, shared.store)
        const { response, channelId } = await open(before.handler, payer, 10n * price, 3n * price)
        expect(response.status, await response.clone().text()).toBe(200)
        for (let i = 0; i < 2; i++)
          expect((await pay(before.handler, payer, channelId, 3n * price)).status).toBe(200)
        crashed.stop()
        expect((await onChain(channelId)).settled).toBe(0n)

        // The next process (a fresh method on a fresh connection to the same store): its first timer
        // batch settles the 3 000 served, though this process never saw the channel.
        const restarted = method({ settleInterval: 200 })
        const after = serverOn(restarted, shared.store)
        const settled = await settledReaches(channelId, 3n * price)
        expect(settled.settled).toBe(3n * price)

        // The payer walks away: forced close, grace period, withdrawal; what was served stays paid.
        await payerCall(payer, 'requestClose', channelId)
        await advanceTempoTime(devnet.info.rpcUrl, 16 * 60)
        await payerCall(payer, 'withdraw', channelId)
        const final = await onChain(channelId)
        expect({ finalized: final.finalized, settled: final.settled }).toEqual({
          finalized: true,
          settled: 3n * price,
        })
        await after.server.close()
        expect([...before.errors, ...after.errors]).toEqual([])
      } finally {
        await shared.close()
      }
    },
  )

  it('two processes sweeping one Redis store at once settle a channel once, and report nothing', async () => {
    const why = await redisUnavailableReason()
    if (why) {
      console.warn(`[skip] ${why}`)
      return
    }
    const keyPrefix = `mppkit-test-settle-index-race:${tag}:`
    const stores = [0, 1, 2].map(() => new RedisStore({ url: redisUrl, keyPrefix }))
    try {
      const crashed = method()
      const before = serverOn(crashed, stores[0])
      const { response, channelId } = await open(before.handler, 5, 10n * price, 2n * price)
      expect(response.status, await response.clone().text()).toBe(200)
      expect((await pay(before.handler, 5, channelId, 2n * price)).status).toBe(200)
      crashed.stop()
      // Two fresh processes, both of which find the channel in the store's index.
      const [a, b] = [method(), method()]
      const [serverA, serverB] = [serverOn(a, stores[1]), serverOn(b, stores[2])]
      const hashes = await Promise.all([a.settleChannels(), b.settleChannels()])
      expect(hashes.some((hash) => hash !== undefined)).toBe(true)
      expect((await onChain(channelId)).settled).toBe(2n * price)
      // The batch that lost the race reverted: the escrow shows the channel settled, nothing to report.
      expect([...serverA.errors, ...serverB.errors]).toEqual([])
      await serverA.server.close()
      await serverB.server.close()
    } finally {
      for (const store of stores) await store.close()
    }
  })
})
