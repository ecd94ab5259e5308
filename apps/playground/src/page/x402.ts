// x402 views, on anvil's EIP-3009 token, signed in the page with devnet keys:
// - "x402 service": an @x402/hono v2 route paid by the mppkit client through @mppkit/x402-compat's
//   client plug (`x402()` reads PAYMENT-REQUIRED, `charge()` signs the EIP-3009 authorization);
// - "x402 client": @x402/fetch (x402's own client) paying an mppkit route made dual-stack by
//   @mppkit/x402-compat's server `x402()`.
import { type Challenge, Client, Protocol, receipt as receiptOf } from '@mppkit/core/client'
import { Wire } from '@mppkit/x402-compat'
import { charge, x402 } from '@mppkit/x402-compat/client'
import { x402Client } from '@x402/core/client'
import { toClientEvmSigner } from '@x402/evm'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import { privateKeyToAccount } from 'viem/accounts'
import type { X402PageConfig } from '../server/x402.js'
import { applyPolicyButton, baseUnits, display, failureText, h, pretty, setStatus } from './dom.js'
import { type Exchange, offersOf, offersTable, recordingFetch, type Steps, steps } from './flow.js'
import { type Config, getJson, type View } from './main.js'
import { type Balances, balanceBox } from './payment.js'

export function x402Views(config: Config): View[] {
  const x = config.x402!
  const balances = () => x402Balances('/api/x402/balances', x.token)
  const shown = evmDisplay(x)
  const network = `eip155:${x.chainId}` as const
  return [
    serviceView({
      id: 'x402-service',
      title: 'x402 service',
      intro: `GET ${x.routes.service} is an x402 service (@x402/hono v2 with an in-process facilitator) selling for ${display(x.price, x.token.decimals)} ${x.token.symbol} (anvil's EIP-3009 token). The mppkit client in this page pays it through @mppkit/x402-compat's client plug, from a devnet key (${x.servicePayer.address.slice(0, 10)}…).`,
      route: x.routes.service,
      shown,
      balances,
      payer: async () => ({
        methods: [charge({ account: privateKeyToAccount(x.servicePayer.privateKey), chainIds: [x.chainId] })],
        protocols: [
          Protocol.mpp,
          x402({ decimals: { [`eip155:${x.chainId}:${x.token.address}`]: x.token.decimals } }),
        ],
      }),
    }),
    clientView({
      id: 'x402-client',
      title: 'x402 client',
      intro: `GET ${x.routes.dual} is an mppkit route made dual-stack by @mppkit/x402-compat (WWW-Authenticate: Payment and PAYMENT-REQUIRED for one price, ${display(x.price, x.token.decimals)} ${x.token.symbol}). x402's own client, @x402/fetch, pays it from this page with a devnet key (${x.clientPayer.address.slice(0, 10)}…); its spend control is the max per request.`,
      route: x.routes.dual,
      shown,
      balances,
      scheme: async () => ({
        network,
        client: new ExactEvmScheme(toClientEvmSigner(privateKeyToAccount(x.clientPayer.privateKey))),
      }),
    }),
  ]
}

/** The balances of an x402 demo (both page payers, the payee, the facilitator's settlements). */
export async function x402Balances(
  path: string,
  token: { decimals: number; symbol: string },
): Promise<Balances> {
  const b = (await getJson(path)) as Record<string, string>
  const units = (amount: string) => `${display(amount, token.decimals)} ${token.symbol}`
  return {
    'payer of the service view (page)': units(b.servicePayer!),
    'payer of the client view (page)': units(b.clientPayer!),
    payee: units(b.payee!),
    'facilitator settlements': String(b.settlements),
  }
}

/** How an x402 view shows amounts of its asset, its payment header and its settlement's record. */
export type X402Display = {
  token: { address: string; decimals: number; symbol: string }
  /** The title of the payment step (what PAYMENT-SIGNATURE carries on this network). */
  paymentTitle: string
  /** Where the page reads the devnet's record of a settlement. */
  recordUrl(reference: string): string
}

const evmDisplay = (x: X402PageConfig): X402Display => ({
  token: x.token,
  paymentTitle:
    '3. The payment (PAYMENT-SIGNATURE: an EIP-3009 authorization signed in this page, decoded, signature masked)',
  recordUrl: (hash) => `/api/record/tempo/${hash}`,
})

/** The common frame of an x402 view: policy inputs, Pay, status, balances, steps. */
function frame(id: string, intro: string, symbol: string, pay: (parts: Parts) => Promise<void>) {
  const maxAmount = h('input', { id: `${id}-max`, inputmode: 'decimal', value: '0.01' })
  const budget = h('input', { id: `${id}-budget`, inputmode: 'decimal', value: '0.1' })
  const status = h('p', { class: 'status', id: `${id}-status`, role: 'status' })
  const balanceArea = h('div', { class: 'balances', id: `${id}-balances` })
  const out = steps(id)
  const button = h('button', { type: 'button', id: `${id}-pay` }, 'Pay')
  const parts: Parts = { maxAmount, budget, status, balanceArea, out }
  button.addEventListener('click', async () => {
    button.disabled = true
    out.clear()
    setStatus(status, 'Paying…')
    try {
      await pay(parts)
    } catch (error) {
      setStatus(status, failureText(error), 'bad')
    } finally {
      button.disabled = false
    }
  })
  return {
    parts,
    element: (...policy: HTMLElement[]) =>
      h(
        'section',
        { id: `view-${id}` },
        h('p', {}, intro),
        h(
          'fieldset',
          { class: 'controls' },
          h('legend', {}, `Spend policy (${symbol})`),
          h('label', {}, 'Max per request', maxAmount),
          ...policy,
        ),
        h('div', { class: 'controls' }, button),
        status,
        balanceArea,
        out.list,
      ),
  }
}

type Parts = {
  maxAmount: HTMLInputElement
  budget: HTMLInputElement
  status: HTMLElement
  balanceArea: HTMLElement
  out: Steps
}

/**
 * An x402 payment header (PAYMENT-SIGNATURE), decoded: an EVM signature masked, a Solana transaction
 * (partially signed, its signature included) shortened.
 */
function maskedPayment(header: string) {
  const payment = Wire.decode(header) as { payload?: { signature?: string; transaction?: string } }
  if (payment.payload?.signature)
    payment.payload.signature = `${payment.payload.signature.slice(0, 6)}…(masked, ${payment.payload.signature.length} chars)`
  if (payment.payload?.transaction)
    payment.payload.transaction = `${payment.payload.transaction.slice(0, 12)}…(a partially signed transaction, ${payment.payload.transaction.length} base64 chars, masked)`
  return payment
}

/** The offers of an x402 PAYMENT-REQUIRED header, one row each. */
function requirementsTable(header: string, token: X402Display['token']) {
  const required = Wire.decode(header) as { accepts?: Record<string, unknown>[] }
  return h(
    'table',
    { class: 'offers' },
    h(
      'tr',
      { class: 'head' },
      h('th', {}, 'scheme/network'),
      h('th', {}, 'amount'),
      h('th', {}, 'valid for'),
      h('th', {}, 'requirement'),
    ),
    ...(required.accepts ?? []).map((accept) =>
      h(
        'tr',
        { class: 'offer' },
        h('td', { 'data-label': 'scheme/network' }, `${accept.scheme}/${accept.network}`),
        h(
          'td',
          { 'data-label': 'amount' },
          String(accept.asset).toLowerCase() === token.address.toLowerCase()
            ? `${display(String(accept.amount), token.decimals)} ${token.symbol}`
            : `${accept.amount} (base units of ${accept.asset})`,
        ),
        h('td', { 'data-label': 'valid for' }, `${accept.maxTimeoutSeconds} s`),
        h('td', { 'data-label': 'requirement' }, h('pre', {}, pretty(accept))),
      ),
    ),
  )
}

/** The settlement's record on the devnet (read from `url`). */
function recordButton(hash: string, url: string) {
  const box = h('pre', { class: 'record' })
  const button = h('button', { type: 'button', class: 'record' }, `Devnet record of ${hash.slice(0, 14)}…`)
  button.addEventListener('click', async () => {
    box.textContent = 'loading the devnet record…'
    box.textContent = pretty(await getJson(url))
  })
  return [button, box] as const
}

async function showExchanges(
  out: Steps,
  log: readonly X402Exchange[],
  response: Response,
  shown: X402Display,
  mpp: boolean,
) {
  const { token } = shown
  const unpaid = log.find((exchange) => exchange.status === 402)
  if (unpaid) {
    const required = unpaid.headers.get(Wire.headers.paymentRequired)
    const challenge = unpaid.headers.get('www-authenticate')
    out.step(
      'unpaid',
      `1. Unpaid request: ${unpaid.method} ${new URL(unpaid.url).pathname} → ${unpaid.status}`,
      h(
        'pre',
        {},
        `PAYMENT-REQUIRED: ${required ? `${required.slice(0, 60)}…` : '(none)'}\nWWW-Authenticate: ${challenge ?? '(none: not an MPP server)'}`,
      ),
    )
    out.step(
      'offers',
      '2. The 402: every offer decoded',
      required ? h('p', {}, 'x402 (PAYMENT-REQUIRED):') : '',
      required ? requirementsTable(required, token) : '',
      challenge && mpp ? h('p', {}, 'MPP (WWW-Authenticate):') : '',
      challenge && mpp
        ? offersTable(offersOf(unpaid), (_c: Challenge.Challenge) => ({
            decimals: token.decimals,
            symbol: token.symbol,
          }))
        : '',
    )
  }
  const paid = [...log].reverse().find((exchange) => exchange.payment)
  if (paid?.payment)
    out.step('credential', shown.paymentTitle, h('pre', {}, pretty(maskedPayment(paid.payment))))
  out.step(
    'response',
    `4. ${response.ok ? 'Paid response' : 'The payment was refused'}: ${response.status}`,
    h('pre', {}, await response.text()),
  )
  const settled = response.headers.get(Wire.headers.paymentResponse)
  const receipt = receiptOf(response)
  if (settled || receipt) {
    const settlement = settled ? (Wire.decode(settled) as { transaction?: string }) : undefined
    const hash =
      settlement?.transaction ?? String((receipt as { reference?: unknown } | undefined)?.reference ?? '')
    out.step(
      'receipt',
      '5. Settlement (PAYMENT-RESPONSE) and receipt, decoded',
      h('pre', { class: 'settlement' }, pretty(settlement ?? '(no PAYMENT-RESPONSE)')),
      h('pre', { class: 'receipt' }, pretty(receipt ?? '(no receipt)')),
      ...(hash ? recordButton(hash, shown.recordUrl(hash)) : []),
    )
  }
  return receipt
}

/** Records exchanges with the x402 payment header each request sent. */
type X402Exchange = Exchange & { payment?: string | null }
function recording(log: X402Exchange[]): typeof fetch {
  const inner = recordingFetch(log)
  return async (input, init) => {
    const request = new Request(input, init)
    const payment = request.headers.get(Wire.headers.paymentSignature)
    const response = await inner(request)
    log.at(-1)!.payment = payment
    return response
  }
}

/** What an x402 view shows and where it pays (the network-specific parts come from its module). */
export type X402ViewOptions = {
  id: string
  title: string
  intro: string
  route: string
  shown: X402Display
  balances: () => Promise<Balances>
}

/** The methods and protocols of the mppkit client that pays an x402 service. */
type Payer = Pick<Parameters<typeof Client.create>[0], 'methods' | 'protocols'>
/** One network scheme of an `@x402/fetch` client. */
type Scheme = Parameters<typeof x402Client.fromConfig>[0]['schemes'][number]

/** An x402 service paid by the mppkit client through @mppkit/x402-compat's client plug. */
export function serviceView(options: X402ViewOptions & { payer: () => Promise<Payer> }): View {
  const { id, shown, balances } = options
  const { token } = shown
  const log: X402Exchange[] = []
  let client: Client.Client | undefined
  const spent = h('span', { id: `${id}-spent` }, '0')
  const { parts, element } = frame(
    id,
    options.intro,
    token.symbol,
    async ({ maxAmount, budget, status, balanceArea, out }) => {
      log.length = 0
      client ??= Client.create({
        ...(await options.payer()),
        policy: {
          currencies: [token.address],
          maxAmount: { [token.address]: baseUnits(maxAmount.value, token.decimals) },
          budget: { [token.address]: baseUnits(budget.value, token.decimals) },
        },
        fetch: recording(log),
      })
      const before = await balances()
      balanceArea.replaceChildren(balanceBox('Balances', before, undefined))
      const started = performance.now()
      let response: Response
      try {
        response = await client.fetch(options.route)
      } catch (error) {
        setStatus(status, failureText(error), 'bad')
        spent.textContent = display(client.ledger.spent(token.address), token.decimals)

        return
      }
      const ms = Math.round(performance.now() - started)
      await showExchanges(out, log, response, shown, false)
      setStatus(
        status,
        response.ok ? `Paid: ${response.status} in ${ms} ms` : `Not paid: ${response.status}`,
        response.ok ? 'ok' : 'bad',
      )
      spent.textContent = display(client.ledger.spent(token.address), token.decimals)
      balanceArea.replaceChildren(balanceBox('Balances', before, await balances()))
    },
  )
  const apply = applyPolicyButton(`${id}-apply`, parts.status, () => {
    client = undefined
    spent.textContent = '0'
  })
  return {
    id,
    title: options.title,
    element: element(
      h('label', {}, 'Budget', parts.budget),
      apply,
      h('span', {}, 'Spent: ', spent, ` ${token.symbol}`),
    ),
  }
}

/** An mppkit route made dual-stack, paid by x402's own client (@x402/fetch); its cap is the max per request. */
export function clientView(options: X402ViewOptions & { scheme: () => Promise<Scheme> }): View {
  const { id, shown, balances } = options
  const { token } = shown
  const log: X402Exchange[] = []
  const { element } = frame(
    id,
    options.intro,
    token.symbol,
    async ({ maxAmount, status, balanceArea, out }) => {
      log.length = 0
      const scheme = await options.scheme()
      const client = x402Client.fromConfig({
        schemes: [scheme],
        spendControls: {
          allowedAssets: [
            {
              network: scheme.network,
              asset: token.address,
              maxAmountPerPayment: String(baseUnits(maxAmount.value, token.decimals)),
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
        response = await pay(options.route)
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
  return { id, title: options.title, element: element() }
}
