// @ts-check
// An agent that pays a Tempo session and survives restarts: its channels live in a file
// (`fileChannelStore`), so a new run pays on the channel the last one left open instead of locking a
// second deposit; the policy caps what its channels may hold in escrows at once (`maxLocked`).
// Env: MPPKIT_PRIVATE_KEY, MPPKIT_RPC_URL, MPPKIT_CHANNEL_FILE.
// Usage: node agent.mjs <url> <requests> [--done]   (--done: close every channel at the end)
import { Client, receipt } from '@mppkit/core/client'
import { tempo } from '@mppkit/method-tempo/client'
import { fileChannelStore } from '@mppkit/method-tempo/client/node'
import { privateKeyToAccount } from 'viem/accounts'
import { cause, onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'tempo-agent client',
  'is the server up? `node examples/tempo-agent/run.mjs` runs it; set MPPKIT_PRIVATE_KEY, MPPKIT_RPC_URL and MPPKIT_CHANNEL_FILE',
)
requireEnv('MPPKIT_PRIVATE_KEY', 'MPPKIT_RPC_URL', 'MPPKIT_CHANNEL_FILE')

const pathUsd = '0x20c0000000000000000000000000000000000000'
const [url = 'http://127.0.0.1:3000/chat', count = '2'] = process.argv
  .slice(2)
  .filter((a) => !a.startsWith('--'))
const done = process.argv.includes('--done')

const channelStore = fileChannelStore(/** @type {string} */ (process.env.MPPKIT_CHANNEL_FILE))
const sessions = tempo.session({
  account: privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_PRIVATE_KEY)),
  rpcUrl: /** @type {string} */ (process.env.MPPKIT_RPC_URL),
  deposit: 10_000n,
  channelStore,
})
const client = Client.create({
  methods: [sessions],
  // At most 0.05 PathUSD held in escrows at once, whatever number of servers asks for a deposit.
  policy: { currencies: [pathUsd], maxDeposit: 10_000n, maxLocked: 50_000n, budget: 1_000_000n },
})

try {
  // Before the first payment: the channels an earlier run left open, each checked on chain.
  const restored = await sessions.restore()
  console.log(`restored ${restored.length} channel(s)${restored.map((c) => ` ${c.channelId}`).join('')}`)
  for (let i = 0; i < Number(count); i++) {
    const response = await client.fetch(url)
    if (!response.ok) throw new Error(`${url} answered ${response.status}`)
    const { reference, spent } = /** @type {Record<string, unknown>} */ (receipt(response))
    console.log(response.status, JSON.stringify(await response.json()), `channel ${reference} spent ${spent}`)
  }
  if (done) {
    // Done for good: every channel closed, the unspent deposits refunded by the escrow.
    for (const result of await sessions.closeAll()) {
      if (result.ok) console.log('closed', result.channelId, result.response?.status)
      else {
        // Kept in the file: a later run closes it, or `mppkit reclaim` takes it back without the server.
        const why = result.response ? `HTTP ${result.response.status}` : cause(result.error)
        console.error(`closing ${result.channelId} failed (${why}); it stays saved for the next run`)
        process.exitCode = 1
      }
    }
  } else
    for (const channel of sessions.channels.values())
      console.log(`keeping channel ${channel.channelId} open for the next run`)
} finally {
  channelStore.close()
}
