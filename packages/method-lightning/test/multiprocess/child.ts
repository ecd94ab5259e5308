import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server, toNodeListener } from '@mppkit/core/server'
import { PostgresStore } from '@mppkit/store-postgres'
import { RedisStore } from '@mppkit/store-redis'
import { authenticatedLndGrpc } from 'lightning'
import { sessionServer } from '../../src/server/index.js'

/** What a lightning server process receives in `MPPKIT_LN_CONFIG`. */
export type ChildConfig = {
  secret: string
  store:
    | { kind: 'redis'; url: string; keyPrefix: string }
    | { kind: 'postgres'; connectionString: string; schema: string; table: string }
  /** The payee node (the server's), as the devnet simulator serves it. */
  node: { socket: string; cert: string; macaroon: string }
  depositSats: number
  idleTimeoutSeconds: number
  idleCheckIntervalMs: number
}

const emit = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`)

/**
 * One server process of the multi-process lightning session tests: the core server with
 * `sessionServer` on a shared Redis or PostgreSQL store, talking to the devnet LND simulator, listening
 * on an OS-assigned port. It reports `listening`, and `refund-failed` / `error` (what the server's
 * onError and the method's refund log receive) as JSON lines; it exits when stdin closes or on SIGTERM.
 */
async function main(): Promise<void> {
  const config = JSON.parse(process.env.MPPKIT_LN_CONFIG ?? '{}') as ChildConfig
  const store =
    config.store.kind === 'redis'
      ? new RedisStore({ url: config.store.url, keyPrefix: config.store.keyPrefix })
      : new PostgresStore({
          connectionString: config.store.connectionString,
          schema: config.store.schema,
          table: config.store.table,
        })
  const { lnd } = authenticatedLndGrpc(config.node)
  const server = Server.create({
    realm: 'lightning.test',
    secrets: [config.secret],
    store,
    methods: [
      sessionServer({
        lnd,
        depositSats: config.depositSats,
        idleTimeoutSeconds: config.idleTimeoutSeconds,
        idleCheckIntervalMs: config.idleCheckIntervalMs,
        onRefundFailure: (failure) => emit({ event: 'refund-failed', ...failure }),
        // The tests send 200 requests at once to two processes sharing one simulator, next to the other
        // test files: some invoices then take ~10 s to issue, which the default bound (10 s) answers 503.
        nodeTimeoutMs: 60_000,
      }),
    ],
    onError: (error) => emit({ event: 'error', message: (error as Error).message }),
  })
  const handler = server.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
    () => Response.json({ pid: process.pid }),
  )
  const http = createServer(toNodeListener(handler))
  http.listen(0, '127.0.0.1', () => emit({ event: 'listening', port: (http.address() as AddressInfo).port }))
  const stop = async () => {
    http.close()
    await server.close()
    await store.close?.().catch(() => {})
    process.exit(0)
  }
  process.stdin.on('end', stop)
  process.stdin.resume()
  process.on('SIGTERM', stop)
}

await main()
