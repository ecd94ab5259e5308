// Runs the example end to end on a local Solana node (or the one `npm run devnet` started, see
// ./solana-node.mjs): node examples/solana-charge/run.mjs
import { fileURLToPath } from 'node:url'
import { generateKeyPairSigner } from '@solana/kit'
import { runClient, startServer } from '../lib/processes.mjs'
import { solanaNode } from './solana-node.mjs'

const here = (file) => fileURLToPath(new URL(file, import.meta.url))
const node = await solanaNode()
console.log(`Solana RPC: ${node.info.rpcUrl} (${node.source})`)
const env = { ...process.env, SOLANA_RPC_URL: node.info.rpcUrl, SOLANA_NETWORK: 'localnet' }
const recipient = await generateKeyPairSigner()
const server = await startServer(here('./server.mjs'), { ...env, RECIPIENT: recipient.address, PORT: '0' })
try {
  process.exitCode = await runClient(here('./client.mjs'), [server.url], {
    ...env,
    PAYER_SECRET_KEY: JSON.stringify(
      /** @type {NonNullable<typeof node.info.payer>} */ (node.info.payer).secretKey,
    ),
  })
} finally {
  server.kill()
  await node.stop()
}
