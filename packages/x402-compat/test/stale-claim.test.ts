// A settlement claim (`auth:<from>:<nonce>`, `permit2:<owner>:<nonce>`, `tx:<hash>` = `settling:<ms>:<id>`)
// left by a server process that stopped after broadcasting (a crash, an OOM kill, a deploy's hard stop) is
// taken over by a retry once it is older than 4 × timeout + 1 s: the retry does not submit again but
// looks the payment up on chain and serves it once; a claim still fresh is refused as before; an attempt
// taken over while it still runs is not served, so two attempts never both serve.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { MemoryStore, type Store } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { RedisStore } from '@mppkit/store-redis'
import { Redis } from 'ioredis'
import { type Address, erc20Abi, type Hex, toHex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundleChild } from '../../../scripts/bundle-child.js'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { typedData } from '../src/Authorization.js'
import { charge as chargeClient } from '../src/client/index.js'
import type { CredentialType } from '../src/Methods.js'
import { charge, type Reader, type Wallet, x402 } from '../src/server/index.js'
import * as Wire from '../src/Wire.js'
import { balanceOf, walletOf } from './peers.js'
import { approvePermit2, challengeOf, send, url } from './requests.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)
const redisReason = reason ?? (await redisUnavailableReason())
if (redisReason && !reason) console.warn(`[skip] ${redisReason}`)

/** The settlement timeout the servers here use: a claim is stale after 4 × 1 000 + 1 000 ms. */
const timeout = 1_000
const staleAfterMs = 4 * timeout + 1_000
/** The Store keys of the `evm` charge method (the core's default prefix, then the method's). */
const methodPrefix = 'mppkit:m:evm/charge:'
const keyPrefix = `mppkit-test-stale-claim:${randomBytes(5).toString('hex')}:`
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

let devnet: TempoDevnet
let child: string | undefined
beforeAll(async () => {
  if (reason) return
  devnet = await startTempo({ accounts: 8 })
  if (!redisReason)
    child = await bundleChild(fileURLToPath(new URL('./stale-claim/child.ts', import.meta.url)))
}, 60_000)
afterAll(async () => {
  if (child) rmSync(child, { force: true })
  await devnet?.stop()
  if (redisReason) return
  const admin = new Redis(redisUrl)
  const keys = await admin.keys(`${keyPrefix}*`)
  if (keys.length > 0) await admin.del(...keys)
  await admin.quit()
})

/** `inner` with its writes through `compareAndSet` and `set` first passed to `hook` (which may hold or drop them). */
function hooked(
  inner: Store,
  hook: (op: 'compareAndSet' | 'set' | 'delete', key: string, args: unknown[]) => Promise<'drop' | undefined>,
): Store {
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'compareAndSet' || property === 'set' || property === 'delete')
        return async (key: string, ...args: unknown[]) => {
          if ((await hook(property, key, args)) === 'drop')
            return property === 'compareAndSet' ? true : undefined
          return (target[property] as (...all: unknown[]) => unknown).call(target, key, ...args)
        }
      const value = Reflect.get(target, property, receiver)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}

/** A wallet (dev account `index`) counting its broadcasts. */
function counted(index: number) {
  const base = walletOf(devnet.info, index)
  const counts = { sends: 0 }
  const wallet = new Proxy(base, {
    get(target, property, receiver) {
      if (property === 'sendTransaction')
        return (args: never) => {
          counts.sends++
          return target.sendTransaction(args)
        }
      return Reflect.get(target, property, receiver)
    },
  })
  return { wallet: wallet as unknown as Wallet, counts }
}

/** An x402 route selling 1000 of the devnet token to dev account 6, settled by `wallet` (its `authorization`). */
function x402Route(store: Store, wallet: Wallet) {
  const info = devnet.info
  const payTo = info.accounts[6]!.address
  const server = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    store,
    methods: [
      charge({
        chainId: info.chainId,
        currency: info.eip3009Token,
        recipient: payTo,
        domain: info.eip3009,
        wallet,
        timeout,
      }),
    ],
    logger: false,
  })
  let runs = 0
  const handler = x402(server, { maxTimeoutSeconds: 120 }).protect(
    { offers: [{ method: 'evm', request: { amount: '1000' } }] },
    () => {
      runs++
      return new Response('paid content')
    },
  )
  /** A signed x402 payment of dev account `index` for this route, and the authorization it carries. */
  const payment = async (index: number) => {
    const required = await handler(new Request(url))
    const requirement = (Wire.decode(required.headers.get(Wire.headers.paymentRequired)!).accepts as any[])[0]
    const account = privateKeyToAccount(info.accounts[index]!.privateKey)
    const authorization = {
      from: account.address,
      to: payTo,
      value: '1000',
      validAfter: '0',
      validBefore: String(Math.floor(Date.now() / 1000) + 120),
      nonce: toHex(globalThis.crypto.getRandomValues(new Uint8Array(32))) as Hex,
    }
    const signature = await account.signTypedData(
      typedData({ ...info.eip3009, chainId: info.chainId, token: info.eip3009Token }, authorization),
    )
    const header = Wire.encode({
      x402Version: 2,
      resource: { url },
      accepted: requirement,
      payload: { signature, authorization },
    })
    return { header, key: `${methodPrefix}auth:${authorization.from.toLowerCase()}:${authorization.nonce}` }
  }
  const pay = (header: string) =>
    handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))
  return { payTo, payment, pay, runs: () => runs }
}

/** A native MPP route selling 900 of the devnet token to dev account 6 for `types`. */
function nativeRoute(store: Store, types: CredentialType[], options: { wallet: Wallet; client?: Reader }) {
  const info = devnet.info
  const payTo = info.accounts[6]!.address
  const server = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    store,
    methods: [
      charge({
        chainId: info.chainId,
        currency: info.eip3009Token,
        recipient: payTo,
        credentialTypes: types,
        domain: info.eip3009,
        wallet: options.wallet,
        ...(options.client ? { client: options.client } : {}),
        timeout,
      }),
    ],
    logger: false,
  })
  let runs = 0
  const handler = server.protect({ offers: [{ method: 'evm', request: { amount: '900' } }] }, () => {
    runs++
    return new Response('paid content')
  })
  return { payTo, handler, runs: () => runs }
}

const reasonOf = async (response: Response) => ((await response.clone().json()) as { reason?: string }).reason

describe.skipIf(redisReason)(
  'evm charge: a claim left by a server process killed mid-settlement (Redis)',
  () => {
    it('a retry on the surviving process, once the claim is stale, finds the landed transfer and serves once without sending', async () => {
      const info = devnet.info
      const store = new RedisStore({ url: redisUrl, keyPrefix })
      const { wallet, counts } = counted(5)
      const route = x402Route(store, wallet)
      const { header } = await route.payment(1)
      const before = await balanceOf(info, route.payTo)
      // Process A takes the payment, broadcasts, and is killed once it is mined: it writes nothing more.
      const process_ = spawn(process.execPath, [child!], {
        env: {
          ...process.env,
          STALE_CLAIM_CHILD: JSON.stringify({
            info,
            gasIndex: 4,
            payTo: route.payTo,
            redisUrl,
            keyPrefix,
            url,
            header,
            amount: '1000',
          }),
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      let out = ''
      process_.stdout!.on('data', (chunk) => (out += chunk))
      const [, signal] = await new Promise<[number | null, string | null]>((resolve) =>
        process_.once('exit', (code, signal) => resolve([code, signal])),
      )
      const killedAt = Date.now()
      expect(signal).toBe('SIGKILL')
      expect(out.trim()).toBe('mined')
      expect((await balanceOf(info, route.payTo)) - before).toBe(1000n)
      try {
        // The payer, its answer lost, retries on process B at once: the claim is fresh (it could be an
        // attempt still running), refused as before.
        const first = await route.pay(header)
        expect(first.status).toBe(402)
        expect(await reasonOf(first)).toBe('authorization-used')
        // Later, the claim is stale: taken over, looked up on chain (no second broadcast), served once.
        await sleep(killedAt + staleAfterMs + 500 - Date.now())
        const second = await route.pay(header)
        expect(second.status, await second.clone().text()).toBe(200)
        const third = await route.pay(header)
        expect(third.status).toBe(402)
        expect(route.runs()).toBe(1)
        expect(counts.sends).toBe(0)
        expect((await balanceOf(info, route.payTo)) - before).toBe(1000n)
      } finally {
        await store.close?.()
      }
    }, 60_000)
  },
)

describe.skipIf(reason)('evm charge: taking over a stale settlement claim', () => {
  it('an attempt taken over while it still runs is not served: the payment serves once', async () => {
    const info = devnet.info
    // Attempt A's transfer lands, then its last Store write (claim → reference) stalls past the stale
    // bound; retry B takes the claim over, finds the transfer and serves; A, no longer holding the claim,
    // is refused.
    let stalled: () => void = () => {}
    const reached = new Promise<void>((resolve) => (stalled = resolve))
    let resume: () => void = () => {}
    const gate = new Promise<void>((resolve) => (resume = resolve))
    let held = 0
    const store = hooked(new MemoryStore(), async (op, key, args) => {
      // The first write of a transaction hash (the reference) to the authorization's claim.
      const value = op === 'compareAndSet' ? args[1] : args[0]
      if (
        key.includes(':auth:') &&
        !key.endsWith(':unknown') &&
        String(value).startsWith('0x') &&
        held++ === 0
      ) {
        stalled()
        await gate
      }
      return undefined
    })
    const { wallet, counts } = counted(7)
    const route = x402Route(store, wallet)
    const { header } = await route.payment(2)
    const before = await balanceOf(info, route.payTo)
    const a = route.pay(header)
    await reached
    const stalledAt = Date.now()
    expect((await balanceOf(info, route.payTo)) - before).toBe(1000n)
    await sleep(stalledAt + staleAfterMs + 500 - Date.now())
    const b = await route.pay(header)
    expect(b.status, await b.clone().text()).toBe(200)
    resume()
    const answerA = await a
    expect(answerA.status).toBe(402)
    expect(await reasonOf(answerA)).toBe('authorization-used')
    expect(route.runs()).toBe(1)
    expect(counts.sends).toBe(1)
    expect((await balanceOf(info, route.payTo)) - before).toBe(1000n)
  }, 30_000)

  it('a claim whose process stopped before anything landed: the takeover sends nothing (503), the next retry settles once', async () => {
    const info = devnet.info
    const inner = new MemoryStore()
    const { wallet, counts } = counted(7)
    const route = x402Route(inner, wallet)
    const { header, key } = await route.payment(3)
    const before = await balanceOf(info, route.payTo)
    // A claim just taken (an attempt that may still run): refused as before, nothing sent.
    await inner.set(key, `settling:${Date.now()}:another-process`, 120_000)
    const fresh = await route.pay(header)
    expect(fresh.status).toBe(402)
    expect(await reasonOf(fresh)).toBe('authorization-used')
    // The same claim ten minutes old: its process stopped. Nothing is on chain: 503 + Retry-After.
    await inner.set(key, `settling:${Date.now() - 600_000}:another-process`, 120_000)
    const taken = await route.pay(header)
    expect(taken.status).toBe(503)
    expect(taken.headers.get('retry-after')).toBe('1')
    expect(counts.sends).toBe(0)
    // Released: the retry submits the authorization and is served, once.
    const settled = await route.pay(header)
    expect(settled.status, await settled.clone().text()).toBe(200)
    const replay = await route.pay(header)
    expect(replay.status).toBe(402)
    expect(route.runs()).toBe(1)
    expect(counts.sends).toBe(1)
    expect((await balanceOf(info, route.payTo)) - before).toBe(1000n)
  })

  it('type="permit2": a stale claim of a permit that landed is served by the retry, without a second submission', async (context) => {
    const info = devnet.info
    const skip = await approvePermit2(info, [2])
    if (skip) return context.skip(skip)
    // The server's submission lands; its process "stops" right there: no more Store writes and no
    // lookup of its own (the log search is down), so the claim stays `settling`.
    let stopped = false
    const store = hooked(new MemoryStore(), async (_op, key) =>
      stopped && key.includes(':permit2:') ? 'drop' : undefined,
    )
    const real = walletOf(info, 7)
    let sends = 0
    const stopping = {
      ...real,
      sendTransaction: async (args: never) => {
        sends++
        const hash = await real.sendTransaction(args)
        await real.waitForTransactionReceipt({ hash })
        stopped = true
        throw new Error('socket hang up')
      },
    } as unknown as Wallet
    const base = walletOf(info, 0)
    const reader = {
      ...base,
      getLogs: (args: never) =>
        stopped
          ? Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
          : base.getLogs(args),
    } as unknown as Reader
    const route = nativeRoute(store, ['permit2'], { wallet: stopping, client: reader })
    const challenge = await challengeOf(route.handler)
    const paid = await chargeClient({
      account: privateKeyToAccount(info.accounts[2]!.privateKey),
    }).createPayload({
      challenge,
      request: challenge.request as never,
      url,
    })
    const before = await balanceOf(info, route.payTo)
    const first = await send(route.handler, challenge, paid.payload, paid.source)
    const stoppedAt = Date.now()
    expect(first.status).toBe(503)
    expect((await balanceOf(info, route.payTo)) - before).toBe(900n)
    // Another process (the same Store, the chain reachable again) gets the retry.
    stopped = false
    const early = await send(route.handler, challenge, paid.payload, paid.source)
    expect(early.status).toBe(402)
    expect(await reasonOf(early)).toBe('permit-used')
    await sleep(stoppedAt + staleAfterMs + 500 - Date.now())
    const retry = await send(route.handler, challenge, paid.payload, paid.source)
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(route.runs()).toBe(1)
    expect(sends).toBe(1)
    expect((await balanceOf(info, route.payTo)) - before).toBe(900n)
  }, 30_000)

  it('type="hash": a stale claim of the transaction hash is taken over and the transfer served once', async () => {
    const info = devnet.info
    const inner = new MemoryStore()
    const route = nativeRoute(inner, ['hash'], { wallet: walletOf(info, 7) as unknown as Wallet })
    const payer = walletOf(info, 3)
    const hash = await payer.writeContract({
      address: info.eip3009Token,
      abi: erc20Abi,
      functionName: 'transfer',
      args: [route.payTo as Address, 900n],
      gas: 100_000n,
    })
    await payer.waitForTransactionReceipt({ hash })
    const key = `${methodPrefix}tx:${hash.toLowerCase()}`
    const source = `did:pkh:eip155:${info.chainId}:${payer.account.address}`
    const present = async () =>
      send(route.handler, await challengeOf(route.handler), { type: 'hash', hash }, source)
    await inner.set(key, `settling:${Date.now()}:another-process`, 120_000)
    const fresh = await present()
    expect(fresh.status).toBe(402)
    expect(await reasonOf(fresh)).toBe('transaction-used')
    await inner.set(key, `settling:${Date.now() - 600_000}:another-process`, 120_000)
    const taken = await present()
    expect(taken.status, await taken.clone().text()).toBe(200)
    const replay = await present()
    expect(replay.status).toBe(402)
    expect(route.runs()).toBe(1)
  })
})
