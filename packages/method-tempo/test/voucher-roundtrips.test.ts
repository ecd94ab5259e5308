// The per-voucher Store traffic of tempo/session (issue 13): which operations a paid voucher request
// costs, and that the shortcut behind them (a CAS against this process's last known voucher) never
// over-spends when several server instances (as several processes would) share one Store.
import { type AtomicStep, Challenge, Credential, MemoryStore, Receipt, type Store } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { Redis } from 'ioredis'
import type { Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { PostgresStore } from '../../store-postgres/src/index.js'
import { RedisStore, redisClientOptions } from '../../store-redis/src/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { sessionClient } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'
import * as Voucher from '../src/Voucher.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const secret = 'tempo-roundtrip-test-secret-0123456789ab'
const price = 1_000n

/** A Store that logs `operation kind` for every method-scoped key it is asked about. */
function countingStore(inner: Store, log: string[], withAtomic = true, keys?: Set<string>): Store {
  const kind = (key: string) => /m:tempo\/session:([a-z]+):/.exec(key)?.[1]
  const note = (operation: string, key: string) => {
    const k = kind(key)
    if (k) log.push(`${operation} ${k}`)
  }
  const logged =
    <A extends unknown[], R>(operation: string, call: (key: string, ...rest: A) => R) =>
    (key: string, ...rest: A): R => {
      note(operation, key)
      return call(key, ...rest)
    }
  return {
    putIfAbsent: logged('putIfAbsent', (key, value: string, ttlMs: number) =>
      inner.putIfAbsent(key, value, ttlMs),
    ),
    get: logged('get', (key) => inner.get(key)),
    set: logged('set', (key, value: string, ttlMs: number) => inner.set(key, value, ttlMs)),
    delete: logged('delete', (key) => inner.delete(key)),
    compareAndSet: logged('compareAndSet', (key, expected: string | undefined, next: string, ttlMs: number) =>
      inner.compareAndSet(key, expected, next, ttlMs),
    ),
    increment: logged('increment', (key, delta: bigint, options: Parameters<Store['increment']>[2]) =>
      inner.increment(key, delta, options),
    ),
    ...(inner.atomic && withAtomic
      ? {
          atomic: (steps: readonly AtomicStep[]) => {
            for (const step of steps) keys?.add(step.key)
            log.push(`atomic ${steps.map((step) => `${step.op} ${kind(step.key)}`).join(', ')}`)
            return inner.atomic!(steps)
          },
        }
      : {}),
  }
}

/** Counts the commands an ioredis client sends (each is one round trip: nothing here is pipelined). */
function countCommands(client: Redis): string[] {
  const sent: string[] = []
  const send = client.sendCommand.bind(client)
  client.sendCommand = ((command: Parameters<Redis['sendCommand']>[0], stream?: unknown) => {
    const consumed = command.args.some((a) => String(a).includes(':consumed:'))
    sent.push(consumed ? `${command.name} consumed` : command.name)
    return send(command, stream as never)
  }) as Redis['sendCommand']
  return sent
}

const postgresUrl = process.env.MPPKIT_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const tag = Math.random().toString(36).slice(2, 10)

/** The shared Stores two server instances meet on; Redis and PostgreSQL when they answer. */
const sharedStores: { name: string; payer: number; open(): Promise<Store & { close?(): Promise<void> }> }[] =
  [
    { name: 'MemoryStore', payer: 2, open: async () => new MemoryStore() },
    {
      name: 'RedisStore',
      payer: 3,
      open: async () => {
        const why = await redisUnavailableReason()
        if (why) throw new Error(`[skip] ${why}`)
        return new RedisStore({ url: redisUrl, keyPrefix: `mppkit-test-voucher:${tag}:` })
      },
    },
    {
      name: 'PostgresStore',
      payer: 4,
      open: async () => {
        const store = new PostgresStore({
          connectionString: postgresUrl,
          schema: `mppkit_test_voucher_${tag}`,
        })
        try {
          await store.migrate()
        } catch (error) {
          await store.close()
          throw new Error(`[skip] PostgreSQL unreachable at ${postgresUrl} (${(error as Error).message})`)
        }
        return store
      },
    },
  ]

describe.skipIf(!!reason)('tempo/session Store round trips per voucher', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 7 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const serverOn = (store: Store) => {
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: privateKeyToAccount(devnet.info.accounts[0]!.privateKey),
      escrow: devnet.info.escrow,
      timeout: 5_000,
      channelStateTtl: 60_000,
    })
    const server = createServer({ realm: 'session.test', secrets: [secret], methods: [method], store })
    return server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('ok'),
    )
  }

  /** Opens a channel from payer `index` through `handler`; returns a signer of voucher requests. */
  const openChannel = async (handler: (request: Request) => Promise<Response>, index: number) => {
    const payer = privateKeyToAccount(devnet.info.accounts[index]!.privateKey)
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof fetch
    const sessions = sessionClient({
      account: payer,
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      deposit: 1_000n * price,
      fetch: fetcher,
    })
    const { create } = await import('@mppkit/core/client')
    const client = create({ methods: [sessions], fetch: fetcher, policy: { maxDeposit: 1_000n * price } })
    expect((await client.fetch('https://session.test/r')).status).toBe(200)
    const [state] = [...sessions.channels.values()]
    const channelId = state!.channelId as Hex
    const pay = async (via: (request: Request) => Promise<Response>, cumulativeAmount: bigint) => {
      const challenge = Challenge.parseAll(
        (await via(new Request('https://session.test/r'))).headers.get('www-authenticate')!,
      )[0]!
      const signature = await Voucher.sign(payer, {
        chainId: devnet.info.chainId,
        escrow: devnet.info.escrow,
        channelId,
        cumulativeAmount,
      })
      const authorization = Credential.format({
        challenge,
        payload: { action: 'voucher', channelId, cumulativeAmount: String(cumulativeAmount), signature },
      })
      return via(new Request('https://session.test/r', { headers: { authorization } }))
    }
    return Object.assign(pay, { channelId })
  }

  it('a paid voucher costs ONE atomic store operation (no close under way, channel check, voucher CAS, bounded increment, settle mark)', async () => {
    const log: string[] = []
    const handler = serverOn(countingStore(new MemoryStore(), log))
    const pay = await openChannel(handler, 1)
    for (let i = 2n; i <= 6n; i++) {
      log.length = 0
      const response = await pay(handler, i * price)
      expect(response.status, await response.clone().text()).toBe(200)
      // Before issue 13: get ch, compareAndSet v, increment spent, set ok (4 operations). The last step
      // rewrites the settle mark with its value, so it never expires before `spent` (same operation).
      expect(log).toEqual([
        'atomic check closing, check ch, compareAndSet v, increment spent, setIfAtLeast ok, compareAndSet ok',
      ])
    }
    // An idempotent retry (equal amount, fresh challenge) checks the voucher instead of writing it.
    log.length = 0
    const retry = await pay(handler, 6n * price)
    expect(retry.status).toBe(402)
    expect(log).toEqual([
      'atomic check closing, check ch, check v, increment spent, setIfAtLeast ok, compareAndSet ok',
    ])
  })

  it('one challenge carries a session of vouchers; a replayed voucher credential spends only balance it authorized', async () => {
    const inner = new MemoryStore()
    const keys = new Set<string>()
    const handler = serverOn(countingStore(inner, [], true, keys))
    const { channelId: id } = await openChannel(handler, 4)
    const payer = privateKeyToAccount(devnet.info.accounts[4]!.privateKey)
    const spentKey = () => [...keys].find((k) => k.includes(':spent:'))!
    const challenge = Challenge.parseAll(
      (await handler(new Request('https://session.test/r'))).headers.get('www-authenticate')!,
    )[0]!
    const credential = async (cumulativeAmount: bigint) =>
      Credential.format({
        challenge,
        payload: {
          action: 'voucher',
          channelId: id,
          cumulativeAmount: String(cumulativeAmount),
          signature: await Voucher.sign(payer, {
            chainId: devnet.info.chainId,
            escrow: devnet.info.escrow,
            channelId: id,
            cumulativeAmount,
          }),
        },
      })
    const send = (authorization: string) =>
      handler(new Request('https://session.test/r', { headers: { authorization } }))
    // Three vouchers on the one challenge: each advances the channel and pays its request.
    for (let i = 2n; i <= 4n; i++) expect((await send(await credential(i * price))).status).toBe(200)
    expect(await inner.get(spentKey())).toBe(String(4n * price))
    // The last credential again, byte for byte: an idempotent voucher, but no balance is left to charge.
    const last = await credential(4n * price)
    const replay = await send(last)
    expect(replay.status).toBe(402)
    expect(((await replay.json()) as { type: string }).type).toMatch(/session\/insufficient-balance$/)
    expect(await inner.get(spentKey())).toBe(String(4n * price))
    // A voucher authorizing two more requests pays exactly two, then the same credential is refused.
    const ahead = await credential(6n * price)
    expect((await send(ahead)).status).toBe(200)
    expect((await send(ahead)).status).toBe(200)
    expect((await send(ahead)).status).toBe(402)
    expect(await inner.get(spentKey())).toBe(String(6n * price))
  })

  it('a store without atomic() takes the multi-call path: a channel read, a voucher CAS, the close mark, a bounded increment and the settle mark (never moved back)', async () => {
    const log: string[] = []
    const handler = serverOn(countingStore(new MemoryStore(), log, false))
    const pay = await openChannel(handler, 5)
    for (let i = 2n; i <= 4n; i++) {
      log.length = 0
      const response = await pay(handler, i * price)
      expect(response.status, await response.clone().text()).toBe(200)
      // Each write of the voucher refreshes `spent` and each write of `spent` the settle mark, so the
      // keys expire in a safe order (`ok` ≥ `spent` ≥ `v`); a store without atomic() pays for it in calls.
      expect(log).toEqual([
        'get ch',
        'compareAndSet v',
        'increment spent',
        'compareAndSet ok',
        'get closing',
        'increment spent',
        'compareAndSet ok',
        'get ok',
        'compareAndSet ok',
      ])
    }
  })

  it('a voucher checked against a cached channel state is refused once another instance stored a newer one (forced close requested)', async () => {
    const inner = new MemoryStore()
    const keys = new Set<string>()
    const store = countingStore(inner, [], true, keys)
    const a = serverOn(store)
    const pay = await openChannel(a, 5)
    expect((await pay(a, 2n * price)).status).toBe(200)
    const chKey = [...keys].find((k) => k.includes(':ch:'))!
    const spentKey = [...keys].find((k) => k.includes(':spent:'))!
    // What another server process stores after re-reading the escrow: the payer requested a forced close.
    const state = JSON.parse((await inner.get(chKey))!) as { closeRequestedAt: string; readAt: number }
    await inner.set(chKey, JSON.stringify({ ...state, closeRequestedAt: '1700000000' }), 60_000)
    const spentBefore = await inner.get(spentKey)
    const refused = await pay(a, 3n * price)
    expect(refused.status).toBe(410)
    expect(((await refused.json()) as { type: string }).type).toMatch(/session\/channel-finalized$/)
    expect(await inner.get(spentKey)).toBe(spentBefore)
    // A top-up stored by another process is picked up the same way: the voucher is re-checked and served.
    await inner.set(chKey, JSON.stringify({ ...state, readAt: state.readAt + 1 }), 60_000)
    expect((await pay(a, 3n * price)).status).toBe(200)
    expect(await inner.get(spentKey)).toBe(String(BigInt(spentBefore!) + price))
    // A voucher beyond the deposit this instance last saw, within a deposit another instance stored since
    // (a top-up it broadcast), is served at once: refusals are decided on the stored state.
    const topped = { ...state, readAt: state.readAt + 2, deposit: String(2_000n * price) }
    await inner.set(chKey, JSON.stringify(topped), 60_000)
    expect((await pay(a, 1_500n * price)).status).toBe(200)
    // And one beyond that deposit is refused.
    const beyond = await pay(a, 2_001n * price)
    expect(beyond.status).toBe(402)
    expect(((await beyond.json()) as { type: string }).type).toMatch(/session\/amount-exceeds-deposit$/)
  })

  it('on Redis a paid voucher is ONE round trip in all (the session method; a voucher does not consume its challenge)', async () => {
    const why = await redisUnavailableReason()
    if (why) {
      console.warn(`[skip] ${why}`)
      return
    }
    const client = new Redis(redisUrl, redisClientOptions)
    const store = new RedisStore({ client, keyPrefix: `mppkit-test-rtt:${tag}:` })
    try {
      const handler = serverOn(store)
      const pay = await openChannel(handler, 6)
      await pay(handler, 2n * price) // loads the script into Redis' cache (EVALSHA, then EVAL once)
      const sent = countCommands(client)
      for (let i = 3n; i <= 8n; i++) {
        sent.length = 0
        const response = await pay(handler, i * price)
        expect(response.status, await response.clone().text()).toBe(200)
        // The unpaid request that fetched the challenge sent nothing; the paid one: the session's one
        // script (no SET NX of the challenge id: a voucher is single-use by its cumulative amount).
        expect(sent).toEqual(['evalsha'])
      }
      const receipt = Receipt.parse((await pay(handler, 9n * price)).headers.get('payment-receipt')!)
      expect(receipt.spent).toBe(String(9n * price))
    } finally {
      await client.quit()
    }
  })

  it.each(sharedStores)(
    'two server instances on one $name: stale voucher caches never over-spend or refuse a good voucher',
    async ({ open, payer }) => {
      let store: Store & { close?(): Promise<void> }
      try {
        store = await open()
      } catch (error) {
        console.warn((error as Error).message)
        return
      }
      try {
        await twoInstances(store, payer)
      } finally {
        if (store instanceof PostgresStore)
          await store.pool.query(`DROP SCHEMA IF EXISTS "${store.schema}" CASCADE`)
        await store.close?.()
      }
    },
  )

  const twoInstances = async (store: Store, payer: number) => {
    const a = serverOn(store)
    const b = serverOn(store)
    const pay = await openChannel(a, payer)
    // Alternating instances: each one's cached voucher is stale every other request.
    for (let i = 2n; i <= 7n; i++) {
      const response = await pay(i % 2n ? a : b, i * price)
      expect(response.status, await response.clone().text()).toBe(200)
    }
    // A replayed (equal) voucher on the instance whose cache is stale is an idempotent retry, refused
    // for its balance, not accepted as new funds; a lower one is refused outright.
    const replay = await pay(a, 7n * price)
    expect(replay.status).toBe(402)
    expect(((await replay.json()) as { type: string }).type).toMatch(/session\/insufficient-balance$/)
    const lower = await pay(a, 6n * price)
    expect(lower.status).toBe(402)
    expect(((await lower.json()) as { reason?: string }).reason).toBe('amount-not-increasing')
    // Concurrent vouchers 8..19 across both instances: whatever order they land in, spent never exceeds
    // the accepted amount, and every 200 was paid for by exactly one unit.
    const responses = await Promise.all(
      Array.from({ length: 12 }, (_, i) => pay(i % 2 ? a : b, BigInt(8 + i) * price)),
    )
    const receipts = responses
      .filter((r) => r.status === 200)
      .map((r) => Receipt.parse(r.headers.get('payment-receipt')!))
    for (const receipt of receipts)
      expect(BigInt(String(receipt.spent))).toBeLessThanOrEqual(BigInt(String(receipt.acceptedCumulative)))
    const final = await pay(b, 40n * price)
    expect(final.status).toBe(200)
    const last = Receipt.parse(final.headers.get('payment-receipt')!)
    expect(BigInt(String(last.spent))).toBe(BigInt(7 + receipts.length + 1) * price)
    expect(BigInt(String(last.acceptedCumulative))).toBe(40n * price)
  }
})
