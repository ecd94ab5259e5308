// A paid endpoint on Solana: 0.001 SOL per request, pull or push, confirmed commitment.
// Env: SOLANA_RPC_URL, SOLANA_NETWORK (localnet | devnet | mainnet), RECIPIENT (base58), MPP_SECRET, PORT.
import http from 'node:http'
import { Server, toNodeListener } from '@mppkit/core/server'
import { solana } from '@mppkit/method-solana/server'

const server = Server.create({
  realm: 'solana-charge.example',
  secrets: [process.env.MPP_SECRET ?? 'dev-only-secret-change-me-0123456789abcdef'],
  methods: [
    solana({
      rpcUrl: /** @type {string} */ (process.env.SOLANA_RPC_URL),
      network: /** @type {'mainnet' | 'devnet' | 'localnet'} */ (process.env.SOLANA_NETWORK ?? 'localnet'),
      currency: 'sol',
      recipient: /** @type {string} */ (process.env.RECIPIENT),
    }),
  ],
})

const quote = server.protect(
  { offers: [{ method: 'solana', request: { amount: '1000000' } }] },
  (_request, payment) => Response.json({ quote: 'SOL/USD 187.20', signature: payment.receipt.reference }),
)

const listener = http.createServer(toNodeListener(quote))
listener.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(
    `listening on http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (listener.address()).port}/quote`,
  )
})
