import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Store } from '@mppkit/core'
import { type Payment, Server, toNodeListener } from '@mppkit/core/server'
import { meteredRoute, multiprocessServer, multiprocessSessionServer, route } from './method.js'

/** Configuration a server process receives in `MPPKIT_MP_CONFIG`. */
export type ChildConfig = { secret: string; store: unknown }

const emit = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`)

/**
 * One payment-server process: the real core server on the store under test, listening on an
 * OS-assigned port. It reports `listening`, `settle`, `open`, `deduct`, `handler` and `handler-failed`
 * events as JSON lines on stdout and exits when its stdin closes (so it never outlives the test) or on
 * SIGTERM. `/resource` costs one `mp/charge` payment; `/metered` is paid from an `mp/session` channel.
 * A request with `x-mp-fail: handler` makes the route handler throw after the payment settled.
 */
export async function main(createStore: (config: any) => Store): Promise<void> {
  const config = JSON.parse(process.env.MPPKIT_MP_CONFIG ?? '{}') as ChildConfig
  const store = createStore(config.store)
  const server = Server.create({
    realm: 'multiprocess.test',
    secrets: [config.secret],
    methods: [
      multiprocessServer((id) => emit({ event: 'settle', id })),
      multiprocessSessionServer((id, event) =>
        event.kind === 'open'
          ? emit({ event: 'open', id, channel: event.channel, deposit: String(event.deposit) })
          : emit({
              event: 'deduct',
              id,
              channel: event.channel,
              cost: String(event.cost),
              balance: String(event.balance),
            }),
      ),
    ],
    store,
  })
  let runs = 0
  const serve = async (request: Request, payment: Payment) => {
    if (request.headers.get('x-mp-fail') === 'handler') {
      emit({ event: 'handler-failed', id: payment.challenge.id })
      throw new Error('the route handler failed after the payment settled')
    }
    runs++
    emit({ event: 'handler', id: payment.challenge.id })
    return Response.json({
      pid: process.pid,
      run: runs,
      nonce: randomUUID(),
      reference: payment.receipt.reference,
    })
  }
  const charged = server.protect(route, serve)
  const metered = server.protect(meteredRoute, serve)
  const handler = (request: Request) =>
    new URL(request.url).pathname === '/metered' ? metered(request) : charged(request)
  const http = createServer(toNodeListener(handler))
  http.listen(0, '127.0.0.1', () => emit({ event: 'listening', port: (http.address() as AddressInfo).port }))
  const stop = async () => {
    http.close()
    await store.close?.().catch(() => {})
    process.exit(0)
  }
  process.stdin.on('end', stop)
  process.stdin.resume()
  process.on('SIGTERM', stop)
}
