// @ts-check
// Opens a channel, pays three requests with vouchers, reads a metered SSE stream (answering
// payment-need-voucher events), then closes the channel. Env: MPPKIT_PRIVATE_KEY, MPPKIT_RPC_URL.
// Usage: node client.mjs <base url>
import { Client, receipt } from '@mppkit/core/client'
import { tempo } from '@mppkit/method-tempo/client'
import { privateKeyToAccount } from 'viem/accounts'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure(
  'tempo-session client',
  'is the server up? `node examples/tempo-session/run.mjs` runs both; set MPPKIT_PRIVATE_KEY and MPPKIT_RPC_URL',
)
requireEnv('MPPKIT_PRIVATE_KEY', 'MPPKIT_RPC_URL')

const pathUsd = '0x20c0000000000000000000000000000000000000'
const base = process.argv[2] ?? 'http://127.0.0.1:3000'
const sessions = tempo.session({
  account: privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_PRIVATE_KEY)),
  rpcUrl: /** @type {string} */ (process.env.MPPKIT_RPC_URL),
  deposit: 10_000n,
})
const client = Client.create({
  methods: [sessions],
  policy: { currencies: [pathUsd], maxDeposit: { [pathUsd]: 50_000n } },
})

for (let i = 0; i < 3; i++) {
  const response = await client.fetch(`${base}/chat`)
  const { spent, acceptedCumulative } = /** @type {Record<string, unknown>} */ (receipt(response))
  console.log(response.status, await response.json(), { spent, acceptedCumulative })
}

const stream = await client.fetch(`${base}/stream`)
let buffer = ''
for await (const text of /** @type {AsyncIterable<string>} */ (
  /** @type {unknown} */ (/** @type {ReadableStream} */ (stream.body).pipeThrough(new TextDecoderStream()))
)) {
  buffer += text
  for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
    const event = buffer.slice(0, end)
    buffer = buffer.slice(end + 2)
    const name = /^event: (.*)$/m.exec(event)?.[1] ?? 'message'
    const data = /^data: (.*)$/m.exec(event)?.[1]
    if (name === 'payment-need-voucher')
      await sessions.voucher(
        `${base}/stream`,
        BigInt(JSON.parse(/** @type {string} */ (data)).requiredCumulative),
      )
    else console.log(name, data)
  }
}

// One channel paid both routes (same payee, token and escrow): close it, the unspent deposit comes back.
const closed = await sessions.close(`${base}/chat`)
console.log('closed', closed.status, receipt(closed) ?? (await closed.text()))
