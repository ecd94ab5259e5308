#!/usr/bin/env node
// `npm run devnet`: starts every rail's local node, prints ONE JSON line of endpoints and accounts on
// stdout (for scripts and other processes: `… | head -1 | jq`), logs to stderr, and stays up until
// SIGINT/SIGTERM, then stops every node and exits 0. Options: --rails tempo,stripe.
import { type DevnetInfo, type DevnetRail, devnetRails, startDevnet } from './devnet.js'

// Credentials the user supplied for a real node never reach stdout: only the devnet's own throwaway
// keys (anvil's well-known accounts, per-start simulator keys) are printed, because tests need them.
function redactExternal(info: DevnetInfo): DevnetInfo {
  const copy = structuredClone(info)
  if (copy.stripe?.source === 'external') copy.stripe.secretKey = '(from STRIPE_SECRET_KEY)'
  if (copy.lightning?.source === 'external') {
    for (const node of Object.values(copy.lightning.nodes)) if (node) node.macaroon = '(from environment)'
  }
  if (copy.tempo?.source === 'external')
    copy.tempo.accounts = copy.tempo.accounts.map((account) => ({
      ...account,
      privateKey: '0x(from MPPKIT_TEMPO_PRIVATE_KEYS)',
    }))
  if (copy.solana?.source === 'external' && copy.solana.payer)
    copy.solana.payer = { ...copy.solana.payer, secretKey: [] }
  return copy
}

function parseRails(argv: string[]): DevnetRail[] | undefined {
  const index = argv.findIndex((argument) => argument === '--rails' || argument.startsWith('--rails='))
  if (index === -1) return undefined
  const value = argv[index]!.includes('=') ? argv[index]!.split('=')[1] : argv[index + 1]
  const rails = (value ?? '').split(',').filter((rail) => rail !== '')
  for (const rail of rails)
    if (!devnetRails.includes(rail as DevnetRail)) {
      process.stderr.write(`unknown rail ${rail}; expected some of ${devnetRails.join(',')}\n`)
      process.exit(2)
    }
  return rails as DevnetRail[]
}

async function main(): Promise<void> {
  const rails = parseRails(process.argv.slice(2))
  let devnet: Awaited<ReturnType<typeof startDevnet>> | undefined
  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    process.stderr.write(`devnet: ${signal}, stopping\n`)
    await devnet?.stop()
    process.exit(0)
  }
  // Installed before the start so a Ctrl-C during start-up still stops what came up.
  process.on('SIGINT', () => void shutdown('SIGINT'))
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  devnet = await startDevnet(rails ? { rails } : {})
  if (stopping) {
    await devnet.stop()
    process.exit(0)
  }
  process.stdout.write(`${JSON.stringify(redactExternal(devnet.info))}\n`)
  const parts = Object.entries(devnet.timings.rails).map(([rail, ms]) => `${rail} ${ms.toFixed(0)} ms`)
  process.stderr.write(
    `devnet: up in ${devnet.timings.totalMs.toFixed(0)} ms (${parts.join(', ')}); Ctrl-C to stop\n`,
  )
  // Keeps the process alive: the nodes' servers do already, an external-only devnet would not.
  setInterval(() => {}, 1 << 30)
}

main().catch((error: unknown) => {
  process.stderr.write(`devnet: failed to start: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
})
