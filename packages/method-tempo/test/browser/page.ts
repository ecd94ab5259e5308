// The browser side of client.browser.test.ts: bundled by esbuild for `platform: 'browser'` and loaded
// by a page, it pays a Tempo charge with the published client entries only.
import { Client, receipt } from '@mppkit/core/client'
import { tempo } from '@mppkit/method-tempo/client'
import { privateKeyToAccount } from 'viem/accounts'

export type PayInput = {
  privateKey: `0x${string}`
  rpcUrl: string
  chainId: number
  currency: string
  path: string
  mode: 'pull' | 'push'
}

async function payInBrowser(input: PayInput) {
  const network = `tempo:${input.chainId}`
  const client = Client.create({
    methods: [
      tempo({
        account: privateKeyToAccount(input.privateKey),
        rpcUrl: input.rpcUrl,
        chainId: input.chainId,
        mode: input.mode,
      }),
    ],
    policy: {
      currencies: [`${network}:${input.currency}`],
      maxAmount: 10_000n,
      // A cross-rail budget priced in USD (TIP-20 stablecoins: 10^decimals base units per dollar).
      crossRail: {
        unit: 'USD',
        budget: 1,
        price: (quote) => ({ numerator: quote.amount, denominator: 10n ** BigInt(quote.decimals ?? 6) }),
      },
    },
  })
  const response = await client.fetch(input.path)
  return {
    status: response.status,
    body: await response.text(),
    receipt: receipt(response) ?? null,
    spent: String(client.ledger.spent(input.currency, network)),
    // Proof that this ran in a browser, not in node.
    runtime: {
      process: typeof (globalThis as { process?: unknown }).process,
      userAgent: navigator.userAgent,
    },
  }
}

;(globalThis as unknown as { payInBrowser: typeof payInBrowser }).payInBrowser = payInBrowser
