// A payment's consumed mark on a real Redis whose reply to the mark's write is lost (the connection
// drops after Redis ran the command): the payer gets a 503, and the same credential is not "already
// used" for good — the process that claimed the mark takes it back on the retry, and it settles once
// (see packages/core Authorize.ts).

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

  it('503, then the retry settles once; never again', async () => {
    const rail = createTestRail()
    const server = createPaymentServer({
      realm: 'api.test',
      secrets: ['consumed-lease-redis-secret-0123456789abc'],
      store,
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
    // Redis ran the write: the mark is there, though its answer was lost.
    const direct = new Redis(redisUrl)
    const keys = await direct.keys(`${prefix}*consumed:*`)
    expect(keys).toHaveLength(1)
    const lost = await direct.get(keys[0]!)
    expect(lost).toBeTruthy()
    expect(rail.settlements()).toBe(0)

    const retry = await send()
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(await retry.text()).toBe('the paid report')
    expect(rail.settlements()).toBe(1)
    // The retry's own mark now holds the challenge, for good.
    const held = await direct.get(keys[0]!)
    expect(held).toBeTruthy()
    expect(held).not.toBe(lost)
    direct.disconnect()
    const again = await send()
    expect(again.status).toBe(402)
    expect(((await again.json()) as { type: string }).type).toContain('invalid-challenge')
    expect(rail.settlements()).toBe(1)
  })
})
