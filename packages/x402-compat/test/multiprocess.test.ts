// Cross-process replay on Redis: two real server processes share one Redis; one x402 authorization
// (from, nonce), sent as 50 concurrent copies spread over both, settles exactly once and the handler
// runs once; the copies and a later replay are 402s, never a handler run without settlement.
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { type Hex, toHex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundleChild } from '../../../scripts/bundle-child.js'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { typedData } from '../src/Authorization.js'
import * as Wire from '../src/Wire.js'
import { balanceOf } from './peers.js'

const reason = tempoUnavailableReason() ?? (await redisUnavailableReason())
if (reason) console.warn(`[skip] ${reason}`)

const keyPrefix = `mppkit-test-x402mp:${randomBytes(5).toString('hex')}:`

/** Bundles the server process (TypeScript sources of core, the store and this package) into one file. */
function bundle(): Promise<string> {
  return bundleChild(fileURLToPath(new URL('./multiprocess/child.ts', import.meta.url)))
}

let devnet: TempoDevnet
let file: string
const children: ChildProcess[] = []
const ports: number[] = []

beforeAll(async () => {
  if (reason) return
  devnet = await startTempo({ accounts: 6 })
  file = await bundle()
  for (const gasIndex of [4, 5]) {
    const child = spawn(process.execPath, [file], {
      env: {
        ...process.env,
        X402_CHILD: JSON.stringify({
          redisUrl,
          keyPrefix,
          info: devnet.info,
          gasIndex,
          payTo: devnet.info.accounts[3]!.address,
        }),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.push(child)
    const [line] = (await Promise.race([
      once(createInterface({ input: child.stdout! }), 'line'),
      once(child, 'exit').then(() => ['']),
    ])) as [string]
    const port = /^listening (\d+)$/.exec(line)?.[1]
    if (!port) throw new Error('a server process did not start')
    ports.push(Number(port))
  }
}, 60_000)

afterAll(async () => {
  for (const child of children) {
    child.kill('SIGTERM')
    if (child.exitCode === null) await once(child, 'exit')
  }
  if (file) rmSync(file, { force: true })
  await devnet?.stop()
  if (reason) return
  const admin = new Redis(redisUrl)
  const keys = await admin.keys(`${keyPrefix}*`)
  if (keys.length > 0) await admin.del(...keys)
  await admin.quit()
})

describe.skipIf(reason)('x402 authorization replay across two server processes on Redis', () => {
  it('50 concurrent copies over both processes settle once; the handler runs once; a replay is refused', async () => {
    const info = devnet.info
    const url = (port: number) => `http://127.0.0.1:${port}/paid`
    const unpaid = await fetch(url(ports[0]!))
    expect(unpaid.status).toBe(402)
    const requirement = (
      Wire.decode(unpaid.headers.get(Wire.headers.paymentRequired)!).accepts as Record<string, string>[]
    )[0]!
    // The two processes offer the same requirement (same route, same configuration).
    const other = await fetch(url(ports[1]!))
    expect(Wire.decode(other.headers.get(Wire.headers.paymentRequired)!).accepts).toEqual([requirement])

    const account = privateKeyToAccount(info.accounts[1]!.privateKey)
    const authorization = {
      from: account.address,
      to: requirement.payTo!,
      value: requirement.amount!,
      validAfter: '0',
      validBefore: String(Math.floor(Date.now() / 1000) + 120),
      nonce: toHex(globalThis.crypto.getRandomValues(new Uint8Array(32))) as Hex,
    }
    const signature = await account.signTypedData(
      typedData({ ...info.eip3009, chainId: info.chainId, token: info.eip3009Token }, authorization),
    )
    const before = await balanceOf(info, requirement.payTo as Hex)
    // `resource.url` must be the request URL, which differs per process: one header per process.
    const header = (port: number) =>
      Wire.encode({
        x402Version: 2,
        resource: { url: url(port) },
        accepted: requirement,
        payload: { signature, authorization },
      })
    const send = (index: number) => {
      const port = ports[index % 2]!
      return fetch(url(port), { headers: { [Wire.headers.paymentSignature]: header(port) } })
    }
    const responses = await Promise.all(Array.from({ length: 50 }, (_, index) => send(index)))
    const statuses = responses.map((response) => response.status)
    expect(statuses.filter((status) => status === 200)).toHaveLength(1)
    expect(statuses.filter((status) => status === 402)).toHaveLength(49)
    const bodies = await Promise.all(
      responses.filter((r) => r.status === 402).map((r) => r.json() as Promise<{ reason?: string }>),
    )
    expect(new Set(bodies.map((body) => body.reason))).toEqual(new Set(['authorization-used']))

    const replay = await send(1)
    expect(replay.status).toBe(402)
    const stats = await Promise.all(
      ports.map((port) =>
        fetch(`http://127.0.0.1:${port}/stats`).then(
          (r) => r.json() as Promise<{ settle: number; verify: number; runs: number }>,
        ),
      ),
    )
    expect(stats.reduce((sum, s) => sum + s.settle, 0)).toBe(1)
    expect(stats.reduce((sum, s) => sum + s.runs, 0)).toBe(1)
    expect((await balanceOf(info, requirement.payTo as Hex)) - before).toBe(1300n)
  }, 60_000)
})
