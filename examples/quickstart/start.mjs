// @ts-check
// `npm start`: runs the quickstart on an embedded local Tempo node (anvil --network tempo): starts the
// node and the quickstart server, pays it with the quickstart client, runs the session example, the
// agent that resumes its channel after a restart, the Stripe example (on the devnet Stripe simulator),
// the Lightning examples, the Solana example, the paid MCP tool and the x402 examples (an mppkit agent paying an x402 service; x402 and MPP clients on one route), then
// keeps the server up and prints ready-to-paste commands (its URL, the node's RPC URL and a funded
// devnet key). Ctrl-C stops everything. `--once` exits after the payments (used by the tests).
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { onFailure } from '../lib/fail.mjs'
import { runClient, startServer } from '../lib/processes.mjs'
import { tempoNode } from '../lib/tempo-node.mjs'
import { stripeNode } from '../stripe-charge/stripe-node.mjs'

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
// An agent that survives restarts (examples/tempo-agent): its first run opens a channel and keeps it in a
// file, its second run (a new process) restores the channel from the file, pays on it and closes it.
let agentCode = sessionCode
if (sessionCode === 0) {
  console.log('\nTempo agent across a restart (examples/tempo-agent):')
  const dir = mkdtempSync(join(tmpdir(), 'mppkit-agent-'))
  const agentEnv = {
    ...env,
    MPPKIT_PRIVATE_KEY: payer.privateKey,
    MPPKIT_CHANNEL_FILE: join(dir, 'channels.json'),
  }
  try {
    console.log('first run:')
    agentCode = await runClient(here('../tempo-agent/agent.mjs'), [sessionServer.url, '2'], agentEnv)
    if (agentCode === 0) {
      console.log('second run (a new process):')
      agentCode = await runClient(
        here('../tempo-agent/agent.mjs'),
        [sessionServer.url, '2', '--done'],
        agentEnv,
      )
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
sessionServer.kill()
if (agentCode !== 0) await stop(agentCode)

// Stripe: a card payment with a Shared Payment Token on the devnet Stripe simulator, then a decline.
console.log('\nStripe charge (examples/stripe-charge):')
const stripe = await stripeNode()
const stripeEnv = {
  ...process.env,
  STRIPE_SECRET_KEY: stripe.info.secretKey,
  STRIPE_API_BASE: stripe.info.apiBase,
  PORT: '0',
}
const stripeCode = await startServer(here('../stripe-charge/server.mjs'), {
  ...stripeEnv,
  STRIPE_NETWORK_ID: stripe.info.networkId,
}).then(
  async (stripeServer) => {
    try {
      return await runClient(here('../stripe-charge/client.mjs'), [stripeServer.url], stripeEnv)
    } finally {
      stripeServer.kill()
    }
  },
  (error) => {
    console.error(error.message)
    return 1
  },
)
await stripe.stop()
if (stripeCode !== 0) await stop(stripeCode)

// Lightning: a charge and an SSE stream billed per chunk with top-ups mid-stream, on LND-compatible nodes
// (the LND simulator, or the network `npm run devnet` started when MPPKIT_DEVNET_INFO is set). Both run
// at once; their output is printed in order once each is done.
const lightning = await Promise.all(
  ['lightning-charge', 'lightning-session'].map(
    (example) =>
      new Promise((resolve) => {
        const child = spawn(process.execPath, [here(`../${example}/run.mjs`)], {
          // The `lightning` client's gRPC channel warns about TLS to an IP address: not news here.
          env: {
            ...env,
            NODE_OPTIONS:
              `${/** @type {NodeJS.ProcessEnv} */ (env).NODE_OPTIONS ?? ''} --no-deprecation`.trim(),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        })
        let output = ''
        child.stdout.on('data', (chunk) => (output += chunk))
        child.stderr.on('data', (chunk) => (output += chunk))
        child.on('exit', (code) => resolve({ example, code: code ?? 1, output }))
      }),
  ),
)
for (const { example, code, output } of lightning) {
  console.log(`\nLightning (examples/${example}):\n${output.trimEnd()}`)
  if (code !== 0) await stop(code)
}

// Solana: a SOL charge in pull and push mode on the devnet SVM (embedded, or the `npm run devnet` one).
console.log('\nSolana charge (examples/solana-charge):')
const solanaCode = await new Promise((resolve) => {
  const child = spawn(process.execPath, [here('../solana-charge/run.mjs')], { env, stdio: 'inherit' })
  child.on('exit', (code) => resolve(code ?? 1))
})
if (solanaCode !== 0) await stop(solanaCode)

// Paid MCP tools: an agent pays a tool call over MCP with the same client and policy (examples/mcp-paid-tool).
console.log('\nPaid MCP tool (examples/mcp-paid-tool):')
const mcpServer = await startServer(here('../mcp-paid-tool/server.mjs'), env)
const mcpCode = await runClient(here('../mcp-paid-tool/agent.mjs'), [mcpServer.url], {
  ...env,
  MPPKIT_PRIVATE_KEY: payer.privateKey,
})
mcpServer.kill()
if (mcpCode !== 0) await stop(mcpCode)

// x402: an mppkit agent pays a plain x402 v2 service (@x402/hono), then the x402 reference client and an
// mppkit client pay one dual-stack route, both on the EIP-3009 token the node deployed.
const x402Info = /** @type {{ eip3009Token?: string, eip3009?: { name: string, version: string } }} */ (
  node.info
)
const x402Env = {
  ...env,
  MPPKIT_TOKEN: x402Info.eip3009Token,
  MPPKIT_TOKEN_NAME: x402Info.eip3009?.name,
  MPPKIT_TOKEN_VERSION: x402Info.eip3009?.version,
  MPPKIT_GAS_KEY: merchant.privateKey,
}
for (const [title, example, client] of [
  ['an mppkit agent pays an x402 service', 'x402-client', 'client.mjs'],
  ['x402 and MPP clients pay one dual-stack route', 'x402-server', 'clients.mjs'],
]) {
  console.log(`\nx402: ${title} (examples/${example}):`)
  const x402Server = await startServer(here(`../${example}/server.mjs`), x402Env)
  const x402Code = await runClient(here(`../${example}/${client}`), [x402Server.url], {
    ...x402Env,
    MPPKIT_PRIVATE_KEY: payer.privateKey,
  })
  x402Server.kill()
  if (x402Code !== 0) await stop(x402Code)
}

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
