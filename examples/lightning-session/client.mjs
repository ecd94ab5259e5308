// Opens a Lightning session, reads an SSE stream billed per chunk (paying the top-ups the server asks for
// mid-stream on the same connection), then closes the session and gets the unspent balance refunded.
// Env: MPPKIT_PAYER_LND_SOCKET, MPPKIT_PAYER_LND_CERT, MPPKIT_PAYER_LND_MACAROON,
// MPPKIT_LIGHTNING_NETWORK (default regtest). Usage: node client.mjs <url>
import { Client, receipt } from '@mppkit/core/client'
import { lightning } from '@mppkit/method-lightning/client'
import { authenticatedLndGrpc } from 'lightning'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'lightning-session client',
  'is the server up? `node examples/lightning-session/run.mjs` runs both; set MPPKIT_PAYER_LND_SOCKET, _CERT and _MACAROON',
)
requireEnv('MPPKIT_PAYER_LND_SOCKET', 'MPPKIT_PAYER_LND_MACAROON')

const { lnd } = authenticatedLndGrpc({
  socket: /** @type {string} */ (process.env.MPPKIT_PAYER_LND_SOCKET),
  cert: /** @type {string} */ (process.env.MPPKIT_PAYER_LND_CERT),
  macaroon: /** @type {string} */ (process.env.MPPKIT_PAYER_LND_MACAROON),
})
const sessions = lightning.session({
  lnd,
  network: /** @type {'regtest' | 'mainnet' | 'signet'} */ (
    process.env.MPPKIT_LIGHTNING_NETWORK ?? 'regtest'
  ),
  maxFeeSats: 10,
})
// The deposit limit applies to the session's deposits and top-ups together.
const client = Client.create({
  methods: [sessions],
  policy: { currencies: ['sat'], maxDeposit: { sat: 100n } },
})
const url = process.argv[2] ?? 'http://127.0.0.1:3000/generate'

const response = await client.fetch(url)
console.log('open', response.status, 'session', receipt(response)?.reference)
const words = []
for await (const chunk of sessions.stream(response, url, (event, data) => {
  if (event === 'payment-need-topup')
    console.log(`  [top-up: spent ${/** @type {any} */ (data).balanceSpent} sat, paying a new deposit]`)
  if (event === 'payment-receipt')
    console.log(
      `  [stream receipt: ${/** @type {any} */ (data).units} chunks, ${/** @type {any} */ (data).spent} sat]`,
    )
}))
  words.push(chunk)
console.log('stream', words.join(' '))
const closed = await sessions.close(url)
console.log('close', closed.status, await closed.json())
process.exit(closed.status === 200 ? 0 : 1)
