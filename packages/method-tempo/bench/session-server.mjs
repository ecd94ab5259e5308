// The server side of session-http.bench.mjs, in its own process so that the load generator does not
// share its event loop: one route paid by tempo/session vouchers and the same handler unpaid, on
// node:http. Configured by the parent over IPC; answers `{ port }` once listening.
import { writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { Session } from 'node:inspector/promises'
import { create as createServer, toNodeListener } from '@mppkit/core/server'
import { privateKeyToAccount } from 'viem/accounts'
import { Voucher } from '../dist/index.js'
import { sessionServer } from '../dist/server/index.js'

process.once('message', async (config) => {
  let store
  if (config.store === 'redis') {
    const { RedisStore } = await import('@mppkit/store-redis')
    store = new RedisStore({ url: config.redisUrl, keyPrefix: `bench:${process.pid}:${Date.now()}:` })
  }
  const method = sessionServer({
    rpcUrl: config.rpcUrl,
    chainId: config.chainId,
    currency: config.currency,
    account: privateKeyToAccount(config.payeeKey),
    escrow: config.escrow,
    timeout: 10_000,
  })
  const server = createServer({
    realm: 'bench.test',
    secrets: [config.secret],
    methods: [method],
    ...(store ? { store } : {}),
  })
  const body = JSON.stringify({ ok: true, data: 'x'.repeat(64) })
  const handler = () => new Response(body, { headers: { 'content-type': 'application/json' } })
  const paid = server.protect(
    { offers: [{ method: 'tempo', intent: 'session', request: { amount: String(config.price) } }] },
    handler,
  )
  const listener = toNodeListener((request) =>
    new URL(request.url).pathname === '/paid' ? paid(request) : handler(request),
  )
  const http = createHttpServer({ keepAliveTimeout: 60_000 }, listener)
  http.listen(0, '127.0.0.1', () => {
    process.send({ port: http.address().port, backend: Voucher.verifierBackend() })
  })
  let inspector
  process.on('message', async (message) => {
    // The server's own CPU time (µs), so the parent can divide it by the requests it sent.
    if (message === 'cpu') {
      const { user, system } = process.cpuUsage()
      process.send({ cpu: user + system })
    }
    // `{ profile: 'start' }` / `{ profile: 'stop', file }`: a CPU profile of just the requests between.
    if (message?.profile === 'start') {
      inspector ??= new Session()
      inspector.connect()
      await inspector.post('Profiler.enable')
      // 50 µs between samples (the default is 1 ms): a request costs ~100 µs.
      await inspector.post('Profiler.setSamplingInterval', { interval: 50 })
      await inspector.post('Profiler.start')
      process.send({ profiling: true })
    }
    if (message?.profile === 'stop') {
      const { profile } = await inspector.post('Profiler.stop')
      inspector.disconnect()
      writeFileSync(message.file, JSON.stringify(profile))
      process.send({ profiling: false })
    }
    if (message === 'stop') {
      http.closeAllConnections?.()
      http.close()
      method.stop()
      await store?.close?.()
      process.exit(0)
    }
  })
})
