import { MemoryStore, type Store } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import type { Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { sessionClient } from '../src/client/index.js'
import { type SessionOptions, sessionServer } from '../src/server/index.js'
import { readChannel, rpcProxy } from './helpers.js'

// The server lifecycle on tempo/session: `setup` hands over the store, onError and a close signal;
// `server.close()` stops the settlement timer and settles what is pending.

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

const price = 1_000n
const secret = 'tempo-session-lifecycle-secret-0123456789'

/** A store that counts every call made on it. */
function countingStore(inner: Store = new MemoryStore()) {
  let calls = 0
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        calls++
        return value.apply(target, args)
      }
    },
  })
  return { store, calls: () => calls }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe.skipIf(!!reason)('tempo/session lifecycle (setup/close)', () => {
  let devnet: TempoDevnet
  let proxy: Awaited<ReturnType<typeof rpcProxy>>
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 4 })
    proxy = await rpcProxy(devnet.info.rpcUrl)
  })
  afterAll(async () => {
    await proxy?.close()
    await devnet?.stop()
  })
  afterEach(() => {
    proxy.set('up')
    vi.restoreAllMocks()
  })

  function setup(payerIndex: number, server: Partial<SessionOptions>) {
    const { info } = devnet
    const method = sessionServer({
      rpcUrl: proxy.url,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      account: privateKeyToAccount(info.accounts[0]!.privateKey),
      escrow: info.escrow,
      timeout: 2_000,
      ...server,
    })
    const counted = countingStore()
    const errors: { error: unknown; phase: string }[] = []
    const paymentServer = createServer({
      realm: 'lifecycle.test',
      secrets: [secret],
      methods: [method],
      store: counted.store,
      onError: (error, { phase }) => errors.push({ error, phase }),
    })
    const handler = paymentServer.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(price) } }] },
      () => new Response('served'),
    )
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof fetch
    const sessions = sessionClient({
      account: privateKeyToAccount(info.accounts[payerIndex]!.privateKey),
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      deposit: 10n * price,
      fetch: fetcher,
    })
    const client = createClient({ methods: [sessions], fetch: fetcher, policy: { maxDeposit: 100n * price } })
    const use = async (times: number) => {
      for (let i = 0; i < times; i++) {
        const response = await client.fetch('https://lifecycle.test/r')
        expect(response.status, await response.clone().text()).toBe(200)
      }
      return [...sessions.channels.values()][0]!.channelId as Hex
    }
    return { method, server: paymentServer, storeCalls: counted.calls, errors, use }
  }

  it('close settles the consumed vouchers left pending, in the store setup handed over', async () => {
    // The timer never fires within the test: only close() can settle.
    const { server, use } = setup(1, { settleInterval: 3_600_000 })
    const channelId = await use(3)
    expect((await readChannel(devnet.info, channelId)).settled).toBe(0n)
    await server.close()
    expect((await readChannel(devnet.info, channelId)).settled).toBe(3n * price)
  })

  it('a failing background settlement reaches onError, and after close no store or RPC call is made', async () => {
    const { server, use, errors, storeCalls } = setup(2, { settleInterval: 25 })
    await use(2)
    // The node goes away: every batch fails and the channel stays pending.
    proxy.set('down')
    await vi.waitFor(() => expect(errors.length).toBeGreaterThanOrEqual(2), { timeout: 5_000 })
    expect(errors[0]).toMatchObject({ phase: 'background' })
    expect((errors[0]!.error as Error).name).toBe('ServiceUnavailableError')
    await server.close()
    const after = { store: storeCalls(), rpc: proxy.requests(), errors: errors.length }
    await sleep(200)
    expect({ store: storeCalls(), rpc: proxy.requests(), errors: errors.length }).toEqual(after)
  })

  it('a server created and closed leaves no timer or handle behind, per server', async () => {
    const live = new Set<unknown>()
    const realSet = globalThis.setInterval
    const realClear = globalThis.clearInterval
    vi.spyOn(globalThis, 'setInterval').mockImplementation(((...args: Parameters<typeof setInterval>) => {
      const timer = realSet(...args)
      live.add(timer)
      return timer
    }) as typeof setInterval)
    vi.spyOn(globalThis, 'clearInterval').mockImplementation(((
      timer: Parameters<typeof clearInterval>[0],
    ) => {
      live.delete(timer)
      realClear(timer)
    }) as typeof clearInterval)
    const handles = () => process.getActiveResourcesInfo().filter((kind) => kind !== 'TTYWrap').length
    const baseline = handles()

    // One method given to two servers: each server's setup starts its own timer, each close stops its own.
    const { method, server: first } = setup(3, { settleInterval: 1_000 })
    const second = createServer({ realm: 'other.test', secrets: [secret], methods: [method] })
    expect(live.size).toBe(2)
    await first.close()
    expect(live.size).toBe(1)
    await second.close()
    await second.close()
    expect(live.size).toBe(0)
    expect(handles()).toBe(baseline)
  })
})
