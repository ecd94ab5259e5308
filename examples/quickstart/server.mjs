// @ts-check
// Server quickstart: charge 0.01 AlphaUSD per request on Tempo.
// Env: MPPKIT_RPC_URL and MPPKIT_CHAIN_ID (a Tempo node), MPPKIT_RECIPIENT (your address),
// MPP_SECRET (≥ 32 bytes), PORT. `npm run demo` sets them for you.
import http from 'node:http'
import { Server, toNodeListener } from '@mppkit/core/server'
import { tempo } from '@mppkit/method-tempo/server'

// A bad setting is one line and a hint, never a stack trace.
process.on('uncaughtException', (error) => {
  console.error(`server: ${/** @type {Error | undefined} */ (error.cause)?.message ?? error.message}`)
  console.error('hint: set MPPKIT_RPC_URL, MPPKIT_CHAIN_ID and MPPKIT_RECIPIENT (`npm run demo` does it)')
  process.exit(1)
})

const server = Server.create({
  realm: 'localhost',
  secrets: [process.env.MPP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef'],
  methods: [
    tempo({
      rpcUrl: /** @type {string} */ (process.env.MPPKIT_RPC_URL),
      chainId: Number(process.env.MPPKIT_CHAIN_ID ?? 4217),
      currency: '0x20c0000000000000000000000000000000000001', // AlphaUSD (TIP-20, 6 decimals)
      recipient: /** @type {`0x${string}`} */ (process.env.MPPKIT_RECIPIENT),
    }),
  ],
})

const weather = server.protect({ offers: [{ method: 'tempo', request: { amount: '10000' } }] }, () =>
  Response.json({ city: 'Lisbon', forecast: 'sunny', celsius: 24 }),
)

const listener = http.createServer(toNodeListener(weather))
listener.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(
    `listening on http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (listener.address()).port}/weather`,
  )
})
