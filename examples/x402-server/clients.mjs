// Pays the dual-stack route twice: with the x402 reference client (@x402/fetch, v2) and with an
// mppkit client speaking MPP. Env: MPPKIT_PRIVATE_KEY, MPPKIT_CHAIN_ID, MPPKIT_TOKEN. Usage: node clients.mjs <url>
import { Client, receipt } from '@mppkit/core/client'
import { charge } from '@mppkit/x402-compat/client'
import { x402Client } from '@x402/core/client'
import { toClientEvmSigner } from '@x402/evm'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { decodePaymentResponseHeader, wrapFetchWithPayment } from '@x402/fetch'
import { privateKeyToAccount } from 'viem/accounts'
import { onFailure, requireEnv } from '../lib/fail.mjs'

onFailure('x402-server clients', 'is the server up? `node examples/x402-server/run.mjs` runs both')
requireEnv('MPPKIT_PRIVATE_KEY', 'MPPKIT_CHAIN_ID', 'MPPKIT_TOKEN')

const url = process.argv[2] ?? 'http://127.0.0.1:3000/quote'
const account = privateKeyToAccount(/** @type {`0x${string}`} */ (process.env.MPPKIT_PRIVATE_KEY))
const network = /** @type {`${string}:${string}`} */ (`eip155:${process.env.MPPKIT_CHAIN_ID}`)
const token = /** @type {string} */ (process.env.MPPKIT_TOKEN)

// x402's clients pay only assets they know unless told otherwise: allow the local token, capped.
const x402Fetch = wrapFetchWithPayment(
  fetch,
  x402Client.fromConfig({
    schemes: [{ network, client: new ExactEvmScheme(toClientEvmSigner(account)) }],
    spendControls: { allowedAssets: [{ network, asset: token, maxAmountPerPayment: '10000' }] },
  }),
)
const paidByX402 = await x402Fetch(url)
console.log('x402', paidByX402.status, await paidByX402.json())
console.log(
  'x402 PAYMENT-RESPONSE',
  decodePaymentResponseHeader(/** @type {string} */ (paidByX402.headers.get('payment-response'))),
)

const mpp = Client.create({
  methods: [charge({ account })],
  policy: { currencies: [token], maxAmount: { [token]: 10_000n } },
})
const paidByMpp = await mpp.fetch(url)
console.log('mpp', paidByMpp.status, await paidByMpp.json())
console.log('mpp receipt', receipt(paidByMpp))
if (!paidByX402.ok || !paidByMpp.ok) process.exitCode = 1
