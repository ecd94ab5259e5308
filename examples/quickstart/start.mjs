// `npm start`: runs the quickstart on embedded local nodes. It starts a local Tempo node (anvil
// --network tempo), the quickstart server, and pays it with the quickstart client, then keeps the
// server up so you can try `npx mppkit inspect <url>` or the client again. Ctrl-C stops everything.
// `--once` exits after the first payment (used by the tests).
import { fileURLToPath } from 'node:url'
import { runClient, startServer } from '../lib/processes.mjs'
import { tempoNode } from '../lib/tempo-node.mjs'

const here = (file) => fileURLToPath(new URL(file, import.meta.url))
const onlyOnce = process.argv.includes('--once')

const node = await tempoNode()
const [payer, merchant] = node.info.accounts
const env = {
  ...process.env,
  MPPKIT_RPC_URL: node.info.rpcUrl,
  MPPKIT_CHAIN_ID: String(node.info.chainId),
  MPPKIT_RECIPIENT: merchant.address,
  PORT: '0',
}
console.log(`Tempo node: ${node.info.rpcUrl} (chain ${node.info.chainId}; ${node.source})`)

const server = await startServer(here('./server.mjs'), env).catch(async (error) => {
  console.error(error.message)
  await node.stop()
  process.exit(1)
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
  MPPKIT_ESCROW: node.info.escrow,
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
if (onlyOnce || sessionCode !== 0) await stop(sessionCode)
console.log(`\nPaid. The server stays up at ${url}; pay again with:`)
console.log(
  `  MPPKIT_RPC_URL=${node.info.rpcUrl} MPPKIT_PRIVATE_KEY=<a dev key> node examples/quickstart/client.mjs ${url}`,
)
console.log('Ctrl-C to stop.')
