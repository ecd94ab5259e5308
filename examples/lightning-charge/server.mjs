// A paid endpoint on Lightning: 100 sat per request, a fresh BOLT11 invoice per challenge.
// Env: MPPKIT_LND_SOCKET (host:port of LND's gRPC), MPPKIT_LND_CERT (base64 tls.cert), MPPKIT_LND_MACAROON
// (hex; invoice.macaroon suffices), MPP_SECRET (≥ 32 bytes), PORT.
import http from 'node:http'
import { Server, toNodeListener } from '@mppkit/core/server'
import { lightning } from '@mppkit/method-lightning/server'
import { authenticatedLndGrpc } from 'lightning'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'lightning-charge server',
  'run `node examples/lightning-charge/run.mjs`, or set MPPKIT_LND_SOCKET, MPPKIT_LND_CERT and MPPKIT_LND_MACAROON',
)
requireEnv('MPPKIT_LND_SOCKET', 'MPPKIT_LND_MACAROON')

const { lnd } = authenticatedLndGrpc({
  socket: /** @type {string} */ (process.env.MPPKIT_LND_SOCKET),
  cert: /** @type {string} */ (process.env.MPPKIT_LND_CERT),
  macaroon: /** @type {string} */ (process.env.MPPKIT_LND_MACAROON),
})
const server = Server.create({
  realm: 'lightning-charge.example',
  secrets: [process.env.MPP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef'],
  methods: [lightning({ lnd })],
})

const weather = server.protect(
  { offers: [{ method: 'lightning', request: { amount: '100', description: 'Weather report' } }] },
  () => Response.json({ temperature: 72, condition: 'sunny' }),
)

const listener = http.createServer(toNodeListener(weather))
listener.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(
    `listening on http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (listener.address()).port}/weather`,
  )
})
