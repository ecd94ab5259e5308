// The server side of session-http.bench.mjs, in its own process so that the load generator does not
// share its event loop: one route paid by tempo/session vouchers and the same handler unpaid, on
// node:http. Configured by the parent over IPC; answers `{ port }` once listening.
import { writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { Session } from 'node:inspector/promises'
import { PerformanceObserver } from 'node:perf_hooks'
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
  const controls = controlRoutes(handler)
  const listener = toNodeListener((request) => {
    const path = new URL(request.url).pathname
    if (path === '/paid') return paid(request)
    return (controls[path] ?? handler)(request)
  })
  const http = createHttpServer({ keepAliveTimeout: 60_000 }, listener)
  http.listen(0, '127.0.0.1', () => {
    process.send({ port: http.address().port, backend: Voucher.verifierBackend() })
  })
  // Time spent in garbage collection pauses (µs), summed: what of the CPU per request is the GC's.
  let gc = 0
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gc += entry.duration * 1000
  }).observe({ entryTypes: ['gc'] })
  let inspector
  process.on('message', async (message) => {
    // The server's own CPU time (µs), so the parent can divide it by the requests it sent, and its GC
    // pauses (µs).
    if (message === 'cpu') {
      const { user, system } = process.cpuUsage()
      // GC entries are delivered asynchronously: let the observer catch up first.
      await new Promise((resolve) => setImmediate(resolve))
      process.send({ cpu: user + system, system, gc })
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
    // `{ inProcess: { paid: [authorization…], rounds } }`: the paid route, the same handler unpaid and
    // the no-checks floor route called directly with Fetch Requests (no socket, no node:http),
    // interleaved rounds; answers the median µs per call of each, i.e. what the payment itself costs
    // per request on this process.
    if (message?.inProcess) {
      const url = `http://127.0.0.1:${http.address().port}/paid`
      const timed = async (route, authorizations) => {
        const start = process.hrtime.bigint()
        for (const authorization of authorizations) {
          const headers = { host: '127.0.0.1', accept: '*/*' }
          if (authorization) headers.authorization = authorization
          const response = await route(new Request(url, { headers }))
          if (response.status !== 200) throw new Error(`in-process: ${response.status}`)
          await response.arrayBuffer()
        }
        return Number(process.hrtime.bigint() - start) / 1e3 / authorizations.length
      }
      const { paid: credentials, rounds } = message.inProcess
      const size = Math.floor(credentials.length / rounds)
      const results = { paid: [], unpaid: [], floor: [] }
      for (let round = 0; round < rounds; round++) {
        const batch = credentials.slice(round * size, (round + 1) * size)
        const unpaid = batch.map(() => undefined)
        results.unpaid.push(await timed(handler, unpaid))
        // The no-checks floor control route (below) on the same credentials: what reading the credential
        // and writing a receipt cost here, with no payment checks.
        results.floor.push(await timed(controls['/control/floor'], batch))
        results.paid.push(await timed(paid, batch))
      }
      process.send({ inProcess: results })
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

/**
 * Control routes (MPPKIT_BENCH_CONTROLS=1 in the bench), not payments: `/control/headers` takes the
 * same Authorization header and answers with a receipt-sized Payment-Receipt and Cache-Control, doing no
 * payment work (what the bytes of a paid request cost); `/control/floor` does only the least a paid
 * request must (look the header up, check an expiry, decrement a balance, write a receipt) with no
 * binding, offer pinning, store or checks, so it bounds what any paid path can reach on this route;
 * `/control/busy` spins 20 µs of CPU before the handler (what a fixed amount of route work costs here).
 */
function controlRoutes(handler) {
  const receiptSized = 'x'.repeat(488)
  const withReceipt = (header) => {
    const response = handler()
    response.headers.set('payment-receipt', header)
    response.headers.set('cache-control', 'private')
    return response
  }
  const seen = new Map()
  return {
    // Not a payment: 20 µs of busy CPU, then the handler. What 20 µs of route work costs in server CPU
    // per request here (on a shared 2-core machine, more than 20: see the bench's note).
    '/control/busy': () => {
      const start = process.hrtime.bigint()
      while (process.hrtime.bigint() - start < 20_000n) {}
      return handler()
    },
    '/control/headers': (request) => {
      request.headers.get('authorization')
      return withReceipt(receiptSized)
    },
    '/control/floor': (request) => {
      const token = request.headers.get('authorization')
      let entry = seen.get(token)
      if (!entry) {
        if (seen.size > 10_000) seen.clear()
        entry = { channel: `c${seen.size}`, expires: Date.now() + 60_000, accepted: 10n ** 9n, spent: 0n }
        seen.set(token, entry)
      }
      if (entry.expires < Date.now()) return new Response(null, { status: 402 })
      entry.spent += 1n
      const receipt = {
        intent: 'session',
        channelId: entry.channel,
        acceptedCumulative: String(entry.accepted),
        spent: String(entry.spent),
        units: 1,
        status: 'success',
        method: 'tempo',
        timestamp: new Date().toISOString(),
        reference: entry.channel,
      }
      return withReceipt(Buffer.from(JSON.stringify(receipt)).toString('base64url'))
    },
  }
}
