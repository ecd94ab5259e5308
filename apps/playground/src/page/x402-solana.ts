// x402 views on Solana, on the devnet's LiteSVM node and an SPL token, signed in the page with devnet
// keys (the facilitator co-signs as fee payer and broadcasts; the payers hold tokens and no SOL):
// - "x402 service (Solana)": an @x402/hono v2 route paid by the mppkit client through
//   @mppkit/x402-compat's client plug (`x402()` reads PAYMENT-REQUIRED, `svm()` signs the transfer);
// - "x402 client (Solana)": @x402/fetch with @x402/svm (x402's own client) paying an mppkit route made
//   dual-stack by @mppkit/x402-compat's server `x402()` and its `svm` method.
import { Protocol } from '@mppkit/core/client'
import { svm, x402 } from '@mppkit/x402-compat/client'
import { createKeyPairSignerFromBytes } from '@solana/kit'
import { ExactSvmScheme } from '@x402/svm/exact/client'
import { display } from './dom.js'
import type { Config, View } from './main.js'
import { clientView, serviceView, type X402Display, x402Balances } from './x402.js'

export function x402SolanaViews(config: Config): View[] {
  const x = config.x402Solana!
  const balances = () => x402Balances('/api/x402-solana/balances', x.token)
  const shown: X402Display = {
    token: x.token,
    paymentTitle:
      '3. The payment (PAYMENT-SIGNATURE: a token transfer signed in this page, the facilitator as fee payer, decoded, transaction masked)',
    recordUrl: (signature) => `/api/x402-solana/record/${signature}`,
  }
  // The page's RPC: the playground's same-origin proxy to the devnet node (an absolute URL for @x402/svm).
  const rpcUrl = new URL(x.rpcUrl, location.href).href
  const signerOf = (payer: { secretKey: number[] }) =>
    createKeyPairSignerFromBytes(new Uint8Array(payer.secretKey))
  return [
    serviceView({
      id: 'x402-solana-service',
      title: 'x402 service (Solana)',
      intro: `GET ${x.routes.service} is an x402 service (@x402/hono v2 with an in-process @x402/svm facilitator) selling for ${display(x.price, x.token.decimals)} ${x.token.symbol} (an SPL token on the devnet's Solana node, standing in for Solana devnet: ${x.network}). The mppkit client in this page pays it through @mppkit/x402-compat's client plug, from a devnet key (${x.servicePayer.address.slice(0, 10)}…).`,
      route: x.routes.service,
      shown,
      balances,
      payer: async () => ({
        methods: [svm({ signer: await signerOf(x.servicePayer), rpcUrl })],
        protocols: [Protocol.mpp, x402({ svm: { rpcUrl } })],
      }),
    }),
    clientView({
      id: 'x402-solana-client',
      title: 'x402 client (Solana)',
      intro: `GET ${x.routes.dual} is an mppkit route made dual-stack by @mppkit/x402-compat (WWW-Authenticate: Payment and PAYMENT-REQUIRED for one price, ${display(x.price, x.token.decimals)} ${x.token.symbol}, on Solana). x402's own client, @x402/fetch with @x402/svm, pays it from this page with a devnet key (${x.clientPayer.address.slice(0, 10)}…); its spend control is the max per request.`,
      route: x.routes.dual,
      shown,
      balances,
      scheme: async () => ({
        network: x.network as `solana:${string}`,
        client: new ExactSvmScheme((await signerOf(x.clientPayer)) as never, { rpcUrl }),
      }),
    }),
  ]
}
