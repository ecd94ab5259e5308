import { randomBytes } from 'node:crypto'
import { Challenge, Credential } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { getChannelBalance, getInvoices } from 'lightning'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Lightning, startLightning } from '../../devnet/src/lightning/index.js'
import { redisUnavailableReason, redisUrl } from '../../store-redis/test/redis.js'
import { sessionClient } from '../src/client/index.js'
import { lndFor } from './helpers.js'
import type { ChildConfig, ServerConfig } from './multiprocess/child.js'
import { bundle, type ChildEvent, ServerProcess } from './multiprocess/processes.js'

// Real server processes (child processes, each server with its own store connection and its own idle
// sweeper) sharing one Redis or PostgreSQL store and the devnet LND simulator: what several server
// processes behind a load balancer see.

const postgresCandidates = process.env.MPPKIT_POSTGRES_URL
  ? [process.env.MPPKIT_POSTGRES_URL]
  : ['postgres://postgres@127.0.0.1:5432/test', 'postgres://root@127.0.0.1:5432/test']

async function postgres(): Promise<{ url?: string; reason?: string }> {
  const failures: string[] = []
  for (const url of postgresCandidates) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 })
    client.on('error', () => {})
    try {
      await client.connect()
      await client.query('SELECT 1')
      return { url }
    } catch (error) {
      failures.push(`${url.replace(/\/\/[^@]*@/, '//…@')}: ${(error as Error).message}`)
    } finally {
      await client.end().catch(() => {})
    }
  }
  return { reason: `PostgreSQL unreachable (${failures.join('; ')}); set MPPKIT_POSTGRES_URL` }
}

const schema = `mppkit_test_ln_${randomBytes(4).toString('hex')}`
const redisReason = await redisUnavailableReason()
const pgProbe = await postgres()
const stores: Array<{ name: string; reason: string | undefined; store: () => ServerConfig['store'] }> = [
  {
    name: 'Redis',
    reason: redisReason,
    store: () => ({
      kind: 'redis',
      url: redisUrl,
      keyPrefix: `mppkit-test:lightning-mp:${randomBytes(4).toString('hex')}:`,
    }),
  },
  {
    name: 'PostgreSQL',
    reason: pgProbe.reason,
    // One schema for the file; each server gets its own table (as each gets its own Redis prefix), so
    // the idle sweepers of one server never walk another's sessions.
    store: () => ({
      kind: 'postgres',
      connectionString: pgProbe.url!,
      schema,
      table: `store_${randomBytes(4).toString('hex')}`,
    }),
  },
]
for (const { name, reason } of stores)
  if (reason) console.warn(`[skip] lightning session, two processes on ${name}: ${reason}`)

let network: Lightning | undefined
let script = ''
const started: ServerProcess[] = []
/** Runs `sql` on the PostgreSQL of the tests. */
async function admin(sql: string) {
  const client = new pg.Client({ connectionString: pgProbe.url })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

beforeAll(async () => {
  if (stores.every((s) => s.reason)) return
  ;[network, script] = await Promise.all([startLightning(), bundle()])
}, 60_000)
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()))
  await network?.stop()
  if (!pgProbe.reason) await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
})

/** The idle sweep settings of the idle tests: sessions idle after 2 s, swept every 200 ms. */
const idleSweep = { idleTimeoutSeconds: 2, idleCheckIntervalMs: 200 }
/** The servers each process runs (indexes in its config): one for the concurrency test, one for the idle tests. */
const bearerServer = 0
const idleServer = 1

/**
 * Two server processes, each running the same two servers, each server on its own fresh store namespace
 * (shared by its two processes): `bearerServer` (a 300 s idle timeout) and `idleServer` (`idleSweep`).
 * Starting a server process costs about a second of CPU (`lightning` parses LND's protos), so the tests of
 * one store share the pair rather than start one each.
 */
async function pair(store: () => ServerConfig['store']) {
  const server = (idle: Pick<ServerConfig, 'idleTimeoutSeconds' | 'idleCheckIntervalMs'>): ServerConfig => ({
    store: store(),
    depositSats: 50,
    ...idle,
  })
  const config: ChildConfig = {
    secret: 'lightning-multiprocess-secret-0123456789',
    node: network!.info.nodes.payee,
    servers: [server({ idleTimeoutSeconds: 300, idleCheckIntervalMs: 1_000 }), server(idleSweep)],
  }
  const processes = [new ServerProcess(script, config), new ServerProcess(script, config)]
  started.push(...processes)
  return Promise.all(processes.map((p) => p.ready()))
}

/** One server of a process: its URL, what it reported, and its process. */
type Endpoint = { url(path?: string): string; events: ChildEvent[]; stderr: string; stop(): Promise<void> }
const endpoint = (child: ServerProcess, server: number): Endpoint => ({
  url: (path) => child.url(path, server),
  get events() {
    return child.events.filter((event) => event.server === server)
  },
  get stderr() {
    return child.stderr
  },
  stop: () => child.stop(),
})

const payer = () => lndFor(network!.info.nodes.payer)
const payerBalance = async () => (await getChannelBalance({ lnd: payer() })).channel_balance

/** A session client paying with the payer node, whose side requests go to `url`'s process. */
function newClient() {
  const sessions = sessionClient({ lnd: payer(), network: 'regtest' })
  return { sessions, client: createClient({ methods: [sessions] }) }
}

/** Waits until `check` holds (polling), or throws after `timeoutMs` with what `processes` reported. */
async function until(check: () => Promise<boolean>, timeoutMs: number, processes: Endpoint[] = []) {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) {
      const seen = processes.map((p, i) => `process ${i}: ${JSON.stringify(p.events)} ${p.stderr}`)
      throw new Error(`not reached within ${timeoutMs} ms\n${seen.join('\n')}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** What each server reported to its logs. */
const reported = (processes: Endpoint[], kind: string) =>
  processes.flatMap((p) => p.events.filter((e) => e.event === kind))

describe.each(stores)('sessionServer in two processes on $name', ({ reason, store }) => {
  // One pair of processes for the tests of this store, started by the first test that runs. The last
  // test stops one of the two.
  let running: ReturnType<typeof pair> | undefined
  /** Server `server` of each of the two processes. */
  const pairServers = async (server: number) => {
    running ??= pair(store)
    return (await running).map((p) => endpoint(p, server))
  }

  it.skipIf(!!reason)(
    'never spends more than the deposit under 200 concurrent bearer requests on both processes',
    async () => {
      const [a, b] = await pairServers(bearerServer)
      const { sessions, client } = newClient()
      expect((await client.fetch(a!.url())).status).toBe(200)
      const state = [...sessions.sessions.values()][0]!
      const servers = [a!, b!]
      const challenges = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const response = await fetch(servers[i % 2]!.url())
          return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
        }),
      )
      const bearer = { action: 'bearer', sessionId: state.sessionId, preimage: state.preimage }
      const responses = await Promise.all(
        challenges.map((challenge, i) =>
          fetch(servers[(i + 1) % 2]!.url(), {
            headers: { authorization: Credential.format({ challenge, payload: bearer }) },
          }),
        ),
      )
      const statuses = responses.map((r) => r.status)
      const bodies = await Promise.all(responses.map((r) => r.json() as Promise<{ type?: string }>))
      const problem = 'https://paymentauth.org/problems/'
      // Each one is served, refused for the balance, or (a PostgreSQL pool overloaded by 200 requests at
      // once) refused with 503 before anything was consumed; never another answer.
      const kinds = bodies.map((body, i) =>
        statuses[i] === 200
          ? 'served'
          : statuses[i] === 402 && body.type === `${problem}lightning/insufficient-balance`
            ? 'short'
            : statuses[i] === 503 && body.type === `${problem}service-unavailable`
              ? 'unavailable'
              : JSON.stringify(body),
      )
      expect(kinds.filter((k) => !['served', 'short', 'unavailable'].includes(k))).toEqual([])
      let served = kinds.filter((k) => k === 'served').length
      // 50 sat deposited, 1 spent by the open: at most 49 bearer requests are served, across both.
      expect(served).toBeLessThanOrEqual(49)
      // And no sat is lost: requests one at a time serve what is left, exactly up to the deposit.
      for (let i = 0; ; i++) {
        const server = servers[i % 2]!
        const challenge = Challenge.parseAll((await fetch(server.url())).headers.get('www-authenticate')!)[0]!
        const response = await fetch(server.url(), {
          headers: { authorization: Credential.format({ challenge, payload: bearer }) },
        })
        if (response.status === 503) continue
        if (response.status !== 200) {
          expect(((await response.json()) as { type: string }).type).toBe(
            `${problem}lightning/insufficient-balance`,
          )
          break
        }
        served++
        expect(served).toBeLessThanOrEqual(49)
      }
      expect(served).toBe(49)
      console.info(
        `[lightning multiprocess] ${kinds.filter((k) => k === 'served').length} of 200 concurrent bearer requests served at once, ${kinds.filter((k) => k === 'unavailable').length} answered 503`,
      )
      const closed = await sessions.close(a!.url())
      expect(await closed.json()).toEqual({ status: 'closed', refundSats: 0, refundStatus: 'skipped' })
      expect(reported([a!, b!], 'error').filter((e) => !/store/i.test(e.message ?? ''))).toEqual([])
    },
    300_000,
  )

  it.skipIf(!!reason)(
    'closes an idle session once, with exactly one refund, while both processes sweep',
    async () => {
      const processes = await pairServers(idleServer)
      const [a, b] = processes
      const { sessions, client } = newClient()
      const before = await payerBalance()
      expect((await client.fetch(a!.url())).status).toBe(200)
      // The client keeps a session per origin: the other process (another origin here) gets the same
      // session's bearer credential directly, as one origin in front of both would send it.
      const state = [...sessions.sessions.values()][0]!
      const challenge = Challenge.parseAll((await fetch(b!.url())).headers.get('www-authenticate')!)[0]!
      const payload = { action: 'bearer', sessionId: state.sessionId, preimage: state.preimage }
      const used = await fetch(b!.url(), {
        headers: { authorization: Credential.format({ challenge, payload }) },
      })
      expect(used.status).toBe(200)
      // Deposit 50, spent 2: the refund is 48.
      await until(async () => (await payerBalance()) === before - 2, 30_000, processes)
      // Both sweepers keep running: still one refund, no second attempt (it would fail and be logged).
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      expect(await payerBalance()).toBe(before - 2)
      expect(reported(processes, 'refund-failed')).toEqual([])
      expect(reported(processes, 'error')).toEqual([])
      const returnInvoices = (await getInvoices({ lnd: payer(), limit: 1000 })).invoices.filter(
        (invoice) => invoice.description === 'mppkit session refund' && invoice.is_confirmed,
      )
      expect(returnInvoices.map((invoice) => invoice.received)).toContain(48)
      // Never reopened: a bearer action on either process is refused as closed.
      for (const server of processes) {
        const challenge = Challenge.parseAll((await fetch(server.url())).headers.get('www-authenticate')!)[0]!
        const refused = await fetch(server.url(), {
          headers: {
            authorization: Credential.format({
              challenge,
              payload: { action: 'bearer', sessionId: state.sessionId, preimage: state.preimage },
            }),
          },
        })
        expect(((await refused.json()) as { type: string }).type).toBe(
          'https://paymentauth.org/problems/lightning/session-closed',
        )
      }
    },
    120_000,
  )

  it.skipIf(!!reason)(
    'closes the idle session of a process that stopped, from a process that never saw it',
    async () => {
      const [a, b] = await pairServers(idleServer)
      const { client } = newClient()
      const before = await payerBalance()
      const opening = Date.now()
      expect((await client.fetch(a!.url())).status).toBe(200)
      await a!.stop()
      // Stopped before the session could go idle: a never swept it.
      expect(Date.now() - opening).toBeLessThan(idleSweep.idleTimeoutSeconds * 1000)
      // Only b sweeps now, and only the Store tells it about the session: deposit 50, spent 1.
      await until(async () => (await payerBalance()) === before - 1, 30_000, [b!])
      expect(reported([b!], 'refund-failed')).toEqual([])
      expect(reported([b!], 'error')).toEqual([])
    },
    120_000,
  )
})
