// Runs the x402-client example end to end on a local node (or the one `npm run devnet` started, see
// ../lib/tempo-node.mjs): node examples/x402-client/run.mjs
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
const [payer, merchant, gas] =
  /** @type {[(typeof node.info.accounts)[number], (typeof node.info.accounts)[number], (typeof node.info.accounts)[number]]} */ (
    node.info.accounts
  )
const env = {
  ...process.env,
  MPPKIT_RPC_URL: node.info.rpcUrl,
  MPPKIT_CHAIN_ID: String(node.info.chainId),
  MPPKIT_TOKEN: /** @type {Extract<typeof node.info, { eip3009Token: unknown }>} */ (node.info).eip3009Token,
  MPPKIT_TOKEN_NAME: /** @type {Extract<typeof node.info, { eip3009Token: unknown }>} */ (node.info).eip3009
    .name,
  MPPKIT_TOKEN_VERSION: /** @type {Extract<typeof node.info, { eip3009Token: unknown }>} */ (node.info)
    .eip3009.version,
}
const server = await startServer(here('./server.mjs'), {
  ...env,
  MPPKIT_RECIPIENT: merchant.address,
  MPPKIT_GAS_KEY: gas.privateKey,
  PORT: '0',
})
try {
  process.exitCode = await runClient(here('./client.mjs'), [server.url], {
    ...env,
    MPPKIT_PRIVATE_KEY: payer.privateKey,
  })
} finally {
  server.kill()
  await node.stop()
}
