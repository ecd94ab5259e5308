// Pays the Lightning charge server: decodes and checks the invoice, pays it from the payer's node under a
// fee limit, and retries with the preimage. Env: MPPKIT_PAYER_LND_SOCKET, MPPKIT_PAYER_LND_CERT,
// MPPKIT_PAYER_LND_MACAROON, MPPKIT_LIGHTNING_NETWORK (default regtest). Usage: node client.mjs <url>
import { Client, receipt } from '@mppkit/core/client'
import { lightning } from '@mppkit/method-lightning/client'
import { authenticatedLndGrpc } from 'lightning'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'lightning-charge client',
  'is the server up? `node examples/lightning-charge/run.mjs` runs both; set MPPKIT_PAYER_LND_SOCKET, _CERT and _MACAROON',
)
requireEnv('MPPKIT_PAYER_LND_SOCKET', 'MPPKIT_PAYER_LND_MACAROON')

const { lnd } = authenticatedLndGrpc({
  socket: /** @type {string} */ (process.env.MPPKIT_PAYER_LND_SOCKET),
  cert: /** @type {string} */ (process.env.MPPKIT_PAYER_LND_CERT),
  macaroon: /** @type {string} */ (process.env.MPPKIT_PAYER_LND_MACAROON),
})
const client = Client.create({
  methods: [
    lightning({
      lnd,
      network: /** @type {'regtest' | 'mainnet' | 'signet'} */ (
        process.env.MPPKIT_LIGHTNING_NETWORK ?? 'regtest'
      ),
      maxFeeSats: 10,
    }),
  ],
  policy: { currencies: ['sat'], maxAmount: { sat: 1_000n } },
})
const url = process.argv[2] ?? 'http://127.0.0.1:3000/weather'
const response = await client.fetch(url)
console.log('charge', response.status, await response.json())
console.log('charge receipt', receipt(response))
process.exit(response.status === 200 ? 0 : 1)
