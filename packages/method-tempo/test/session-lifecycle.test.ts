import { MemoryStore, type Store } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import type { Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { sessionClient } from '../src/client/index.js'
import { type SessionMeter, type SessionOptions, sessionServer } from '../src/server/index.js'
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
    devnet = await startTempo({ accounts: 5 })
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

  function setup(payerIndex: number, server: Partial<SessionOptions>, sse = false) {
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
      (_request, payment) =>
        sse ? (payment.context as SessionMeter).sse(['one', 'two', 'three']) : new Response('served'),
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
    const pay = () => client.fetch('https://lifecycle.test/r')
    const use = async (times: number) => {
      for (let i = 0; i < times; i++) {
        const response = await client.fetch('https://lifecycle.test/r')
        expect(response.status, await response.clone().text()).toBe(200)
      }
      return [...sessions.channels.values()][0]!.channelId as Hex
    }
    return { method, server: paymentServer, storeCalls: counted.calls, errors, use, pay }
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

  it('close ends a stream paused for a voucher, with the receipt of what was delivered', async () => {
    // The open's voucher pays one chunk; the stream then waits (up to a minute) for a voucher that never comes.
    const { server, pay } = setup(4, { unitsPerRequest: 0, voucherTimeout: 60_000 }, true)
    const response = await pay()
    expect(response.status).toBe(200)
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let text = ''
    while (!text.includes('payment-need-voucher')) {
      const chunk = await reader.read()
      if (chunk.done) break
      text += chunk.value
    }
    expect(text).toContain('event: payment-need-voucher')
    const started = Date.now()
    await server.close()
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += chunk.value
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(text.match(/^event: .*$/gm)).toEqual(['event: payment-need-voucher', 'event: payment-receipt'])
    const receipt = JSON.parse(text.split('event: payment-receipt\ndata: ')[1]!)
    expect(receipt).toMatchObject({ spent: String(price), units: 1 })
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
    // Other tests' idle sockets may close meanwhile; nothing of this server may stay open.
    expect(handles()).toBeLessThanOrEqual(baseline)
  })
})
