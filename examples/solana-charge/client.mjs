// An agent paying the Solana server, once in pull mode (the server broadcasts) and once in push mode
// (the agent broadcasts and presents the signature). Env: SOLANA_RPC_URL, SOLANA_NETWORK, PAYER_SECRET_KEY
// (JSON array of 64 bytes, solana-keygen format). Usage: node client.mjs <url>
import { Client, receipt } from '@mppkit/core/client'
import { solana } from '@mppkit/method-solana/client'
import { createKeyPairSignerFromBytes } from '@solana/kit'

const url = process.argv[2] ?? 'http://127.0.0.1:3000/quote'
const signer = await createKeyPairSignerFromBytes(
  new Uint8Array(JSON.parse(/** @type {string} */ (process.env.PAYER_SECRET_KEY))),
)

for (const mode of /** @type {('pull' | 'push')[]} */ (['pull', 'push'])) {
  const client = Client.create({
    methods: [
      solana({
        signer,
        rpcUrl: /** @type {string} */ (process.env.SOLANA_RPC_URL),
        network: /** @type {'mainnet' | 'devnet' | 'localnet'} */ (process.env.SOLANA_NETWORK ?? 'localnet'),
        mode,
      }),
    ],
    // At most 0.002 SOL per request, 0.01 SOL in all.
    policy: { maxAmount: { sol: 2_000_000n }, budget: { sol: 10_000_000n } },
  })
  const response = await client.fetch(url)
  const body = await response.json()
  console.log(mode, response.status, response.ok ? body : `${body.reason} - ${body.detail}`)
  if (response.ok) console.log('receipt', receipt(response))
}
