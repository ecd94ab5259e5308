#!/usr/bin/env node
// `npm run devnet`: starts every rail's local node, prints ONE JSON line of endpoints and accounts on
// stdout (for scripts and other processes: `… | head -1 | jq`), logs to stderr, and stays up until
// SIGINT/SIGTERM, then stops every node and exits 0. Options: --rails tempo,stripe.
import { type DevnetRail, devnetRails, startDevnet } from './devnet.js'
// Credentials the user supplied for a real node, and the path and query of its URLs, never reach stdout.
import { redactExternal } from './external.js'

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
