// A payment's consumed mark on a real Redis whose reply to the mark's write is lost (the connection
// drops after Redis ran the command): the payer gets a 503, and the same credential is not "already
// used" for good — it settles once after the mark's lease (see packages/core Authorize.ts).

import { once } from 'node:events'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { Challenge, Credential } from '@mppkit/core'
import { create as createPaymentServer } from '@mppkit/core/server'
import { createTestRail } from '@mppkit/core/testing'
import { RedisStore } from '@mppkit/store-redis'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisUnavailableReason, redisUrl } from './redis.js'

const reason = await redisUnavailableReason()
if (reason) console.log(`skipped: consumed-lease (Redis): ${reason}`)

/**
 * A TCP proxy to the shared Redis that, once armed with a marker, forwards the next command carrying it
 * and then drops both connections before Redis's reply reaches the client.
 */
async function lossyProxy(target: URL) {
  let marker: string | undefined
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = createConnection(Number(target.port || 6379), target.hostname)
    sockets.add(client).add(upstream)
    let dropNext = false
    const drop = () => {
      client.destroy()
      upstream.destroy()
    }
    for (const socket of [client, upstream]) {
      socket.on('error', drop)
      socket.on('close', drop)
    }
    client.on('data', (chunk: Buffer) => {
      if (marker !== undefined && chunk.includes(marker)) {
        marker = undefined
        dropNext = true
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => (dropNext ? drop() : client.write(chunk)))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
    arm: (next: string) => {
      marker = next
    },
    close: async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
    },
  }
}

describe.skipIf(!!reason)('consumed mark on Redis, reply lost', () => {
  const prefix = `mppkit-test-consumed:${Math.random().toString(36).slice(2, 10)}:`
  let proxy: Awaited<ReturnType<typeof lossyProxy>>
  let store: RedisStore
  beforeAll(async () => {
    proxy = await lossyProxy(new URL(redisUrl))
    store = new RedisStore({ url: proxy.url, keyPrefix: prefix, timeoutMs: 2_000 })
  })
  afterAll(async () => {
    await store?.close()
    await proxy?.close()
    const direct = new Redis(redisUrl)
    const keys = await direct.keys(`${prefix}*`)
    if (keys.length > 0) await direct.del(...keys)
    direct.disconnect()
  })

  it('503, refused as used within the lease, then served and settled once; never again', async () => {
    const rail = createTestRail()
    let clock = Date.now()
    const server = createPaymentServer({
      realm: 'api.test',
      secrets: ['consumed-lease-redis-secret-0123456789abc'],
      store,
      idempotencyLease: 30,
      now: () => clock,
      logger: false,
      methods: [rail.server()],
    })
    const url = 'https://api.test/report'
    const handler = server.protect(
      { offers: [{ method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }] },
      () => new Response('the paid report'),
    )
    const [challenge] = Challenge.parseAll((await handler(new Request(url))).headers.get('www-authenticate')!)
    const { payload } = await rail
      .client()
      .createPayload({ challenge: challenge!, request: challenge!.request as never, url })
    const authorization = Credential.format({ challenge: challenge!, payload })
    const send = () => handler(new Request(url, { headers: { authorization } }))

    proxy.arm('consumed:')
    const first = await send()
    expect(first.status).toBe(503)
    expect(first.headers.get('retry-after')).not.toBeNull()
    // Redis ran the write: the mark is there, pending under its lease.
    const direct = new Redis(redisUrl)
    const keys = await direct.keys(`${prefix}*consumed:*`)
    expect(keys).toHaveLength(1)
    expect(await direct.get(keys[0]!)).toMatch(/^p\d+\./)
    expect(rail.settlements()).toBe(0)

    const during = await send()
    expect(during.status).toBe(402)
    clock += 31_000
    const after = await send()
    expect(after.status, await after.clone().text()).toBe(200)
    expect(await after.text()).toBe('the paid report')
    expect(rail.settlements()).toBe(1)
    // The settled mark lands without the response waiting for it.
    for (let i = 0; i < 50 && (await direct.get(keys[0]!)) !== 's'; i++)
      await new Promise((resolve) => setTimeout(resolve, 20))
    expect(await direct.get(keys[0]!)).toBe('s')
    direct.disconnect()
    clock += 31_000
    const again = await send()
    expect(again.status).toBe(402)
    expect(((await again.json()) as { type: string }).type).toContain('invalid-challenge')
    expect(rail.settlements()).toBe(1)
  })
})
