import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server, toNodeListener } from '@mppkit/core/server'
import { PostgresStore } from '@mppkit/store-postgres'
import { RedisStore } from '@mppkit/store-redis'
import { type AuthenticatedLnd, authenticatedLndGrpc } from 'lightning'
import { sessionServer } from '../../src/server/index.js'

/** One server a lightning server process runs: its own Store connection, idle sweeper and port. */
export type ServerConfig = {
  store:
    | { kind: 'redis'; url: string; keyPrefix: string }
    | { kind: 'postgres'; connectionString: string; schema: string; table: string }
  depositSats: number
  idleTimeoutSeconds: number
  idleCheckIntervalMs: number
}

/** What a lightning server process receives in `MPPKIT_LN_CONFIG`. */
export type ChildConfig = {
  secret: string
  /** The payee node (the servers'), as the devnet simulator serves it. */
  node: { socket: string; cert: string; macaroon: string }
  /** The servers it runs, each on its own port (events name the server by its index here). */
  servers: ServerConfig[]
}

const emit = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`)

/** One server: the core server with `sessionServer` on its own Store, listening on an OS-assigned port. */
function startServer(config: ServerConfig, index: number, secret: string, lnd: AuthenticatedLnd) {
  const store =
    config.store.kind === 'redis'
      ? new RedisStore({ url: config.store.url, keyPrefix: config.store.keyPrefix })
      : new PostgresStore({
          connectionString: config.store.connectionString,
          schema: config.store.schema,
          table: config.store.table,
        })
  const server = Server.create({
    realm: 'lightning.test',
    secrets: [secret],
    store,
    methods: [
      sessionServer({
        lnd,
        depositSats: config.depositSats,
        idleTimeoutSeconds: config.idleTimeoutSeconds,
        idleCheckIntervalMs: config.idleCheckIntervalMs,
        onRefundFailure: (failure) => emit({ event: 'refund-failed', server: index, ...failure }),
        // The tests send 200 requests at once to two processes sharing one simulator, next to the other
        // test files: some invoices then take ~10 s to issue, which the default bound (10 s) answers 503.
        nodeTimeoutMs: 60_000,
      }),
    ],
    onError: (error) => emit({ event: 'error', server: index, message: (error as Error).message }),
  })
  const handler = server.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
    () => Response.json({ pid: process.pid }),
  )
  const http = createServer(toNodeListener(handler))
  http.listen(0, '127.0.0.1', () =>
    emit({ event: 'listening', server: index, port: (http.address() as AddressInfo).port }),
  )
  return async () => {
    http.close()
    await server.close()
    await store.close?.().catch(() => {})
  }
}

/**
 * One server process of the multi-process lightning session tests: runs the servers of its config (the
 * core server with `sessionServer`, each on its own Redis or PostgreSQL store connection, with its own
 * idle sweeper, on an OS-assigned port), all talking to the devnet LND simulator through one `lnd`.
 * It reports `listening`, and `refund-failed` / `error` (what a server's onError and the method's refund
 * log receive) as JSON lines naming the server; it exits when stdin closes or on SIGTERM.
 */
async function main(): Promise<void> {
  const config = JSON.parse(process.env.MPPKIT_LN_CONFIG ?? '{}') as ChildConfig
  const { lnd } = authenticatedLndGrpc(config.node)
  const stops = config.servers.map((server, index) => startServer(server, index, config.secret, lnd))
  const stop = async () => {
    await Promise.all(stops.map((stopServer) => stopServer()))
    process.exit(0)
  }
  process.stdin.on('end', stop)
  process.stdin.resume()
  process.on('SIGTERM', stop)
}

await main()
