// Runs the example end to end on the embedded LND simulator (or the network `npm run devnet` started, see
// ../lib/lightning-node.mjs): node examples/lightning-charge/run.mjs
import { fileURLToPath } from 'node:url'
import { onFailure } from '../lib/fail.mjs'
import { lightningNodes, lndEnv } from '../lib/lightning-node.mjs'
import { runClient, startServer } from '../lib/processes.mjs'

onFailure(
  'example',
  'run `npm run build` first; MPPKIT_DEVNET_INFO must be the JSON line `npm run devnet` printed',
)

const here = (file) => fileURLToPath(new URL(file, import.meta.url))
const network = await lightningNodes()
const env = {
  ...process.env,
  ...lndEnv('MPPKIT_LND', network.nodes.payee),
  ...lndEnv('MPPKIT_PAYER_LND', network.nodes.payer),
  PORT: '0',
}
const server = await startServer(here('./server.mjs'), env)
try {
  process.exitCode = await runClient(here('./client.mjs'), [server.url], env)
} finally {
  server.kill()
  await network.stop()
}
