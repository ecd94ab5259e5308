// @ts-check
// `npm start`: runs the quickstart on an embedded local Tempo node (anvil --network tempo): starts the
// node and the quickstart server, pays it with the quickstart client, runs the session example, then
// keeps the server up and prints ready-to-paste commands (its URL, the node's RPC URL and a funded
// devnet key). Ctrl-C stops everything. `--once` exits after the payments (used by the tests).
import { fileURLToPath } from 'node:url'
import { onFailure } from '../lib/fail.mjs'
import { runClient, startServer } from '../lib/processes.mjs'
import { tempoNode } from '../lib/tempo-node.mjs'

onFailure(
  'npm start',
  'run `npm install` first; a fresh clone needs nothing else (see the README quickstart)',
)
const here = (file) => fileURLToPath(new URL(file, import.meta.url))
const onlyOnce = process.argv.includes('--once')

const node = await tempoNode()
// The quickstart pays from the first account to the second; the third is yours to paste.
/** @typedef {Awaited<ReturnType<typeof tempoNode>>['info']['accounts'][number] & {}} Account */
const [payer, merchant, yours = payer] = /** @type {[Account, Account, Account?]} */ (node.info.accounts)
const env = {
  ...process.env,
  MPPKIT_RPC_URL: node.info.rpcUrl,
  MPPKIT_CHAIN_ID: String(node.info.chainId),
  MPPKIT_RECIPIENT: merchant.address,
  PORT: '0',
}
console.log(`Tempo node: ${node.info.rpcUrl} (chain ${node.info.chainId}; ${node.source})`)

const server = await startServer(here('./server.mjs'), env).catch(async (error) => {
  await node.stop()
  throw error
})
const { url } = server
console.log(`server: ${url}  (unpaid requests get 402 + WWW-Authenticate: Payment)`)

const stop = async (code) => {
  server.kill()
  await node.stop()
  process.exit(code)
}
process.once('SIGINT', () => stop(0))
process.once('SIGTERM', () => stop(0))

const code = await runClient(here('./client.mjs'), [url], { ...env, MPPKIT_PRIVATE_KEY: payer.privateKey })
if (code !== 0) await stop(code)

// Sessions: open a channel in the v1 escrow, pay requests with vouchers, meter an SSE stream, close.
console.log('\nTempo session (examples/tempo-session):')
const sessionServer = await startServer(here('../tempo-session/server.mjs'), {
  ...env,
  MPPKIT_PAYEE_KEY: merchant.privateKey,
  MPPKIT_ESCROW: /** @type {{ escrow?: string }} */ (node.info).escrow,
})
const sessionCode = await runClient(
  here('../tempo-session/client.mjs'),
  [new URL(sessionServer.url).origin],
  {
    ...env,
    MPPKIT_PRIVATE_KEY: payer.privateKey,
  },
)
sessionServer.kill()
if (sessionCode !== 0) await stop(sessionCode)

console.log(`
Paid. The server stays up at ${url}
In another terminal, in this folder, paste (a devnet key: test funds on this local node only):

  export MPPKIT_URL=${url} MPPKIT_RPC_URL=${node.info.rpcUrl} MPPKIT_PRIVATE_KEY=${yours.privateKey}

then try:

  npm run -s mppkit -- inspect "$MPPKIT_URL"
  npm run -s mppkit -- pay "$MPPKIT_URL"
  node examples/quickstart/client.mjs "$MPPKIT_URL"

Ctrl-C stops the server and the node.`)
if (onlyOnce) await stop(0)
