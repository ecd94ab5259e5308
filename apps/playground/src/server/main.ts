// `npm start` and `npm run playground`: start the devnet (the rails the playground has pages for), the
// playground's server and its paid demo API, and print the URL. PORT overrides the free port. Ctrl-C stops all.
import { fileURLToPath } from 'node:url'
import { type DevnetRail, startDevnet } from '@mppkit/devnet'
import { readPage } from './page.js'
import { startPlayground } from './playground.js'

/** The rails the playground has pages for. */
export const playgroundRails: DevnetRail[] = ['tempo', 'stripe', 'solana', 'lightning']

const started = performance.now()
const page = readPage(fileURLToPath(new URL('./', import.meta.url)))
const devnet = await startDevnet({ rails: playgroundRails, tempo: { accounts: 8 } })
let playground: Awaited<ReturnType<typeof startPlayground>>
try {
  playground = await startPlayground({ devnet: devnet.info, page, port: Number(process.env.PORT ?? 0) })
} catch (error) {
  await devnet.stop()
  console.error(`playground: ${error instanceof Error ? error.message : String(error)}`)
  process.exit(1)
}
console.log(`playground: ${playground.url}`)
console.log(
  `[playground] devnet (${playgroundRails.join(', ')}) and server up in ${Math.round(performance.now() - started)} ms; Ctrl-C stops everything`,
)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await playground.close()
  await devnet.stop()
  process.exit(0)
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
