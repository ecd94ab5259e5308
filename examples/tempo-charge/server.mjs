// @ts-check
// A paid endpoint on Tempo: 0.001 PathUSD per request, pull (signed transaction) or push (tx hash).
// Env: MPPKIT_RPC_URL, MPPKIT_CHAIN_ID, MPPKIT_RECIPIENT, MPP_SECRET (≥ 32 bytes), PORT.
import http from 'node:http'
import { Server, toNodeListener } from '@mppkit/core/server'
import { tempo } from '@mppkit/method-tempo/server'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'tempo-charge server',
  'run `node examples/tempo-charge/run.mjs`, or set MPPKIT_RPC_URL, MPPKIT_CHAIN_ID and MPPKIT_RECIPIENT',
)
requireEnv('MPPKIT_RPC_URL', 'MPPKIT_RECIPIENT')

const server = Server.create({
  realm: 'tempo-charge.example',
  secrets: [process.env.MPP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef'],
  methods: [
    tempo({
      rpcUrl: /** @type {string} */ (process.env.MPPKIT_RPC_URL),
      chainId: Number(process.env.MPPKIT_CHAIN_ID ?? 4217),
      currency: '0x20c0000000000000000000000000000000000000', // PathUSD
      recipient: /** @type {`0x${string}`} */ (process.env.MPPKIT_RECIPIENT),
    }),
  ],
})

const quote = server.protect({ offers: [{ method: 'tempo', request: { amount: '1000' } }] }, () =>
  Response.json({ quote: 'Simplicity is prerequisite for reliability.' }),
)

const listener = http.createServer(toNodeListener(quote))
listener.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(
    `listening on http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (listener.address()).port}/quote`,
  )
})
