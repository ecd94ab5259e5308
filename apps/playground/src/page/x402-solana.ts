// x402 views on Solana, on the devnet's LiteSVM node and an SPL token, signed in the page with devnet
// keys (the facilitator co-signs as fee payer and broadcasts; the payers hold tokens and no SOL):
// - "x402 service (Solana)": an @x402/hono v2 route paid by the mppkit client through
//   @mppkit/x402-compat's client plug (`x402()` reads PAYMENT-REQUIRED, `svm()` signs the transfer);
// - "x402 client (Solana)": @x402/fetch with @x402/svm (x402's own client) paying an mppkit route made
//   dual-stack by @mppkit/x402-compat's server `x402()` and its `svm` method.
import { Client, Protocol } from '@mppkit/core/client'
import { svm, x402 } from '@mppkit/x402-compat/client'
import { createKeyPairSignerFromBytes } from '@solana/kit'
import { x402Client } from '@x402/core/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import { ExactSvmScheme } from '@x402/svm/exact/client'
import type { X402SolanaPageConfig } from '../server/x402-solana.js'
import { applyPolicyButton, baseUnits, display, h, setStatus } from './dom.js'
import { type Config, getJson, type View } from './main.js'
import { type Balances, balanceBox } from './payment.js'
import { frame, recording, showExchanges, type X402Display, type X402Exchange } from './x402.js'

export function x402SolanaViews(config: Config): View[] {
  const x = config.x402Solana!
  const balances = async (): Promise<Balances> => {
    const b = (await getJson('/api/x402-solana/balances')) as Record<string, string>
    const units = (amount: string) => `${display(amount, x.token.decimals)} ${x.token.symbol}`
    return {
      'payer of the service view (page)': units(b.servicePayer!),
      'payer of the client view (page)': units(b.clientPayer!),
      payee: units(b.payee!),
      'facilitator settlements': String(b.settlements),
    }
  }
  const shown: X402Display = {
    token: x.token,
    paymentTitle:
      '3. The payment (PAYMENT-SIGNATURE: a token transfer signed in this page, the facilitator as fee payer, decoded, transaction masked)',
    recordUrl: (signature) => `/api/x402-solana/record/${signature}`,
  }
  // The page's RPC: the playground's same-origin proxy to the devnet node (an absolute URL for @x402/svm).
  const rpcUrl = new URL(x.rpcUrl, location.href).href
  return [serviceView(x, shown, rpcUrl, balances), clientView(x, shown, rpcUrl, balances)]
}

const signerOf = (payer: { secretKey: number[] }) =>
  createKeyPairSignerFromBytes(new Uint8Array(payer.secretKey))

function serviceView(
  x: X402SolanaPageConfig,
  shown: X402Display,
  rpcUrl: string,
  balances: () => Promise<Balances>,
): View {
  const log: X402Exchange[] = []
  let client: Client.Client | undefined
  const spent = h('span', { id: 'x402-solana-service-spent' }, '0')
  const { parts, element } = frame(
    'x402-solana-service',
    `GET ${x.routes.service} is an x402 service (@x402/hono v2 with an in-process @x402/svm facilitator) selling for ${display(x.price, x.token.decimals)} ${x.token.symbol} (an SPL token on the devnet's Solana node, standing in for Solana devnet: ${x.network}). The mppkit client in this page pays it through @mppkit/x402-compat's client plug, from a devnet key (${x.servicePayer.address.slice(0, 10)}…).`,
    x.token.symbol,
    async ({ maxAmount, budget, status, balanceArea, out }) => {
      log.length = 0
      client ??= Client.create({
        methods: [svm({ signer: await signerOf(x.servicePayer), rpcUrl })],
        protocols: [Protocol.mpp, x402({ svm: { rpcUrl } })],
        policy: {
          currencies: [x.token.address],
          maxAmount: { [x.token.address]: baseUnits(maxAmount.value, x.token.decimals) },
          budget: { [x.token.address]: baseUnits(budget.value, x.token.decimals) },
        },
        fetch: recording(log),
      })
      const before = await balances()
      balanceArea.replaceChildren(balanceBox('Balances', before, undefined))
      const started = performance.now()
      let response: Response
      try {
        response = await client.fetch(x.routes.service)
      } catch (error) {
        const name = (error as Error).name
        setStatus(
          status,
          `${name === 'PolicyError' ? 'Refused by policy' : 'Failed'}: ${(error as Error).message}`,
          'bad',
        )
        return
      }
      const ms = Math.round(performance.now() - started)
      await showExchanges(out, log, response, shown, false)
      setStatus(
        status,
        response.ok ? `Paid: ${response.status} in ${ms} ms` : `Not paid: ${response.status}`,
        response.ok ? 'ok' : 'bad',
      )
      spent.textContent = display(client.ledger.spent(x.token.address), x.token.decimals)
      balanceArea.replaceChildren(balanceBox('Balances', before, await balances()))
    },
  )
  const apply = applyPolicyButton('x402-solana-service-apply', parts.status, () => {
    client = undefined
    spent.textContent = '0'
  })
  return {
    id: 'x402-solana-service',
    title: 'x402 service (Solana)',
    element: element(
      h('label', {}, 'Budget', parts.budget),
      apply,
      h('span', {}, 'Spent: ', spent, ` ${x.token.symbol}`),
    ),
  }
}

function clientView(
  x: X402SolanaPageConfig,
  shown: X402Display,
  rpcUrl: string,
  balances: () => Promise<Balances>,
): View {
  const log: X402Exchange[] = []
  const { element } = frame(
    'x402-solana-client',
    `GET ${x.routes.dual} is an mppkit route made dual-stack by @mppkit/x402-compat (WWW-Authenticate: Payment and PAYMENT-REQUIRED for one price, ${display(x.price, x.token.decimals)} ${x.token.symbol}, on Solana). x402's own client, @x402/fetch with @x402/svm, pays it from this page with a devnet key (${x.clientPayer.address.slice(0, 10)}…); its spend control is the max per request.`,
    x.token.symbol,
    async ({ maxAmount, status, balanceArea, out }) => {
      log.length = 0
      const network = x.network as `solana:${string}`
      const client = x402Client.fromConfig({
        schemes: [
          { network, client: new ExactSvmScheme((await signerOf(x.clientPayer)) as never, { rpcUrl }) },
        ],
        spendControls: {
          allowedAssets: [
            {
              network,
              asset: x.token.address,
              maxAmountPerPayment: String(baseUnits(maxAmount.value, x.token.decimals)),
            },
          ],
        },
      })
      const pay = wrapFetchWithPayment(recording(log), client)
      const before = await balances()
      balanceArea.replaceChildren(balanceBox('Balances', before, undefined))
      const started = performance.now()
      let response: Response
      try {
        response = await pay(x.routes.dual)
      } catch (error) {
        setStatus(status, `Refused by @x402/fetch: ${(error as Error).message}`, 'bad')
        return
      }
      const ms = Math.round(performance.now() - started)
      await showExchanges(out, log, response, shown, true)
      setStatus(
        status,
        response.ok ? `Paid: ${response.status} in ${ms} ms` : `Not paid: ${response.status}`,
        response.ok ? 'ok' : 'bad',
      )
      balanceArea.replaceChildren(balanceBox('Balances', before, await balances()))
    },
  )
  return { id: 'x402-solana-client', title: 'x402 client (Solana)', element: element() }
}
