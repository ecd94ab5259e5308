// A streamed endpoint on a Lightning session: 1 sat per SSE chunk, a 10 sat deposit (so the 25-chunk
// stream needs two top-ups mid-stream), a 5-minute idle timeout with refund to the return invoice.
// Env: MPPKIT_LND_SOCKET, MPPKIT_LND_CERT, MPPKIT_LND_MACAROON (admin: the server pays refunds),
// MPP_SECRET, PORT.
import http from 'node:http'
import { Server, toNodeListener } from '@mppkit/core/server'
import { lightning } from '@mppkit/method-lightning/server'
import { authenticatedLndGrpc } from 'lightning'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'lightning-session server',
  'run `node examples/lightning-session/run.mjs`, or set MPPKIT_LND_SOCKET, MPPKIT_LND_CERT and MPPKIT_LND_MACAROON',
)
requireEnv('MPPKIT_LND_SOCKET', 'MPPKIT_LND_MACAROON')

const { lnd } = authenticatedLndGrpc({
  socket: /** @type {string} */ (process.env.MPPKIT_LND_SOCKET),
  cert: /** @type {string} */ (process.env.MPPKIT_LND_CERT),
  macaroon: /** @type {string} */ (process.env.MPPKIT_LND_MACAROON),
})
const server = Server.create({
  realm: 'lightning-session.example',
  secrets: [process.env.MPP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef'],
  methods: [lightning.session({ lnd, depositSats: 10, idleTimeoutSeconds: 300 })],
})

const words =
  'Lightning sessions bill every chunk of this stream against a prepaid deposit and top up as it runs dry'
const generate = server.protect(
  { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1', unitType: 'chunk' } }] },
  (_request, payment) =>
    /** @type {any} */ (payment.context).sse(words.split(' ').concat(['.', '.', '.', '.', '.', '.', '.'])),
)

const listener = http.createServer(toNodeListener(generate))
listener.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(
    `listening on http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (listener.address()).port}/generate`,
  )
})
process.once('SIGTERM', async () => {
  await server.close()
  process.exit(0)
})
