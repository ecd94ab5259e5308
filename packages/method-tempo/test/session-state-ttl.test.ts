// The keys of a session channel in the Store expire in an order that never loses money (audit
// 2026-12: "Different key lifetimes could reset `spent`"): `spent` outlives the stored voucher (else
// the voucher would be served again), and the settle mark outlives `spent` (else what was served could
// no longer be settled). Short TTLs, on MemoryStore (a clock of its own), Redis and PostgreSQL.
import { randomBytes } from 'node:crypto'
import { MemoryStore, type Store } from '@mppkit/core'
import pg from 'pg'
import { bytesToHex, type Hex } from 'viem'
import { afterAll, describe, expect, it } from 'vitest'
import { PostgresStore } from '../../store-postgres/src/index.js'
import { RedisStore } from '../../store-redis/src/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import type { ChannelState } from '../src/server/session/Chain.js'
import { createChannelStore } from '../src/server/session/ChannelStore.js'

const payee = '0x00000000000000000000000000000000000000aa' as const
const currency = '0x00000000000000000000000000000000000000bb' as const
const signature = (n: number) => bytesToHex(new Uint8Array(65).fill(n)) as Hex
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const postgresUrl = process.env.MPPKIT_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const postgresReason = async () => {
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 1_000 })
  client.on('error', () => {})
  try {
    await client.connect()
    return undefined
  } catch (error) {
    return `PostgreSQL unreachable (${(error as Error).message})`
  } finally {
    await client.end().catch(() => {})
  }
}
const redisReason = await redisUnavailableReason()
const pgReason = await postgresReason()
const schema = `mppkit_test_ttl_${Math.random().toString(36).slice(2, 10)}`
const closers: (() => Promise<void>)[] = []

afterAll(async () => {
  for (const close of closers) await close().catch(() => {})
  if (!pgReason) {
    const admin = new pg.Client({ connectionString: postgresUrl })
    await admin.connect()
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await admin.end()
  }
})

// Real clocks for the networked stores: each test checks a key on either side of a TTL with 0.2 × TTL to
// spare, and the statements between two checks must fit in that. At 1.5 s (300 ms to spare) a loaded CI
// machine (load average ~7: another suite beside it) once took longer, and a key expired early.
const networkTtl = 4_000

type Backend = {
  name: string
  skip: string | undefined
  /** TTL of the session state, in ms. */
  ttl: number
  create(): { store: Store; advance(ms: number): Promise<void> }
}

const backends: Backend[] = [
  {
    name: 'MemoryStore',
    skip: undefined,
    ttl: 30 * 86_400_000,
    create() {
      let now = Date.now()
      const store = new MemoryStore({ now: () => now })
      return {
        store,
        advance: async (ms) => {
          now += ms
        },
      }
    },
  },
  {
    name: 'RedisStore',
    skip: redisReason,
    ttl: networkTtl,
    create() {
      const store = new RedisStore({
        url: redisUrl,
        keyPrefix: `mppkit-test-ttl:${Math.random().toString(36).slice(2, 10)}:`,
      })
      closers.push(() => store.close())
      return { store, advance: sleep }
    },
  },
  {
    name: 'PostgresStore',
    skip: pgReason,
    ttl: networkTtl,
    create() {
      const store = new PostgresStore({ connectionString: postgresUrl, schema })
      closers.push(() => store.close())
      return { store, advance: sleep }
    },
  },
]

for (const backend of backends) {
  // The tests of one backend run side by side: each has its own store, processes and channel, and most
  // of their time is spent waiting for TTLs.
  if (backend.skip) console.warn(`[skip] tempo/session key lifetimes on ${backend.name}: ${backend.skip}`)
  const group = backend.skip ? describe.skip : describe.concurrent
  group(`tempo/session key lifetimes on ${backend.name}`, () => {
    const { ttl } = backend
    const channel: ChannelState = {
      payer: '0x00000000000000000000000000000000000000cc',
      payee,
      token: currency,
      signer: '0x00000000000000000000000000000000000000cc',
      deposit: '1000000',
      settled: '0',
      closeRequestedAt: '0',
      finalized: false,
      readAt: Date.now(),
    }
    // Two server processes sharing the store.
    const processes = () =>
      [0, 1].map(() =>
        createChannelStore({
          ttlMs: ttl,
          stateTtl: 1e12,
          payee,
          currency,
          readChannel: async () => ({ ...channel }),
        }),
      )
    const pay = async (
      channels: ReturnType<typeof createChannelStore>,
      store: Store,
      channelId: Hex,
      amount: bigint,
      cost: bigint,
      sig: Hex,
    ) => {
      const { raw } = await channels.loadChannelRaw(store, channelId, true, false)
      return channels.acceptAndDeduct(store as Store & Required<Pick<Store, 'atomic'>>, channelId, {
        channelRaw: raw,
        amount,
        signature: sig,
        minDelta: 0n,
        cost,
        settled: 0n,
        recheck: () => {},
      })
    }

    it('a voucher stored after the last deduction keeps `spent` alive: what was served is not served again', async () => {
      const { store, advance } = backend.create()
      const [channels] = processes()
      const channelId = bytesToHex(randomBytes(32))
      expect(await pay(channels!, store, channelId, 1_000n, 1_000n, signature(1))).toMatchObject({
        ok: true,
        spent: 1_000n,
      })
      await advance(ttl * 0.6)
      // A voucher accepted without a deduction (a HEAD request, or one whose cost it does not cover).
      expect(await channels!.accept(store, channelId, 1_500n, signature(2), 0n)).toBe(1_500n)
      // Past the TTL of the deduction, within the TTL of the voucher.
      await advance(ttl * 0.6)
      expect(await channels!.accepted(store, channelId)).toBe(1_500n)
      expect(await channels!.spentOf(store, channelId)).toBe(1_000n)
      // 500 left, not 1 500 again.
      expect((await channels!.deduct(store, channelId, 1_000n)).ok).toBe(false)
      expect((await channels!.deduct(store, channelId, 500n)).ok).toBe(true)
    })

    it('deductions keep the settle mark alive while what it settles is still counted', async () => {
      const { store, advance } = backend.create()
      const [first, second] = processes()
      const channelId = bytesToHex(randomBytes(32))
      // A fully served voucher (the settle mark), then one far ahead of what is served.
      await pay(first!, store, channelId, 1_000n, 1_000n, signature(1))
      await pay(first!, store, channelId, 5_000n, 100n, signature(2))
      expect(await first!.consumedVoucher(store, channelId)).toEqual({
        amount: '1000',
        signature: signature(1),
      })
      await advance(ttl * 0.4)
      // Another process serves the same voucher again (it never saw the settle mark), then a metered
      // deduction in the first one.
      expect(await pay(second!, store, channelId, 5_000n, 100n, signature(2))).toMatchObject({
        ok: true,
        spent: 1_200n,
      })
      await advance(ttl * 0.4)
      expect((await first!.deduct(store, channelId, 100n)).ok).toBe(true)
      // Past the TTL of the settle mark's own write, within that of the last deduction.
      await advance(ttl * 0.4)
      expect(await first!.spentOf(store, channelId)).toBe(1_300n)
      expect(await first!.consumedVoucher(store, channelId)).toEqual({
        amount: '1000',
        signature: signature(1),
      })
    })

    it('a refused voucher that was stored keeps `spent` alive too', async () => {
      const { store, advance } = backend.create()
      const [channels] = processes()
      const channelId = bytesToHex(randomBytes(32))
      await pay(channels!, store, channelId, 1_000n, 1_000n, signature(1))
      await advance(ttl * 0.6)
      // Stored, but it does not cover the cost: insufficient balance.
      expect(await pay(channels!, store, channelId, 1_200n, 1_000n, signature(2))).toMatchObject({
        ok: false,
        accepted: 1_200n,
      })
      await advance(ttl * 0.6)
      expect(await channels!.accepted(store, channelId)).toBe(1_200n)
      expect(await channels!.spentOf(store, channelId)).toBe(1_000n)
      expect((await pay(channels!, store, channelId, 1_200n, 1_000n, signature(2))).ok).toBe(false)
    })
  })
}
