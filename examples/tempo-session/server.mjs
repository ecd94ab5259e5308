// @ts-check
// A metered endpoint on Tempo sessions (v1 escrow): 100 base units per request on /chat and per chunk on
// /stream (SSE). Env: MPPKIT_RPC_URL, MPPKIT_CHAIN_ID, MPPKIT_PAYEE_KEY (the payee's key: it settles and
// closes channels), MPPKIT_ESCROW, MPP_SECRET, PORT.
import http from 'node:http'
import { MemoryStore } from '@mppkit/core'
import { Server, toNodeListener } from '@mppkit/core/server'
import { tempo } from '@mppkit/method-tempo/server'
import { privateKeyToAccount } from 'viem/accounts'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'tempo-session server',
  'run `node examples/tempo-session/run.mjs`, or set MPPKIT_RPC_URL, MPPKIT_CHAIN_ID, MPPKIT_PAYEE_KEY and MPPKIT_ESCROW',
)
requireEnv('MPPKIT_RPC_URL', 'MPPKIT_PAYEE_KEY', 'MPPKIT_ESCROW')

const options = {
  rpcUrl: /** @type {string} */ (process.env.MPPKIT_RPC_URL),
  chainId: Number(process.env.MPPKIT_CHAIN_ID ?? 4217),
  currency: /** @type {`0x${string}`} */ ('0x20c0000000000000000000000000000000000000'), // PathUSD
  account: privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_PAYEE_KEY)),
  escrow: /** @type {`0x${string}`} */ (process.env.MPPKIT_ESCROW),
  settleInterval: 10_000, // batch-settle consumed vouchers every 10 s
}
const perRequest = tempo.session(options)
const perChunk = tempo.session({ ...options, unitsPerRequest: 0 })
// Both routes share one Store: a channel's accepted and spent amounts must be one ledger.
const store = new MemoryStore()
const secrets = [process.env.MPP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef']
const offer = { method: 'tempo', intent: 'session', request: { amount: '100', unitType: 'request' } }

const chat = Server.create({ realm: 'tempo-session.example', secrets, store, methods: [perRequest] }).protect(
  { offers: [offer] },
  () => Response.json({ answer: 42 }),
)
const stream = Server.create({ realm: 'tempo-session.example', secrets, store, methods: [perChunk] }).protect(
  { offers: [offer] },
  (_request, payment) =>
    /** @type {{ sse(chunks: string[]): Response }} */ (payment.context).sse([
      'Hello',
      'from',
      'a',
      'metered',
      'stream',
    ]),
)

const listener = http.createServer(
  toNodeListener((request) =>
    new URL(request.url).pathname === '/stream' ? stream(request) : chat(request),
  ),
)
listener.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(
    `listening on http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (listener.address()).port}/chat`,
  )
})
