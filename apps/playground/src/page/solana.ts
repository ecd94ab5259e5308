// Solana charge view: SOL or the devnet's SPL token, pull (the server broadcasts) or push (the page
// broadcasts), signed in the page with a devnet key through @mppkit/method-solana/client. The page's
// RPC calls go to the devnet node through the playground's same-origin proxy.
import { type Challenge, Client, type Policy, receipt as receiptOf } from '@mppkit/core/client'
import { solana } from '@mppkit/method-solana/client'
import { createKeyPairSignerFromBytes } from '@solana/kit'
import { inspectValue } from '../../../../packages/core/src/internal/inspect.js'
import type { SolanaPageConfig } from '../server/solana.js'
import { applyPolicyButton, baseUnits, display, failureText, h, pretty, problemOf, setStatus } from './dom.js'
import { type Exchange, maskedCredential, offersOf, offersTable, recordingFetch, steps } from './flow.js'
import { type Config, getJson, type View } from './main.js'
import { type Balances, balanceBox } from './payment.js'
import { decodeWire, summarizeRecord } from './solana-decode.js'

type Currency = 'sol' | 'token'

export function solanaViews(config: Config): View[] {
  const s = config.solana!
  const units = (currency: Currency) =>
    currency === 'sol'
      ? { decimals: 9, symbol: 'SOL', key: 'sol', url: '/api/demo/solana/sol', price: s.prices.sol }
      : {
          decimals: s.token.decimals,
          symbol: s.token.symbol,
          key: s.token.mint,
          url: '/api/demo/solana/token',
          price: s.prices.token,
        }
  const currency = h(
    'select',
    { id: 'solana-currency' },
    h('option', { value: 'sol' }, `SOL (${display(s.prices.sol, 9)} SOL)`),
    h(
      'option',
      { value: 'token' },
      `${s.token.symbol}, an SPL token (${display(s.prices.token, s.token.decimals)})`,
    ),
  )
  const mode = h(
    'select',
    { id: 'solana-mode' },
    h('option', { value: 'pull' }, 'pull (server broadcasts)'),
    h('option', { value: 'push' }, 'push (page broadcasts)'),
  )
  const maxAmount = h('input', { id: 'solana-max', inputmode: 'decimal', value: '0.01' })
  const budget = h('input', { id: 'solana-budget', inputmode: 'decimal', value: '0.1' })
  const status = h('p', { class: 'status', id: 'solana-status', role: 'status' })
  const spent = h('span', { id: 'solana-spent' }, '0')
  const balanceArea = h('div', { class: 'balances', id: 'solana-balances' })
  const out = steps('solana')
  const log: Exchange[] = []
  let client: Client.Client | undefined
  const selected = () => units(currency.value as Currency)
  const balances = async (): Promise<Balances> => {
    const b = (await getJson('/api/solana/balances')) as Record<string, string>
    return {
      'payer (page) SOL': display(b.payerSol!, 9),
      'payee SOL': display(b.payeeSol!, 9),
      [`payer (page) ${s.token.symbol}`]: display(b.payerToken!, s.token.decimals),
      [`payee ${s.token.symbol}`]: display(b.payeeToken!, s.token.decimals),
    }
  }
  const newClient = async () => {
    const unit = selected()
    const policy: Policy = {
      currencies: [unit.key],
      maxAmount: { [unit.key]: baseUnits(maxAmount.value, unit.decimals) },
      budget: { [unit.key]: baseUnits(budget.value, unit.decimals) },
    }
    const fetch = recordingFetch(log)
    const signer = await createKeyPairSignerFromBytes(new Uint8Array(s.payer.secretKey))
    client = Client.create({
      methods: [
        solana({
          signer,
          rpcUrl: new URL(s.rpcUrl, location.href).href,
          network: s.network,
          mode: mode.value as 'pull' | 'push',
          recipients: [s.payee],
        }),
      ],
      policy,
      fetch,
    })
    spent.textContent = '0'
  }
  const apply = applyPolicyButton(
    'solana-apply',
    status,
    newClient,
    () => `Policy applied (a new client for ${selected().symbol}: spent resets to 0).`,
  )
  // The client pays one currency in one mode: a change builds a new one (policy limits in its units).
  const reset = () => {
    client = undefined
    spent.textContent = '0'
    for (const label of policyLabels) label.textContent = ` (${selected().symbol})`
  }
  currency.addEventListener('change', reset)
  mode.addEventListener('change', reset)
  const policyLabels = [h('span', {}, ' (SOL)'), h('span', {}, ' (SOL)'), h('span', {}, ' SOL')]

  const pay = h('button', { type: 'button', id: 'solana-pay' }, 'Pay Solana charge')
  pay.addEventListener('click', async () => {
    pay.disabled = true
    out.clear()
    log.length = 0
    setStatus(status, 'Paying…')
    const unit = selected()
    try {
      if (!client) await newClient()
      const before = await balances()
      balanceArea.replaceChildren(balanceBox('Balances', before, undefined))
      const started = performance.now()
      let response: Response
      try {
        response = await client!.fetch(unit.url)
      } catch (error) {
        setStatus(status, failureText(error), 'bad')
        spent.textContent = display(client!.ledger.spent(unit.key), unit.decimals)

        return
      }
      const ms = Math.round(performance.now() - started)
      await showSolanaPayment(out, log, response, (_challenge: Challenge.Challenge) => unit)
      const receipt = receiptOf(response)
      if (response.ok && receipt) setStatus(status, `Paid: ${response.status} in ${ms} ms`, 'ok')
      else {
        const problem = log.at(-1)?.body
        const reason = problem
          ? (problemOf(problem) as { reason?: string; detail?: string } | undefined)
          : undefined
        setStatus(
          status,
          `Not paid: ${response.status}${reason ? ` ${reason.reason ?? ''}: ${reason.detail ?? ''}` : ''}`,
          'bad',
        )
      }
      spent.textContent = display(client!.ledger.spent(unit.key), unit.decimals)
      balanceArea.replaceChildren(balanceBox('Balances', before, await balances()))
    } catch (error) {
      setStatus(status, failureText(error), 'bad')
    } finally {
      pay.disabled = false
    }
  })

  const element = h(
    'section',
    { id: 'view-solana' },
    h(
      'p',
      {},
      `GET /api/demo/solana/sol costs ${display(s.prices.sol, 9)} SOL and /api/demo/solana/token ${display(s.prices.token, s.token.decimals)} ${s.token.symbol} (an SPL token on the devnet), paid from a devnet key in this page (${s.payer.address.slice(0, 8)}…) on the devnet's LiteSVM node.`,
    ),
    h('div', { class: 'controls' }, h('label', {}, 'Currency', currency), h('label', {}, 'Mode', mode)),
    h(
      'fieldset',
      { class: 'controls' },
      h('legend', {}, 'Spend policy'),
      h('label', {}, h('span', {}, 'Max per request', policyLabels[0]!), maxAmount),
      h('label', {}, h('span', {}, 'Budget', policyLabels[1]!), budget),
      apply,
      h('span', {}, 'Spent: ', spent, policyLabels[2]!),
    ),
    h('div', { class: 'controls' }, pay),
    status,
    balanceArea,
    out.list,
  )
  return [{ id: 'solana', title: 'Solana charge', element }]
}

/** The steps of one Solana payment: 402 offers, transaction, credential, response, receipt, record. */
async function showSolanaPayment(
  out: ReturnType<typeof steps>,
  log: readonly Exchange[],
  response: Response,
  units: (challenge: Challenge.Challenge) => { decimals: number; symbol: string },
) {
  const unpaid = log.find((exchange) => exchange.status === 402 && !exchange.authorization)
  if (unpaid) {
    out.step(
      'unpaid',
      `1. Unpaid request: ${unpaid.method} ${new URL(unpaid.url).pathname} → ${unpaid.status}`,
      h('pre', {}, `WWW-Authenticate: ${unpaid.headers.get('www-authenticate') ?? '(none)'}`),
    )
    out.step('offers', '2. The 402: every offer decoded', offersTable(offersOf(unpaid), units))
  }
  const paid = [...log].reverse().find((exchange) => exchange.authorization)
  const credential = paid?.authorization
    ? (maskedCredential(paid.authorization) as { payload?: Record<string, unknown> })
    : undefined
  // The wire transaction comes from the credential as sent (the masked copy redacts it: a signed
  // transaction is spendable by whoever holds it); the page shows it decoded, signatures masked.
  const sent = paid?.authorization ? inspectValue(paid.authorization) : undefined
  const sentPayload =
    sent?.kind === 'credential' ? (sent.credential.payload as Record<string, unknown>) : undefined
  const wire = sentPayload?.type === 'transaction' ? String(sentPayload.transaction) : undefined
  if (wire) {
    // Pull: the signed transaction travels in the credential; decoded here (signatures masked).
    out.step(
      'transaction',
      '3. The transaction (signed in this page, decoded)',
      h('pre', {}, pretty(decodeWire(wire))),
    )
    credential!.payload!.transaction =
      `<base64 wire transaction, ${wire.length} chars: decoded in step 3, signatures masked>`
  } else if (credential) {
    // Push: the page broadcast the transaction; its instructions are read back from the devnet.
    const item = out.step(
      'transaction',
      '3. The transaction (sent by this page; instructions as the devnet recorded them)',
      h('pre', {}, 'loading…'),
    )
    const signature = String((receiptOf(response) as { reference?: unknown } | undefined)?.reference ?? '')
    const landed = signature
      ? (summarizeRecord(await getJson(`/api/record/solana/${signature}`)) as { instructions?: unknown })
      : undefined
    item.querySelector('pre')!.textContent = pretty(landed?.instructions ?? 'no signature to look up')
  }
  if (credential)
    out.step(
      'credential',
      '4. Credential (Authorization: Payment, decoded, signatures masked)',
      h('pre', {}, pretty(credential)),
    )
  out.step(
    'response',
    `5. ${response.ok ? 'Paid response' : 'The payment was refused'}: ${response.status}`,
    h('pre', {}, await response.text()),
  )
  const receipt = receiptOf(response)
  if (receipt) {
    const reference = String((receipt as { reference?: unknown }).reference ?? '')
    const recordBox = h('pre', { class: 'record' })
    out.step(
      'receipt',
      '6. Receipt (Payment-Receipt, decoded)',
      h('pre', {}, pretty(receipt)),
      h(
        'button',
        {
          type: 'button',
          class: 'record',
          onclick: async () => {
            recordBox.textContent = 'loading the devnet record…'
            recordBox.textContent = pretty(summarizeRecord(await getJson(`/api/record/solana/${reference}`)))
          },
        },
        `Devnet record of ${reference.slice(0, 12)}…`,
      ),
      recordBox,
    )
  }
}

export type { SolanaPageConfig }
