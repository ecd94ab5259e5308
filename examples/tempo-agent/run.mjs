// @ts-check
// Runs the agent twice against the tempo-session example server on a local Tempo node: the first run
// opens a channel and keeps it, the second restores it, pays on it and closes it.
// node examples/tempo-agent/run.mjs
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
/** @typedef {Awaited<ReturnType<typeof tempoNode>>['info']['accounts'][number] & {}} Account */
const [payer, payee] = /** @type {[Account, Account]} */ (node.info.accounts)
const env = { ...process.env, MPPKIT_RPC_URL: node.info.rpcUrl, MPPKIT_CHAIN_ID: String(node.info.chainId) }
const dir = mkdtempSync(join(tmpdir(), 'mppkit-agent-'))
const server = await startServer(here('../tempo-session/server.mjs'), {
  ...env,
  MPPKIT_PAYEE_KEY: payee.privateKey,
  MPPKIT_ESCROW: /** @type {{ escrow?: string }} */ (node.info).escrow,
  PORT: '0',
})
try {
  const agentEnv = {
    ...env,
    MPPKIT_PRIVATE_KEY: payer.privateKey,
    MPPKIT_CHANNEL_FILE: join(dir, 'channels.json'),
  }
  console.log('first run:')
  let code = await runClient(here('./agent.mjs'), [server.url, '2'], agentEnv)
  if (code === 0) {
    console.log('second run (a new process):')
    code = await runClient(here('./agent.mjs'), [server.url, '2', '--done'], agentEnv)
  }
  process.exitCode = code
} finally {
  server.kill()
  await node.stop()
  rmSync(dir, { recursive: true, force: true })
}
