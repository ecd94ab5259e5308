import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { rmSync } from 'node:fs'
import { Agent, request as httpRequest } from 'node:http'
import { createConnection, createServer, type Server as NetServer, type Socket } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Challenge, Credential } from '@mppkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundleChild } from '../../../../scripts/bundle-child.js'
import { proof, sessionProof } from './method.js'

/**
 * Multi-process harness shared by the Redis and PostgreSQL stores: two real payment-server processes
 * (the core server, on the store under test) share one store and are attacked with concurrent
 * submissions of one credential, Idempotency-Key replays across processes, and a store outage in the
 * middle of a request.
 *
 * Each process reaches the database through its own TCP proxy run by the test, so that the test can cut
 * one process's store connections at a precise moment without touching the shared database server.
 */
export type MultiprocessOptions = {
  /** Printed and used in the suite name. */
  name: string
  /** When set, the suite is skipped with this reason. */
  skip?: string | undefined
  /** Absolute path of a module exporting `createStore(config): Store`, bundled into each server process. */
  storeModule: string
  /** The real database server the proxies forward to. */
  backend: { host: string; port: number }
  /** The `config` passed to `createStore` in a server process whose proxy listens on `proxyPort`. */
  storeConfig: (proxyPort: number) => unknown
}

/** Bundles the server process (TypeScript sources of core and the store) into one ESM file. */
function bundle(storeModule: string): Promise<string> {
  const child = fileURLToPath(new URL('./child.ts', import.meta.url))
  return bundleChild({
    contents: `import { createStore } from ${JSON.stringify(storeModule)}\nimport { main } from ${JSON.stringify(child)}\nawait main(createStore)\n`,
  })
}

/** A TCP proxy in front of the database for one server process; the test can cut it. */
class StoreProxy {
  readonly #server: NetServer
  readonly #sockets = new Set<Socket>()
  #mode: 'pass' | 'cut-on-data' | 'down' = 'pass'
  #onCut: (() => void) | undefined
  port = 0

  constructor(readonly backend: { host: string; port: number }) {
    this.#server = createServer((client) => this.#connect(client))
  }

  async start(): Promise<void> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    this.port = (this.#server.address() as { port: number }).port
  }

  #connect(client: Socket): void {
    if (this.#mode === 'down') {
      client.destroy()
      return
    }
    const upstream = createConnection(this.backend.port, this.backend.host)
    this.#sockets.add(client).add(upstream)
    const close = () => {
      client.destroy()
      upstream.destroy()
      this.#sockets.delete(client)
      this.#sockets.delete(upstream)
    }
    client.on('data', (chunk) => {
      if (this.#mode !== 'pass') {
        // The store's first command after `cutOnNextCommand()`: drop it and every connection.
        this.#cut()
        return
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk) => client.write(chunk))
    for (const socket of [client, upstream]) {
      socket.on('error', close)
      socket.on('close', close)
    }
  }

  #cut(): void {
    this.#mode = 'down'
    for (const socket of this.#sockets) socket.destroy()
    this.#sockets.clear()
    this.#onCut?.()
  }

  /** The next bytes the server process sends to its store are dropped and all its connections cut. */
  cutOnNextCommand(): Promise<void> {
    this.#mode = 'cut-on-data'
    return new Promise((resolve) => {
      this.#onCut = resolve
    })
  }

  /** Accepts and forwards connections again. */
  restore(): void {
    this.#mode = 'pass'
    this.#onCut = undefined
  }

  async close(): Promise<void> {
    this.#cut()
    this.#server.close()
  }
}

type Event = {
  event: string
  id?: string
  port?: number
  channel?: string
  deposit?: string
  cost?: string
  balance?: string
}

/** One payment-server child process. */
class ServerProcess {
  readonly events: Event[] = []
  stderr = ''
  port = 0
  readonly #child: ChildProcess

  constructor(script: string, config: unknown) {
    this.#child = spawn(process.execPath, [script], {
      env: { ...process.env, MPPKIT_MP_CONFIG: JSON.stringify(config) },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as Event)
      } catch {
        this.stderr += `${line}\n`
      }
    })
    this.#child.stderr!.on('data', (chunk) => {
      this.stderr += String(chunk)
    })
  }

  get pid(): number | undefined {
    return this.#child.pid
  }

  get exitCode(): number | null {
    return this.#child.exitCode
  }

  async ready(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const listening = this.events.find((event) => event.event === 'listening')
      if (listening?.port) {
        this.port = listening.port
        return
      }
      if (this.#child.exitCode !== null) break
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    throw new Error(`server process did not start: ${this.stderr.slice(0, 2_000)}`)
  }

  count(event: string, id: string): number {
    return this.events.filter((entry) => entry.event === event && entry.id === id).length
  }

  /** Events of one kind about one session channel. */
  channelEvents(event: string, channel: string): Event[] {
    return this.events.filter((entry) => entry.event === event && entry.channel === channel)
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    const exited = once(this.#child, 'exit')
    this.#child.stdin!.end()
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5_000)
    await exited
    clearTimeout(timer)
  }
}

type Reply = { status: number; headers: Record<string, string | string[] | undefined>; body: string }

// A bounded pool of keep-alive sockets per process: a thousand submissions are in flight at once on the
// client side, and each server process handles up to 64 of them concurrently.
const agent = new Agent({ keepAlive: true, maxSockets: 64 })

function send(port: number, headers: Record<string, string> = {}, path = '/resource'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET', headers, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** Gets a 402 challenge from a server process and pays it (without submitting). */
async function credential(port: number): Promise<{ authorization: string; id: string }> {
  const reply = await send(port)
  expect(reply.status).toBe(402)
  const challenge = Challenge.parseAll(reply.headers['www-authenticate'] as string)[0]!
  return {
    authorization: Credential.format({ challenge, payload: { proof: proof(challenge.id) } }),
    id: challenge.id,
  }
}

/** Gets a 402 challenge for the metered route and signs a session credential (open or voucher) for it. */
async function sessionCredential(
  port: number,
  payload: { action: 'open'; channel: string; deposit: string } | { action: 'voucher'; channel: string },
): Promise<{ authorization: string; id: string }> {
  const reply = await send(port, {}, '/metered')
  expect(reply.status).toBe(402)
  const challenge = Challenge.parseAll(reply.headers['www-authenticate'] as string)[0]!
  expect(challenge.intent).toBe('session')
  return {
    authorization: Credential.format({
      challenge,
      payload: { ...payload, proof: sessionProof(challenge.id, payload) },
    }),
    id: challenge.id,
  }
}

const receiptOf = (reply: Reply) =>
  JSON.parse(Buffer.from(reply.headers['payment-receipt'] as string, 'base64url').toString('utf8')) as {
    reference: string
    balance?: string
  }

const problemType = (reply: Reply) => (JSON.parse(reply.body) as { type: string }).type
const base = 'https://paymentauth.org/problems/'

/**
 * Registers the multi-process suite for one store.
 *
 * @example
 * ```ts
 * describeMultiprocess({ name: 'RedisStore', storeModule, backend, storeConfig: (port) => ({ url }) })
 * ```
 */
export function describeMultiprocess(options: MultiprocessOptions): void {
  if (options.skip) console.warn(`[skip] multiprocess(${options.name}): ${options.skip}`)

  describe.skipIf(!!options.skip)(`two server processes sharing ${options.name}`, () => {
    const secret = randomBytes(32).toString('hex')
    const proxies = [new StoreProxy(options.backend), new StoreProxy(options.backend)]
    const servers: ServerProcess[] = []
    let script = ''
    const settlements = (id: string) => servers.reduce((sum, server) => sum + server.count('settle', id), 0)
    const handlerRuns = (id: string) => servers.reduce((sum, server) => sum + server.count('handler', id), 0)

    beforeAll(async () => {
      script = await bundle(options.storeModule)
      for (const proxy of proxies) await proxy.start()
      for (const proxy of proxies)
        servers.push(new ServerProcess(script, { secret, store: options.storeConfig(proxy.port) }))
      await Promise.all(servers.map((server) => server.ready()))
    }, 60_000)

    afterAll(async () => {
      await Promise.all(servers.map((server) => server.stop()))
      await Promise.all(proxies.map((proxy) => proxy.close()))
      agent.destroy()
      if (script) rmSync(script, { force: true })
    })

    it('1,000 concurrent submissions of one credential: one settlement, one handler run, 999 invalid-challenge', async () => {
      const { authorization, id } = await credential(servers[0]!.port)
      const replies = await Promise.all(
        Array.from({ length: 1_000 }, (_, index) => send(servers[index % 2]!.port, { authorization })),
      )
      const ok = replies.filter((reply) => reply.status === 200)
      expect(ok).toHaveLength(1)
      expect(ok[0]!.headers['payment-receipt']).toBeTypeOf('string')
      const rejected = replies.filter((reply) => reply.status !== 200)
      expect(rejected).toHaveLength(999)
      for (const reply of rejected) {
        expect(reply.status).toBe(402)
        expect(problemType(reply)).toBe(`${base}invalid-challenge`)
        expect(reply.headers['payment-receipt']).toBeUndefined()
      }
      expect(settlements(id)).toBe(1)
      expect(handlerRuns(id)).toBe(1)
    })

    it('an Idempotency-Key replay on the other process returns the original response without running again', async () => {
      const { authorization, id } = await credential(servers[0]!.port)
      const headers = { authorization, 'idempotency-key': `idem-${randomBytes(8).toString('hex')}` }
      const first = await send(servers[0]!.port, headers)
      expect(first.status).toBe(200)
      const replays = await Promise.all(
        Array.from({ length: 40 }, (_, index) => send(servers[(index + 1) % 2]!.port, headers)),
      )
      for (const replay of replays) {
        expect(replay.status).toBe(200)
        expect(replay.body).toBe(first.body)
        expect(replay.headers['payment-receipt']).toBe(first.headers['payment-receipt'])
      }
      expect(JSON.parse(first.body).pid).toBe(servers[0]!.pid)
      expect(settlements(id)).toBe(1)
      expect(handlerRuns(id)).toBe(1)
    })

    it('concurrent first submissions with one Idempotency-Key on both processes run the handler once', async () => {
      const { authorization, id } = await credential(servers[1]!.port)
      const headers = { authorization, 'idempotency-key': `idem-${randomBytes(8).toString('hex')}` }
      const replies = await Promise.all(
        Array.from({ length: 100 }, (_, index) => send(servers[index % 2]!.port, headers)),
      )
      const ok = replies.filter((reply) => reply.status === 200)
      expect({ settlements: settlements(id), handlerRuns: handlerRuns(id) }).toEqual({
        settlements: 1,
        handlerRuns: 1,
      })
      expect(ok.length).toBeGreaterThanOrEqual(1)
      // Every 200 is the same (original or replayed) response; the rest were told to retry (409).
      expect(new Set(ok.map((reply) => reply.body)).size).toBe(1)
      for (const reply of replies.filter((r) => r.status !== 200)) {
        expect(reply.status).toBe(409)
        expect(problemType(reply)).toBe(`${base}idempotency-conflict`)
      }
      expect(settlements(id)).toBe(1)
      expect(handlerRuns(id)).toBe(1)
    })

    const openChannel = async (port: number, deposit: bigint): Promise<string> => {
      const channel = `ch-${randomBytes(6).toString('hex')}`
      const { authorization, id } = await sessionCredential(port, {
        action: 'open',
        channel,
        deposit: String(deposit),
      })
      const opened = await send(port, { authorization }, '/metered')
      expect(opened.status).toBe(200)
      expect(JSON.parse(opened.body)).toEqual({ channel, deposit: String(deposit) })
      // Opening buys no resource: the method answers and the route handler does not run.
      expect(handlerRuns(id)).toBe(0)
      return channel
    }
    const deductions = (channel: string) =>
      servers.flatMap((server) => server.channelEvents('deduct', channel))

    it('session balances never over-spend under concurrent vouchers across processes', async () => {
      const cost = 7n
      const served = 50
      const deposit = cost * BigInt(served)
      const channel = await openChannel(servers[0]!.port, deposit)
      expect(servers.flatMap((server) => server.channelEvents('open', channel))).toHaveLength(1)

      // 300 vouchers, each its own credential (its own challenge), issued by both processes and all
      // submitted at once, half to each process: six times what the deposit covers.
      const vouchers = await Promise.all(
        Array.from({ length: 300 }, (_, index) =>
          sessionCredential(servers[index % 2]!.port, { action: 'voucher', channel }),
        ),
      )
      const replies = await Promise.all(
        vouchers.map(({ authorization }, index) =>
          send(servers[(index + 1) % 2]!.port, { authorization }, '/metered'),
        ),
      )

      const ok = replies.flatMap((reply, index) => (reply.status === 200 ? [vouchers[index]!.id] : []))
      // Served responses are exactly what the deposit buys.
      expect(ok).toHaveLength(Number(deposit / cost))
      for (const reply of replies.filter((r) => r.status === 200))
        expect(reply.headers['payment-receipt']).toBeTypeOf('string')
      const rejected = replies.filter((reply) => reply.status !== 200)
      expect(rejected).toHaveLength(300 - served)
      for (const reply of rejected) {
        expect(reply.status).toBe(402)
        expect(problemType(reply)).toBe(`${base}session/insufficient-balance`)
        expect(JSON.parse(reply.body)).toMatchObject({ channel, balance: '0', requiredTopUp: '7' })
        expect(reply.headers['www-authenticate']).toBeTypeOf('string')
        expect(reply.headers['payment-receipt']).toBeUndefined()
      }

      // Total deducted never exceeds the deposit: every applied deduction saw a distinct balance, from
      // deposit - cost down to exactly 0, so no two deductions overlapped.
      const applied = deductions(channel)
      expect(applied).toHaveLength(served)
      expect(applied.reduce((sum, event) => sum + BigInt(event.cost!), 0n)).toBe(deposit)
      expect(
        applied.map((event) => BigInt(event.balance!)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
      ).toEqual(Array.from({ length: served }, (_, index) => cost * BigInt(index)))
      // One balance for both processes: each got 150 vouchers, and together they served only the 50 the
      // deposit covers (two separate balances would have served up to 100). Which process serves how
      // many is up to scheduling, so it is not asserted.
      for (const [index, server] of servers.entries()) {
        const mine = replies.filter((_, reply) => (reply + 1) % 2 === index)
        expect(mine).toHaveLength(150)
        expect(mine.filter((reply) => reply.status === 402).length).toBeGreaterThanOrEqual(100)
        expect(server.channelEvents('deduct', channel)).toHaveLength(
          mine.filter((reply) => reply.status === 200).length,
        )
      }
      // The handler ran exactly once per served response, and only for those.
      expect(new Set(applied.map((event) => event.id))).toEqual(new Set(ok))
      for (const id of ok) expect(handlerRuns(id)).toBe(1)
      for (const { id } of vouchers.filter(({ id }) => !ok.includes(id))) expect(handlerRuns(id)).toBe(0)

      // The channel stays empty: one more voucher is refused too.
      const extra = await sessionCredential(servers[1]!.port, { action: 'voucher', channel })
      const refused = await send(servers[0]!.port, { authorization: extra.authorization }, '/metered')
      expect(refused.status).toBe(402)
      expect(problemType(refused)).toBe(`${base}session/insufficient-balance`)
      expect(deductions(channel)).toHaveLength(served)
    })

    it('paid but lost: a session voucher settled on one process whose handler failed is served by the other on retry, without a second deduction', async () => {
      const channel = await openChannel(servers[1]!.port, 21n)
      const { authorization, id } = await sessionCredential(servers[0]!.port, { action: 'voucher', channel })
      const key = `idem-${randomBytes(8).toString('hex')}`

      const lost = await send(
        servers[0]!.port,
        { authorization, 'idempotency-key': key, 'x-mp-fail': 'handler' },
        '/metered',
      )
      expect(lost.status).toBe(500)
      expect(problemType(lost)).toBe(`${base}handler-failed`)
      expect(lost.headers['payment-receipt']).toBeUndefined()
      expect(servers[0]!.count('handler-failed', id)).toBe(1)
      expect(deductions(channel).map((event) => event.balance)).toEqual(['14'])

      const recovered = await send(servers[1]!.port, { authorization, 'idempotency-key': key }, '/metered')
      expect(recovered.status).toBe(200)
      expect(JSON.parse(recovered.body).pid).toBe(servers[1]!.pid)
      // The original settlement's receipt: the balance after the one deduction.
      expect(receiptOf(recovered).balance).toBe('14')
      expect(deductions(channel)).toHaveLength(1)
      expect(handlerRuns(id)).toBe(1)

      // A further replay (either process) is the stored response; still one deduction, one run.
      const replay = await send(servers[0]!.port, { authorization, 'idempotency-key': key }, '/metered')
      expect(replay.status).toBe(200)
      expect(replay.body).toBe(recovered.body)
      // Without the key the same credential is already consumed.
      const again = await send(servers[0]!.port, { authorization }, '/metered')
      expect(again.status).toBe(402)
      expect(problemType(again)).toBe(`${base}invalid-challenge`)
      expect(deductions(channel)).toHaveLength(1)
      expect(handlerRuns(id)).toBe(1)

      // The next voucher deducts from 14, not 7.
      const next = await sessionCredential(servers[1]!.port, { action: 'voucher', channel })
      const paid = await send(servers[1]!.port, { authorization: next.authorization }, '/metered')
      expect(paid.status).toBe(200)
      expect(receiptOf(paid).balance).toBe('7')
    })

    it('paid but lost: a charge settled on one process whose handler failed is served by the other on retry, without settling again', async () => {
      const { authorization, id } = await credential(servers[1]!.port)
      const key = `idem-${randomBytes(8).toString('hex')}`
      const lost = await send(servers[1]!.port, {
        authorization,
        'idempotency-key': key,
        'x-mp-fail': 'handler',
      })
      expect(lost.status).toBe(500)
      expect(problemType(lost)).toBe(`${base}handler-failed`)
      expect(settlements(id)).toBe(1)
      expect(handlerRuns(id)).toBe(0)

      const recovered = await send(servers[0]!.port, { authorization, 'idempotency-key': key })
      expect(recovered.status).toBe(200)
      expect(recovered.headers['payment-receipt']).toBeTypeOf('string')
      expect(JSON.parse(recovered.body).pid).toBe(servers[0]!.pid)
      expect(settlements(id)).toBe(1)
      expect(handlerRuns(id)).toBe(1)
    })

    it('a store outage mid-request answers 503 + Retry-After, and the same credential succeeds once the store is back', async () => {
      const { authorization, id } = await credential(servers[0]!.port)
      const cut = proxies[0]!.cutOnNextCommand()
      const reply = await send(servers[0]!.port, { authorization })
      await cut // the request's own store command was in flight when the connections dropped
      expect(reply.status).toBe(503)
      expect(reply.headers['content-type']).toBe('application/problem+json')
      expect(reply.headers['retry-after']).toBe('1')
      expect(problemType(reply)).toBe(`${base}service-unavailable`)
      expect(JSON.parse(reply.body).reason).toBe('store-unavailable')
      expect(settlements(id)).toBe(0)
      expect(handlerRuns(id)).toBe(0)
      // While the store stays down, requests keep failing fast with 503.
      const started = Date.now()
      expect((await send(servers[0]!.port, { authorization })).status).toBe(503)
      expect(Date.now() - started).toBeLessThan(5_000)
      // The other process is unaffected.
      expect((await send(servers[1]!.port)).status).toBe(402)

      proxies[0]!.restore()
      let status = 0
      const deadline = Date.now() + 15_000
      while (Date.now() < deadline) {
        const retry = await send(servers[0]!.port, { authorization })
        status = retry.status
        if (status !== 503) break
        expect(retry.headers['retry-after']).toBe('1')
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      expect(status).toBe(200)
      expect(settlements(id)).toBe(1)
      expect(handlerRuns(id)).toBe(1)
      // The process survived the outage (no crash on the client library's error events).
      expect(servers[0]!.exitCode).toBeNull()
    })
  })
}
