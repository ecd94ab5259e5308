// Runs the example end to end on a local Tempo node (or the one `npm run devnet` started, see
// ../lib/tempo-node.mjs): node examples/mcp-paid-tool/run.mjs
import { fileURLToPath } from 'node:url'
import { onFailure } from '../lib/fail.mjs'
import { runClient, startServer } from '../lib/processes.mjs'
import { tempoNode } from '../lib/tempo-node.mjs'

onFailure(
  'example',
  'run `npm run build` first; MPPKIT_DEVNET_INFO must be the JSON line `npm run devnet` printed',
)

const here = (file) => fileURLToPath(new URL(file, import.meta.url))
const node = await tempoNode()
const [payer, merchant] =
  /** @type {[(typeof node.info.accounts)[number], (typeof node.info.accounts)[number]]} */ (
    node.info.accounts
  )
const env = { ...process.env, MPPKIT_RPC_URL: node.info.rpcUrl, MPPKIT_CHAIN_ID: String(node.info.chainId) }
const server = await startServer(here('./server.mjs'), {
  ...env,
  MPPKIT_RECIPIENT: merchant.address,
  PORT: '0',
})
try {
  process.exitCode = await runClient(here('./agent.mjs'), [server.url], {
    ...env,
    MPPKIT_PRIVATE_KEY: payer.privateKey,
  })
} finally {
  server.kill()
  await node.stop()
}
