// A payment view: rail controls, an editable spend policy, a Pay button, balances before/after and
// the payment's steps. Rails plug in how they build a client and read balances.
import { type Challenge, Client, type Policy } from '@mppkit/core/client'
import { applyPolicyButton, baseUnits, display, failureText, h, problemOf, setStatus } from './dom.js'
import { type Exchange, recordingFetch, showPayment, steps, type Units } from './flow.js'
import type { View } from './main.js'

export type Balances = Record<string, string>

export type PaymentViewOptions = {
  id: string
  title: string
  intro: string
  url: string
  units: Units
  /** Policy defaults, display units. */
  policy: { maxAmount: string; budget: string }
  controls?: HTMLElement[]
  /** The client's methods and the policy's currency key. */
  methods(fetch: typeof globalThis.fetch): Client.Options['methods']
  currency: string
  balances(): Promise<Balances>
  record(reference: string): Promise<unknown>
}

export function balanceBox(label: string, before: Balances | undefined, after: Balances | undefined) {
  const rows = Object.keys(after ?? before ?? {}).map((key) =>
    h(
      'tr',
      {},
      h('th', {}, key),
      h('td', { class: 'before' }, before?.[key] ?? '…'),
      h('td', { class: 'after' }, after?.[key] ?? '…'),
    ),
  )
  return h(
    'div',
    {},
    h('strong', {}, label),
    h('table', {}, h('tr', {}, h('th', {}, ''), h('th', {}, 'before'), h('th', {}, 'after')), ...rows),
  )
}

export function paymentView(options: PaymentViewOptions): View {
  const id = options.id
  const maxAmount = h('input', { id: `${id}-max`, inputmode: 'decimal', value: options.policy.maxAmount })
  const budget = h('input', { id: `${id}-budget`, inputmode: 'decimal', value: options.policy.budget })
  const status = h('p', { class: 'status', id: `${id}-status`, role: 'status' })
  const spent = h('span', { id: `${id}-spent` }, '0')
  const balances = h('div', { class: 'balances', id: `${id}-balances` })
  const out = steps(id)
  const log: Exchange[] = []
  let client: Client.Client | undefined
  const newClient = () => {
    const policy: Policy = {
      currencies: [options.currency],
      maxAmount: { [options.currency]: baseUnits(maxAmount.value, options.units.decimals) },
      budget: { [options.currency]: baseUnits(budget.value, options.units.decimals) },
    }
    const fetch = recordingFetch(log)
    client = Client.create({ methods: options.methods(fetch), policy, fetch })
    spent.textContent = '0'
  }
  const showSpent = () => {
    if (client)
      spent.textContent = display(
        client.ledger.spent(options.currency),
        options.units.decimals,
        options.units.minDecimals,
      )
  }
  const units = (_challenge: Challenge.Challenge) => options.units
  const pay = h('button', { type: 'button', id: `${id}-pay` }, `Pay ${options.title}`)
  pay.addEventListener('click', async () => {
    pay.disabled = true
    out.clear()
    log.length = 0
    setStatus(status, 'Paying…')
    try {
      if (!client) newClient()
      const before = await options.balances()
      balances.replaceChildren(balanceBox('Balances', before, undefined))
      const started = performance.now()
      let response: Response
      try {
        response = await client!.fetch(options.url)
      } catch (error) {
        setStatus(status, failureText(error), 'bad')
        // A payment whose outcome is unknown stays booked: spent says so.
        showSpent()
        return
      }
      const ms = Math.round(performance.now() - started)
      const receipt = await showPayment(out, log, response, units, options.record)
      if (response.ok && receipt) setStatus(status, `Paid: ${response.status} in ${ms} ms`, 'ok')
      else {
        const problem = log.at(-1)?.body
        const reason = problem
          ? (problemOf(problem) as { reason?: string; detail?: string; title?: string } | undefined)
          : undefined
        setStatus(
          status,
          `Not paid: ${response.status}${reason ? ` ${reason.reason ?? reason.title ?? ''}: ${reason.detail ?? ''}` : ''}`,
          'bad',
        )
      }
      showSpent()
      balances.replaceChildren(balanceBox('Balances', before, await options.balances()))
    } catch (error) {
      setStatus(status, failureText(error), 'bad')
    } finally {
      pay.disabled = false
    }
  })
  const apply = applyPolicyButton(`${id}-apply`, status, newClient)
  const element = h(
    'section',
    { id: `view-${id}` },
    h('p', {}, options.intro),
    h('div', { class: 'controls' }, ...(options.controls ?? [])),
    h(
      'fieldset',
      { class: 'controls' },
      h('legend', {}, `Spend policy (${options.units.symbol})`),
      h('label', {}, 'Max per request', maxAmount),
      h('label', {}, 'Budget', budget),
      apply,
      h('span', {}, 'Spent: ', spent, ` ${options.units.symbol}`),
    ),
    h('div', { class: 'controls' }, pay),
    status,
    balances,
    out.list,
  )
  return { id, title: options.title, element }
}
