// @ts-check
// Runs the example end to end on the Stripe simulator (or the one `npm run devnet` started, see
// ./stripe-node.mjs): node examples/stripe-charge/run.mjs
import { fileURLToPath } from 'node:url'
import { runClient, startServer } from '../lib/processes.mjs'
import { stripeNode } from './stripe-node.mjs'

const here = (file) => fileURLToPath(new URL(file, import.meta.url))
const node = await stripeNode()
console.log(`Stripe simulator: ${node.info.apiBase} (${node.source})`)
// One simulator key stands for both the seller's and the agent platform's Stripe accounts.
const env = { ...process.env, STRIPE_SECRET_KEY: node.info.secretKey, STRIPE_API_BASE: node.info.apiBase }
const server = await startServer(here('./server.mjs'), {
  ...env,
  STRIPE_NETWORK_ID: node.info.networkId,
  PORT: '0',
})
try {
  process.exitCode = await runClient(here('./client.mjs'), [server.url], env)
} finally {
  server.kill()
  await node.stop()
}
